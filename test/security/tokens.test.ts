// Path tokens in a running authenticated mesh: node agents refuse to program a side whose path
// tokens are forged, expired or re-ordered, say why, and the connection fails visibly with that
// reason; refresh renews the tokens; the control plane refuses requests and reports whose
// tokens do not check out.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { MeshClient } from '../../src/client/index.ts';
import type { SideSpec } from '../../src/contracts/nodeCommands.ts';
import { signerOf } from '../../src/security/credentials.ts';
import { createUserKey, signerFromSeed } from '../../src/security/keys.ts';
import { agentToken, clientSegment, readClaims, signToken, type PathClaims, type PathSegment } from '../../src/security/pathToken.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const D = 'tok';
const enc = new TextEncoder();

type Ctx = { mesh?: SecureMesh; op?: MeshClient; alice?: MeshClient };
const s = suite<Ctx>('path tokens in an authenticated mesh', {});

type Conn = { state: string; failure?: { code: string; reason: string }; path?: { pathSegments: PathSegment[] }; generation: number };

const connectAlice = async (ctx: Ctx, id: string, extra: { expirationSeconds?: number } = {}) => {
  must(await ctx.alice!.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n1', ...extra }));
  return must(await ctx.alice!.waitForConnection(id, 15000));
};
const connection = async (ctx: Ctx, id: string) => must(await ctx.op!.query<Conn>('connection', { id }));

/** The client side of the connection, as its agent was told to program it. */
const clientSide = async (ctx: Ctx, id: string): Promise<SideSpec> => {
  const desired = must(await ctx.op!.query<{ sides: SideSpec[] }>('node-desired', { node: 'n1' }));
  const side = desired.sides.find((x) => x.connectionId === id && x.side === 'client');
  if (!side) throw new Error(`no client side for ${id}`);
  return side;
};

/**
 * Publishes a node command the way a compromised writer of the node command stream could: with
 * the control plane's NATS credentials (the only identity the server lets publish there), but
 * without its signing key in the right place.
 */
const inject = async (ctx: Ctx, spec: SideSpec) => {
  const nc = await ctx.mesh!.connectAs('control-plane');
  await nc.jetstream().publish(`nsm.${D}.node.${spec.node}.cmd`, enc.encode(JSON.stringify({ id: `tampered-${spec.connectionId}`, spec })), { msgID: `tampered-${spec.connectionId}` });
  await nc.close();
};

const failsWith = async (ctx: Ctx, id: string, ...says: string[]) => {
  const c = await eventually(`${id} to fail`, async () => {
    const now = await connection(ctx, id);
    return now.state === 'failed' ? now : undefined;
  });
  assert.is(c.failure?.code, 'dataplane');
  for (const x of says) assert.ok(c.failure!.reason.includes(x), `"${c.failure!.reason}" should say ${x}`);
  assert.ok(
    ctx.mesh!.logs.some((l) => l.includes('"msg":"refusing to act on a side: its path tokens do not check out"') && l.includes(`"connectionId":"${id}"`)),
    'the agent logged its refusal',
  );
  return c;
};

const claimsOf = (token: string): PathClaims => {
  const c = readClaims(token);
  if (E.isLeft(c)) throw new Error(c.left);
  return c.right;
};

s.before(async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: D, nodes: ['n1', 'n2'], clients: ['alice', 'bob'], agent: { heartbeatMs: 500, livenessIntervalMs: 0 } }));
  ctx.op = await mesh.client('operator');
  must(await ctx.op.send('service.register', { name: 'svc' }));
  must(await ctx.op.send('endpoint.register', { name: 'ep', node: 'n2', networkServiceNames: ['svc'], prefix: '10.90.0.0/24' }));
  ctx.alice = await mesh.client('alice');
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s('an established connection carries four signed segments: client, control plane, both agents', async (ctx) => {
  assert.equal(await connectAlice(ctx, 'c-ok'), { state: 'established' });
  const c = await connection(ctx, 'c-ok');
  const segs = c.path!.pathSegments;
  assert.equal(segs.map((x) => x.name), ['alice', 'control-plane', 'agent:n1', 'ep']);
  assert.ok(segs.every((x) => typeof x.token === 'string' && x.expires), 'every segment is signed and expires');
  assert.equal(segs.map((x) => claimsOf(x.token!).sub), ['alice', 'control-plane', 'agent:n1', 'agent:n2']);
});

s('forged: a control plane token whose claims were altered is refused, and the connection fails', async (ctx) => {
  assert.equal(await connectAlice(ctx, 'c-forged'), { state: 'established' });
  const spec = await clientSide(ctx, 'c-forged');
  const segs = spec.path!.pathSegments;
  const [h, p, sig] = segs[1]!.token!.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  const altered = `${h}.${Buffer.from(JSON.stringify({ ...claims, plan: { ...claims.plan, src: '10.90.0.250' } })).toString('base64url')}.${sig}`;
  await inject(ctx, { ...spec, addresses: ['10.90.0.250/32'], path: { index: 0, pathSegments: [segs[0]!, { ...segs[1]!, token: altered }, ...segs.slice(2)] } });
  await failsWith(ctx, 'c-forged', 'dataplane on node n1 (client side)', 'path segment 1 (control-plane): signature does not verify');
});

s('expired: a genuinely signed control plane token past its expiry is refused', async (ctx) => {
  assert.equal(await connectAlice(ctx, 'c-expired'), { state: 'established' });
  const spec = await clientSide(ctx, 'c-expired');
  const segs = spec.path!.pathSegments;
  const { typ: _t, iss: _i, ...claims } = claimsOf(segs[1]!.token!);
  const past = Math.floor(Date.now() / 1000) - 60;
  const expired = signToken({ ...claims, exp: past }, signerOf(ctx.mesh!.creds('control-plane')));
  await inject(ctx, { ...spec, path: { index: 0, pathSegments: [segs[0]!, { ...segs[1]!, token: expired }, ...segs.slice(2)] } });
  await failsWith(ctx, 'c-expired', `expired at ${new Date(past * 1000).toISOString()}`, 'refresh the connection');
});

s('re-ordered: the same genuine tokens in another order are refused', async (ctx) => {
  assert.equal(await connectAlice(ctx, 'c-reordered'), { state: 'established' });
  const spec = await clientSide(ctx, 'c-reordered');
  const segs = spec.path!.pathSegments;
  await inject(ctx, { ...spec, path: { index: 0, pathSegments: [segs[1]!, segs[0]!, ...segs.slice(2)] } });
  await failsWith(ctx, 'c-reordered', 'path segment 0 (control-plane): token was issued for segment 1', 'the path is re-ordered');
});

s('spliced: the control plane token of another connection is refused', async (ctx) => {
  assert.equal(await connectAlice(ctx, 'c-spliced'), { state: 'established' });
  const spec = await clientSide(ctx, 'c-spliced');
  const donor = (await clientSide(ctx, 'c-ok')).path!.pathSegments;
  await inject(ctx, { ...spec, path: { index: 0, pathSegments: [spec.path!.pathSegments[0]!, donor[1]!] } });
  await failsWith(ctx, 'c-spliced', 'path segment 1 (control-plane): token is for connection c-ok, not c-spliced');
  // The connection the donor token belongs to is untouched.
  assert.is((await connection(ctx, 'c-ok')).state, 'established');
});

s('a heal signs a new path for the new generation, which the agents accept', async (ctx) => {
  must(await ctx.op!.send('endpoint.register', { name: 'ep-spare', node: 'n1', networkServiceNames: ['svc'], prefix: '10.91.0.0/24' }));
  must(await ctx.op!.send('endpoint.register', { name: 'ep-heal', node: 'n2', networkServiceNames: ['svc'], prefix: '10.92.0.0/24' }));
  // Alice's next connection goes to the least loaded endpoint; it is moved when that one leaves.
  assert.equal(await connectAlice(ctx, 'c-heal'), { state: 'established' });
  const first = await connection(ctx, 'c-heal');
  const firstEndpoint = claimsOf(first.path!.pathSegments[1]!.token!).plan!.endpoint;
  must(await ctx.op!.send('endpoint.unregister', { name: firstEndpoint }));
  const healed = await eventually('c-heal to be healed', async () => {
    const c = await connection(ctx, 'c-heal');
    return c.state === 'established' && c.generation === 2 && c.path!.pathSegments.every((x) => x.token) ? c : undefined;
  });
  const claims = healed.path!.pathSegments.map((x) => claimsOf(x.token!));
  assert.equal(claims.map((c) => c.gen), [0, 2, 2, 2]);
  assert.is.not(claims[1]!.plan!.endpoint, firstEndpoint);
  assert.is(claims[0]!.iat, claimsOf(first.path!.pathSegments[0]!.token!).iat, "the client's request token carries over");
  for (const ep of ['ep-spare', 'ep-heal']) if (ep !== firstEndpoint) must(await ctx.op!.send('endpoint.unregister', { name: ep }));
  if (firstEndpoint !== 'ep') must(await ctx.op!.send('endpoint.register', { name: 'ep', node: 'n2', networkServiceNames: ['svc'], prefix: '10.90.0.0/24' }));
});

s('a control plane signing with a key the registry does not know gets nothing programmed', async (ctx) => {
  await ctx.mesh!.cp!.stop();
  await ctx.mesh!.startControlPlane({ signer: signerFromSeed(createUserKey().seed) });
  const r = await connectAlice(ctx, 'c-rogue-cp');
  assert.is(r.state, 'failed');
  assert.match(r.reason!, /path segment 1 \(control-plane\): signed by an unknown key U/);
});

s('tokens that expire before the agent acts: the connection fails with the expiry', async (ctx) => {
  await ctx.mesh!.cp!.stop();
  await ctx.mesh!.startControlPlane({ tokenLifetimeMs: 1 });
  const r = await connectAlice(ctx, 'c-short');
  assert.is(r.state, 'failed');
  assert.match(r.reason!, /path segment 1 \(control-plane\): expired at .*; refresh the connection to renew its tokens/);
});

s('refresh renews the tokens: after the first lifetime, only the refreshed connection can be reprogrammed', async (ctx) => {
  await ctx.mesh!.cp!.stop();
  await ctx.mesh!.startControlPlane({ tokenLifetimeMs: 4000 });
  assert.equal(await connectAlice(ctx, 'c-stale'), { state: 'established' });
  assert.equal(await connectAlice(ctx, 'c-fresh'), { state: 'established' });
  const before = claimsOf((await connection(ctx, 'c-fresh')).path!.pathSegments[1]!.token!);
  must(await ctx.alice!.send('connection.refresh', { connectionId: 'c-fresh', expirationSeconds: 3600 }));
  const renewed = (await connection(ctx, 'c-fresh')).path!.pathSegments;
  const after = claimsOf(renewed[1]!.token!);
  assert.ok(after.exp - before.exp > 3000, `the control plane token now lives with the connection (${before.exp} -> ${after.exp})`);
  assert.is(after.gen, before.gen);
  assert.is(claimsOf(renewed[0]!.token!).sub, 'alice', "the client's segment is renewed by the client");
  assert.ok(claimsOf(renewed[0]!.token!).iat >= before.iat);
  // Past the stale connection's token lifetime, node n1's agent restarts and reconciles.
  await new Promise((r) => setTimeout(r, 4500));
  await ctx.mesh!.stopNode('n1');
  await ctx.mesh!.addNode('n1');
  await ctx.mesh!.agents.get('n1')!.agent.ready;
  await failsWith(ctx, 'c-stale', 'expired at', 'refresh the connection');
  const fresh = await connection(ctx, 'c-fresh');
  assert.is(fresh.state, 'established', JSON.stringify(fresh.failure));
  assert.ok(
    ctx.mesh!.logs.some((l) => l.includes('"msg":"side programmed"') && l.includes('"connectionId":"c-fresh"') && l.includes('"origin":"reconcile"')),
    'the refreshed connection was reprogrammed by the restarted agent',
  );
});

s('the control plane refuses requests whose client token is missing, forged or expired', async (ctx) => {
  const mesh = ctx.mesh!;
  const unsigned = MeshClient.over(await mesh.connectAs('alice'), { domain: D, actor: 'alice' });
  const none = await unsigned.send('connection.request', { connectionId: 'c-unsigned', networkService: 'svc', clientNode: 'n1' });
  assert.ok(E.isLeft(none) && none.left.code === 'forbidden' && none.left.message.includes("must carry the client's signed path token"), JSON.stringify(none));
  const bobKey = signerOf(mesh.creds('bob'));
  const forged = clientSegment({ signer: bobKey, actor: 'alice', connectionId: 'c-forged-req', service: 'svc', now: new Date(), lifetimeSeconds: 600 });
  const r1 = await unsigned.send('connection.request', { connectionId: 'c-forged-req', networkService: 'svc', clientNode: 'n1', token: forged.token! });
  assert.ok(E.isLeft(r1) && r1.left.code === 'forbidden' && r1.left.message === 'client path token: issued by bob, but claims to be alice', JSON.stringify(r1));
  const aliceKey = signerOf(mesh.creds('alice'));
  const old = clientSegment({ signer: aliceKey, actor: 'alice', connectionId: 'c-old-req', service: 'svc', now: new Date(Date.now() - 7200_000), lifetimeSeconds: 3600 });
  const r2 = await unsigned.send('connection.request', { connectionId: 'c-old-req', networkService: 'svc', clientNode: 'n1', token: old.token! });
  assert.ok(E.isLeft(r2) && r2.left.code === 'forbidden' && /client path token expired at/.test(r2.left.message), JSON.stringify(r2));
  const other = clientSegment({ signer: aliceKey, actor: 'alice', connectionId: 'c-other', service: 'svc', now: new Date(), lifetimeSeconds: 600 });
  const r3 = await unsigned.send('connection.request', { connectionId: 'c-mismatch', networkService: 'svc', clientNode: 'n1', token: other.token! });
  assert.ok(E.isLeft(r3) && r3.left.message === 'client path token is for connection c-other', JSON.stringify(r3));
  for (const id of ['c-unsigned', 'c-forged-req', 'c-old-req', 'c-mismatch']) assert.ok(E.isLeft(await ctx.op!.query('connection', { id })), `${id} was never recorded`);
});

s("the control plane refuses a programmed report whose agent token is not that agent's", async (ctx) => {
  const mesh = ctx.mesh!;
  const c = await connection(ctx, 'c-fresh');
  // Signed by n2's key for the client side on n1: a report through n1's own subject.
  const token = agentToken({ signer: signerOf(mesh.creds('agent:n2')), actor: 'agent:n1', segments: c.path!.pathSegments, side: 'client', connectionId: 'c-fresh', generation: c.generation, now: new Date() });
  const asN1 = MeshClient.over(await mesh.connectAs('agent:n1'), { domain: D, actor: 'agent:n1' });
  must(await asN1.send('connection.report', { connectionId: 'c-fresh', node: 'n1', side: 'client', generation: c.generation, result: 'programmed', token }, { wait: false }));
  await eventually('the control plane to refuse the report', () =>
    mesh.logs.some((l) => l.includes('"msg":"command rejected"') && l.includes('agent path token: issued by agent:n2, but claims to be agent:n1')),
  );
});

s.run();
