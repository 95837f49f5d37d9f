// Boundary: what a peer domain sends over the authenticated leafnode link. Two domains the way
// `nsm up` runs them (a is the hub and names peer b; b joins over TLS with its leaf credentials),
// and a fuzz client on b's own nats-server with b's control plane key: more than 10,000 each of
// interdomain commands (nsm.a.fed.b.cmd.<verb>), peer queries (nsm.a.fed.b.query.<name>) and
// peer heartbeats (nsm.b.fed.hb), drawn with fast-check: malformed, hostile, random, well-formed
// ones about connections that do not exist or are not shared, ids named like Object.prototype
// members, queries whose reply subject is not a control plane's inbox, and publishes b may not make.
//
// Asserted: each command is answered by a's control plane (seen on a's reply subject with a's key)
// or refused by nats-server; each query gets an answer, except those with a foreign reply subject,
// which a's control plane refuses (one log line each); heartbeats that do not decode are ignored;
// every event appended to a's log is explained by an accepted command or by what an accepted
// heartbeat says (a PeerSeen with its facts); a still answers, takes a command, and a
// cross-domain connection is still established afterwards.
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { createLogger } from '../../../infra/log.ts';
import { startNodeAgent } from '../../../node-agent/agent.ts';
import { simulatedDataplane } from '../../../node-agent/simulatedDataplane.ts';
import { MeshClient } from '../../../src/client/index.ts';
import { decodeCommand, isCommandKind } from '../../../src/contracts/commands.ts';
import * as D from '../../../src/contracts/decode.ts';
import type { EventEnvelope } from '../../../src/contracts/envelope.ts';
import type { QueryReply } from '../../../src/contracts/replies.ts';
import { startControlPlane } from '../../../src/runtime/controlPlane.ts';
import { heartbeatBody } from '../../../src/runtime/federation.ts';
import { natsAuthOptions, signerOf } from '../../../src/security/credentials.ts';
import { readLeafCredentials, secureLeafnodesConfig } from '../../../src/security/leaf.ts';
import { startSecureNatsServer } from '../../../src/security/setup.ts';
import { DEFAULT_HEALING } from '../../../src/workflows/healing.ts';
import { freePort } from '../../../infra/net.ts';
import { eventually } from '../../lib/eventually.ts';
import { suite } from '../../lib/harness.ts';
import { peerDeployment, type PeerDomain } from '../../lib/peerDeployment.ts';
import { must } from '../../lib/mesh.ts';
import {
  announce, appendedAfter, badInteger, clone, DECODER_CODES, describeEvents, draw, fc, hugeString, injection, jsPublish, lagMonitor, NEST, nestedText, notJson, pool, randomJson, Replies,
  SEED, seedOf, serialize, setAt, settle, shuffled, Tally, unexplained, unknownFieldName, UNICODE, wrongValue, type Json,
  silenceLogs,
} from './lib.ts';

const FILE = 'test/security/fuzz/interdomain.test.ts';
const PER_KIND = 1000;
const IN_FLIGHT = 128;
const RANGE_A = { from: 0, to: 999 };
const RANGE_B = { from: 1000, to: 1999 };
/** Ids a lookup by plain object key would take for something that exists. */
const PROTO_IDS = ['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', '__defineGetter__'];

type Domain = PeerDomain;

const deployment = (name: string, peers: string[], clients: string[] = []): Domain => peerDeployment('nsm-fuzz-fed', name, peers, clients);

// ---- the inputs -------------------------------------------------------------------------------

type CmdExpect = 'decoder' | 'answered' | 'server';
interface Cmd {
  readonly kind: string;
  readonly expect: CmdExpect;
  readonly verb: string;
  /** Another subject than a's command subject for b (forbidden ones). */
  readonly subject?: string;
  /** Another identity of b's than its control plane. */
  readonly as?: 'operator';
  readonly body?: Json;
  readonly bytes?: Uint8Array;
  readonly nest?: string;
  readonly correlationId?: string;
}

const remoteNode = { name: 'bn1', mechanisms: ['kernel', 'vxlan'], mtu: 1500, address: '192.0.2.21' };
const BASES: Record<string, { [k: string]: Json }> = {
  request: { connectionId: 'x-1', networkService: 'svc', clientInterface: 'nsm0', client: remoteNode, labels: { app: 'web' }, mechanismPreferences: ['vxlan'] },
  state: { connectionId: 'x-1', generation: 1, phase: 'closed', endpointProgrammed: false, reason: 'because' },
  report: { connectionId: 'x-1', node: 'n1', generation: 1, result: 'failed', error: 'boom' },
  close: { connectionId: 'x-1', reason: 'done' },
  redirect: { connectionId: 'x-1', domain: 'c', endpoint: 'ep', reason: 'moved' },
  endpoint: { op: 'unregister', name: 'ep-x' },
};
const VERBS = Object.keys(BASES);
const LEAVES: Record<string, readonly (readonly [readonly (string | number)[], 'string' | 'number' | 'array' | 'object' | 'boolean'])[]> = {
  request: [[['connectionId'], 'string'], [['networkService'], 'string'], [['clientInterface'], 'string'], [['client'], 'object'], [['client', 'name'], 'string'], [['client', 'mechanisms'], 'array'], [['client', 'mtu'], 'number'], [['labels'], 'object']],
  state: [[['connectionId'], 'string'], [['generation'], 'number'], [['phase'], 'string'], [['endpointProgrammed'], 'boolean'], [['reason'], 'string']],
  report: [[['connectionId'], 'string'], [['node'], 'string'], [['generation'], 'number'], [['result'], 'string']],
  close: [[['connectionId'], 'string'], [['reason'], 'string']],
  redirect: [[['connectionId'], 'string'], [['domain'], 'string'], [['endpoint'], 'string']],
  endpoint: [[['op'], 'string'], [['name'], 'string']],
};
const refused = (verb: string, body: Json) => !isCommandKind(`interdomain.${verb}`) || E.isLeft(decodeCommand(`interdomain.${verb}` as 'interdomain.close', 'peer:b', { id: 'x', body }));

const commandGenerators = (): Record<string, fc.Arbitrary<Cmd>> => {
  const verb = fc.constantFrom(...VERBS);
  const put = (v: string, path: readonly (string | number)[], value: Json) => {
    const b = clone(BASES[v]!);
    setAt(b, path, value);
    return b;
  };
  const dec = (kind: string, arb: fc.Arbitrary<{ verb: string; body: Json; nest?: string }>) =>
    arb.filter((x) => x.nest !== undefined || refused(x.verb, x.body)).map((x): Cmd => ({ kind, expect: 'decoder', ...x }));
  const id = fc.oneof(fc.constantFrom(...PROTO_IDS), fc.nat(1e6).map((i) => `fz-${i}`), fc.constant('real-1'));
  return {
    'cmd:invalid-json': fc.tuple(verb, notJson(() => JSON.stringify({ id: 'x', body: BASES.close }))).map(([v, bytes]): Cmd => ({ kind: 'cmd:invalid-json', expect: 'decoder', verb: v, bytes })),
    'cmd:wrong-type': dec('cmd:wrong-type', verb.chain((v) => fc.constantFrom(...LEAVES[v]!).chain(([p, t]) => wrongValue(t).map((x) => ({ verb: v, body: put(v, p, x) }))))),
    'cmd:hostile': dec('cmd:hostile', verb.chain((v) => fc.tuple(fc.constantFrom(...LEAVES[v]!.filter(([, t]) => t === 'string').map(([p]) => p)), fc.oneof(hugeString, injection, fc.constantFrom(...UNICODE), badInteger as fc.Arbitrary<Json>)).map(([p, x]) => ({ verb: v, body: put(v, p, x) })))),
    'cmd:unknown-field': dec('cmd:unknown-field', fc.tuple(verb, unknownFieldName).map(([v, n]) => ({ verb: v, body: { ...BASES[v]!, [n]: 1 } }))),
    'cmd:deep-nesting': fc.tuple(verb, nestedText).map(([v, nest]): Cmd => ({ kind: 'cmd:deep-nesting', expect: 'decoder', verb: v, body: put(v, ['connectionId'], NEST), nest })),
    'cmd:random': dec('cmd:random', fc.tuple(verb, randomJson).map(([v, body]) => ({ verb: v, body }))),
    'cmd:unknown-verb': fc.tuple(fc.constantFrom('explode', 'takeover', 'register', 'request2', 'REQUEST', 'state-', 'x'), randomJson).map(([v, body]): Cmd => ({ kind: 'cmd:unknown-verb', expect: 'decoder', verb: v, body })),
    // Well-formed: about connections that do not exist, are not shared with b, or ids named like prototype members.
    'cmd:well-formed': fc
      .tuple(verb, id, fc.nat(100), fc.constantFrom('planned', 'waiting', 'failed', 'closed'), fc.option(fc.string({ unit: fc.constantFrom(...'abc012:-_.'), minLength: 1, maxLength: 20 })))
      .map(([v, cid, n, phase, correlationId]): Cmd => {
        const body: { [k: string]: Json } = { ...clone(BASES[v]!), ...(v === 'endpoint' ? { name: `ep-${n}` } : { connectionId: cid }) };
        if (v === 'state') Object.assign(body, { generation: n, phase });
        if (v === 'report') Object.assign(body, { generation: n + 1 });
        if (v === 'request') Object.assign(body, { networkService: n % 3 === 0 ? 'nosuch' : 'svc' });
        return { kind: 'cmd:well-formed', expect: 'answered', verb: v, body, ...(correlationId ? { correlationId } : {}) };
      }),
    'cmd:forbidden': fc.oneof(
      fc.constantFrom('c', 'a', 'zz').map((other): Cmd => ({ kind: 'cmd:forbidden', expect: 'server', verb: 'close', subject: `nsm.a.fed.${other}.cmd.close`, body: BASES.close! })),
      fc.constantFrom('nsm.a.cmd.service.register.operator', 'nsm.a.cmd.connection.close.peer:b', 'nsm.a.evt.connection.x', 'nsm.a.node.n1.cmd', 'nsm.a.cmd.interdomain.close.peer:b').map((subject): Cmd => ({ kind: 'cmd:forbidden', expect: 'server', verb: 'close', subject, body: BASES.close! })),
      // Another identity of domain b may not speak for b's control plane.
      verb.map((v): Cmd => ({ kind: 'cmd:forbidden', expect: 'server', verb: v, as: 'operator', body: BASES[v]! })),
    ),
  };
};

interface Query {
  readonly kind: string;
  readonly name: string;
  readonly data: Uint8Array;
  /** A reply subject that is not a control plane's inbox: a refuses to answer. */
  readonly replyTo?: string;
}
const queryGenerators = (): Record<string, fc.Arbitrary<Query>> => {
  const enc = new TextEncoder();
  const name = fc.oneof(fc.constantFrom('connection-state', 'history'), fc.constantFrom('status', 'connections', 'services', 'runtime', 'x'));
  const params = fc.oneof(
    fc.oneof(fc.constantFrom(...PROTO_IDS), fc.constant('real-1'), fc.nat(1e6).map((i) => `fz-${i}`), fc.string({ maxLength: 70 })).map((id): Json => ({ connectionId: id })),
    fc.oneof(fc.constantFrom(...PROTO_IDS), fc.constant('real-1')).map((id): Json => ({ id })),
    randomJson,
  );
  return {
    'query:params': fc.tuple(name, params).map(([n, p]) => ({ kind: 'query:params', name: n, data: enc.encode(JSON.stringify(p)) })),
    'query:malformed': fc.tuple(name, fc.oneof(notJson(() => '{"connectionId":"real-1"}'), fc.integer({ min: 16 * 1024 + 1, max: 200 * 1024 }).map((n) => enc.encode(JSON.stringify({ connectionId: 'x'.repeat(n) }))), nestedText.map((t) => enc.encode(t)))).map(([n, data]) => ({ kind: 'query:malformed', name: n, data })),
    'query:reply-elsewhere': fc.tuple(name, fc.constantFrom('nsm.a.evt.connection.x', 'nsm.a.hb.n1', 'nsm.b.fed.hb', '_INBOX.operator.x', 'nsm.a.cmd.service.register.operator')).map(([n, replyTo]) => ({ kind: 'query:reply-elsewhere', name: n, data: enc.encode('{"connectionId":"real-1"}'), replyTo })),
  };
};

interface Heartbeat {
  readonly kind: string;
  readonly data: Uint8Array;
}
const heartbeatGenerators = (): Record<string, fc.Arbitrary<Heartbeat>> => {
  const enc = new TextEncoder();
  const real = { domain: 'b', tunnelIds: RANGE_B };
  return {
    'hb:malformed': fc.oneof(notJson(() => JSON.stringify(real)), randomJson.map((v) => enc.encode(JSON.stringify(v))), fc.integer({ min: 4097, max: 20000 }).map((n) => enc.encode(JSON.stringify({ ...real, pad: 'p'.repeat(n) })))).map((data) => ({ kind: 'hb:malformed', data })),
    'hb:fields': fc
      .oneof(
        fc.tuple(fc.constantFrom<readonly (string | number)[]>(['domain'], ['tunnelIds'], ['tunnelIds', 'from'], ['tunnelIds', 'to']), fc.oneof(wrongValue('string'), wrongValue('number'), badInteger as fc.Arbitrary<Json>, injection as fc.Arbitrary<Json>, fc.constantFrom<Json>('B', 'b.x', '', 'a', 'c'))).map(([p, v]) => {
          const x = clone(real) as unknown as Json;
          setAt(x, p, v);
          return x;
        }),
        unknownFieldName.map((n): Json => ({ ...real, [n]: true })),
        fc.constantFrom<Json>({ domain: 'a', tunnelIds: RANGE_A }, { domain: 'c' }, { domain: 'b', registryOnly: 'yes' }, { domain: 'constructor' }),
        // A range upside down.
        fc.tuple(fc.nat(1 << 24), fc.nat(1 << 24)).filter(([x, y]) => x !== y).map(([x, y]): Json => ({ domain: 'b', tunnelIds: { from: Math.max(x, y), to: Math.min(x, y) } })),
      )
      .map((v) => ({ kind: 'hb:fields', data: enc.encode(JSON.stringify(v)) }))
      // A number drawn for a number field may be a fine one: only those that break the heartbeat.
      .filter((h) => heartbeatTaken(h.data) === undefined),
    // Well-formed, b's own facts (what b itself sends) or b's facts changed (a range, registry only): b may say so.
    'hb:well-formed': fc
      .oneof(
        fc.constant<Json>(real),
        fc.tuple(fc.nat(1 << 24), fc.nat(1 << 24)).map(([x, y]): Json => ({ domain: 'b', tunnelIds: { from: Math.min(x, y), to: Math.max(x, y) } })),
        fc.constant<Json>({ domain: 'b', registryOnly: true }),
      )
      .map((v) => ({ kind: 'hb:well-formed', data: enc.encode(JSON.stringify(v)) })),
  };
};
const heartbeatTaken = (data: Uint8Array): { domain: string; tunnelIds?: { from: number; to: number }; registryOnly?: boolean } | undefined => {
  const parsed = D.parseJson(data, 4096);
  const facts = E.isRight(parsed) ? heartbeatBody(parsed.right, 'heartbeat') : parsed;
  return E.isRight(facts) && facts.right.domain === 'b' ? facts.right : undefined;
};

// ---- the suite --------------------------------------------------------------------------------

interface Ctx {
  a?: Domain;
  b?: Domain;
  conns: NatsConnection[];
  logs: string[];
}
const s = suite<Ctx>('fuzz: interdomain messages from a peer domain', { conns: [], logs: [] });

s.before(async (ctx) => {
  const a = (ctx.a = deployment('a', ['b'], ['alice']));
  const b = (ctx.b = deployment('b', []));
  const leafPort = await freePort();
  const leafB = readLeafCredentials(a.paths.leafCreds('b'));
  if (E.isLeft(leafB)) throw new Error(leafB.left);
  const start = async (d: Domain, leaf: string, peer: string) => {
    const r = await startSecureNatsServer({ dataDir: d.dir, port: await freePort(), serverName: `fuzzfed-${d.name}`, jetstreamDomain: d.name, extraConfig: leaf, streams: { leaseTtlMs: DEFAULT_HEALING.leaseTtlMs, peers: [peer] } });
    if (E.isLeft(r)) throw new Error(r.left);
    d.server = r.right.server;
  };
  await start(a, secureLeafnodesConfig({ domain: 'a', hub: { port: leafPort, host: '127.0.0.1', tls: { certFile: a.paths.certFile, keyFile: a.paths.keyFile, caFile: a.paths.caFile } } }), 'b');
  const caFile = join(b.dir, 'hub-ca.pem');
  writeFileSync(caFile, leafB.right.ca);
  await start(b, secureLeafnodesConfig({ domain: 'b', joins: [{ url: `nats-leaf://127.0.0.1:${leafPort}`, creds: leafB.right, caFile }] }), 'a');
  for (const [d, peer, range] of [[a, 'b', RANGE_A], [b, 'a', RANGE_B]] as const) {
    const log = createLogger('fuzz', { domain: d.name }, (l) => ctx.logs.push(l), 'info');
    d.cp = await startControlPlane({
      nc: await connectAs(ctx, d, 'control-plane'),
      domain: d.name,
      log,
      // A long peer timeout and node timeout: this machine is shared, and a load spike is not a lost peer.
      healing: { nodeTimeoutMs: 60_000 },
      security: { registry: d.registry, signer: signerOf(d.creds('control-plane')) },
      federation: { peers: [peer], tunnelIds: range, heartbeatMs: 300, peerTimeoutMs: 60_000 },
    });
    d.agent = await startNodeAgent({
      nc: await connectAs(ctx, d, 'agent:n1'),
      domain: d.name,
      node: 'n1',
      dataplane: simulatedDataplane(),
      log: log.child({ component: 'agent' }),
      heartbeatMs: 1000,
      livenessIntervalMs: 0,
      underlayAddress: d.name === 'a' ? '192.0.2.11' : '192.0.2.21',
      publicKeys: { wireguard: Buffer.from(`key of ${d.name}`.padEnd(32, '.')).toString('base64') },
      security: { registry: d.registry, signer: signerOf(d.creds('agent:n1')) },
    });
    await d.agent.ready;
  }
});

s.after(async (ctx) => {
  for (const d of [ctx.a, ctx.b]) await d?.agent?.stop().catch(() => undefined);
  for (const d of [ctx.a, ctx.b]) await d?.cp?.stop().catch(() => undefined);
  for (const c of ctx.conns) await c.close().catch(() => undefined);
  for (const d of [ctx.a, ctx.b]) {
    await d?.server?.stop().catch(() => undefined);
    if (d) rmSync(d.dir, { recursive: true, force: true });
  }
});

const connectAs = async (ctx: Ctx, d: Domain, actor: string) => {
  const nc = await connect({ servers: d.server!.url, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...natsAuthOptions(d.creds(actor)) });
  ctx.conns.push(nc);
  return nc;
};
const clientOf = async (ctx: Ctx, d: Domain, actor = 'operator') => MeshClient.over(await connectAs(ctx, d, actor), { domain: d.name, actor, timeoutMs: 20000, signer: signerOf(d.creds(actor)) });

s('heartbeat and interdomain decoders: never throw on any JSON (property, shrunk on failure)', () => {
  fc.assert(
    fc.property(fc.oneof(randomJson, fc.anything()), fc.constantFrom(...VERBS), (v, verb) => {
      heartbeatBody(v, 'heartbeat');
      decodeCommand(`interdomain.${verb}` as 'interdomain.close', 'peer:b', { id: 'x', body: v });
      return true;
    }),
    { seed: seedOf('interdomain:property'), numRuns: 5000 },
  );
});

s('at least 10,000 each of hostile interdomain commands, peer queries and peer heartbeats: answered or refused as documented, nothing appended that no accepted input explains', async (ctx) => {
  announce(FILE, 'interdomain');
  const a = ctx.a!;
  const opA = await clientOf(ctx, a);
  const aliceA = await clientOf(ctx, a, 'alice');
  const opB = await clientOf(ctx, ctx.b!);
  await eventually('a hears b over the TLS leaf link', async () => {
    const p = await opA.query<{ domain: string; status: string }[]>('peers');
    return E.isRight(p) && p.right.some((x) => x.domain === 'b' && x.status === 'reachable');
  });
  // Something to ask about: a service and endpoint in a, a cross-domain connection from b, a local one of alice's.
  must(await opA.send('service.register', { name: 'svc' }));
  must(await opA.send('endpoint.register', { name: 'ep', node: 'n1', networkServiceNames: ['svc'], prefix: '10.63.0.0/24' }));
  must(await opB.send('connection.request', { connectionId: 'real-1', networkService: 'svc@a', clientNode: 'n1' }));
  assert.is(must(await opB.waitForConnection('real-1', 30000)).state, 'established');
  must(await aliceA.send('connection.request', { connectionId: 'local-1', networkService: 'svc', clientNode: 'n1' }));
  assert.is(must(await aliceA.waitForConnection('local-1', 30000)).state, 'established');

  const store = a.cp!.store;
  const before = await settle(store);
  const restoreLogs = silenceLogs();
  const mark = ctx.logs.length;

  // The fuzz client: on b's server, with b's control plane key (and b's operator for what it may not do).
  const asB = await connectAs(ctx, ctx.b!, 'control-plane');
  const asBOperator = await connectAs(ctx, ctx.b!, 'operator');
  // a's answers to b's commands go to nsm.a.reply.peer:b.<id>, which does not cross the link: read with a's key.
  const replies = new Replies(await connectAs(ctx, a, 'control-plane'), 'nsm.a.reply.peer:b.>');

  const cmds = shuffled(Object.entries(commandGenerators()).flatMap(([k, g]) => draw(g, k === 'cmd:well-formed' || k === 'cmd:forbidden' ? PER_KIND : Math.ceil((PER_KIND * 8) / 7), `fed:${k}`)), 'fed:cmd');
  const queries = shuffled(Object.entries(queryGenerators()).flatMap(([k, g]) => draw(g, k === 'query:reply-elsewhere' ? PER_KIND : Math.ceil(PER_KIND * 4.5), `fed:${k}`)), 'fed:query');
  const beats = shuffled(Object.entries(heartbeatGenerators()).flatMap(([k, g]) => draw(g, Math.ceil((PER_KIND * 10) / 3), `fed:${k}`)), 'fed:hb');
  const tally = new Tally();
  const accepted = new Set<string>();
  const wrong: string[] = [];
  const lag = lagMonitor();
  const t0 = Date.now();

  const sendCommands = pool(cmds, IN_FLIGHT, async (c, i) => {
    const id = `fzf${SEED}-${i}`;
    tally.sent(c.kind);
    const bytes = c.bytes ?? serialize({ id, actor: 'peer:b', body: c.body, ...(c.correlationId ? { correlationId: c.correlationId } : {}) }, c.nest);
    const r = await jsPublish(c.as === 'operator' ? asBOperator : asB, c.subject ?? `nsm.a.fed.b.cmd.${c.verb}`, bytes, id, 5000);
    if (!r.ok) {
      if (r.server) tally.count(c.kind, 'server', r.code);
      else tally.problem(c.kind, `${id}: ${r.code}`);
      // Too large for the command stream is refused before any decoder: fine for malformed input.
      if (c.expect === 'answered' || (c.expect === 'decoder' && r.code !== 'server: message too large')) wrong.push(`${c.kind} ${id}: ${r.code}, expected ${c.expect}`);
      return;
    }
    if (c.expect === 'server') wrong.push(`${c.kind} ${id}: stored, expected a refusal by nats-server (${c.subject ?? c.verb} as ${c.as ?? 'control-plane'})`);
    const reply = await replies.wait(id, 30000);
    if (!reply) return tally.problem(c.kind, `no reply to ${id} (${c.verb})`);
    if (reply.ok) {
      tally.count(c.kind, 'accepted', reply.noop ? 'ok (noop)' : 'ok');
      accepted.add(id);
      if (c.correlationId) accepted.add(c.correlationId);
    } else tally.count(c.kind, c.expect === 'decoder' && DECODER_CODES.has(reply.error.code) ? 'decoder' : 'guard', reply.error.code);
    if (c.expect === 'decoder' && (reply.ok || !DECODER_CODES.has(reply.error.code))) wrong.push(`${c.kind} ${id}: ${JSON.stringify(reply).slice(0, 200)}, expected a decoder refusal`);
  });

  const dec = new TextDecoder();
  const answers = new Map<string, number>();
  const sendQueries = pool(queries, IN_FLIGHT, async (q) => {
    tally.sent(q.kind);
    const subject = `nsm.a.fed.b.query.${q.name}`;
    if (q.replyTo) {
      asB.publish(subject, q.data, { reply: q.replyTo });
      return;
    }
    try {
      const m = await asB.request(subject, q.data, { timeout: 10000 });
      const r = JSON.parse(dec.decode(m.data)) as QueryReply;
      if (r.ok) return tally.count(q.kind, 'accepted', 'ok');
      const shape = /not valid JSON|too large|a connection id is needed/.test(r.error);
      const key = r.error.replace(/"[^"]*"|\b\S*\d\S*\b/g, '…').slice(0, 60);
      answers.set(key, (answers.get(key) ?? 0) + 1);
      // A lookup that threw answers with the exception's text: a bug, not a refusal.
      if (/Cannot read|undefined|is not a function|TypeError/.test(r.error)) return tally.problem(q.kind, `${q.name} ${dec.decode(q.data).slice(0, 80)}: ${r.error}`);
      tally.count(q.kind, shape ? 'decoder' : 'guard', shape ? 'refused: malformed' : 'refused');
    } catch (e) {
      tally.problem(q.kind, `${q.name}: ${(e as Error).message}`);
    }
  });

  const taken: Json[] = [];
  const sendBeats = (async () => {
    for (const [i, h] of beats.entries()) {
      tally.sent(h.kind);
      asB.publish('nsm.b.fed.hb', h.data);
      const facts = heartbeatTaken(h.data);
      if (facts) {
        taken.push(facts as unknown as Json);
        tally.count(h.kind, 'accepted', 'taken');
      } else tally.count(h.kind, 'decoder', 'ignored');
      if (h.kind !== 'hb:well-formed' && facts) wrong.push(`${h.kind}: a heartbeat that should not decode was taken: ${dec.decode(h.data).slice(0, 120)}`);
      if (i % 200 === 0) await asB.flush();
    }
    await asB.flush();
  })();
  await Promise.all([sendCommands, sendQueries, sendBeats]);
  const ms = Date.now() - t0;

  // Queries answered elsewhere: a's control plane refuses each, one log line each.
  const elsewhere = queries.filter((q) => q.replyTo).length;
  const refusedElsewhere = () => ctx.logs.slice(mark).filter((l) => l.includes('peer query not answered')).length;
  await eventually('a refused every query with a foreign reply subject', () => refusedElsewhere() >= elsewhere, { timeoutMs: 20000 }).catch(() => undefined);
  const seenElsewhere = refusedElsewhere();
  tally.count('query:reply-elsewhere', 'guard', 'not answered (logged)', Math.min(seenElsewhere, elsewhere));
  if (seenElsewhere < elsewhere) for (let i = seenElsewhere; i < elsewhere; i++) tally.problem('query:reply-elsewhere', 'no refusal logged');

  // b's real heartbeats say b's real facts again: let the peer detector see them before judging.
  await new Promise((r) => setTimeout(r, 1500));
  const after = await settle(store);
  const appended = await appendedAfter(store, before);
  // A PeerSeen of b is what a heartbeat b sent says: one of the accepted ones, or b's real facts.
  const factsOf = (e: EventEnvelope) => JSON.stringify((e.data as { facts?: unknown }).facts ?? null);
  const said = new Set([...taken, { domain: 'b', tunnelIds: RANGE_B }].map((f) => JSON.stringify(f)));
  // A PeerSeen or PeerUpdated of b is what a heartbeat b sent says.
  const peerSeen = (e: EventEnvelope) => e.stream === 'peer.b' && (e.type === 'PeerSeen' || e.type === 'PeerUpdated') && said.has(factsOf(e));
  const strays = unexplained(appended, accepted, peerSeen);

  // Still standing: a answers, takes a command, and a new cross-domain connection is established.
  restoreLogs();
  const status = await opA.query('status');
  const ok = await opA.send('service.register', { name: 'after-fuzz' });
  const r2 = await opB.send('connection.request', { connectionId: 'after-1', networkService: 'svc@a', clientNode: 'n1' });
  const settled = E.isRight(r2) ? await opB.waitForConnection('after-1', 30000) : r2;
  const standing = E.isRight(status) && E.isRight(ok) && E.isRight(settled) && settled.right.state === 'established';
  tally.crashes = standing ? 0 : 1;
  const byType = new Map<string, number>();
  for (const e of appended) byType.set(`${e.stream.split('.')[0]}:${e.type}`, (byType.get(`${e.stream.split('.')[0]}:${e.type}`) ?? 0) + 1);
  tally.print('interdomain', ms, [
    'commands: decoder = answered invalid/unknown-command; guard = answered another error; server = refused by nats-server (b\'s permissions); accepted = answered ok',
    'queries: decoder = answered "not valid JSON"/"too large"/"a connection id is needed"; guard = answered otherwise, or (reply-elsewhere) refused and logged by a; accepted = answered ok',
    'heartbeats: decoder = ignored (does not decode, or not b\'s); accepted = taken as what b says',
    `query errors: ${[...answers].sort((x, y) => y[1] - x[1]).slice(0, 6).map(([k, v]) => `${v}x ${k}`).join('; ')}`,
    `longest event loop stall of this process (both control planes and agents): ${lag.stop()} ms`,
    `events appended to a's log meanwhile: ${appended.length} (${[...byType].map(([k, v]) => `${k}=${v}`).join(' ')}), unexplained: ${strays.length}; log ${before} -> ${after}`,
  ]);

  const total = tally.total();
  for (const prefix of ['cmd:', 'query:', 'hb:']) {
    const n = [...tally.rows].filter(([k]) => k.startsWith(prefix)).reduce((x, [, r]) => x + r.inputs, 0);
    assert.ok(n >= 10000, `at least 10,000 ${prefix} inputs (${n})`);
  }
  assert.ok(total.inputs >= 30000);
  assert.equal(tally.problems.slice(0, 10), [], 'every command and query answered or refused as documented');
  assert.equal(wrong.slice(0, 10), [], 'each input got the outcome its kind should');
  assert.equal(strays, [], `every event appended is explained by an accepted input:\n${describeEvents(strays)}`);
  assert.ok(standing, `a still answers, takes a command and establishes: ${JSON.stringify({ status: E.isRight(status), ok, settled })}`);
});

s.run();
