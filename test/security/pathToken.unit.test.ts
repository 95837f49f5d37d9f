// Path tokens as pure functions: a chain issued by the client, the control plane and the agents
// verifies; forged, expired, re-ordered, spliced or misdirected ones are refused, each with a
// reason that says which segment and what is wrong.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { registryOf, type Identity, type IdentityRegistry } from '../../src/security/identities.ts';
import { createUserKey, signerFromSeed, type Signer } from '../../src/security/keys.ts';
import {
  agentToken,
  clientSegment,
  planSegments,
  readClaims,
  signToken,
  tokenHash,
  verifyAgentToken,
  verifyClientToken,
  verifyPathChain,
  type ChainCheck,
  type PathSegment,
} from '../../src/security/pathToken.ts';
import { suite } from '../lib/harness.ts';

type Who = { identity: Identity; signer: Signer };
const make = (role: Identity['role'], name: string, actor: string): Who => {
  const k = createUserKey();
  return { identity: { name, role, actor, publicKey: k.publicKey }, signer: signerFromSeed(k.seed) };
};
const alice = make('client', 'alice', 'alice');
const bob = make('client', 'bob', 'bob');
const cp = make('control-plane', 'control-plane', 'control-plane');
const n1 = make('agent', 'n1', 'agent:n1');
const n2 = make('agent', 'n2', 'agent:n2');
const stranger = make('control-plane', 'control-plane', 'control-plane');
const registry: IdentityRegistry = (() => {
  const r = registryOf('d', [alice, bob, cp, n1, n2].map((w) => w.identity));
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
})();

const now = new Date('2026-03-01T12:00:00Z');
const later = (s: number) => new Date(now.getTime() + s * 1000);
const plan = { clientNode: 'n1', endpoint: 'ep', endpointNode: 'n2', src: '10.0.0.3', dst: '10.0.0.2' };

const chainFor = (o: { cid?: string; cpSigner?: Signer; expires?: Date; client?: Who; signedAt?: Date } = {}): PathSegment[] => {
  const cid = o.cid ?? 'c1';
  const who = o.client ?? alice;
  const client = clientSegment({ signer: who.signer, actor: who.identity.actor, connectionId: cid, service: 'svc', now: o.signedAt ?? now, lifetimeSeconds: 3600 });
  return planSegments({ signer: o.cpSigner ?? cp.signer, client, connectionId: cid, generation: 1, service: 'svc', plan, now, expires: o.expires ?? later(600) });
};

const check = (over: Partial<ChainCheck> = {}): ChainCheck => ({
  registry,
  connectionId: 'c1',
  generation: 1,
  node: 'n1',
  side: 'client',
  addresses: ['10.0.0.3/32'],
  now: later(1),
  checkExpiry: true,
  ...over,
});

const refused = async (segments: readonly PathSegment[], c: ChainCheck, ...says: string[]) => {
  const r = await verifyPathChain(segments, c);
  assert.ok(E.isLeft(r), 'the chain is refused');
  if (E.isLeft(r)) for (const s of says) assert.ok(r.left.includes(s), `"${r.left}" should say ${s}`);
};

const s = suite('path tokens');

s('a chain from the client, the control plane and both agents verifies on both nodes', async () => {
  const segs = chainFor();
  assert.equal(segs.map((x) => x.name), ['alice', 'control-plane', 'agent:n1', 'ep']);
  assert.ok(E.isRight(await verifyPathChain(segs, check())), 'client side on n1');
  assert.ok(E.isRight(await verifyPathChain(segs, check({ node: 'n2', side: 'endpoint', addresses: ['10.0.0.2/32'] }))), 'endpoint side on n2');
  // The agents sign their segments under the control plane's; the chain still verifies with them.
  const signed = [...segs];
  signed[2] = { ...segs[2]!, token: agentToken({ signer: n1.signer, actor: 'agent:n1', segments: segs, side: 'client', connectionId: 'c1', generation: 1, now }) };
  signed[3] = { ...segs[3]!, token: agentToken({ signer: n2.signer, actor: 'agent:n2', segments: segs, side: 'endpoint', connectionId: 'c1', generation: 1, now }) };
  assert.ok(E.isRight(await verifyPathChain(signed, check())));
  assert.ok(E.isRight(await verifyAgentToken(signed[2]!.token!, { registry, node: 'n1', side: 'client', connectionId: 'c1', generation: 1, segments: segs, now: later(1) })));
  // The claims are readable by anyone: tokens are assertions, not secrets.
  const claims = readClaims(segs[1]!.token!);
  assert.ok(E.isRight(claims) && claims.right.sub === 'control-plane' && claims.right.gen === 1 && claims.right.prev === tokenHash(segs[0]!.token!));
  assert.is(segs[1]!.expires, later(600).toISOString());
});

s('forged: altered claims, an unknown key, or a key of the wrong role', async () => {
  const segs = chainFor();
  const [h, p, sig] = segs[1]!.token!.split('.') as [string, string, string];
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  const altered = `${h}.${Buffer.from(JSON.stringify({ ...claims, plan: { ...claims.plan, src: '10.0.0.99' } })).toString('base64url')}.${sig}`;
  await refused([segs[0]!, { ...segs[1]!, token: altered }], check(), 'path segment 1 (control-plane)', 'signature does not verify');
  await refused(chainFor({ cpSigner: stranger.signer }), check(), 'path segment 1', 'signed by an unknown key');
  // An agent's key cannot stand in for the control plane's.
  await refused(chainFor({ cpSigner: n2.signer }), check(), 'issued by agent:n2', 'claims to be control-plane');
  const agentAsCp = signToken({ ...claims, sub: 'agent:n2' }, n2.signer);
  await refused([segs[0]!, { ...segs[1]!, token: agentAsCp }], check(), 'path segment 1', 'issued by agent:n2 (agent), where a control-plane token belongs');
  // A flipped bit in the signature.
  const flipped = sig[0] === 'A' ? `B${sig.slice(1)}` : `A${sig.slice(1)}`;
  await refused([segs[0]!, { ...segs[1]!, token: `${h}.${p}.${flipped}` }], check(), 'signature does not verify');
  await refused([segs[0]!, { ...segs[1]!, token: 'not.a.token' }], check(), 'path segment 1');
});

s('expired: the control plane token is refused for programming, accepted for removal', async () => {
  const segs = chainFor({ expires: later(10) });
  await refused(segs, check({ now: later(11) }), 'path segment 1 (control-plane)', `expired at ${later(10).toISOString()}`, 'refresh the connection');
  assert.ok(E.isRight(await verifyPathChain(segs, check({ now: later(11), checkExpiry: false }))), 'an expired connection can still be torn down');
  assert.ok(E.isRight(await verifyPathChain(segs, check({ now: later(9) }))));
});

s('re-ordered or spliced: indexes and hashes give it away', async () => {
  const segs = chainFor();
  await refused([segs[1]!, segs[0]!, segs[2]!, segs[3]!], check(), 're-ordered');
  // A control plane token from another connection of the same client, under this client token.
  const other = chainFor({ cid: 'c2' });
  await refused([segs[0]!, other[1]!], check(), 'path segment 1', 'is for connection c2');
  // Same connection id, but a control plane token issued under another client token (signed a second later).
  const again = chainFor({ signedAt: later(1) });
  await refused([segs[0]!, again[1]!], check(), 'was not issued under segment 0: the path is re-ordered or spliced');
  // The client's own segment swapped for bob's.
  const bobs = chainFor({ client: bob });
  await refused([bobs[0]!, segs[1]!], check(), 'was not issued under segment 0');
  // Agent tokens at each other's positions.
  const t2 = agentToken({ signer: n1.signer, actor: 'agent:n1', segments: segs, side: 'client', connectionId: 'c1', generation: 1, now });
  const t3 = agentToken({ signer: n2.signer, actor: 'agent:n2', segments: segs, side: 'endpoint', connectionId: 'c1', generation: 1, now });
  await refused([segs[0]!, segs[1]!, { ...segs[2]!, token: t3 }, { ...segs[3]!, token: t2 }], check(), 'path segment 2', 're-ordered');
  await refused([segs[0]!], check(), 'no path tokens');
  await refused([], check(), 'no path tokens');
  await refused([segs[0]!, { ...segs[1]!, token: undefined } as PathSegment], check(), 'path segment 1', 'has no token');
});

s('misdirected: another node, side, generation or address', async () => {
  const segs = chainFor();
  await refused(segs, check({ node: 'n3' }), 'is not addressed to agent:n3');
  await refused(segs, check({ node: 'n2', side: 'client' }), 'puts the client side on node n1, not n2');
  await refused(segs, check({ generation: 2 }), 'authorizes generation 1, the command is for generation 2');
  await refused(segs, check({ addresses: ['10.0.0.77/32'] }), 'authorizes address 10.0.0.3 for the client side');
  await refused(segs, check({ connectionId: 'c9' }), 'is for connection c1, not c9');
});

s('the control plane checks the client token of a request', async () => {
  const seg = clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now, lifetimeSeconds: 60 });
  const o = { registry, actor: 'alice', connectionId: 'c1', service: 'svc', now: later(1) };
  assert.ok(E.isRight(await verifyClientToken(seg.token!, o)));
  const no = (r: E.Either<string, unknown>, says: string) => assert.ok(E.isLeft(r) && r.left.includes(says), `${JSON.stringify(r)} should say ${says}`);
  no(await verifyClientToken(seg.token!, { ...o, actor: 'bob' }), "is alice's, not bob's");
  no(await verifyClientToken(seg.token!, { ...o, connectionId: 'c2' }), 'is for connection c1');
  no(await verifyClientToken(seg.token!, { ...o, service: 'other' }), 'is for service svc, not other');
  no(await verifyClientToken(seg.token!, { ...o, now: later(61) }), 'expired at');
  const bobSigned = clientSegment({ signer: bob.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now, lifetimeSeconds: 60 });
  no(await verifyClientToken(bobSigned.token!, o), 'issued by bob, but claims to be alice');
});

s('dated forward: a token issued in the future is refused; a clock within 60 s is not', async () => {
  const no = (r: E.Either<string, unknown>, says: string) => assert.ok(E.isLeft(r) && r.left.includes(says), `${JSON.stringify(r)} should say ${says}`);
  const year = 365 * 86400;
  // The client signs its request "a year from now", valid for an hour from then.
  const ahead = clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now: later(year), lifetimeSeconds: 3600 });
  const o = { registry, actor: 'alice', connectionId: 'c1', service: 'svc', now };
  no(await verifyClientToken(ahead.token!, o), 'client path token was issued in the future');
  no(await verifyClientToken(clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now: later(61), lifetimeSeconds: 3600 }).token!, o), 'issued in the future');
  assert.ok(E.isRight(await verifyClientToken(clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now: later(60), lifetimeSeconds: 3600 }).token!, o)), 'within the skew');
  // Valid for longer from now than any connection may last (365 days).
  const long = clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now, lifetimeSeconds: 400 * 86400 });
  no(await verifyClientToken(long.token!, o), 'client path token is valid for more than 366 days from now');
  assert.ok(E.isRight(await verifyClientToken(clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now, lifetimeSeconds: year }).token!, o)), 'a year-long connection');
  // A control plane token issued an hour ahead: an agent does not program with it, but may remove.
  const segs = planSegments({ signer: cp.signer, client: clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now, lifetimeSeconds: 3600 }), connectionId: 'c1', generation: 1, service: 'svc', plan, now: later(3600), expires: later(7200) });
  await refused(segs, check({ now }), 'path segment 1 (control-plane)', 'issued in the future');
  assert.ok(E.isRight(await verifyPathChain(segs, check({ now, checkExpiry: false }))), 'removal goes ahead');
  assert.ok(E.isRight(await verifyPathChain(segs, check({ now: later(3600 - 60) }))), 'within the skew');
  // An agent's token dated forward, or outliving the control plane token it was issued under.
  const fine = chainFor();
  const agentAt = (when: Date) => agentToken({ signer: n1.signer, actor: 'agent:n1', segments: fine, side: 'client', connectionId: 'c1', generation: 1, now: when });
  const report = { registry, node: 'n1', side: 'client' as const, connectionId: 'c1', generation: 1, segments: fine, now };
  no(await verifyAgentToken(agentAt(later(year)), report), 'agent path token was issued in the future');
  assert.ok(E.isRight(await verifyAgentToken(agentAt(later(30)), report)), 'within the skew');
  const cpClaims = readClaims(fine[1]!.token!);
  if (E.isLeft(cpClaims)) throw new Error(cpClaims.left);
  const outliving = signToken({ sub: 'agent:n1', aud: ['control-plane'], iat: Math.floor(now.getTime() / 1000), exp: cpClaims.right.exp + year, cid: 'c1', gen: 1, idx: 2, seg: 'agent:n1', prev: tokenHash(fine[1]!.token!) }, n1.signer);
  no(await verifyAgentToken(outliving, report), 'agent path token outlives the control plane token');
});

s('a rotated control plane key: paths it signed before the rotation verify until they expire, new ones with the new key; the old key signs nothing new', async () => {
  const cp2 = make('control-plane', 'control-plane', 'control-plane');
  const retiredAt = later(100);
  const rotated = (() => {
    const ids = [alice, bob, n1, n2].map((w) => w.identity);
    const r = registryOf('d', [...ids, { ...cp2.identity, retiredKeys: [{ publicKey: cp.identity.publicKey, retiredAt: retiredAt.toISOString(), loginUntil: later(160).toISOString() }] }]);
    if (E.isLeft(r)) throw new Error(r.left);
    return r.right;
  })();
  const signedBy = (signer: Signer, at: Date) => {
    const client = clientSegment({ signer: alice.signer, actor: 'alice', connectionId: 'c1', service: 'svc', now: at, lifetimeSeconds: 3600 });
    return planSegments({ signer, client, connectionId: 'c1', generation: 1, service: 'svc', plan, now: at, expires: later(600) });
  };
  const atNode = (at: Date) => check({ registry: rotated, now: at });
  assert.ok(E.isRight(await verifyPathChain(signedBy(cp.signer, now), atNode(later(300)))), 'signed by the old key before its retirement: still valid');
  await refused(signedBy(cp.signer, now), atNode(later(601)), 'expired');
  await refused(signedBy(cp.signer, later(150)), atNode(later(200)), 'path segment 1 (control-plane): signed with a key of control-plane retired at', 'after it was retired');
  assert.ok(E.isRight(await verifyPathChain(signedBy(cp2.signer, later(150)), atNode(later(200)))), 'the new key verifies');
  // Taking a side down still goes ahead on a path the old key signed after its retirement (nothing is programmed by it).
  assert.ok(E.isRight(await verifyPathChain(signedBy(cp.signer, later(150)), { ...atNode(later(200)), checkExpiry: false })));
});

s.run();
