// Structured logging through pino: one JSON object per line on stderr, with the time (ISO), the
// level (its name), the component, the message and the fields. NSM_LOG_LEVEL=debug|info|warn|error|silent
// (default info; an unknown value is info).
//
// Where lines go: by default straight to file descriptor 2 through a synchronous pino destination
// (sonic-boom, sync): each line is in the kernel when the log call returns, so nothing is lost
// however the process ends (exitWhenFlushed, process.exit in a fatal handler, an uncaught
// exception, SIGKILL; test/infra/log.test.ts), and nothing is left to flush at exit. process.stderr
// or an asynchronous destination would queue lines in memory behind a full pipe and drop them
// on any exit but exitWhenFlushed. The price: while the reader is slower than the writer and the
// pipe is full, a log call waits (sonic-boom retries every 100 ms), where process.stderr grew a
// queue. A sink function (tests) gets each line, without its newline, inside the log call.
//
// Secrets: a field whose name says it holds one (SECRET_FIELDS) is written as "[redacted]", at any
// depth: pino's redaction (paths compiled per key, free when the key is absent) for the fields and
// bindings themselves, and a walk of nested values for the rest (pino's wildcard paths, `*.seed`,
// cost 15-45 us a line here, against about 2 us for the whole line without them).

import pino, { type DestinationStream, type Logger as Pino } from 'pino';
import { bigintsAsStrings } from '../src/contracts/canonicalJson.ts';
import type { Level, Logger } from '../src/ports/logger.ts';

const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

const levelName = (level?: string): Level | 'silent' => {
  const v = (level ?? process.env.NSM_LOG_LEVEL ?? 'info').toLowerCase();
  return Object.hasOwn(ORDER, v) ? (v as Level | 'silent') : 'info';
};

/** Whether a line of this level is written under this setting (NSM_LOG_LEVEL when absent). */
export const levelPasses = (level: string, setting?: string): boolean => (ORDER[level as Level] ?? ORDER.info) >= ORDER[levelName(setting)];

/** Field names whose values are secrets: never written, wherever they appear in a line. */
export const SECRET_FIELDS = [
  'seed',
  'password',
  'pass',
  'passwd',
  'secret',
  'token',
  'apiToken',
  'pathToken',
  'authorization',
  'Authorization',
  'creds',
  'credentials',
  'privateKey',
  'cookie',
] as const;
export const REDACTED = '[redacted]';
const SECRET = new Set<string>(SECRET_FIELDS);

/** Whether a nested value holds a bigint or a secret field (then scrub copies it). */
const needsScrub = (v: unknown, depth: number): boolean => {
  if (typeof v === 'bigint') return true;
  if (v === null || typeof v !== 'object' || depth > 32) return false;
  if (Array.isArray(v)) {
    for (const x of v) if (needsScrub(x, depth + 1)) return true;
    return false;
  }
  for (const k in v) if (SECRET.has(k) || needsScrub((v as Record<string, unknown>)[k], depth + 1)) return true;
  return false;
};

/** A copy of a nested value with secret fields redacted and bigints as strings (event store revisions). */
const scrubbed = (v: unknown, depth: number): unknown => {
  if (typeof v === 'bigint') return v.toString();
  if (v === null || typeof v !== 'object' || depth > 32) return v;
  if (typeof (v as { toJSON?: unknown }).toJSON === 'function') return scrubbed(JSON.parse(JSON.stringify(v, bigintsAsStrings)), depth);
  if (Array.isArray(v)) return v.map((x) => scrubbed(x, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) out[k] = SECRET.has(k) ? REDACTED : scrubbed(x, depth + 1);
  return out;
};

/**
 * The fields (or bindings) of a line, unchanged unless a value needs it: top-level secret fields
 * are left to pino's redaction; below them, secrets are redacted here, and bigints made strings.
 */
const scrub = (obj: Record<string, unknown>): Record<string, unknown> => {
  let copy: Record<string, unknown> | undefined;
  for (const k in obj) {
    const v = obj[k];
    if (SECRET.has(k) || !needsScrub(v, 0)) continue;
    copy ??= { ...obj };
    copy[k] = scrubbed(v, 0);
  }
  return copy ?? obj;
};

/** Lines to file descriptor 2, synchronously; one destination per process. */
let stderrDestination: DestinationStream | undefined;
const stderr = (): DestinationStream => {
  if (!stderrDestination) {
    const d = pino.destination({ dest: 2, sync: true });
    // A reader that went away leaves nobody to tell (infra/stdio.ts handleClosedPipes does the same for process.stderr).
    d.on('error', () => undefined);
    stderrDestination = d;
  }
  return stderrDestination;
};

const rootLogger = (stream: DestinationStream, level: Level | 'silent'): Pino =>
  pino(
    {
      level,
      base: null,
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }), log: scrub },
      redact: { paths: [...SECRET_FIELDS], censor: REDACTED },
    },
    stream,
  );

/** Default-sink roots, one per level: every logger of the process shares the destination. */
const stderrRoots = new Map<string, Pino>();

const wrap = (root: Pino, bindings: Record<string, unknown>): Logger => {
  // The bindings (component, ids) are serialized once, here, not on every line.
  const bound = root.child(scrub(bindings));
  const bindingKeys = new Set(Object.keys(bindings));
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (!bound.isLevelEnabled(level)) return;
    if (fields) {
      for (const k in fields) {
        // A field named like a binding replaces it (as it always did) without writing the key twice.
        if (bindingKeys.has(k)) return root[level]({ ...bindings, msg, ...fields });
      }
    }
    // msg inside the object rather than as pino's message argument: it comes before the fields
    // (pino writes its message last), and a message with % in it is not a format string.
    bound[level](fields ? { msg, ...fields } : { msg });
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => wrap(root, { ...bindings, ...fields }),
  };
};

export const createLogger = (
  component: string,
  base: Record<string, unknown> = {},
  /** Receives each line (without its newline), synchronously; default: stderr. */
  sink?: (line: string) => void,
  /** Overrides NSM_LOG_LEVEL for this logger and its children. */
  level?: string,
): Logger => {
  const name = levelName(level);
  let root: Pino;
  if (sink) {
    root = rootLogger({ write: (line: string) => sink(line.endsWith('\n') ? line.slice(0, -1) : line) }, name);
  } else {
    root = stderrRoots.get(name) ?? rootLogger(stderr(), name);
    stderrRoots.set(name, root);
  }
  return wrap(root, { component, ...base });
};
