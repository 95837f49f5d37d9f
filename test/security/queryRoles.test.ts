// Every query under every role, at both gates: nats-server's permissions (may this identity
// publish to nsm.<d>.query.<itself>.<name>?) and the control plane's check (guard.scopeQuery),
// against a table written out here. The auditor reads everything and makes the control plane do
// nothing beyond answering: no `projections-rebuild` (a fold of the whole log and a snapshot
// save), no `runtime` with `gc` (a full garbage collection); operators may.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { QUERY_NAMES, type QueryName } from '../../src/read/queries.ts';
import { signerOf } from '../../src/security/credentials.ts';
import { createGuard } from '../../src/security/guard.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const D = 'qr';
const enc = new TextEncoder();
const dec = new TextDecoder();

const ACTORS = { 'control-plane': 'control-plane', operator: 'operator', auditor: 'auditor', client: 'alice', agent: 'agent:n1' } as const;
type RoleName = keyof typeof ACTORS;

/** Who may ask what: the expectation, written out (not derived from the code under test). */
const ALLOWED: Record<RoleName, readonly QueryName[] | 'all'> = {
  'control-plane': 'all',
  operator: 'all',
  auditor: ['services', 'endpoints', 'connections', 'connection', 'nodes', 'node-desired', 'addresses', 'history', 'status', 'replay', 'policy', 'runtime', 'peers', 'remote-endpoints', 'failed-steps', 'limits', 'cluster', 'topology'],
  client: ['services', 'connections', 'connection', 'history', 'topology'],
  agent: ['node-desired'],
};
const allowed = (role: RoleName, q: QueryName) => ALLOWED[role] === 'all' || (ALLOWED[role] as readonly string[]).includes(q);

/** Parameters that make sense for each query, for the actor asking. */
const paramsFor = (q: QueryName): Record<string, unknown> => {
  switch (q) {
    case 'connection':
    case 'history':
      return { id: 'c1' };
    case 'node-desired':
      return { node: 'n1' };
    case 'replay':
      return { until: '1' };
    case 'projections-rebuild':
      return { id: randomUUID() };
    default:
      return {};
  }
};

type Ctx = { mesh?: SecureMesh; conns: Map<string, NatsConnection> };
const s = suite<Ctx>('every query under every role, at the server and in the control plane', { conns: new Map() });

s.before(async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: D, nodes: ['n1'], clients: ['alice'] }));
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'svc' }));
  must(await op.send('endpoint.register', { name: 'ep', node: 'n1', networkServiceNames: ['svc'], prefix: '10.82.0.0/24' }));
  const alice = await mesh.client('alice');
  must(await alice.send('connection.request', { connectionId: 'c1', networkService: 'svc', clientNode: 'n1' }));
  assert.equal(must(await alice.waitForConnection('c1', 15000)), { state: 'established' });
  for (const actor of Object.values(ACTORS)) ctx.conns.set(actor, await mesh.connectAs(actor));
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s('the table covers every query there is', () => {
  assert.equal([...QUERY_NAMES].sort(), ['addresses', 'cluster', 'connection', 'connections', 'endpoints', 'failed-steps', 'history', 'limits', 'node-desired', 'nodes', 'peers', 'policy', 'projections-rebuild', 'remote-endpoints', 'replay', 'runtime', 'services', 'status', 'topology']);
});

for (const role of Object.keys(ACTORS) as RoleName[]) {
  s(`${role}: the control plane's check allows exactly the table's queries`, (ctx) => {
    const mesh = ctx.mesh!;
    const guard = createGuard({ registry: mesh.registry, signer: signerOf(mesh.creds('control-plane')) });
    const actor = ACTORS[role];
    for (const q of QUERY_NAMES) {
      const r = guard.scopeQuery(actor, q, paramsFor(q), mesh.cp!.view.current);
      if (allowed(role, q)) assert.ok(E.isRight(r), `${role} may ask ${q}: ${E.isLeft(r) ? r.left : ''}`);
      else assert.equal(r, E.left({ code: 'forbidden', message: `forbidden: ${actor} (${role}) may not ask the "${q}" query` }), `${role} may not ask ${q}`);
    }
    // runtime with a garbage collection: operators (and the control plane) only.
    const gc = guard.scopeQuery(actor, 'runtime', { gc: true }, mesh.cp!.view.current);
    if (role === 'operator' || role === 'control-plane') assert.ok(E.isRight(gc), `${role} may ask runtime with gc`);
    else if (role === 'auditor') assert.equal(gc, E.left({ code: 'forbidden', message: 'forbidden: auditor (auditor) may not ask "runtime" with gc (a full garbage collection on the control plane is for operators)' }));
    else assert.ok(E.isLeft(gc) && gc.left.code === 'forbidden', JSON.stringify(gc));
  });

  s(`${role}: nats-server lets exactly the table's queries through, and the control plane answers them`, async (ctx) => {
    const nc = ctx.conns.get(ACTORS[role])!;
    const actor = ACTORS[role];
    for (const q of QUERY_NAMES) {
      const subject = `nsm.${D}.query.${actor}.${q}`;
      const outcome = await nc.request(subject, enc.encode(JSON.stringify(paramsFor(q))), { timeout: 10_000 }).then(
        (m) => JSON.parse(dec.decode(m.data)) as { ok: boolean; error?: string },
        (e: { code?: string; message: string }) => e,
      );
      if (!allowed(role, q)) {
        assert.is((outcome as { code?: string }).code, 'PERMISSIONS_VIOLATION', `${role} asking ${q}: ${JSON.stringify(outcome)}`);
        assert.ok((outcome as { message: string }).message.includes(`Permissions Violation for Publish to "${subject}"`));
        continue;
      }
      assert.ok('ok' in outcome, `${role} asking ${q} got an answer: ${JSON.stringify(outcome)}`);
      const answer = outcome as { ok: boolean; error?: string };
      // Allowed is not always answerable: peers and remote-endpoints on a mesh that is not federated.
      if (q === 'peers' || q === 'remote-endpoints') assert.equal(answer, { ok: false, error: 'this domain is not federated (docs/federation.md)', code: 'not-found' });
      else assert.ok(answer.ok, `${role} asking ${q}: ${answer.error}`);
    }
  });
}

s('the auditor asking runtime with gc, or a rebuild through the CLI path, is refused with the reason', async (ctx) => {
  const auditor = await ctx.mesh!.client('auditor');
  const gc = await auditor.query('runtime', { gc: true });
  assert.ok(E.isLeft(gc) && gc.left.message === 'forbidden: auditor (auditor) may not ask "runtime" with gc (a full garbage collection on the control plane is for operators)', JSON.stringify(gc));
  const plain = await auditor.query<{ gcRun: boolean; pid: number }>('runtime');
  assert.ok(E.isRight(plain) && plain.right.gcRun === false && plain.right.pid === process.pid, JSON.stringify(plain));
  const rebuild = await auditor.query('projections-rebuild', { id: randomUUID() });
  assert.ok(E.isLeft(rebuild) && /Permissions Violation for Publish to "nsm\.qr\.query\.auditor\.projections-rebuild"/.test(rebuild.left.message), JSON.stringify(rebuild));
  // The operator may.
  const op = await ctx.mesh!.client('operator');
  assert.ok(E.isRight(await op.query('runtime', { gc: true })));
});

s.run();
