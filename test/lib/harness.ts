// Thin accounting layer over uvu. uvu 0.5.6 exits 0 when a hook throws or a
// test throws a non-Error (its reporter crashes and a `finally { return }`
// swallows the crash), and it cannot tell "never ran" from "passed". So this
// module runs every hook itself, decides pass/fail per test, hands uvu only
// well-formed Errors to print, and reports its own counts at process exit
// (see ./protocol.ts) for test/run.ts to trust instead of uvu's exit code.
//
// Usage (a test file is test/**/*.test.ts):
//
//   import * as assert from 'uvu/assert';
//   import { suite } from './lib/harness.ts';
//
//   const s = suite<{ n: number }>('counter', { n: 0 });
//   s.before((ctx) => { ctx.n = 1; });
//   s('increments', async (ctx) => { assert.is(ctx.n + 1, 2); });
//   s.run();

import { inspect, types } from 'node:util';
import { suite as uvuSuite } from 'uvu';
import { PROGRESS_MARKER, PROTOCOL_ENV, RESULT_MARKER, type FileResult, type Progress } from './protocol.ts';

/** What hooks and tests receive: the suite's state object plus uvu's breadcrumbs. */
export type Context<T extends object = object> = T & { __suite__: string; __test__: string };
export type TestFn<T extends object = object> = (ctx: Context<T>) => unknown;
type HookFn<T extends object> = TestFn<T>;

export interface Hook<T extends object> {
  (fn: HookFn<T>): void;
  each(fn: HookFn<T>): void;
}

export interface Suite<T extends object = object> {
  (name: string, fn: TestFn<T>): void;
  /** Runs only the focused tests of this suite; the rest are skipped. Fails the file when CI is set. */
  only(name: string, fn: TestFn<T>): void;
  skip(name?: string, fn?: TestFn<T>): void;
  before: Hook<T>;
  after: Hook<T>;
  /** Queues everything registered so far; registering after this starts a new batch, as in uvu. */
  run(): void;
}

type Status = 'pending' | 'running' | 'passed' | 'failed' | 'skipped';

interface Entry {
  label: string;
  status: Status;
  /** Its suite's run() was called. */
  queued?: boolean;
  reason?: string;
}

interface Ledger {
  entries: Entry[];
  /** Failures that belong to no test (a suite's after hook). */
  extra: Entry[];
  /** Tests still pending or running at exit; filled in by finalResult(). */
  unfinished: Entry[];
  hookFailures: number;
  focused: boolean;
}

// One ledger per process even if this module were loaded twice under different URLs,
// so there is exactly one result line.
const LEDGER_KEY = '__nsmTestHarnessLedger';
const slot = globalThis as typeof globalThis & { [LEDGER_KEY]?: Ledger };
const firstLoad = slot[LEDGER_KEY] === undefined;
const ledger: Ledger = (slot[LEDGER_KEY] ??= { entries: [], extra: [], unfinished: [], hookFailures: 0, focused: false });
const underRunner = process.env[PROTOCOL_ENV] === '1';

interface Registered<T extends object> {
  title: string;
  entry: Entry;
  fn: TestFn<T>;
}

interface Batch<T extends object> {
  tests: Registered<T>[];
  only: Registered<T>[];
  before: HookFn<T>[];
  after: HookFn<T>[];
  beforeEach: HookFn<T>[];
  afterEach: HookFn<T>[];
}

const emptyBatch = <T extends object>(): Batch<T> => ({
  tests: [],
  only: [],
  before: [],
  after: [],
  beforeEach: [],
  afterEach: [],
});

export function suite<T extends object = object>(name = '', state?: T): Suite<T> {
  const ctx = (state ?? {}) as Context<T>;
  let batch = emptyBatch<T>();

  const register = (list: 'tests' | 'only') => (title: string, fn: TestFn<T>) => {
    const entry: Entry = { label: labelOf(name, title), status: 'pending' };
    ledger.entries.push(entry);
    batch[list].push({ title, entry, fn });
  };
  const hook = (list: keyof Omit<Batch<T>, 'tests' | 'only'>) => (fn: HookFn<T>) => {
    batch[list].push(fn);
  };

  const s = register('tests') as Suite<T>;
  s.only = register('only');
  s.skip = (title?: string) => {
    if (title !== undefined) ledger.entries.push({ label: labelOf(name, title), status: 'skipped' });
  };
  s.before = Object.assign(hook('before'), { each: hook('beforeEach') });
  s.after = Object.assign(hook('after'), { each: hook('afterEach') });
  s.run = () => {
    const current = batch;
    batch = emptyBatch<T>();
    queue(name, ctx, current);
  };
  return s;
}

/** A default unnamed suite, like uvu's `test`; call `test.run()` at the end of the file. */
export const test: Suite = suite();

function queue<T extends object>(name: string, ctx: Context<T>, batch: Batch<T>): void {
  for (const t of [...batch.tests, ...batch.only]) t.entry.queued = true;
  let selected = batch.tests;
  if (batch.only.length > 0) {
    ledger.focused = true;
    selected = batch.only;
    for (const t of batch.tests) settle(t.entry, 'skipped', 'not focused (.only in suite)');
  }

  // Set when a `before` hook throws; every test of the batch then fails as "not run".
  let aborted: Error | undefined;
  let abortReported = false;

  const u = uvuSuite<Context<T>>(name, ctx);
  u.before(async (c) => {
    for (const h of batch.before) {
      try {
        await h(c);
      } catch (thrown) {
        ledger.hookFailures++;
        aborted = wrapHookError('before', thrown);
        if (selected.length === 0) {
          ledger.extra.push({ label: labelOf(name, 'before hook'), status: 'failed', reason: firstLine(aborted.message) });
          printStray(labelOf(name, 'before hook'), aborted);
        }
        return; // later before hooks may depend on this one
      }
    }
  });

  for (const t of selected) {
    u(t.title, async (c) => {
      if (aborted) {
        // The first test carries the hook's stack; the rest just say why they did not run.
        const err = abortReported ? bare(`not run: before hook of suite "${name}" failed`) : aborted;
        abortReported = true;
        settle(t.entry, 'failed', `not run: ${firstLine(aborted.message)}`);
        throw err;
      }
      const err = await runOne(t, batch, c);
      if (err) throw err;
    });
  }

  u.after(async (c) => {
    // Run every after hook even if one fails: they release sockets and servers.
    for (const h of batch.after) {
      try {
        await h(c);
      } catch (thrown) {
        ledger.hookFailures++;
        const err = wrapHookError('after', thrown);
        ledger.extra.push({ label: labelOf(name, 'after hook'), status: 'failed', reason: firstLine(err.message) });
        printStray(labelOf(name, 'after hook'), err);
      }
    }
  });

  u.run();
}

/** Runs before.each, the test, after.each; returns the error that fails the test, if any. */
async function runOne<T extends object>(t: Registered<T>, batch: Batch<T>, c: Context<T>): Promise<Error | undefined> {
  const { entry } = t;
  entry.status = 'running';
  progress({ event: 'start', test: entry.label });

  let failure: Error | undefined;
  for (const h of batch.beforeEach) {
    try {
      await h(c);
    } catch (thrown) {
      ledger.hookFailures++;
      failure = wrapHookError('before.each', thrown);
      break;
    }
  }
  if (!failure) {
    try {
      await t.fn(c);
    } catch (thrown) {
      failure = toReportableError(thrown);
    }
  }
  for (const h of batch.afterEach) {
    try {
      await h(c);
    } catch (thrown) {
      ledger.hookFailures++;
      const err = wrapHookError('after.each', thrown);
      // uvu prints one error per test; do not lose a second one.
      if (failure) printStray(`${entry.label} (after.each)`, err);
      else failure = err;
    }
  }

  settle(entry, failure ? 'failed' : 'passed', failure && firstLine(failure.message));
  return failure;
}

function settle(entry: Entry, status: Status, reason?: string): void {
  entry.status = status;
  if (reason !== undefined) entry.reason = reason;
  if (status === 'passed' || status === 'failed') progress({ event: status === 'passed' ? 'pass' : 'fail', test: entry.label });
}

/**
 * uvu's reporter dereferences err.name, err.message, err.stack (and operator/details
 * when present); anything else makes it crash silently. Pass real Errors through
 * untouched so uvu/assert diffs still print.
 */
function toReportableError(thrown: unknown): Error {
  if (isError(thrown) && uvuCanFormat(thrown)) return thrown;
  if (isError(thrown)) {
    const err = new Error(`${String(thrown.name)}: ${String(thrown.message)}`, { cause: thrown });
    err.stack = typeof thrown.stack === 'string' ? replaceHead(thrown.stack, err.message) : bare(err.message).stack;
    return err;
  }
  return bare(`non-Error thrown: ${inspect(thrown, { depth: 2, breakLength: Infinity })}`);
}

function wrapHookError(where: string, thrown: unknown): Error {
  const inner = toReportableError(thrown);
  const err = new Error(`${where} hook threw: ${inner.message}`, { cause: thrown });
  err.stack = replaceHead(inner.stack ?? '', err.message);
  return err;
}

function isError(x: unknown): x is Error {
  return x instanceof Error || types.isNativeError(x);
}

function uvuCanFormat(err: Error): boolean {
  const e = err as Error & { operator?: unknown; details?: unknown };
  return (
    typeof e.name === 'string' &&
    typeof e.message === 'string' &&
    typeof e.stack === 'string' &&
    (e.operator === undefined || typeof e.operator === 'string') &&
    (!e.details || typeof e.details === 'string')
  );
}

/** An Error whose stack is just its message: harness frames would only be noise. */
function bare(message: string): Error {
  const err = new Error(message);
  err.stack = `Error: ${message}`;
  return err;
}

/** Keeps the frames of `stack` (everything after its first line) under a new first line. */
function replaceHead(stack: string, message: string): string {
  const nl = stack.indexOf('\n');
  return nl === -1 ? `Error: ${message}` : `Error: ${message}${stack.slice(nl)}`;
}

function firstLine(s: string): string {
  const line = s.split('\n', 1)[0] ?? '';
  return line.length > 200 ? `${line.slice(0, 197)}...` : line;
}

function labelOf(suiteName: string, title: string): string {
  return suiteName ? `${suiteName} > ${title}` : title;
}

/** Errors uvu will never print (suite-level hooks): report them where a developer looks. */
function printStray(label: string, err: Error): void {
  process.stderr.write(`\n  FAIL  ${label}\n    ${err.stack ?? err.message}\n\n`);
}

function progress(p: Progress): void {
  if (underRunner) process.stdout.write(`${PROGRESS_MARKER}${JSON.stringify(p)}\n`);
}

function finalResult(): FileResult {
  for (const e of ledger.entries) {
    if (e.status === 'pending' || e.status === 'running') ledger.unfinished.push(e);
    if (e.status === 'pending') {
      e.status = 'failed';
      e.reason = e.queued ? 'not run: the process exited first' : 'not run: its suite\'s run() was never called';
    } else if (e.status === 'running') {
      e.status = 'failed';
      e.reason = 'interrupted: process exited while this test was running';
    }
  }
  const failures = [...ledger.entries, ...ledger.extra]
    .filter((e) => e.status === 'failed')
    .map((e) => ({ test: e.label, reason: e.reason ?? 'failed' }));
  if (ledger.focused && process.env.CI) {
    failures.push({ test: '(file)', reason: '.only() is not allowed when CI is set' });
  }
  const count = (s: Status) => ledger.entries.filter((e) => e.status === s).length;
  return {
    file: process.argv[1] ?? '',
    registered: ledger.entries.length,
    passed: count('passed'),
    failed: failures.length,
    skipped: count('skipped'),
    hookFailures: ledger.hookFailures,
    failures,
  };
}

if (firstLoad) {
  process.on('exit', (code) => {
    const result = finalResult();
    // uvu never reports these, so say which tests they were.
    const unrun = ledger.unfinished;
    if (unrun.length > 0) {
      const shown = unrun.slice(0, 20).map((e) => `    ${e.label}: ${e.reason ?? ''}`);
      if (unrun.length > shown.length) shown.push(`    ... and ${unrun.length - shown.length} more`);
      process.stderr.write(`\n  ${unrun.length} test(s) did not complete:\n${shown.join('\n')}\n`);
    }
    process.stdout.write(`${RESULT_MARKER}${JSON.stringify(result)}\n`);
    // Also fail direct runs (`npx tsx some.test.ts`), not only runs under test/run.ts.
    if (code === 0 && (result.failed > 0 || result.registered === 0)) process.exitCode = 1;
  });
}
