// Hostile input: more than 10,000 malformed or random commands against an authenticated mesh
// (wrong types, huge strings, unicode, deep nesting, bad CIDRs, label injection, invalid JSON,
// unknown fields, random bodies, subjects the sender may not use). Nothing crashes, nothing is
// appended to the log, and every command is answered with an error: by the control plane on the
// sender's reply subject, or by nats-server refusing the publish. Counts per kind are printed.
// The generator is seeded (NSM_FUZZ_SEED), so a failure can be replayed.
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { decodeCommand } from '../../src/contracts/commands.ts';
import type { CommandReply } from '../../src/contracts/replies.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const D = 'fz';
const PER_KIND = 1100;
const IN_FLIGHT = 128;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** mulberry32: small, seeded, good enough to vary inputs reproducibly. */
const rng = (seed: number) => () => {
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const SEED = Number(process.env.NSM_FUZZ_SEED ?? Date.now() % 1_000_000);
const rand = rng(SEED);
const int = (lo: number, hi: number) => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(xs: readonly T[]): T => xs[int(0, xs.length - 1)]!;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
interface Case {
  readonly kind: string;
  readonly nestDepth?: number;
  /** Command kind in the subject: "<aggregate>.<verb>". */
  readonly command: string;
  readonly actor: string;
  /** An object gets the id and actor put in; bytes are sent as they are. */
  readonly payload: { body: Json; envelope?: Record<string, Json> } | Uint8Array;
}

/** Valid bodies for the operator's commands; each generator breaks one in its own way. */
const bases = (): Record<string, { [k: string]: Json }> => ({
  'service.register': { name: `svc-${int(0, 999)}`, payload: 'IP', matches: [{ sourceSelector: { app: 'web' }, routes: [{ destinationSelector: { tier: 'gold' }, weight: 1 }] }] },
  'endpoint.register': { name: `ep-${int(0, 999)}`, networkServiceNames: ['svc'], node: 'n1', prefix: '10.1.0.0/24', excludedPrefixes: ['10.1.0.0/28'], networkServiceLabels: { svc: { labels: { app: 'x' } } }, expirationSeconds: 60 },
  'connection.request': { connectionId: `c-${int(0, 99999)}`, networkService: 'svc', clientNode: 'n1', labels: { app: 'web' }, mechanismPreferences: ['kernel'] },
  'connection.close': { connectionId: `c-${int(0, 99999)}` },
  'connection.refresh': { connectionId: `c-${int(0, 99999)}`, expirationSeconds: 60 },
  'node.leave': { name: `n-${int(0, 99)}` },
  'policy.add': { rule: { name: `r-${int(0, 999)}`, action: 'deny', clients: ['alice'], clientLabels: { app: 'web' }, services: ['svc'] } },
  'policy.remove': { name: `r-${int(0, 999)}` },
});

/** Paths of the leaves a generator may replace, per command, with the leaf's JSON type. */
const LEAVES: Record<string, readonly (readonly [readonly (string | number)[], 'string' | 'number' | 'array' | 'object'])[]> = {
  'service.register': [[['name'], 'string'], [['payload'], 'string'], [['matches'], 'array'], [['matches', 0, 'routes'], 'array'], [['matches', 0, 'sourceSelector'], 'object'], [['matches', 0, 'routes', 0, 'weight'], 'number']],
  'endpoint.register': [[['name'], 'string'], [['networkServiceNames'], 'array'], [['node'], 'string'], [['prefix'], 'string'], [['excludedPrefixes'], 'array'], [['networkServiceLabels'], 'object'], [['expirationSeconds'], 'number'], [['networkServiceLabels', 'svc', 'labels'], 'object']],
  'connection.request': [[['connectionId'], 'string'], [['networkService'], 'string'], [['clientNode'], 'string'], [['labels'], 'object'], [['mechanismPreferences'], 'array']],
  'connection.close': [[['connectionId'], 'string']],
  'connection.refresh': [[['connectionId'], 'string'], [['expirationSeconds'], 'number']],
  'node.leave': [[['name'], 'string']],
  'policy.add': [[['rule'], 'object'], [['rule', 'name'], 'string'], [['rule', 'action'], 'string'], [['rule', 'clients'], 'array'], [['rule', 'clientLabels'], 'object']],
  'policy.remove': [[['name'], 'string']],
};
/** String leaves whose decoders allow only ASCII names, ids or enumerations (never free text). */
const STRICT_STRINGS: Record<string, readonly (readonly (string | number)[])[]> = {
  'service.register': [['name'], ['payload']],
  'endpoint.register': [['name'], ['node'], ['prefix'], ['networkServiceNames', 0]],
  'connection.request': [['connectionId'], ['networkService'], ['clientNode']],
  'connection.close': [['connectionId']],
  'connection.refresh': [['connectionId']],
  'node.leave': [['name']],
  'policy.add': [['rule', 'name'], ['rule', 'action'], ['rule', 'clients', 0]],
  'policy.remove': [['name']],
};

const setAt = (root: { [k: string]: Json }, path: readonly (string | number)[], value: Json): void => {
  let node: Json = root;
  for (const k of path.slice(0, -1)) node = (node as Record<string, Json>)[k as string]!;
  (node as Record<string, Json>)[path[path.length - 1] as string] = value;
};
const getAt = (root: Json, path: readonly (string | number)[]): Json => path.reduce<Json>((n, k) => (n as Record<string, Json>)[k as string]!, root);

const randomString = (n: number) => Array.from({ length: n }, () => String.fromCharCode(int(32, 126))).join('');
const wrongValue = (type: string): Json => {
  const options: Json[] = [int(-1e9, 1e9), rand() < 0.5, [1, 'two'], { surprise: true }, 'a string', 1.5];
  const typeOf = (v: Json) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v);
  const candidates = options.filter((v) => typeOf(v) !== type && !(type === 'number' && typeof v === 'number' && Number.isInteger(v) && false));
  return pick(candidates);
};
const UNICODE = ['😀', '\u202E', '\u200B', 'e\u0301', '\u0000', 'а', 'Ａ', '中', '\uFEFF', '\uD83D\uDE00', 'ß', '\u2028'];
/** Deep nesting as text: JSON.stringify would run out of stack before the control plane does. */
const NEST = '__nested__';
const nestedText = (depth: number): string => {
  const kinds = Array.from({ length: depth }, () => rand() < 0.5);
  return kinds.map((arr) => (arr ? '[' : '{"a":')).join('') + '"bottom"' + kinds.reverse().map((arr) => (arr ? ']' : '}')).join('');
};
const BAD_CIDRS = (): string => {
  const o = () => int(0, 255);
  return pick([
    () => `${int(256, 999)}.${o()}.${o()}.0/8`,
    () => `10.${o()}.${o()}.0/${int(33, 999)}`,
    () => `10.0.0.${int(1, 255)}/24`,
    () => `172.16.${int(1, 255)}.0/12`,
    () => pick(['10.0.0/8', '10.0.0.0', '10.0.0.0/', '/24', '10..0.0/8', '10.0.0.0/8/8', ' 10.0.0.0/8', '10.0.0.0/ 8', '10.0.0.0/-1', '10.0.0.0/8x', '0x0a.0.0.0/8', '10.0.0.0/0008', '01.0.0.0/8', 'fd00::/64', '::/0', '', 'banana/8', '10.0.0.0\n/8']),
  ])();
};
/** Each holds a character no label key or value may contain, or breaks the leading/trailing rule. */
const INJECTIONS = ['app=web,role=admin', 'app\nrole=admin', '{{.app}}', '__proto__', '$(reboot)', "'; DROP TABLE labels; --", 'a b', 'nsm.>', '*', 'x:y', 'user@host', '%00', '"quoted"', '<script>', 'a|b', 'a&b', '-leading', 'trailing-', '.hidden', 'k=v;k2=v2'];
const injection = () => {
  const base = pick(INJECTIONS);
  return rand() < 0.3 ? `${base}${randomString(int(1, 5)).replace(/[A-Za-z0-9]/g, '=')}` : base;
};

const operatorCase = (kind: string, build: (command: string, body: { [k: string]: Json }) => Json | undefined, commands?: readonly string[]): Case => {
  for (;;) {
    const command = pick(commands ?? Object.keys(LEAVES));
    const body = bases()[command]!;
    const out = build(command, body);
    if (out !== undefined) return { kind, command, actor: 'operator', payload: { body: out } };
  }
};

const GENERATORS: Record<string, () => Case> = {
  'wrong-type': () =>
    operatorCase('wrong-type', (command, body) => {
      const [path, type] = pick(LEAVES[command]!);
      setAt(body, path, wrongValue(type));
      return body;
    }),
  'huge-string': () =>
    operatorCase('huge-string', (command, body) => {
      setAt(body, pick(STRICT_STRINGS[command]!), randomString(int(5000, 60000)));
      return body;
    }),
  unicode: () =>
    operatorCase('unicode', (command, body) => {
      const path = pick(STRICT_STRINGS[command]!);
      const s = String(getAt(body, path));
      const at = int(0, s.length);
      setAt(body, path, s.slice(0, at) + pick(UNICODE) + s.slice(at));
      return body;
    }),
  'deep-nesting': () => {
    const c = operatorCase('deep-nesting', (command, body) => {
      if (rand() < 0.2) return NEST;
      const [path] = pick(LEAVES[command]!);
      setAt(body, path, NEST);
      return body;
    });
    // The nesting goes in as text when the command is sent (see send below).
    return { ...c, nestDepth: int(20, 6000) };
  },
  'bad-cidr': () =>
    operatorCase('bad-cidr', (_c, body) => {
      if (rand() < 0.5) body.prefix = BAD_CIDRS();
      else body.excludedPrefixes = [...Array.from({ length: int(0, 5) }, () => '192.168.0.0/16'), BAD_CIDRS()];
      return body;
    }, ['endpoint.register']),
  'label-injection': () =>
    operatorCase('label-injection', (command, body) => {
      const labels: Record<string, string> = rand() < 0.5 ? { [injection()]: 'v' } : { app: injection() };
      if (command === 'endpoint.register') body.networkServiceLabels = { svc: { labels } };
      else if (command === 'connection.request') body.labels = labels;
      else (body.rule as Record<string, Json>)[pick(['clientLabels', 'requireLabels'])] = labels;
      return body;
    }, ['endpoint.register', 'connection.request', 'policy.add']),
  'invalid-json': () => {
    const command = pick(Object.keys(LEAVES));
    const text = pick([
      () => Uint8Array.from({ length: int(1, 2000) }, () => int(0, 255)),
      () => {
        // Cut short, so never complete; without an id, the answer goes to the message id.
        const full = JSON.stringify({ body: bases()[command] });
        return enc.encode(full.slice(0, int(1, full.length - 1)));
      },
      () => enc.encode(`${JSON.stringify({ body: bases()[command] })}}garbage`),
      () => enc.encode(pick(['null', '42', '"a string"', '[1,2,3]', 'true', '', '{', '}{', '{"id":}', 'NaN', '{"id":"x",}'])),
    ])();
    return { kind: 'invalid-json', command, actor: 'operator', payload: text };
  },
  'unknown-field': () =>
    operatorCase('unknown-field', (command, body) => {
      const where = pick(['body', 'nested', 'envelope']);
      const name = pick(['admin', 'isAdmin', 'role', 'constructor', '__proto__x', 'actorOverride', randomString(8).replace(/[^a-z]/gi, 'z')]);
      if (where === 'body') body[name] = true;
      else if (where === 'nested') {
        const [path, type] = pick(LEAVES[command]!.filter(([, t]) => t === 'object'));
        if (type !== 'object') return undefined;
        const target = getAt(body, path) as Record<string, Json>;
        // Inside a label map an extra key is a label, not an unknown field: break it instead.
        if (path[path.length - 1] === 'labels' || path[path.length - 1] === 'clientLabels' || path[path.length - 1] === 'sourceSelector') target[`_${name}`] = 'x';
        else target[name] = true;
      } else return { $envelope: name };
      return body;
    }, ['service.register', 'endpoint.register', 'policy.add']),
  random: () => {
    const command = pick(Object.keys(LEAVES));
    const randomJson = (depth: number): Json =>
      depth > 3 || rand() < 0.3
        ? pick<() => Json>([() => int(-1e6, 1e6), () => randomString(int(0, 30)), () => rand() < 0.5, () => null])()
        : rand() < 0.5
          ? Array.from({ length: int(0, 4) }, () => randomJson(depth + 1))
          : Object.fromEntries(Array.from({ length: int(1, 4) }, () => [randomString(int(1, 8)), randomJson(depth + 1)]));
    return { kind: 'random', command, actor: 'operator', payload: { body: randomJson(0) } };
  },
  'forbidden-subject': () =>
    pick<() => Case>([
      // A client sending what only operators and agents may send.
      () => ({ kind: 'forbidden-subject', command: pick(['service.register', 'endpoint.register', 'policy.set', 'node.join', 'connection.report', 'node.leave']), actor: 'alice', payload: { body: {} } }),
      // Commands that do not exist, or on another identity's subject.
      () => ({ kind: 'forbidden-subject', command: pick(['service.explode', 'widget.register', 'connection.steal', 'node.takeover']), actor: 'operator', payload: { body: {} } }),
      () => ({ kind: 'forbidden-subject', command: 'connection.close', actor: pick(['bob', 'agent:n1', 'control-plane', 'auditor']), payload: { body: { connectionId: 'x' } } }),
    ])(),
};

interface Tally {
  sent: number;
  controlPlane: number;
  server: number;
  codes: Map<string, number>;
}

type Ctx = { mesh?: SecureMesh };
const s = suite<Ctx>('fuzz: hostile commands against an authenticated mesh', {});

s('fields named like Object.prototype members are unknown fields, not known ones', () => {
  for (const field of ['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__']) {
    const input = JSON.parse(`{"id":"x1","body":{"name":"svc","${field}":1}}`);
    const r = decodeCommand('service.register', 'operator', input);
    assert.ok(E.isLeft(r) && r.left.path === `body.${field}` && r.left.message === 'unknown field', `${field}: ${JSON.stringify(r)}`);
  }
});

s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s(`${PER_KIND * Object.keys(GENERATORS).length} malformed commands: each answered with an error, none appended`, async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: D, nodes: ['n1'], clients: ['alice'] }));
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'svc' }));
  const lastPosition = async () => must(await mesh.cp!.store.lastPosition()());
  const before = await lastPosition();

  const conns: Record<string, NatsConnection> = { operator: await mesh.connectAs('operator'), alice: await mesh.connectAs('alice') };
  const pending = new Map<string, string>();
  const tallies = new Map<string, Tally>(Object.keys(GENERATORS).map((k) => [k, { sent: 0, controlPlane: 0, server: 0, codes: new Map() }]));
  const count = (t: Tally, code: string) => t.codes.set(code, (t.codes.get(code) ?? 0) + 1);
  const accepted: string[] = [];
  const answered = new Map<string, () => void>();
  for (const [actor, nc] of Object.entries(conns)) {
    nc.subscribe(`nsm.${D}.reply.${actor}.>`, {
      callback: (_e, m) => {
        const id = m.subject.split('.').pop()!;
        const kind = pending.get(id);
        if (!kind) return;
        pending.delete(id);
        const r = JSON.parse(dec.decode(m.data)) as CommandReply;
        const t = tallies.get(kind)!;
        t.controlPlane++;
        if (r.ok) accepted.push(`${kind}: ${id}`);
        else count(t, r.error.code);
        answered.get(id)?.();
      },
    });
    await nc.flush();
  }

  const cases: Case[] = [];
  for (const kind of Object.keys(GENERATORS)) for (let i = 0; i < PER_KIND; i++) cases.push(GENERATORS[kind]!());
  // Interleaved, so that no kind runs against a control plane the previous kind left in a special state.
  cases.sort(() => rand() - 0.5);

  let next = 0;
  let seq = 0;
  const t0 = Date.now();
  const worker = async () => {
    while (next < cases.length) {
      const c = cases[next++]!;
      const id = `fz${SEED}-${seq++}`;
      const t = tallies.get(c.kind)!;
      t.sent++;
      let bytes: Uint8Array;
      if (c.payload instanceof Uint8Array) bytes = c.payload;
      else if (c.payload.body !== null && typeof c.payload.body === 'object' && '$envelope' in (c.payload.body as object)) {
        bytes = enc.encode(JSON.stringify({ id, actor: c.actor, body: bases()['node.leave']!, [(c.payload.body as { $envelope: string }).$envelope]: 1 }));
      } else {
        const text = JSON.stringify({ id, actor: c.actor, body: c.payload.body });
        bytes = enc.encode(c.nestDepth ? text.replace(JSON.stringify(NEST), nestedText(c.nestDepth)) : text);
      }
      const nc = conns[c.actor === 'alice' ? 'alice' : 'operator']!;
      const done = new Promise<void>((r) => answered.set(id, r));
      pending.set(id, c.kind);
      try {
        await nc.jetstream().publish(`nsm.${D}.cmd.${c.command}.${c.actor}`, bytes, { msgID: id, timeout: 10000 });
      } catch (e) {
        pending.delete(id);
        answered.delete(id);
        const code = (e as { code?: string }).code ?? 'error';
        t.server++;
        count(t, code === 'PERMISSIONS_VIOLATION' ? 'server: permissions violation' : `server: ${(e as Error).message.slice(0, 60)}`);
        continue;
      }
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([done, new Promise((r) => (timer = setTimeout(r, 30000)))]);
      clearTimeout(timer);
      answered.delete(id);
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const ms = Date.now() - t0;

  const rows = [...tallies].map(([kind, t]) => `  ${kind.padEnd(18)} ${String(t.sent).padStart(6)} ${String(t.controlPlane).padStart(8)} ${String(t.server).padStart(7)}   ${[...t.codes].map(([c, n]) => `${c}=${n}`).join(' ')}`);
  const total = [...tallies.values()].reduce((a, t) => ({ sent: a.sent + t.sent, cp: a.cp + t.controlPlane, server: a.server + t.server }), { sent: 0, cp: 0, server: 0 });
  process.stdout.write(
    `\nfuzz (seed ${SEED}, ${total.sent} commands in ${ms} ms):\n  kind                 sent  answered refused   error codes\n${rows.join('\n')}\n  ${'total'.padEnd(18)} ${String(total.sent).padStart(6)} ${String(total.cp).padStart(8)} ${String(total.server).padStart(7)}\n` +
      `  answered: an error reply from the control plane; refused: nats-server refused the publish\n`,
  );

  assert.ok(total.sent >= 10000, `at least 10,000 commands (${total.sent})`);
  assert.equal(accepted, [], 'no malformed command was accepted');
  assert.is(pending.size, 0, `every command was answered (${pending.size} were not: ${[...pending].slice(0, 5).join(', ')})`);
  assert.is(total.cp + total.server, total.sent);
  for (const [kind, t] of tallies) assert.ok(t.sent >= PER_KIND && t.controlPlane + t.server === t.sent, `${kind}: every one answered`);
  assert.is(await lastPosition(), before, 'the event log did not move');
  // Still standing: a good command goes through, and the read model is as it was.
  const ok = await op.send('service.register', { name: 'after-fuzz' });
  assert.ok(E.isRight(ok), JSON.stringify(ok));
  assert.equal(must(await op.query<{ name: string }[]>('services')).map((x) => x.name).sort(), ['after-fuzz', 'svc']);
});

s.run();
