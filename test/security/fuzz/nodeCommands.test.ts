// Boundary: node commands as an agent receives them (nsm.<d>.node.<node>.cmd, its durable
// consumer). More than 10,000 node commands drawn with fast-check go the real way, published into
// the node command stream with the control plane's credentials (the only ones that may), to a
// running agent of an authenticated mesh: invalid JSON, wrong types, hostile values, unknown
// fields, deep nesting, oversize messages, commands for another node, commands whose signed path
// is missing, forged, spliced from a real connection or altered, replays of a real connection's
// own commands, and publishes by identities that may not send node commands at all.
//
// Asserted: the agent refuses each one as documented (its decoder; another node; the path
// tokens) or, for a replay, says it was already applied; nats-server refuses the others; the
// agent logs one line per command it refuses, and the counts match what each input is; no event is
// appended; the agent still programs a real connection afterwards.
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import * as D from '../../../src/contracts/decode.ts';
import { decodeNodeCommand, type NodeCommand } from '../../../src/contracts/nodeCommands.ts';
import { eventually } from '../../lib/eventually.ts';
import { suite } from '../../lib/harness.ts';
import { must } from '../../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../../lib/secureMesh.ts';
import {
  announce, appendedAfter, SHARED_MACHINE, badCidr, badInteger, clone, describeEvents, draw, fc, hugeString, injection, jsPublish, NEST, nestedText, notJson, pool, randomJson, SEED, seedOf,
  serialize, setAt, settle, shuffled, Tally, unknownFieldName, UNICODE, unexplained, withUnicode, wrongValue, type Json,
  silenceLogs,
} from './lib.ts';

const FILE = 'test/security/fuzz/nodeCommands.test.ts';
const DOMAIN = 'fzn';
const NODE = 'n1';
const PER_KIND = 1000;
const IN_FLIGHT = 128;
/** The agent's bound on a node command (node-agent/agent.ts). */
const AGENT_MAX_BYTES = 256 * 1024;

type Expect = 'decoder' | 'other-node' | 'path' | 'replay' | 'server';
interface Case {
  readonly kind: string;
  /** What the agent (or nats-server) is to make of it. */
  readonly expect: Expect;
  /** Who publishes, and where (default: the control plane, to n1's subject). */
  readonly as?: string;
  readonly subject?: string;
  readonly value?: Json;
  readonly bytes?: Uint8Array;
  readonly nest?: string;
}

/** The agent's log lines that say what it made of a node command. */
const OUTCOMES: Record<string, 'decoder' | 'other-node' | 'path' | 'replay' | 'programmed'> = {
  'refusing a malformed node command': 'decoder',
  'refusing a command for another node': 'other-node',
  'refusing to act on a side: its path tokens do not check out': 'path',
  'node command already applied': 'replay',
  'side programmed': 'programmed',
  'side removed': 'programmed',
};

const b64url = fc.string({ unit: fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'), minLength: 2, maxLength: 120 });
const randomToken = fc.tuple(b64url, b64url, b64url).map((p) => p.join('.'));
/** A token with one character of its signature (or claims) changed. */
const flipped = (token: string) =>
  fc.tuple(fc.nat(), fc.constantFrom('A', 'B', '_', '-', 'z')).map(([i, ch]) => {
    // Not the last character: its low bits are padding (base64url of 64 bytes), so changing it may change nothing.
    const at = token.length - 2 - (i % Math.min(60, token.length - 2));
    return token.slice(0, at) + (token[at] === ch ? 'Q' : ch) + token.slice(at + 1);
  });

const generators = (real: readonly NodeCommand[]): Record<string, fc.Arbitrary<Case>> => {
  const base = real.find((c) => c.spec.side === 'client' && c.spec.desired === 'present')!;
  const baseJson = JSON.parse(JSON.stringify(base)) as Json;
  const segments = base.spec.path!.pathSegments;
  const tokens = segments.map((s) => s.token!).filter(Boolean);
  const exists = (p: readonly (string | number)[]) => {
    let v: unknown = baseJson;
    for (const k of p) v = (v as Record<string, unknown> | undefined)?.[k as string];
    return v !== undefined;
  };
  const leaves = ([
    [['id'], 'string'], [['spec'], 'object'], [['spec', 'connectionId'], 'string'], [['spec', 'generation'], 'number'], [['spec', 'side'], 'string'], [['spec', 'node'], 'string'],
    [['spec', 'desired'], 'string'], [['spec', 'networkService'], 'string'], [['spec', 'payload'], 'string'], [['spec', 'interfaceName'], 'string'], [['spec', 'mechanism'], 'object'],
    [['spec', 'addresses'], 'array'], [['spec', 'remoteAddresses'], 'array'], [['spec', 'routes'], 'array'], [['spec', 'mtu'], 'number'], [['spec', 'path'], 'object'],
    [['spec', 'path', 'pathSegments'], 'array'], [['spec', 'path', 'index'], 'number'], [['spec', 'path', 'pathSegments', 0, 'token'], 'string'], [['spec', 'netns'], 'string'], [['spec', 'tunnel'], 'object'],
    [['spec', 'peer'], 'object'], [['correlationId'], 'string'],
  ] as const).filter(([p]) => exists(p));
  const strict = ([['spec', 'connectionId'], ['spec', 'node'], ['spec', 'networkService'], ['spec', 'interfaceName'], ['spec', 'side'], ['spec', 'desired'], ['spec', 'payload'], ['spec', 'addresses', 0], ['spec', 'netns'], ['spec', 'path', 'pathSegments', 0, 'token'], ['correlationId']] as const).filter((p) => exists(p));
  const put = (path: readonly (string | number)[], v: Json, from: Json = baseJson): Json => {
    const x = clone(from);
    setAt(x, path, v);
    return x;
  };
  const specWith = (f: (spec: Record<string, Json>) => void, from: Json = baseJson): Json => {
    const x = clone(from) as { spec: Record<string, Json> };
    f(x.spec);
    return x as unknown as Json;
  };
  const decoder = (kind: string, value: fc.Arbitrary<Json>): fc.Arbitrary<Case> => value.map((v) => ({ kind, expect: 'decoder', value: v }));
  return {
    'invalid-json': notJson(() => JSON.stringify(baseJson)).map((bytes) => ({ kind: 'invalid-json', expect: 'decoder', bytes })),
    'wrong-type': fc.constantFrom(...leaves).chain(([p, t]) => decoder('wrong-type', wrongValue(t).map((v) => put(p, v)))),
    'hostile-value': fc.constantFrom(...strict).chain((p) =>
      decoder(
        'hostile-value',
        fc.oneof(
          hugeString,
          injection.filter((s) => !/^[A-Za-z0-9_.\/-]+$/.test(s) || p[1] !== 'netns'),
          withUnicode(String((p as readonly (string | number)[]).reduce<unknown>((v, k) => (v as Record<string, unknown>)[k as string], baseJson))),
          fc.constantFrom(...UNICODE),
        )
          .map((v) => put(p, v))
          // Some of these are fine in some fields ("-leading" is an interface name): only those the decoder refuses.
          .filter((v) => oracle(serialize(v)) === 'decoder'),
      )),
    'bad-number': fc
      .constantFrom<readonly [readonly (string | number)[], number]>([['spec', 'generation'], 2 ** 31 + 1], [['spec', 'mtu'], 70000], ...(exists(['spec', 'path', 'index']) ? [[['spec', 'path', 'index'], 17] as const] : []))
      .chain(([p, tooBig]) => fc.oneof(badInteger, fc.constant(tooBig)).map((v) => ({ kind: 'bad-number', expect: 'decoder' as const, value: put(p, v) }))),
    'bad-address': fc.oneof(
      badCidr.map((c) => specWith((s) => void (s.routes = [c]))),
      fc.constantFrom('999.1.1.1/24', '10.0.0.1', '10.0.0.1/33', '10.0.0.1/24 ', 'fd00::1/129', 'fd00:::1/64', '10.0.0.01/24x', '').map((a) => specWith((s) => void (s.addresses = [a]))),
      fc.integer({ min: 17, max: 40 }).map((k) => specWith((s) => void (s.addresses = Array.from({ length: k }, (_, i) => `10.9.${i}.1/32`)))),
    ).map((v) => ({ kind: 'bad-address', expect: 'decoder' as const, value: v })),
    'unknown-field': fc.tuple(fc.constantFrom<readonly (string | number)[]>([], ['spec'], ['spec', 'mechanism'], ['spec', 'path'], ['spec', 'path', 'pathSegments', 0]), unknownFieldName).map(([p, name]) => {
      const x = clone(baseJson);
      let node = x as Record<string, Json>;
      for (const k of p) node = node[k as string] as Record<string, Json>;
      node[name] = true;
      return { kind: 'unknown-field', expect: 'decoder' as const, value: x };
    }),
    'deep-nesting': fc.tuple(fc.option(fc.constantFrom(...leaves.map(([p]) => p))), nestedText).map(([p, nest]) => ({ kind: 'deep-nesting', expect: 'decoder' as const, value: p ? put(p, NEST) : NEST, nest })),
    'not-a-command': decoder('not-a-command', fc.oneof(randomJson.filter((v) => !(v !== null && typeof v === 'object' && !Array.isArray(v) && 'spec' in v)), fc.constant<Json>({}), fc.constant<Json>({ id: 'x' }))),
    // Over the stream's max_msg_size (256 KiB, the agent's own bound too): nats-server refuses to store it.
    oversize: fc.integer({ min: AGENT_MAX_BYTES + 1, max: 900 * 1024 }).map((size) => ({ kind: 'oversize', expect: 'server' as const, value: { ...(baseJson as Record<string, Json>), pad: 'p'.repeat(size) } })),
    'other-node': fc.tuple(fc.constantFrom('n2', 'n9', 'control-plane', 'N1', 'n1-x'), fc.nat(1e6)).map(([node, i]) => ({
      kind: 'other-node',
      expect: 'other-node' as const,
      value: specWith((s) => {
        s.node = node;
        s.connectionId = `on-${i}`;
      }),
    })),
    'forged-path': fc.tuple(
      fc.nat(1e9),
      fc.constantFrom('present', 'absent'),
      fc.oneof(
        fc.constant<Json | undefined>(undefined),
        fc.array(randomToken, { minLength: 0, maxLength: 4 }).map((ts): Json => ({ index: 0, pathSegments: ts.map((token, i) => ({ name: segments[i]?.name ?? 'x', id: 'x', token })) })),
        // The real connection's own tokens, spliced into another connection.
        fc.constant<Json>(JSON.parse(JSON.stringify(base.spec.path)) as Json),
        fc.shuffledSubarray(segments as unknown as Json[], { minLength: 1 }).map((segs): Json => ({ index: 0, pathSegments: segs })),
      ),
    ).map(([i, desired, path]) => ({
      kind: 'forged-path',
      expect: 'path' as const,
      value: specWith((s) => {
        s.connectionId = `fp-${i}`;
        s.desired = desired;
        if (path === undefined) delete s.path;
        else s.path = path;
      }),
    })),
    // The real connection's command, one bound thing altered: its generation, its tokens, or its side with the other side's addresses.
    'altered-real': fc.oneof(
      fc.oneof(fc.constant(0), fc.integer({ min: base.spec.generation + 1, max: base.spec.generation + 1000 })).map((g) => specWith((s) => void (s.generation = g))),
      fc.tuple(fc.nat(tokens.length - 1), fc.nat()).chain(([k]) =>
        flipped(tokens[k]!).map((t) =>
          specWith((s) => {
            (s.generation as number) += 1;
            ((s.path as { pathSegments: { token?: string }[] }).pathSegments[k]!).token = t;
          }),
        ),
      ),
      fc.constantFrom('absent', 'present').map((desired) =>
        specWith((s) => {
          s.desired = desired;
          (s.generation as number) += 2;
          s.addresses = ['10.250.0.1/32'];
        }),
      ),
    ).map((v) => ({ kind: 'altered-real', expect: 'path' as const, value: v })),
    // The control plane's own commands for the real connection again (a redelivery or a replay).
    replay: fc.constantFrom(...real.filter((c) => c.spec.desired === 'present')).map((c) => ({ kind: 'replay', expect: 'replay' as const, value: JSON.parse(JSON.stringify(c)) as Json })),
    'forbidden-subject': fc.oneof(
      fc.constantFrom('alice', 'operator', 'auditor', `agent:${NODE}`).map((as) => ({ kind: 'forbidden-subject', expect: 'server' as const, as, value: baseJson })),
      fc.constant({ kind: 'forbidden-subject', expect: 'server' as const, as: `agent:${NODE}`, subject: `nsm.${DOMAIN}.node.n2.cmd`, value: baseJson }),
    ),
  };
};

const bytesOf = (c: Case): Uint8Array => c.bytes ?? serialize(c.value, c.nest);
/** What the agent's decoder and node check make of the bytes (the oracle the generators are checked against). */
const oracle = (bytes: Uint8Array): 'decoder' | 'other-node' | 'decoded' => {
  const parsed = D.parseJson(bytes, AGENT_MAX_BYTES);
  const cmd = E.isRight(parsed) ? decodeNodeCommand(parsed.right) : parsed;
  if (E.isLeft(cmd)) return 'decoder';
  return cmd.right.spec.node === NODE ? 'decoded' : 'other-node';
};

type Ctx = { mesh?: SecureMesh; restoreLogs?: () => void };
const s = suite<Ctx>('fuzz: node commands as an agent receives them', {});

s.before((ctx) => {
  ctx.restoreLogs = silenceLogs();
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
  ctx.restoreLogs?.();
});

s('node command decoder: never throws on any JSON (property, shrunk on failure)', () => {
  fc.assert(
    fc.property(fc.oneof(randomJson, fc.anything()), (v) => {
      decodeNodeCommand(v);
      return true;
    }),
    { seed: seedOf('node:property'), numRuns: 5000 },
  );
});

s(`at least ${PER_KIND * 10} hostile node commands through the real consumer: each refused as documented, nothing appended, the agent still programs`, async (ctx) => {
  announce(FILE, 'node commands');
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: DOMAIN, nodes: [NODE], clients: ['alice'], agent: { livenessIntervalMs: 0 }, healing: SHARED_MACHINE }));
  const op = await mesh.client('operator');
  const alice = await mesh.client('alice');
  must(await op.send('service.register', { name: 'svc' }));
  must(await op.send('endpoint.register', { name: 'ep', networkServiceNames: ['svc'], node: NODE, prefix: '10.60.0.0/24' }));
  // The real connection's node commands, as the agent receives them (the stream keeps them only until acknowledged).
  const cpNc: NatsConnection = await mesh.connectAs('control-plane');
  const real: NodeCommand[] = [];
  const tap = cpNc.subscribe(`nsm.${DOMAIN}.node.${NODE}.cmd`, {
    callback: (_e, m) => {
      const c = decodeNodeCommand(m.json());
      if (E.isRight(c)) real.push(c.right);
    },
  });
  await cpNc.flush();
  must(await alice.send('connection.request', { connectionId: 'real-1', networkService: 'svc', clientNode: NODE }));
  assert.is(must(await alice.waitForConnection('real-1', 20000)).state, 'established');
  tap.unsubscribe();
  assert.ok(real.some((c) => c.spec.side === 'client' && c.spec.path?.pathSegments.slice(0, 2).every((x) => x.token)), `a signed node command of real-1: ${JSON.stringify(real).slice(0, 500)}`);

  const store = mesh.cp!.store;
  const before = await settle(store);
  const gens = generators(real);
  const cases = shuffled(Object.entries(gens).flatMap(([kind, g]) => draw(g, PER_KIND, `node:${kind}`)), 'node');
  // The generators are what they say: checked against the agent's own decoder first.
  for (const c of cases) {
    if (c.expect === 'server') continue;
    const o = oracle(bytesOf(c));
    const want = c.expect === 'decoder' ? 'decoder' : c.expect === 'other-node' ? 'other-node' : 'decoded';
    assert.is(o, want, `${c.kind} is ${o}: ${new TextDecoder().decode(bytesOf(c)).slice(0, 300)}`);
  }

  const conns = new Map<string, NatsConnection>([['control-plane', cpNc]]);
  for (const as of new Set(cases.map((c) => c.as).filter((x): x is string => x !== undefined))) conns.set(as, await mesh.connectAs(as));
  const mark = mesh.logs.length;
  const tally = new Tally();
  const expected = { decoder: 0, 'other-node': 0, path: 0, replay: 0 };
  const t0 = Date.now();
  await pool(cases, IN_FLIGHT, async (c, i) => {
    tally.sent(c.kind);
    const r = await jsPublish(conns.get(c.as ?? 'control-plane')!, c.subject ?? `nsm.${DOMAIN}.node.${NODE}.cmd`, bytesOf(c), `fzn-${SEED}-${i}`);
    if (!r.ok) {
      if (r.server && c.expect === 'server') tally.count(c.kind, 'server', r.code);
      else tally.problem(c.kind, `${r.code} (expected ${c.expect})`);
      return;
    }
    if (c.expect === 'server') return tally.problem(c.kind, `nats-server took a node command from ${c.as ?? 'control-plane'} on ${c.subject ?? NODE}`);
    expected[c.expect]++;
  });

  // What the agent made of them: one log line each.
  const observed = () => {
    const o = { decoder: 0, 'other-node': 0, path: 0, replay: 0, programmed: 0 };
    for (let i = mark; i < mesh.logs.length; i++) {
      const line = mesh.logs[i]!;
      if (!line.includes('"component":"agent"')) continue;
      const msg = /"msg":"([^"]*)"/.exec(line)?.[1];
      const what = msg ? OUTCOMES[msg] : undefined;
      if (what) o[what]++;
    }
    return o;
  };
  const want = expected.decoder + expected['other-node'] + expected.path + expected.replay;
  const seen = await eventually('the agent has handled every node command', () => {
    const o = observed();
    return o.decoder + o['other-node'] + o.path + o.replay + o.programmed >= want ? o : undefined;
  }, { timeoutMs: 120_000, intervalMs: 250, describe: observed }).catch(() => observed());
  const ms = Date.now() - t0;
  const after = await settle(store);
  const appended = await appendedAfter(store, before);

  // Still standing: a new connection is programmed on this node, the control plane answers.
  must(await alice.send('connection.request', { connectionId: 'after-1', networkService: 'svc', clientNode: NODE }));
  const settled = await alice.waitForConnection('after-1', 20000);
  const programmed = mesh.agents.get(NODE)!.dataplane.programmed;
  const standing = E.isRight(settled) && settled.right.state === 'established' && programmed.has('after-1/client') && programmed.has('after-1/endpoint');
  const status = await op.query<{ nodes: number }>('status');
  tally.crashes = standing && E.isRight(status) ? 0 : 1;

  // The tally: each input by what it is, which the agent's counts confirm in total.
  for (const c of cases) {
    if (c.expect === 'server') continue;
    if (c.expect === 'decoder') tally.count(c.kind, 'decoder', 'refused: malformed');
    else if (c.expect === 'other-node') tally.count(c.kind, 'guard', 'refused: another node');
    else if (c.expect === 'path') tally.count(c.kind, 'guard', 'refused: path tokens');
    else tally.count(c.kind, 'accepted', 'already applied');
  }
  tally.print('node commands', ms, [
    `the agent logged: malformed ${seen.decoder}, another node ${seen['other-node']}, path refused ${seen.path}, already applied ${seen.replay}, programmed or removed ${seen.programmed}`,
    `expected from the inputs: malformed ${expected.decoder}, another node ${expected['other-node']}, path refused ${expected.path}, already applied ${expected.replay}`,
    `events appended meanwhile: ${appended.length} (log ${before} -> ${after})`,
  ]);

  assert.ok(tally.total().inputs >= 10000, `at least 10,000 node commands (${tally.total().inputs})`);
  assert.equal(tally.problems, [], 'every node command refused or taken as documented');
  assert.equal({ decoder: seen.decoder, 'other-node': seen['other-node'], path: seen.path, replay: seen.replay }, expected, 'the agent said what it made of each');
  assert.is(seen.programmed, 0, 'nothing was programmed or removed');
  assert.equal(appended, [], `no event appended:\n${describeEvents(unexplained(appended, new Set()))}`);
  assert.ok(standing, `the agent still programs a new connection: ${JSON.stringify(settled)}`);
  assert.ok(E.isRight(status), 'the control plane answers');
});

s.run();
