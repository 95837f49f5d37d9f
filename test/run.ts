// `npm test`: runs each test file in its own process, one at a time (network
// tests share ports, interfaces and nats-server instances, so they must not
// overlap), and decides pass/fail from the harness's result line rather than
// from uvu's exit code, which lies (see test/lib/harness.ts).
//
//   npx tsx test/run.ts                      all test/**/*.test.ts
//   npx tsx test/run.ts nats registry        files whose path contains a substring
//   npx tsx test/run.ts test/x.fixture.ts    an explicit file, whatever its name
//   npx tsx test/run.ts --unit [filters]     only the pure tests (test/**/*.unit.test.ts: no
//                                            nats-server, no child process, no namespace), as
//                                            many files at once as there are CPUs (`npm run test:unit`)
//   npx tsx test/run.ts --jobs N ...         N files at once (each file's output is printed whole
//                                            when it ends); only for files that cannot collide
//
// Env: NSM_TEST_FILE_TIMEOUT_MS (per file, default 15 min), NSM_TEST_FILTER (substring),
// NSM_LOG_LEVEL (the components' JSON logs; defaults to `warn` for test processes so that
// failures stay readable: run with NSM_LOG_LEVEL=info or debug to see everything).
// The last line of output is always `N passed, N failed`; exit status is 1 on any
// failure, or when no test ran at all (a selection whose tests were all skipped, each for a
// reason it printed, is not a failure: it says so and exits 0).

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MarkerFilter, PROTOCOL_ENV, type FileResult } from './lib/protocol.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const TEST_DIR = path.join(ROOT, 'test');
const DEFAULT_TIMEOUT_MS = 15 * 60 * 1000;
// Time allowed for a child's stdout to drain after it exits; held open only by leaked grandchildren.
const DRAIN_GRACE_MS = 2000;
/** Pure test files: safe to run several at once, and fast. */
const UNIT_SUFFIX = '.unit.test.ts';

interface Outcome {
  file: string;
  passed: number;
  failed: number;
  skipped: number;
  ms: number;
  problems: string[];
}

let interrupted = false;
/** Kills each file still running (several when files run in parallel). */
const killRunning = new Set<() => void>();

function out(text: string): void {
  process.stdout.write(text);
}

function rel(file: string): string {
  return path.relative(ROOT, file).split(path.sep).join('/');
}

function discover(dir: string): string[] {
  const found: string[] = [];
  for (const ent of readdirSync(dir, { withFileTypes: true })) {
    if (ent.name === 'node_modules' || ent.name.startsWith('.')) continue;
    const full = path.join(dir, ent.name);
    if (ent.isDirectory()) found.push(...discover(full));
    else if (ent.isFile() && ent.name.endsWith('.test.ts')) found.push(full);
  }
  return found;
}

/** Existing paths are taken as-is (a directory is searched); other args filter test/**\/*.test.ts by substring. */
function selectFiles(args: string[], envFilter: string | undefined): string[] {
  const explicit: string[] = [];
  const filters: string[] = [];
  for (const arg of args) {
    const abs = path.resolve(arg);
    if (existsSync(abs)) {
      if (statSync(abs).isDirectory()) explicit.push(...discover(abs));
      else explicit.push(abs);
    } else {
      filters.push(arg);
    }
  }
  const all = existsSync(TEST_DIR) ? discover(TEST_DIR) : [];
  const byFilter = filters.length > 0 ? all.filter((f) => filters.some((s) => rel(f).includes(s))) : [];
  let files = args.length === 0 ? all : [...explicit, ...byFilter];
  if (envFilter) files = files.filter((f) => rel(f).includes(envFilter));
  return [...new Set(files)].sort((a, b) => rel(a).localeCompare(rel(b)));
}

function parseTimeout(raw: string | undefined): number | undefined {
  if (raw === undefined || raw === '') return DEFAULT_TIMEOUT_MS;
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

function killGroup(pid: number): boolean {
  try {
    process.kill(-pid, 'SIGKILL');
    return true;
  } catch {
    return false; // ESRCH: nothing left in the group
  }
}

/**
 * Where a file's output goes: straight through while it runs (one file at a time), or into a
 * buffer printed whole when it ends (several at once: interleaved lines would be unreadable).
 */
interface Sink {
  readonly stdout: (text: string) => void;
  /** Undefined: the child writes to this process's stderr itself. */
  readonly stderr?: (text: string) => void;
}

async function runFile(file: string, timeoutMs: number, sink: Sink): Promise<Outcome> {
  const started = Date.now();
  const env: NodeJS.ProcessEnv = { ...process.env, [PROTOCOL_ENV]: '1' };
  if (!env.NSM_LOG_LEVEL) env.NSM_LOG_LEVEL = 'warn';
  if (process.stdout.isTTY && env.FORCE_COLOR === undefined && env.NO_COLOR === undefined) env.FORCE_COLOR = '1';

  // detached: the child leads its own process group, so a timeout also kills
  // whatever it spawned (nats-server, iperf3, ...).
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', sink.stderr ? 'pipe' : 'inherit'],
  });
  if (sink.stderr && child.stderr) {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', sink.stderr);
  }

  let result: FileResult | undefined;
  let seenPass = 0;
  let seenFail = 0;
  let running: string | undefined;
  const filter = new MarkerFilter(sink.stdout, (rec) => {
    if (rec.kind === 'result') {
      result = rec.result;
      return;
    }
    const { event, test } = rec.progress;
    if (event === 'start') running = test;
    else {
      if (event === 'pass') seenPass++;
      else seenFail++;
      if (running === test) running = undefined;
    }
  });
  child.stdout!.setEncoding('utf8');
  child.stdout!.on('data', (chunk: string) => filter.push(chunk));
  const drained = new Promise<void>((resolve) => child.stdout!.once('close', resolve));

  let timedOut = false;
  const kill = () => {
    if (child.pid !== undefined) killGroup(child.pid);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    kill();
  }, timeoutMs);
  killRunning.add(kill);

  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>((resolve) => {
    child.once('error', (spawnError) => resolve({ code: null, signal: null, spawnError }));
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  clearTimeout(timer);
  killRunning.delete(kill);

  // Anything still in the group outlived its test file and could collide with the
  // next one. (Not reported: tsx's own esbuild helper is routinely still exiting here.)
  if (child.pid !== undefined) killGroup(child.pid);
  await Promise.race([drained, new Promise((r) => setTimeout(r, DRAIN_GRACE_MS).unref())]);
  child.stdout!.destroy();
  filter.end();

  const problems: string[] = [];
  let passed: number;
  let failed: number;
  let skipped = 0;
  if (result) {
    ({ passed, failed, skipped } = result);
    for (const f of result.failures) problems.push(`${f.test}: ${f.reason}`);
    if (result.registered === 0) {
      failed++;
      problems.push('no tests registered');
    }
  } else {
    // No result line: the process died without running its exit hook (killed,
    // crashed before loading the harness, or does not use it). Keep what progress showed.
    passed = seenPass;
    failed = seenFail + 1;
    if (exit.spawnError) problems.push(`could not start: ${exit.spawnError.message}`);
    else if (timedOut) problems.push(`timed out after ${timeoutMs} ms${running ? ` in "${running}"` : ''}`);
    else if (interrupted) problems.push('interrupted');
    else problems.push(`no result line (exit code ${exit.code}, signal ${exit.signal}); aborted, or not using test/lib/harness.ts`);
  }
  if (exit.code !== 0 && failed === 0) {
    failed = 1;
    problems.push(`exit code ${exit.code ?? `null (signal ${exit.signal})`} although all tests passed`);
  }
  return { file, passed, failed, skipped, ms: Date.now() - started, problems };
}

function summaryLine(o: Outcome): string {
  const status = o.failed > 0 ? 'FAIL' : 'PASS';
  const skipped = o.skipped > 0 ? `, ${o.skipped} skipped` : '';
  return `[${status}] ${rel(o.file)}: ${o.passed} passed, ${o.failed} failed${skipped} (${o.ms} ms)\n`;
}

function finish(passed: number, failed: number, why?: string, allSkipped = false): void {
  if (why) out(`\n${why}\n`);
  out(`${passed} passed, ${failed} failed\n`);
  process.exitCode = failed > 0 || (passed === 0 && !allSkipped) ? 1 : 0;
}

/** Splits the runner's own options from file arguments; a string is a usage error. */
function parseArgs(argv: string[]): { args: string[]; unit: boolean; jobs?: number } | string {
  const args: string[] = [];
  let unit = false;
  let jobs: number | undefined;
  const envJobs = process.env.NSM_TEST_JOBS;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--unit') unit = true;
    else if (a === '--jobs' || a === '-j' || a.startsWith('--jobs=')) {
      const raw = a.startsWith('--jobs=') ? a.slice('--jobs='.length) : argv[++i];
      const n = Number(raw);
      if (!Number.isInteger(n) || n < 1) return `--jobs must be a positive integer, got "${raw ?? ''}"`;
      jobs = n;
    } else args.push(a);
  }
  if (jobs === undefined && envJobs) {
    const n = Number(envJobs);
    if (!Number.isInteger(n) || n < 1) return `NSM_TEST_JOBS must be a positive integer, got "${envJobs}"`;
    jobs = n;
  }
  return jobs === undefined ? { args, unit } : { args, unit, jobs };
}

async function main(): Promise<void> {
  const timeoutMs = parseTimeout(process.env.NSM_TEST_FILE_TIMEOUT_MS);
  if (timeoutMs === undefined) {
    return finish(0, 0, `NSM_TEST_FILE_TIMEOUT_MS must be a positive integer, got "${process.env.NSM_TEST_FILE_TIMEOUT_MS}"`);
  }
  const parsed = parseArgs(process.argv.slice(2));
  if (typeof parsed === 'string') return finish(0, 0, parsed);
  const { args, unit } = parsed;
  let files = selectFiles(args, process.env.NSM_TEST_FILTER || undefined);
  if (unit) files = files.filter((f) => f.endsWith(UNIT_SUFFIX));
  const jobs = Math.max(1, Math.min(parsed.jobs ?? (unit ? availableParallelism() : 1), files.length));
  if (files.length === 0) {
    const given = [args.length ? `args: ${args.join(' ')}` : '', process.env.NSM_TEST_FILTER ? `NSM_TEST_FILTER=${process.env.NSM_TEST_FILTER}` : '']
      .filter(Boolean)
      .join(', ');
    const pattern = unit ? `**/*${UNIT_SUFFIX}` : '**/*.test.ts';
    return finish(0, 0, `No tests ran: no test files found${given ? ` (${given}${unit ? `, ${pattern} only` : ''})` : ` under test/ matching ${pattern}`}.`);
  }

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      interrupted = true;
      for (const kill of killRunning) kill();
    });
  }

  const startedAll = Date.now();
  const outcomes: Outcome[] = [];
  if (jobs === 1) {
    for (const file of files) {
      if (interrupted) break;
      out(`\n=== ${rel(file)}\n`);
      const o = await runFile(file, timeoutMs, { stdout: out });
      outcomes.push(o);
      out(`\n${summaryLine(o)}`);
      for (const p of o.problems) out(`    ${p}\n`);
    }
  } else {
    // A pool of `jobs` workers taking the next file; each file's output is printed whole.
    const queue = [...files];
    const worker = async () => {
      for (let file = queue.shift(); file !== undefined && !interrupted; file = queue.shift()) {
        let text = '';
        let errText = '';
        const o = await runFile(file, timeoutMs, { stdout: (t) => (text += t), stderr: (t) => (errText += t) });
        outcomes.push(o);
        if (errText) process.stderr.write(`\n=== ${rel(file)} (stderr)\n${errText}`);
        out(`\n=== ${rel(file)}\n${text}\n${summaryLine(o)}${o.problems.map((p) => `    ${p}\n`).join('')}`);
      }
    };
    await Promise.all(Array.from({ length: jobs }, worker));
    // The recap below lists files in their usual order, whatever order they finished in.
    outcomes.sort((a, b) => rel(a.file).localeCompare(rel(b.file)));
  }

  const passed = outcomes.reduce((n, o) => n + o.passed, 0);
  const failed = outcomes.reduce((n, o) => n + o.failed, 0);
  const bad = outcomes.filter((o) => o.failed > 0);
  // Recap only when there is something to recap: the per-file lines have scrolled away.
  if (outcomes.length > 1) {
    out(`\n${'-'.repeat(60)}\n`);
    for (const o of outcomes) out(summaryLine(o));
  }
  if (bad.length > 0 && outcomes.length > 1) {
    out(`\nFailures:\n`);
    for (const o of bad) {
      out(`  ${rel(o.file)}\n`);
      for (const p of o.problems) out(`    ${p}\n`);
    }
  }
  if (interrupted) out(`\nInterrupted: ${files.length - outcomes.length} file(s) not run.\n`);
  if (outcomes.length > 1) out(`\n${outcomes.length} files in ${((Date.now() - startedAll) / 1000).toFixed(1)} s${jobs > 1 ? `, ${jobs} at a time` : ''}\n`);
  const skipped = outcomes.reduce((n, o) => n + o.skipped, 0);
  const allSkipped = passed + failed === 0 && skipped > 0;
  let why: string | undefined;
  if (allSkipped) why = `No tests ran: all ${skipped} selected test(s) were skipped; each printed why.`;
  else if (passed + failed === 0) why = 'No tests ran: the selected files registered no tests.';
  finish(passed, interrupted && failed === 0 ? 1 : failed, why, allSkipped);
  if (interrupted) process.exitCode = 130;
}

await main();
