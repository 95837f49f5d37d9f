// Self-test of `npm test`: runs test/run.ts on fixtures that each break in one
// way uvu alone would hide, and checks exit status and the final count line.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from './lib/harness.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const FIXTURES = path.join(ROOT, 'test', 'fixtures', 'runner');
const HANG_TIMEOUT_MS = 6000;
// Each case starts two node processes; a few at a time keeps slow CI machines responsive
// enough for the hang fixture's timeout to be the only thing that is slow.
const PARALLEL = 4;

interface RunResult {
  code: number | null;
  stdout: string;
  lastLine: string;
}

interface Case {
  /** Fixture names (test/fixtures/runner/<name>.fixture.ts). */
  args: string[];
  /** Passed to the runner as they are, before the fixtures. */
  flags?: string[];
  env?: Record<string, string>;
}

const CASES = {
  hang: { args: ['hang'], env: { NSM_TEST_FILE_TIMEOUT_MS: String(HANG_TIMEOUT_MS) } },
  pass: { args: ['pass'] },
  failAssert: { args: ['fail-assert'] },
  beforeThrows: { args: ['before-throws'] },
  afterEachThrows: { args: ['after-each-throws'] },
  afterThrows: { args: ['after-throws'] },
  nonError: { args: ['non-error'] },
  exitMid: { args: ['exit-mid'] },
  neverRun: { args: ['never-run'] },
  crash: { args: ['crash'] },
  rawUvu: { args: ['raw-uvu'] },
  empty: { args: ['empty'] },
  skipOnly: { args: ['skip-only'] },
  passAndSkipOnly: { args: ['pass', 'skip-only'] },
  aggregate: { args: ['pass', 'fail-assert'] },
  noMatch: { args: [], env: { NSM_TEST_FILTER: 'no-such-test-file-anywhere' } },
  parallel: { flags: ['--jobs', '3'], args: ['pass', 'fail-assert', 'before-throws', 'crash', 'non-error', 'exit-mid', 'empty'] },
  parallelHang: { flags: ['--jobs=2'], args: ['hang', 'pass'], env: { NSM_TEST_FILE_TIMEOUT_MS: String(HANG_TIMEOUT_MS) } },
  badJobs: { flags: ['--jobs', '0'], args: ['pass'] },
  unitOnly: { flags: ['--unit', 'fairQueue'], args: [] },
  unitNone: { flags: ['--unit', 'smoke.test'], args: [] },
} satisfies Record<string, Case>;
type CaseName = keyof typeof CASES;

function fixture(name: string): string {
  return path.join(FIXTURES, `${name}.fixture.ts`);
}

function runRunner({ args, flags = [], env = {} }: Case): Promise<RunResult> {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', NSM_TEST_FILE_TIMEOUT_MS: '60000', ...env };
  // The outer runner's settings must not leak into the runner under test.
  delete childEnv.FORCE_COLOR;
  if (!('NSM_TEST_FILTER' in env)) delete childEnv.NSM_TEST_FILTER;
  delete childEnv.NSM_TEST_PROTOCOL;

  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'test/run.ts', ...flags, ...args.map(fixture)], {
      cwd: ROOT,
      env: childEnv,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.resume(); // fixtures' stderr is expected noise here
    child.once('error', reject);
    child.once('close', (code) => {
      const lines = stdout.split('\n');
      // stdout ends with "\n", so the final line is the one before the empty tail.
      resolve({ code, stdout, lastLine: lines.at(-1) === '' ? (lines.at(-2) ?? '') : (lines.at(-1) ?? '') });
    });
  });
}

/** Runs at most `n` jobs at once. */
function limiter(n: number): <R>(job: () => Promise<R>) => Promise<R> {
  let active = 0;
  const waiting: (() => void)[] = [];
  return async (job) => {
    if (active >= n) await new Promise<void>((r) => waiting.push(r));
    active++;
    try {
      return await job();
    } finally {
      active--;
      waiting.shift()?.();
    }
  };
}

interface Ctx {
  runs: Map<CaseName, Promise<RunResult>>;
}

const s = suite<Ctx>('test/run.ts', { runs: new Map() });

// Start every case up front; each test then awaits its own. Sequentially this file would take
// a dozen process start-ups plus the hang timeout.
s.before((ctx) => {
  const limit = limiter(PARALLEL);
  for (const name of Object.keys(CASES) as CaseName[]) {
    const run = limit(() => runRunner(CASES[name]));
    run.catch(() => undefined); // surfaced by the test that awaits it, not as an unhandled rejection
    ctx.runs.set(name, run);
  }
});

function result(ctx: Ctx, name: CaseName): Promise<RunResult> {
  const run = ctx.runs.get(name);
  if (!run) throw new Error(`no run started for case ${name}`);
  return run;
}

function expect(r: RunResult, code: number, lastLine: string): void {
  assert.is(r.lastLine, lastLine, `last line; full output:\n${r.stdout}`);
  assert.is(r.code, code, `exit code; full output:\n${r.stdout}`);
  assert.ok(r.stdout.endsWith(`\n${lastLine}\n`), 'nothing may follow the count line');
  assert.not.match(r.stdout, /@@nsm-test-/, 'protocol lines must be consumed by the runner');
}

s('all-pass file: exit 0, every test counted, skip not a failure', async (ctx) => {
  const r = await result(ctx, 'pass');
  expect(r, 0, '6 passed, 0 failed');
  assert.match(r.stdout, /\[PASS\] test\/fixtures\/runner\/pass\.fixture\.ts: 6 passed, 0 failed, 1 skipped \(\d+ ms\)/);
});

s('failing assertion', async (ctx) => {
  const r = await result(ctx, 'failAssert');
  expect(r, 1, '2 passed, 1 failed');
  assert.match(r.stdout, 'fail-assert > fails: arithmetic is broken');
});

s('throwing before hook: its tests count as failed, other suites still run', async (ctx) => {
  const r = await result(ctx, 'beforeThrows');
  expect(r, 1, '1 passed, 2 failed');
  assert.match(r.stdout, 'broken > b: not run: before hook threw: cannot connect');
});

s('throwing after.each fails only that test', async (ctx) => {
  const r = await result(ctx, 'afterEachThrows');
  expect(r, 1, '2 passed, 1 failed');
  assert.match(r.stdout, 'after-each > b: after.each hook threw: cleanup failed');
});

s('throwing after hook is one extra failure', async (ctx) => {
  const r = await result(ctx, 'afterThrows');
  expect(r, 1, '2 passed, 1 failed');
  assert.match(r.stdout, 'after > after hook: after hook threw: teardown failed');
});

s('non-Error throws are reported and counted', async (ctx) => {
  const r = await result(ctx, 'nonError');
  expect(r, 1, '1 passed, 2 failed');
  assert.match(r.stdout, "non-Error thrown: 'str'");
  assert.match(r.stdout, 'non-Error thrown: { code: 42 }');
});

s('process.exit(0) mid-suite: interrupted and unrun tests fail', async (ctx) => {
  const r = await result(ctx, 'exitMid');
  expect(r, 1, '1 passed, 2 failed');
  assert.match(r.stdout, 'exit-mid > exits: interrupted');
  assert.match(r.stdout, 'exit-mid > never reached: not run: the process exited first');
});

s('file that never calls run()', async (ctx) => {
  const r = await result(ctx, 'neverRun');
  expect(r, 1, '0 passed, 2 failed');
  assert.match(r.stdout, "never-run > a: not run: its suite's run() was never called");
});

s('uncaught exception mid-test', async (ctx) => {
  const r = await result(ctx, 'crash');
  expect(r, 1, '1 passed, 2 failed');
});

s('file not using the harness has no result line', async (ctx) => {
  const r = await result(ctx, 'rawUvu');
  expect(r, 1, '0 passed, 1 failed');
  assert.match(r.stdout, 'no result line');
});

s('file registering no tests', async (ctx) => {
  const r = await result(ctx, 'empty');
  expect(r, 1, '0 passed, 1 failed');
  assert.match(r.stdout, 'no tests registered');
});

s('file whose only test is skipped: not a failure, not "no tests registered", says all were skipped', async (ctx) => {
  const r = await result(ctx, 'skipOnly');
  expect(r, 0, '0 passed, 0 failed');
  assert.match(r.stdout, /\[PASS\] test\/fixtures\/runner\/skip-only\.fixture\.ts: 0 passed, 0 failed, 1 skipped \(\d+ ms\)/);
  assert.match(r.stdout, 'No tests ran: all 1 selected test(s) were skipped');
  assert.not.match(r.stdout, 'no tests registered');
});

s('a skip-only file among others adds nothing but its skip', async (ctx) => {
  const r = await result(ctx, 'passAndSkipOnly');
  expect(r, 0, '6 passed, 0 failed');
  assert.not.match(r.stdout, 'No tests ran');
});

s('timeout kills the file and everything it spawned', async (ctx) => {
  const r = await result(ctx, 'hang');
  expect(r, 1, '1 passed, 1 failed');
  assert.match(r.stdout, `timed out after ${HANG_TIMEOUT_MS} ms in "hang > hangs"`);
  const pid = Number(/grandchild-pid=(\d+)/.exec(r.stdout)?.[1]);
  assert.ok(pid > 0, 'hang fixture printed its grandchild pid');
  assert.not.ok(isAlive(pid), `grandchild ${pid} survived the timeout`);
});

s('counts add up across files', async (ctx) => {
  const r = await result(ctx, 'aggregate');
  expect(r, 1, '8 passed, 1 failed');
});

s('nothing selected: fails and says why', async (ctx) => {
  const r = await result(ctx, 'noMatch');
  expect(r, 1, '0 passed, 0 failed');
  assert.match(r.stdout, 'No tests ran: no test files found (NSM_TEST_FILTER=no-such-test-file-anywhere)');
});

s('several files at once: the same counts and verdicts as one at a time, each file printed whole', async (ctx) => {
  const r = await result(ctx, 'parallel');
  // pass 6/0, fail-assert 2/1, before-throws 1/2, crash 1/2, non-error 1/2, exit-mid 1/2, empty 0/1
  expect(r, 1, '12 passed, 10 failed');
  assert.match(r.stdout, /7 files in [\d.]+ s, 3 at a time/);
  assert.match(r.stdout, 'broken > b: not run: before hook threw: cannot connect');
  assert.match(r.stdout, 'exit-mid > never reached: not run: the process exited first');
  assert.match(r.stdout, 'no tests registered');
  // Each file's block: its header, then its own output and summary line, before any other header.
  for (const name of CASES.parallel.args) {
    const file = `test/fixtures/runner/${name}.fixture.ts`;
    const start = r.stdout.indexOf(`\n=== ${file}\n`);
    assert.ok(start >= 0, `a block for ${file}`);
    const next = r.stdout.indexOf('\n=== ', start + 1);
    const block = r.stdout.slice(start, next === -1 ? undefined : next);
    assert.match(block, new RegExp(`\\[(PASS|FAIL)\\] ${file.replace(/\./g, '\\.')}: `), `${file}'s summary inside its block`);
  }
  // The recap lists files in their usual order, whatever order they finished in.
  const recap = r.stdout.slice(r.stdout.lastIndexOf('-'.repeat(60)));
  const order = [...recap.matchAll(/\] test\/fixtures\/runner\/([a-z-]+)\.fixture\.ts/g)].map((m) => m[1]);
  assert.equal(order, [...CASES.parallel.args].sort());
});

s('several files at once: a timeout still kills its file and everything it spawned', async (ctx) => {
  const r = await result(ctx, 'parallelHang');
  expect(r, 1, '7 passed, 1 failed');
  assert.match(r.stdout, `timed out after ${HANG_TIMEOUT_MS} ms in "hang > hangs"`);
  const pid = Number(/grandchild-pid=(\d+)/.exec(r.stdout)?.[1]);
  assert.ok(pid > 0, 'hang fixture printed its grandchild pid');
  assert.not.ok(isAlive(pid), `grandchild ${pid} survived the timeout`);
});

s('a bad --jobs is a usage error', async (ctx) => {
  const r = await result(ctx, 'badJobs');
  expect(r, 1, '0 passed, 0 failed');
  assert.match(r.stdout, '--jobs must be a positive integer, got "0"');
});

s('--unit selects the pure test files only', async (ctx) => {
  const r = await result(ctx, 'unitOnly');
  expect(r, 0, '4 passed, 0 failed');
  assert.match(r.stdout, '[PASS] test/unit/fairQueue.unit.test.ts: 4 passed, 0 failed');
  const none = await result(ctx, 'unitNone');
  expect(none, 1, '0 passed, 0 failed');
  assert.match(none.stdout, 'No tests ran: no test files found (args: smoke.test, **/*.unit.test.ts only)');
});

s.run();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A killed process whose parent died may linger as a zombie if PID 1 does not reap.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return true;
  }
}
