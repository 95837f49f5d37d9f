// What the boundary fuzz suites (test/security/fuzz/*.test.ts) share: the seed, fast-check
// arbitraries of hostile values, a pool that keeps many inputs in flight, the tally printed per
// boundary, JetStream publishes whose refusals are told apart, command replies awaited by id,
// and the check that every event appended during a run is explained by an accepted input.
//
// Inputs are drawn with fast-check (`fc.sample`) from one seed: NSM_FUZZ_SEED, else one drawn
// at start. Each suite prints it with the command that replays the run.
import fc from 'fast-check';
import type { NatsConnection } from 'nats';
import type { EventEnvelope } from '../../../src/contracts/envelope.ts';
import type { CommandReply } from '../../../src/contracts/replies.ts';
import type { EventStore } from '../../../src/ports/eventStore.ts';

export { fc };

/** The seed of every generator in this run: NSM_FUZZ_SEED, else a fresh one (printed). */
export const SEED: number = (() => {
  const raw = process.env.NSM_FUZZ_SEED;
  if (raw === undefined || raw.trim() === '') return Math.floor(Math.random() * 2 ** 31);
  const n = Number(raw);
  if (!Number.isSafeInteger(n)) throw new Error(`NSM_FUZZ_SEED must be an integer, not ${JSON.stringify(raw)}`);
  return n;
})();

/** Prints the seed and how to replay this file's run with it. */
export const announce = (file: string, boundary: string): void => {
  process.stdout.write(`\nfuzz ${boundary}: seed ${SEED} (replay: NSM_FUZZ_SEED=${SEED} npx tsx test/run.ts ${file})\n`);
};

const hash = (s: string): number => {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
};
/** A seed per generator: adding a generator does not change what the others draw. */
export const seedOf = (salt: string): number => (SEED ^ hash(salt)) | 0;

/** n values of the arbitrary, the same for the same seed and salt. */
export const draw = <T>(arb: fc.Arbitrary<T>, n: number, salt: string): T[] => fc.sample(arb, { seed: seedOf(salt), numRuns: n });

/** A seeded shuffle (mulberry32), so kinds are interleaved the same way on a replay. */
export const shuffled = <T>(xs: readonly T[], salt: string): T[] => {
  let s = seedOf(`shuffle:${salt}`);
  const rand = () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
};

/** Runs fn over the items with at most `inFlight` running at once; `worker` says which of them runs it. */
export const pool = async <T>(items: readonly T[], inFlight: number, fn: (item: T, index: number, worker: number) => Promise<void>): Promise<void> => {
  let next = 0;
  const worker = async (w: number) => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i, w);
    }
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, items.length) }, (_, w) => worker(w)));
};

// ---- hostile values ------------------------------------------------------------------------

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** Characters that break names, ids and labels: emoji, bidi override, zero width, NUL, homoglyphs, a lone surrogate. */
export const UNICODE = ['😀', '\u202E', '\u200B', 'e\u0301', '\u0000', 'а', 'Ａ', '中', '\uFEFF', '\uD83D\uDE00', 'ß', '\u2028', '\uD800', '\u0085'];
/** Each holds a character no label, name or id may contain, or breaks the leading/trailing rule. */
export const INJECTIONS = ['app=web,role=admin', 'app\nrole=admin', '{{.app}}', '__proto__', '$(reboot)', "'; DROP TABLE labels; --", 'a b', 'nsm.>', '*', 'x:y', 'user@host', '%00', '"quoted"', '<script>', 'a|b', 'a&b', '-leading', 'trailing-', '.hidden', 'k=v;k2=v2', '../../etc/passwd', '\r\nInjected: 1'];

/** A string built from printable ASCII. */
export const ascii = (max: number, min = 0) => fc.string({ unit: 'binary-ascii', minLength: min, maxLength: max }).map((s) => s.replace(/[^\x20-\x7e]/g, '~'));
/** Any string: full unicode graphemes or raw code units (lone surrogates included). */
export const anyString = (max = 40) => fc.oneof(fc.string({ unit: 'grapheme', maxLength: max }), fc.string({ unit: 'binary', maxLength: max }), ascii(max));
/** A string of 5,000 to 60,000 characters (made by repetition: cheap to draw). */
export const hugeString = fc.tuple(fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 8 }), fc.integer({ min: 5000, max: 60000 })).map(([s, n]) => s.repeat(Math.ceil(n / s.length)).slice(0, n));
/** A valid-looking string with one hostile character put in. */
export const withUnicode = (base: string) => fc.tuple(fc.constantFrom(...UNICODE), fc.nat({ max: base.length })).map(([u, at]) => base.slice(0, at) + u + base.slice(at));
export const injection = fc.oneof(fc.constantFrom(...INJECTIONS), fc.tuple(fc.constantFrom(...INJECTIONS), ascii(5, 1)).map(([b, s]) => `${b}${s.replace(/[A-Za-z0-9]/g, '=')}`));
/** A value of another JSON type than `type` (not null: an optional field that is null is absent). */
export const wrongValue = (type: 'string' | 'number' | 'array' | 'object' | 'boolean'): fc.Arbitrary<Json> =>
  fc
    .oneof(
      fc.integer({ min: -1e9, max: 1e9 }) as fc.Arbitrary<Json>,
      fc.boolean(),
      fc.constant<Json>([1, 'two']),
      fc.constant<Json>({ surprise: true }),
      fc.constant('a string'),
      fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)),
    )
    .filter((v) => (Array.isArray(v) ? 'array' : v === null ? 'null' : typeof v) !== type);
/** Numbers no integer field takes: fractions, negatives, beyond 2^31, beyond 2^53. */
export const badInteger: fc.Arbitrary<number> = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)),
  fc.integer({ max: -1 }),
  fc.constantFrom(2 ** 31 + 1, 2 ** 53, 2 ** 64, -0.5, 1e308, Number.MAX_SAFE_INTEGER + 2),
);
/** Prefixes no CIDR field takes. */
export const badCidr: fc.Arbitrary<string> = fc.oneof(
  fc.tuple(fc.integer({ min: 256, max: 999 }), fc.nat(255), fc.nat(255)).map(([a, b, c]) => `${a}.${b}.${c}.0/8`),
  fc.tuple(fc.nat(255), fc.nat(255), fc.integer({ min: 33, max: 999 })).map(([b, c, l]) => `10.${b}.${c}.0/${l}`),
  fc.integer({ min: 1, max: 255 }).map((h) => `10.0.0.${h}/24`),
  fc.integer({ min: 1, max: 255 }).map((x) => `172.16.${x}.0/12`),
  fc.constantFrom('10.0.0/8', '10.0.0.0', '10.0.0.0/', '/24', '10..0.0/8', '10.0.0.0/8/8', ' 10.0.0.0/8', '10.0.0.0/ 8', '10.0.0.0/-1', '10.0.0.0/8x', '0x0a.0.0.0/8', '10.0.0.0/0008', '01.0.0.0/8', 'fd00:::/64', 'fd00::/129', 'gg::/64', '::1::/64', 'fd00::/64x', '', 'banana/8', '10.0.0.0\n/8'),
);
/** Random JSON: objects with odd keys, arrays, strings of any code units, numbers of any size. */
export const randomJson: fc.Arbitrary<Json> = fc.jsonValue({ maxDepth: 4 }) as fc.Arbitrary<Json>;
/** Bytes that are not one JSON document: random bytes, a document cut short or followed by garbage, bare scalars. */
export const notJson = (valid: () => string): fc.Arbitrary<Uint8Array> => {
  const enc = new TextEncoder();
  return fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 2000 }).filter((b) => {
      try {
        JSON.parse(Buffer.from(b).toString('utf8'));
        return false;
      } catch {
        return true;
      }
    }),
    fc.nat().map((n) => {
      const full = valid();
      return enc.encode(full.slice(0, 1 + (n % (full.length - 1))));
    }),
    fc.constant(0).map(() => enc.encode(`${valid()}}garbage`)),
    fc.constantFrom('', '{', '}{', '{"id":}', 'NaN', '{"id":"x",}', "{'id':'x'}", '\u0000', '{"a":1}{"a":2}').map((s) => enc.encode(s)),
  );
};
/** JSON that is a scalar or an array where an object is expected. */
export const notAnObject: fc.Arbitrary<Json> = fc.oneof(fc.constant(null), fc.integer(), fc.string({ maxLength: 20 }), fc.boolean(), fc.array(fc.integer(), { maxLength: 3 }));
/** Deeply nested arrays and objects as text: JSON.stringify would run out of stack before the receiver does. */
export const nestedText = fc.tuple(fc.integer({ min: 20, max: 6000 }), fc.nat()).map(([depth, bits]) => {
  const kinds = Array.from({ length: depth }, (_, i) => ((bits >>> i % 31) & 1) === 1);
  return kinds.map((arr) => (arr ? '[' : '{"a":')).join('') + '"bottom"' + [...kinds].reverse().map((arr) => (arr ? ']' : '}')).join('');
});
/** A marker a generator puts where `nestedText` goes in when the input is serialized. */
export const NEST = '__nested__';
export const serialize = (value: unknown, nest?: string): Uint8Array => {
  const text = JSON.stringify(value);
  return new TextEncoder().encode(nest === undefined ? text : text.replace(JSON.stringify(NEST), nest));
};

/** Unknown field names, those shaped like Object.prototype members among them. */
export const unknownFieldName = fc.oneof(fc.constantFrom('admin', 'isAdmin', 'role', 'constructor', 'toString', 'hasOwnProperty', '__proto__x', 'actorOverride', 'valueOf'), fc.string({ unit: 'grapheme-ascii', minLength: 1, maxLength: 12 }).map((s) => `x${s.replace(/[^a-z]/gi, 'z')}`));

/** Sets the leaf at path (an existing path) to value. */
export const setAt = (root: Json, path: readonly (string | number)[], value: Json): void => {
  let node = root as Record<string, Json>;
  for (const k of path.slice(0, -1)) node = node[k as string] as Record<string, Json>;
  node[path[path.length - 1] as string] = value;
};
export const getAt = (root: Json, path: readonly (string | number)[]): Json => path.reduce<Json>((n, k) => (n as Record<string, Json>)[k as string]!, root);
export const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

/**
 * Healing timings for a fuzz mesh: this 2-core machine is shared with other test runs, and a load
 * spike once kept both agents' heartbeats from being heard for 15 s during a run (the node
 * timeout), so the nodes were declared lost: a fact of the machine, not of the input. A longer node
 * timeout and lease keep that out of what a fuzz run measures.
 */
export const SHARED_MACHINE = { nodeTimeoutMs: 60_000 } as const;

/** The longest stall of this process's event loop while it runs (ms). */
export const lagMonitor = (): { stop(): number } => {
  let max = 0;
  let last = Date.now();
  const timer = setInterval(() => {
    const now = Date.now();
    max = Math.max(max, now - last - 100);
    last = now;
  }, 100);
  return {
    stop: () => {
      clearInterval(timer);
      return max;
    },
  };
};

// ---- the tally -------------------------------------------------------------------------------

/**
 * Per kind of input: how many were sent and what became of each. `decoder`: refused by the
 * receiver's decoder (or, for HTTP, the request's shape); `guard`: refused after decoding (the
 * guard's identity, scope and token checks, or the aggregate's decision); `server`: refused by
 * nats-server's permissions before it reached the process; `accepted`: taken (and answered);
 * `unanswered`: neither answered nor refused as documented (must be 0).
 */
export type Outcome = 'decoder' | 'guard' | 'server' | 'accepted' | 'unanswered';
interface Row {
  inputs: number;
  decoder: number;
  guard: number;
  server: number;
  accepted: number;
  unanswered: number;
  codes: Map<string, number>;
}
export class Tally {
  readonly rows = new Map<string, Row>();
  /** Inputs not answered or refused as documented, with what happened (the first few are printed). */
  readonly problems: string[] = [];
  crashes = 0;
  row(kind: string): Row {
    let r = this.rows.get(kind);
    if (!r) this.rows.set(kind, (r = { inputs: 0, decoder: 0, guard: 0, server: 0, accepted: 0, unanswered: 0, codes: new Map() }));
    return r;
  }
  sent(kind: string, n = 1): void {
    this.row(kind).inputs += n;
  }
  count(kind: string, outcome: Outcome, code?: string, n = 1): void {
    const r = this.row(kind);
    r[outcome] += n;
    if (code !== undefined) r.codes.set(code, (r.codes.get(code) ?? 0) + n);
  }
  problem(kind: string, what: string): void {
    this.row(kind).unanswered++;
    this.problems.push(`${kind}: ${what}`);
  }
  total(): Omit<Row, 'codes'> {
    const t = { inputs: 0, decoder: 0, guard: 0, server: 0, accepted: 0, unanswered: 0 };
    for (const r of this.rows.values()) for (const k of Object.keys(t) as (keyof typeof t)[]) t[k] += r[k];
    return t;
  }
  print(boundary: string, ms: number, notes: readonly string[] = []): void {
    const n = (x: number, w: number) => String(x).padStart(w);
    const line = (kind: string, r: Omit<Row, 'codes'>, codes = '') => `  ${kind.padEnd(20)} ${n(r.inputs, 6)} ${n(r.decoder, 8)} ${n(r.guard, 6)} ${n(r.server, 7)} ${n(r.accepted, 9)} ${n(r.unanswered, 11)}   ${codes}`;
    const rows = [...this.rows].map(([kind, r]) => line(kind, r, [...r.codes].sort((a, b) => b[1] - a[1]).map(([c, x]) => `${c}=${x}`).join(' ')));
    const t = this.total();
    process.stdout.write(
      `\nfuzz ${boundary} (seed ${SEED}, ${t.inputs} inputs in ${ms} ms):\n` +
        `  ${'kind'.padEnd(20)} ${'inputs'.padStart(6)} ${'decoder'.padStart(8)} ${'guard'.padStart(6)} ${'server'.padStart(7)} ${'accepted'.padStart(9)} ${'unanswered'.padStart(11)}   outcomes\n` +
        `${rows.join('\n')}\n${line('total', t)}\n  crashes=${this.crashes}\n` +
        notes.map((x) => `  ${x}\n`).join('') +
        (this.problems.length ? `  first problems:\n${this.problems.slice(0, 10).map((p) => `    ${p.slice(0, 400)}\n`).join('')}` : ''),
    );
  }
}

// ---- commands over JetStream -----------------------------------------------------------------

export type Published = { readonly ok: true } | { readonly ok: false; readonly server: boolean; readonly code: string };

/** A JetStream publish; a refusal by nats-server's permissions is told apart from other failures. */
export const jsPublish = async (nc: NatsConnection, subject: string, data: Uint8Array, msgID: string, timeoutMs = 10000): Promise<Published> => {
  try {
    await nc.jetstream().publish(subject, data, { msgID, timeout: timeoutMs });
    return { ok: true };
  } catch (e) {
    const code = (e as { code?: string }).code ?? '';
    if (code === 'PERMISSIONS_VIOLATION' || /permissions violation/i.test((e as Error).message)) return { ok: false, server: true, code: 'server: permissions violation' };
    // The stream's max_msg_size (JetStream answers 400 before storing anything).
    if (/message size exceeds maximum/i.test((e as Error).message)) return { ok: false, server: true, code: 'server: message too large' };
    return { ok: false, server: false, code: `publish failed: ${code} ${(e as Error).message.slice(0, 80)}` };
  }
};

/**
 * The control plane's replies on `nsm.<d>.reply.<actor>.<id>`, awaited by command id. An agent may
 * not read its replies (it sends without waiting): the test then listens with the control plane's key.
 */
export class Replies {
  private readonly waiting = new Map<string, (r: CommandReply) => void>();
  private readonly early = new Map<string, CommandReply>();
  constructor(nc: NatsConnection, subject: string) {
    const dec = new TextDecoder();
    nc.subscribe(subject, {
      callback: (e, m) => {
        if (e) throw e;
        const id = m.subject.split('.').pop()!;
        let r: CommandReply;
        try {
          r = JSON.parse(dec.decode(m.data)) as CommandReply;
        } catch {
          return;
        }
        const w = this.waiting.get(id);
        if (w) {
          this.waiting.delete(id);
          w(r);
        } else this.early.set(id, r);
      },
    });
  }
  /** The reply to command `id`, or undefined when none came within the time. */
  wait(id: string, timeoutMs = 30000): Promise<CommandReply | undefined> {
    const got = this.early.get(id);
    if (got) {
      this.early.delete(id);
      return Promise.resolve(got);
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        resolve(r);
      });
    });
  }
}

/** The decoder's error codes: the command was refused before anything looked at its content. */
export const DECODER_CODES = new Set(['invalid', 'unknown-command']);
/** Tallies a control plane's reply (or its absence). */
export const tallyReply = (t: Tally, kind: string, id: string, r: CommandReply | undefined, accepted: (r: CommandReply & { ok: true }) => void): void => {
  if (!r) return t.problem(kind, `no reply to command ${id}`);
  if (r.ok) {
    t.count(kind, 'accepted', r.noop ? 'ok (noop)' : 'ok');
    accepted(r);
  } else t.count(kind, DECODER_CODES.has(r.error.code) ? 'decoder' : 'guard', r.error.code);
};

// ---- the event log ---------------------------------------------------------------------------

/** Waits until the log has not moved for `quietMs` (workflows set off by accepted inputs have run). */
export const settle = async (store: EventStore, quietMs = 1500, timeoutMs = 30000): Promise<bigint> => {
  const deadline = Date.now() + timeoutMs;
  let last = -1n;
  let since = Date.now();
  for (;;) {
    const r = await store.lastPosition()();
    const p = r._tag === 'Right' ? r.right : last;
    if (p !== last) {
      last = p;
      since = Date.now();
    } else if (Date.now() - since >= quietMs || Date.now() > deadline) return last;
    await new Promise((res) => setTimeout(res, 200));
  }
};

/** Every event appended after `after`. */
export const appendedAfter = async (store: EventStore, after: bigint): Promise<EventEnvelope[]> => {
  const out: EventEnvelope[] = [];
  for await (const c of store.readAll(after)) out.push(...c.events);
  return out;
};

/** Events whose correlation id names no accepted input (and that `alsoExplained` does not explain). */
export const unexplained = (events: readonly EventEnvelope[], acceptedCorrelations: ReadonlySet<string>, alsoExplained: (e: EventEnvelope) => boolean = () => false): EventEnvelope[] =>
  events.filter((e) => !acceptedCorrelations.has(e.correlationId) && !acceptedCorrelations.has(e.causationId) && !alsoExplained(e));

export const describeEvents = (events: readonly EventEnvelope[]): string =>
  events
    .slice(0, 10)
    .map((e) => `${e.stream} ${e.type} by ${e.actor} (correlation ${e.correlationId}): ${JSON.stringify(e.data).slice(0, 200)}`)
    .join('\n');

/**
 * Every refusal is logged; thousands of them on stderr would bury the result. Silences the
 * processes this file starts (their NSM_LOG_LEVEL) unless NSM_FUZZ_LOGS is set; the returned
 * function puts the level back.
 */
export const silenceLogs = (): (() => void) => {
  const level = process.env.NSM_LOG_LEVEL;
  if (!process.env.NSM_FUZZ_LOGS) process.env.NSM_LOG_LEVEL = 'silent';
  return () => {
    if (level === undefined) delete process.env.NSM_LOG_LEVEL;
    else process.env.NSM_LOG_LEVEL = level;
  };
};
