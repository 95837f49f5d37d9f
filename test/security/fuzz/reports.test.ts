// Boundary: reports as the control plane receives them (`connection.report`, the command an agent
// sends when it has programmed, removed or failed a side, or found its datapath broken). More than
// 10,000 reports drawn with fast-check, sent with agent n1's own credentials on its own subject
// (nsm.<d>.cmd.connection.report.agent:n1) to an authenticated mesh with a real connection whose
// client side is on n1 and endpoint side on n2: malformed ones, reports for another node or the
// other node's side, for connections that do not exist, `programmed` reports whose signed segment
// is missing, forged, signed by another key or altered, reports for other generations, early
// `programmed` reports, real ones again, and publishes this key may not make.
//
// Asserted: every report is answered (an error, or ok) or refused by nats-server; each kind gets
// the outcome it should; every event appended during the run is explained by an accepted report
// (none is expected: an accepted report here changes nothing); the control plane still answers and
// still establishes a new connection (whose reports are real).
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { decodeCommand } from '../../../src/contracts/commands.ts';
import * as D from '../../../src/contracts/decode.ts';
import { decodeNodeCommand, type SideSpec } from '../../../src/contracts/nodeCommands.ts';
import type { CommandReply } from '../../../src/contracts/replies.ts';
import { programmedToken } from '../../../src/security/agentSecurity.ts';
import { signerOf } from '../../../src/security/credentials.ts';
import { suite } from '../../lib/harness.ts';
import { must } from '../../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../../lib/secureMesh.ts';
import {
  announce, appendedAfter, lagMonitor, SHARED_MACHINE, badInteger, clone, DECODER_CODES, describeEvents, draw, fc, hugeString, injection, jsPublish, NEST, nestedText, notJson, pool, randomJson, Replies, SEED,
  seedOf, serialize, setAt, settle, shuffled, Tally, unexplained, unknownFieldName, UNICODE, withUnicode, wrongValue, type Json,
  silenceLogs,
} from './lib.ts';

const FILE = 'test/security/fuzz/reports.test.ts';
const DOMAIN = 'fzr';
const PER_KIND = 800;
/** Early and unknown programmed reports are retried for about 10 s each: enough in flight that they do not hold up the rest. */
const IN_FLIGHT = 512;
const AGENT = 'agent:n1';

type Expect = 'decoder' | 'guard' | 'accepted' | 'server';
interface Case {
  readonly kind: string;
  readonly expect: Expect;
  /** Who sends it, on which command subject (default: agent n1, connection.report). */
  readonly as?: string;
  readonly command?: string;
  readonly subjectActor?: string;
  readonly body?: Json;
  readonly bytes?: Uint8Array;
  readonly nest?: string;
}

const b64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 2, maxLength: 120 });
const randomToken = fc.tuple(b64url, b64url, b64url).map((p) => p.join('.'));

interface Real {
  /** The client side of the real connection, on n1, as its node command gave it. */
  readonly spec: SideSpec;
  /** Tokens n1's agent would sign for it, and ones signed by others. */
  readonly ownToken: () => string;
  readonly foreignTokens: readonly (() => string)[];
}

const generators = (r: Real): Record<string, fc.Arbitrary<Case>> => {
  const { spec } = r;
  const base: { [k: string]: Json } = { connectionId: spec.connectionId, node: 'n1', side: 'client', generation: spec.generation, result: 'failed', error: 'boom' };
  const leaves = [[['connectionId'], 'string'], [['node'], 'string'], [['side'], 'string'], [['generation'], 'number'], [['result'], 'string'], [['error'], 'string']] as const;
  const put = (path: readonly (string | number)[], v: Json): Json => {
    const x = clone(base);
    setAt(x, path, v);
    return x;
  };
  const refusedByDecoder = (body: Json) => E.isLeft(decodeCommand('connection.report', AGENT, { id: 'x', body }));
  const dec = (kind: string, arb: fc.Arbitrary<Json>): fc.Arbitrary<Case> => arb.map((body) => ({ kind, expect: 'decoder' as const, body }));
  return {
    'invalid-json': notJson(() => JSON.stringify({ id: 'x', body: base })).map((bytes) => ({ kind: 'invalid-json', expect: 'decoder' as const, bytes })),
    'wrong-type': fc.constantFrom(...leaves).chain(([p, t]) => dec('wrong-type', wrongValue(t).map((v) => put(p, v)))),
    'hostile-value': dec(
      'hostile-value',
      fc
        .tuple(fc.constantFrom(['connectionId'], ['node'], ['side'], ['result'], ['token']), fc.oneof(hugeString, injection, fc.constantFrom(...UNICODE), withUnicode('n1'), withUnicode('real-1')))
        .map(([p, v]) => put(p, v))
        .filter(refusedByDecoder),
    ),
    'bad-number': dec('bad-number', fc.oneof(badInteger, fc.constant(0)).map((g) => put(['generation'], g))),
    'unknown-field': fc.tuple(fc.boolean(), unknownFieldName).map(([inEnvelope, name]) =>
      inEnvelope
        ? { kind: 'unknown-field', expect: 'decoder' as const, bytes: serialize({ id: 'x', body: base, [name]: 1 }) }
        : { kind: 'unknown-field', expect: 'decoder' as const, body: { ...base, [name]: 'x' } }),
    'deep-nesting': fc.tuple(fc.option(fc.constantFrom(...leaves.map(([p]) => p))), nestedText).map(([p, nest]) => ({ kind: 'deep-nesting', expect: 'decoder' as const, body: p ? put(p, NEST) : NEST, nest })),
    random: dec('random', randomJson.filter((v) => refusedByDecoder(v))),
    // Speaking for another node: the sender check refuses it before anything is looked up.
    'other-node': fc.tuple(fc.constantFrom('n2', 'n3', 'control-plane'), fc.constantFrom('programmed', 'removed', 'failed', 'broken'), fc.constantFrom('client', 'endpoint')).map(([node, result, side]) => ({
      kind: 'other-node',
      expect: 'guard' as const,
      body: { ...base, node, result, side },
    })),
    // Its own node, but the side the other node has: refused by the connection (node n2 has it).
    'wrong-side': fc.constantFrom('removed', 'failed', 'broken').map((result) => ({ kind: 'wrong-side', expect: 'guard' as const, body: { ...base, side: 'endpoint', result } })),
    'unknown-connection': fc.tuple(fc.nat(1e9), fc.constantFrom('removed', 'failed', 'broken', 'programmed'), fc.integer({ min: 1, max: 5 })).map(([i, result, generation]) => ({
      kind: 'unknown-connection',
      expect: 'guard' as const,
      body: { ...base, connectionId: `nope-${i}`, result, generation, ...(result === 'programmed' ? { token: r.ownToken() } : {}) },
    })),
    // A programmed report of this generation without n1's own signed segment.
    'forged-token': fc
      .oneof(
        fc.constant<string | undefined>(undefined),
        randomToken,
        fc.constantFrom(...r.foreignTokens).map((f) => f()),
        fc.tuple(fc.nat(), fc.constantFrom('A', '_', 'z')).map(([i, ch]) => {
          const t = r.ownToken();
          // Not the last character: its low bits are padding, so changing it may leave the signature as it was.
          const at = t.length - 2 - (i % 60);
          return t.slice(0, at) + (t[at] === ch ? 'Q' : ch) + t.slice(at + 1);
        }),
        fc.constantFrom(...spec.path!.pathSegments.map((x) => x.token).filter((t): t is string => t !== undefined)),
      )
      .map((token) => ({ kind: 'forged-token', expect: 'guard' as const, body: { ...base, result: 'programmed', ...(token ? { token } : {}) } })),
    // Another generation: nothing to do (answered ok, no change).
    stale: fc.tuple(fc.integer({ min: spec.generation + 1, max: 2 ** 31 }), fc.constantFrom('removed', 'failed', 'broken')).map(([generation, result]) => ({ kind: 'stale', expect: 'accepted' as const, body: { ...base, generation, result } })),
    // The real report again, with n1's real token: already programmed (ok, no change).
    'real-again': fc.constant(0).map(() => ({ kind: 'real-again', expect: 'accepted' as const, body: { ...base, result: 'programmed', token: r.ownToken() } })),
    'forbidden-subject': fc.oneof(
      fc.constant<Case>({ kind: 'forbidden-subject', expect: 'server', subjectActor: 'agent:n2', body: { ...base, node: 'n2' } }),
      fc.constantFrom('alice', 'operator').map((as): Case => ({ kind: 'forbidden-subject', expect: 'server', as, subjectActor: as, body: base })),
      fc.constantFrom('connection.request', 'service.register', 'node.leave', 'policy.set', 'connection.close').map((command): Case => ({ kind: 'forbidden-subject', expect: 'server', command, body: {} })),
      // Over the command stream's max_msg_size (64 KiB): not stored.
      fc.integer({ min: 65 * 1024, max: 300 * 1024 }).map((n): Case => ({ kind: 'forbidden-subject', expect: 'server', body: { ...base, error: 'e'.repeat(n) } })),
    ),
  };
};

/** Early: a programmed report of a generation not planned yet is retried (20 times, 500 ms apart), then refused. */
const EARLY = 200;

const bytesOf = (c: Case, id: string): Uint8Array => {
  if (c.bytes) {
    // A document with an id gets this run's id, so the answer can be awaited by it.
    const text = new TextDecoder().decode(c.bytes);
    return text.startsWith('{"id":"x"') ? new TextEncoder().encode(text.replace('{"id":"x"', `{"id":"${id}"`)) : c.bytes;
  }
  return serialize({ id, body: c.body }, c.nest);
};

type Ctx = { mesh?: SecureMesh; restoreLogs?: () => void };
const s = suite<Ctx>('fuzz: reports as the control plane receives them', {});

s.before((ctx) => {
  ctx.restoreLogs = silenceLogs();
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
  ctx.restoreLogs?.();
});

s('report decoder: never throws on any JSON (property, shrunk on failure)', () => {
  fc.assert(
    fc.property(fc.oneof(randomJson, fc.anything()), (v) => {
      decodeCommand('connection.report', AGENT, { id: 'x', body: v });
      decodeCommand('connection.report', AGENT, v);
      return true;
    }),
    { seed: seedOf('reports:property'), numRuns: 5000 },
  );
});

s('at least 10,000 hostile reports from an agent: each answered or refused as documented, nothing appended that no accepted report explains', async (ctx) => {
  announce(FILE, 'reports');
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: DOMAIN, nodes: ['n1', 'n2'], clients: ['alice'], agent: { livenessIntervalMs: 0 }, healing: SHARED_MACHINE }));
  const op = await mesh.client('operator');
  const alice = await mesh.client('alice');
  must(await op.send('service.register', { name: 'svc' }));
  must(await op.send('endpoint.register', { name: 'ep', networkServiceNames: ['svc'], node: 'n2', prefix: '10.61.0.0/24' }));
  const cpNc = await mesh.connectAs('control-plane');
  const specs: SideSpec[] = [];
  const tap = cpNc.subscribe(`nsm.${DOMAIN}.node.n1.cmd`, {
    callback: (_e, m) => {
      const c = decodeNodeCommand(m.json());
      if (E.isRight(c)) specs.push(c.right.spec);
    },
  });
  await cpNc.flush();
  must(await alice.send('connection.request', { connectionId: 'real-1', networkService: 'svc', clientNode: 'n1' }));
  assert.is(must(await alice.waitForConnection('real-1', 20000)).state, 'established');
  tap.unsubscribe();
  const spec = specs.find((x) => x.connectionId === 'real-1' && x.side === 'client' && x.desired === 'present')!;
  assert.ok(spec?.path, 'the client side of real-1 was sent to n1 with its path');
  const signerFor = (actor: string) => ({ registry: mesh.registry, signer: signerOf(mesh.creds(actor)) });
  const real: Real = {
    spec,
    ownToken: () => programmedToken(signerFor(AGENT), spec, new Date())!,
    foreignTokens: [
      () => programmedToken(signerFor('agent:n2'), spec, new Date())!,
      () => programmedToken(signerFor('alice'), spec, new Date())!,
      () => programmedToken(signerFor('operator'), spec, new Date())!,
      () => programmedToken(signerFor(AGENT), { ...spec, generation: spec.generation + 1 }, new Date())!,
      () => programmedToken(signerFor(AGENT), { ...spec, connectionId: 'other' }, new Date())!,
      () => programmedToken(signerFor(AGENT), { ...spec, side: 'endpoint' }, new Date())!,
      () => programmedToken(signerFor(AGENT), spec, new Date(Date.now() + 3600_000))!,
    ],
  };

  const store = mesh.cp!.store;
  const before = await settle(store);
  const cases = shuffled(
    [
      ...Object.entries(generators(real)).flatMap(([kind, g]) => draw(g, PER_KIND, `reports:${kind}`)),
      ...draw(fc.integer({ min: spec.generation + 1, max: spec.generation + 100 }).map((generation): Case => ({ kind: 'early-programmed', expect: 'guard', body: { connectionId: spec.connectionId, node: 'n1', side: 'client', generation, result: 'programmed', token: real.ownToken() } })), EARLY, 'reports:early'),
    ],
    'reports',
  );
  for (const c of cases) {
    if (c.expect !== 'decoder' || c.bytes) continue;
    const parsed = D.parseJson(bytesOf(c, 'x1'), 64 * 1024);
    assert.ok(E.isLeft(parsed) || E.isLeft(decodeCommand('connection.report', AGENT, parsed.right)), `${c.kind} decodes: ${JSON.stringify(c.body).slice(0, 300)}`);
  }

  const conns = new Map<string, NatsConnection>();
  for (const as of new Set([AGENT, ...cases.map((c) => c.as).filter((x): x is string => x !== undefined)])) conns.set(as, await mesh.connectAs(as));
  // An agent may not read its replies (it sends without waiting for them): listened to with the control plane's key.
  const replies = new Replies(cpNc, `nsm.${DOMAIN}.reply.>`);
  await cpNc.flush();
  const tally = new Tally();
  const acceptedCorrelations = new Set<string>();
  const wrong: string[] = [];
  const t0 = Date.now();
  const lag = lagMonitor();
  await pool(cases, IN_FLIGHT, async (c, i) => {
    const id = `fzr${SEED}-${i}`;
    const as = c.as ?? AGENT;
    tally.sent(c.kind);
    const r = await jsPublish(conns.get(as)!, `nsm.${DOMAIN}.cmd.${c.command ?? 'connection.report'}.${c.subjectActor ?? as}`, bytesOf(c, id), id);
    if (!r.ok) {
      if (!r.server) return tally.problem(c.kind, `${id}: ${r.code}`);
      tally.count(c.kind, 'server', r.code);
      // Too large for the command stream is refused before any decoder: fine for malformed input.
      if (c.expect !== 'server' && !(c.expect === 'decoder' && r.code === 'server: message too large')) wrong.push(`${c.kind} ${id}: refused by nats-server (${r.code}), expected ${c.expect}`);
      return;
    }
    const reply: CommandReply | undefined = await replies.wait(id, 30000);
    if (!reply) return tally.problem(c.kind, `no reply to ${id}`);
    const outcome = reply.ok ? 'accepted' : c.expect === 'decoder' && DECODER_CODES.has(reply.error.code) ? 'decoder' : 'guard';
    tally.count(c.kind, outcome, reply.ok ? (reply.noop ? 'ok (noop)' : 'ok') : reply.error.code);
    if (reply.ok) acceptedCorrelations.add(id);
    if (outcome !== c.expect) wrong.push(`${c.kind} ${id}: ${outcome} (${JSON.stringify(reply).slice(0, 200)}), expected ${c.expect}: ${JSON.stringify(c.body ?? '').slice(0, 200)}`);
  });
  const ms = Date.now() - t0;
  const after = await settle(store);
  const appended = await appendedAfter(store, before);
  const strays = unexplained(appended, acceptedCorrelations);

  // Still standing: the control plane answers, and a new connection is established (real reports from both agents).
  const status = await op.query('status');
  must(await alice.send('connection.request', { connectionId: 'after-1', networkService: 'svc', clientNode: 'n1' }));
  const settled = await alice.waitForConnection('after-1', 20000);
  const standing = E.isRight(status) && E.isRight(settled) && settled.right.state === 'established';
  const realStill = must(await alice.query<{ state: string }>('connection', { id: 'real-1' })).state;
  tally.crashes = standing ? 0 : 1;
  tally.print('reports', ms, [
    'decoder: answered invalid by the decoder; guard: answered forbidden, not-found or invalid by the sender check, the guard or the connection; accepted: answered ok',
    `longest event loop stall of this process (control plane and agents): ${lag.stop()} ms`,
    `events appended meanwhile: ${appended.length} (log ${before} -> ${after}), unexplained by an accepted report: ${strays.length}; real-1 is ${realStill}`,
  ]);

  assert.ok(tally.total().inputs >= 10000, `at least 10,000 reports (${tally.total().inputs})`);
  assert.equal(tally.problems, [], 'every report answered or refused');
  assert.equal(strays, [], `every appended event is explained by an accepted report:\n${describeEvents(strays)}`);
  assert.equal(wrong.slice(0, 10), [], 'each report got the outcome its kind should');
  assert.equal(strays, [], `every appended event is explained by an accepted report:\n${describeEvents(strays)}`);
  assert.is(realStill, 'established', 'the real connection is untouched');
  assert.ok(standing, `the control plane answers and establishes: ${JSON.stringify(settled)}`);
});

s.run();
