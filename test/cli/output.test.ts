// Scripted output through a pipe is whole: `nsm ... --json | consumer` used to stop at 64 KiB,
// because the CLI exited before Node had written its queued output into the pipe (a file got
// everything). Driven as a user runs it: `nsm up` on the default secure mesh, bin/nsm with
// stdout piped into a reader that is slower than the writer, several MiB at a time.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { MeshClient } from '../../src/client/index.ts';
import { readCredentials } from '../../src/security/credentials.ts';
import { suite } from '../lib/harness.ts';
import { runId } from '../lib/nats.ts';
import { isAlive, NSM_BIN, nsmEnv, runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

type Ctx = { tmp: string; up?: NsmProcess; client?: MeshClient; env: NodeJS.ProcessEnv; dir: string; longLived?: string };
const s = suite<Ctx>('piped output is never cut short', { tmp: '', env: {}, dir: '' });

const CONNECTIONS = 800;
const REFRESHES = 400;
const MiB = 1024 * 1024;

interface Piped {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/**
 * Runs bin/nsm with stdout into a real pipe read slowly: after each chunk the reader pauses, so
 * the writer is always ahead of it and anything not written when the process exits is lost.
 */
const piped = (args: readonly string[], env: NodeJS.ProcessEnv, pauseMs: number | ((received: number) => number) = 3): Promise<Piped> =>
  new Promise((resolve, reject) => {
    const child = spawn(NSM_BIN, args, { env: nsmEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let received = 0;
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => {
      chunks.push(c);
      received += c.length;
      child.stdout!.pause();
      setTimeout(() => child.stdout!.resume(), typeof pauseMs === 'number' ? pauseMs : pauseMs(received));
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('error', reject);
    // 'close': the process has exited and both pipes are read to their end.
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout: Buffer.concat(chunks), stderr });
    });
  });

const parseJson = <T>(what: string, r: Piped): T => {
  assert.is(r.code, 0, `${what} exited ${r.code} (${r.signal}): ${r.stderr.slice(-2000)}`);
  try {
    return JSON.parse(r.stdout.toString('utf8')) as T;
  } catch (e) {
    throw new Error(`${what}: ${r.stdout.length} bytes through the pipe are not whole JSON (${(e as Error).message})`);
  }
};

s.before(async (ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-cli-output-'));
  ctx.dir = join(ctx.tmp, 'mesh');
  const domain = `out-${runId()}`;
  ctx.env = {
    XDG_CONFIG_HOME: join(ctx.tmp, 'config'),
    XDG_DATA_HOME: join(ctx.tmp, 'data'),
    NSM_DOMAIN: domain,
    NSM_NODE: 'n1',
    NSM_LOG_LEVEL: 'warn',
    NSM_CREDS: '',
    NSM_NATS_URL: '',
    NSM_ACTOR: '',
  };
  const natsPort = await freePort();
  // The default: authenticated, over TLS; the simulated dataplane.
  ctx.up = startNsm(['up', '--data-dir', ctx.dir, '--nats-port', String(natsPort), '--http-port', String(await freePort()), '--node', 'n1'], { ...ctx.env, NSM_LOG_LEVEL: 'info' });
  await ctx.up.waitFor(`mesh "${domain}" is up`, 90_000);
  for (const args of [['service', 'register', 'web'], ['endpoint', 'register', 'ep-1', '--service', 'web', '--prefix', '10.96.0.0/16']]) {
    const r = await runNsm(args, ctx.env);
    assert.is(r.code, 0, r.stderr);
  }
  // Many connections, quickly: through the SDK as the operator (the CLI would start a process each).
  const creds = readCredentials(join(ctx.dir, 'creds', 'operator.creds'));
  if (E.isLeft(creds)) throw new Error(creds.left);
  const client = await MeshClient.connect(`nats://127.0.0.1:${natsPort}`, { domain, credentials: creds.right, timeoutMs: 60_000 });
  if (E.isLeft(client)) throw new Error(client.left.message);
  ctx.client = client.right;
  const ids = Array.from({ length: CONNECTIONS }, (_, i) => `${runId()}-${i}`);
  for (let i = 0; i < ids.length; i += 100) {
    const sent = await Promise.all(ids.slice(i, i + 100).map((id) => ctx.client!.send('connection.request', { connectionId: id, networkService: 'web', clientNode: 'n1', labels: {} })));
    for (const r of sent) if (E.isLeft(r)) throw new Error(r.left.message);
  }
  const deadline = Date.now() + 120_000;
  for (;;) {
    const rows = await ctx.client.queryAll<{ state: string }>('connections', { state: 'established' });
    if (E.isRight(rows) && rows.right.length === CONNECTIONS) break;
    if (Date.now() > deadline) throw new Error(`connections not established in time: ${JSON.stringify(E.isRight(rows) ? rows.right.length : rows.left)}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  // A long-lived connection: refreshed again and again, so its history is long.
  ctx.longLived = ids[0]!;
  for (let i = 0; i < REFRESHES; i++) {
    const r = await ctx.client.send('connection.refresh', { connectionId: ctx.longLived, expirationSeconds: 3600 + i });
    if (E.isLeft(r)) throw new Error(r.left.message);
  }
});

s.after(async (ctx) => {
  await ctx.client?.close().catch(() => undefined);
  if (ctx.up) {
    await ctx.up.stop('SIGTERM', 20_000);
    const pid = ctx.up.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  if (ctx.tmp) rmSync(ctx.tmp, { recursive: true, force: true });
});

s('nsm ls connections --json: several MiB through a slow pipe, whole', async (ctx) => {
  const r = await piped(['ls', 'connections', '--json'], ctx.env);
  const rows = parseJson<{ id: string; state: string }[]>('nsm ls connections --json', r);
  assert.ok(r.stdout.length > 2 * MiB, `${r.stdout.length} bytes: more than 2 MiB, to be sure the pipe was full`);
  assert.is(rows.length, CONNECTIONS);
  assert.ok(rows.every((x) => x.state === 'established'));
  assert.is(new Set(rows.map((x) => x.id)).size, CONNECTIONS);
  // The table for people goes the same way.
  const table = await piped(['ls', 'connections'], ctx.env);
  assert.is(table.code, 0, table.stderr);
  assert.is(table.stdout.toString('utf8').trimEnd().split('\n').length, CONNECTIONS + 1, 'the header and one line per connection');
});

s('nsm history of a long-lived connection: every event through the pipe', async (ctx) => {
  const r = await piped(['history', ctx.longLived!, '--json'], ctx.env);
  const events = parseJson<{ event: { type: string } }[]>('nsm history --json', r);
  assert.ok(r.stdout.length > 256 * 1024, `${r.stdout.length} bytes`);
  assert.is(events.filter((e) => e.event.type === 'ConnectionRefreshed').length, REFRESHES);
  assert.is(events[0]!.event.type, 'ConnectionRequested');
  const wide = await piped(['history', ctx.longLived!, '--wide'], ctx.env);
  assert.is(wide.code, 0, wide.stderr);
  assert.is(wide.stdout.toString('utf8').trimEnd().split('\n').length, events.length + 1);
});

// nsm audit export and replay read JetStream directly. The operator may not have the
// permissions for that on this branch (another change grants them): then the control plane's
// credentials are used for these two, and the test says so.
const auditCreds = async (ctx: Ctx): Promise<string[]> => {
  const probe = await runNsm(['audit', 'export', '--until', '1'], ctx.env);
  if (probe.code === 0) return [];
  if (!/Permissions Violation/i.test(probe.stderr)) throw new Error(`nsm audit export as the operator failed: ${probe.stderr}`);
  process.stdout.write(`  (the operator may not read the log here: "${probe.stderr.trim()}"; using control-plane.creds for export and replay)\n`);
  return ['--creds', join(ctx.dir, 'creds', 'control-plane.creds')];
};

s('nsm audit export to stdout: several MiB through a slow pipe, ending with its end line', async (ctx) => {
  const creds = await auditCreds(ctx);
  const r = await piped(['audit', 'export', ...creds], ctx.env);
  assert.is(r.code, 0, r.stderr);
  assert.ok(r.stdout.length > 2 * MiB, `${r.stdout.length} bytes`);
  const text = r.stdout.toString('utf8');
  assert.ok(text.endsWith('\n'), 'the last line is complete');
  const lines = text.trimEnd().split('\n').map((l, i) => {
    try {
      return JSON.parse(l) as { type: string; commits?: number; events?: number; seals?: number };
    } catch {
      throw new Error(`line ${i + 1} of ${r.stdout.length} bytes is not JSON: ${l.slice(0, 200)}`);
    }
  });
  assert.is(lines[0]!.type, 'nsm-audit-export');
  const end = lines[lines.length - 1]!;
  assert.is(end.type, 'end', 'the export ends with its end line');
  assert.is(end.events, lines.filter((l) => l.type === 'event').length);
  assert.is(end.seals, lines.filter((l) => l.type === 'seal').length);
  assert.match(r.stderr, new RegExp(`exported ${end.commits} commits \\(${end.events} events`));
  // What came through the pipe is a whole, verifiable export.
  const file = join(ctx.tmp, 'piped.jsonl');
  writeFileSync(file, r.stdout);
  const verify = await runNsm(['audit', 'verify', '--file', file], ctx.env);
  assert.is(verify.code, 0, verify.stdout + verify.stderr);
  assert.match(verify.stdout, /^audit verify: OK: /);

  // The export waits for the pipe as it goes, so what is at stake is what it queued last, while
  // it reads the seals and closes its NATS connection: a reader that stalls near the end (a
  // consumer busy elsewhere, a slow network behind it) for longer than that.
  const eventCount = lines.filter((l) => l.type === 'event').length;
  const stalled = await piped(['audit', 'export', ...creds], ctx.env, (received) => (received >= r.stdout.length - 256 * 1024 ? 2000 : 3));
  assert.is(stalled.code, 0, stalled.stderr);
  const stalledLines = stalled.stdout.toString('utf8').trimEnd().split('\n');
  const stalledEnd = JSON.parse(stalledLines[stalledLines.length - 1]!) as { type: string; events: number };
  assert.is(stalledEnd.type, 'end', `the export through a stalling pipe ends with its end line (${stalled.stdout.length} bytes came through)`);
  // The sealer may have added a seal since; every event is there.
  assert.is(stalledLines.filter((l) => l.startsWith('{"type":"event"')).length, eventCount);

  // An error path: a tampered export, verified with --json, prints a large report and exits 1.
  const tampered = join(ctx.tmp, 'tampered.jsonl');
  writeFileSync(
    tampered,
    text
      .trimEnd()
      .split('\n')
      .map((l) => (l.startsWith('{"type":"event"') ? l.replace('"actor":"', '"actor":"x') : l))
      .join('\n') + '\n',
  );
  const broken = await piped(['audit', 'verify', '--file', tampered, '--json'], ctx.env);
  assert.is(broken.code, 1, broken.stderr);
  assert.ok(broken.stdout.length > 256 * 1024, `${broken.stdout.length} bytes of report`);
  const report = JSON.parse(broken.stdout.toString('utf8')) as { ok: boolean; findings: unknown[] };
  assert.is(report.ok, false);
  assert.ok(report.findings.length > 100, `${report.findings.length} findings`);
  assert.match(broken.stderr, /^nsm audit: integrity check failed \(\d+ problems\)\n$/);
});

s('nsm replay --json: the whole mesh through a slow pipe', async (ctx) => {
  const creds = await auditCreds(ctx);
  const r = await piped(['replay', '--until', new Date(Date.now() + 60_000).toISOString(), '--json', ...creds], ctx.env);
  const view = parseJson<{ connections: unknown[]; services: unknown[] }>('nsm replay --json', r);
  assert.ok(r.stdout.length > 1 * MiB, `${r.stdout.length} bytes`);
  assert.is(view.connections.length, CONNECTIONS);
});

s('a reader that stops early ends the CLI quietly (exit 141, as SIGPIPE would), not with a stack trace', async (ctx) => {
  const child = spawn(NSM_BIN, ['ls', 'connections', '--json'], { env: nsmEnv(ctx.env), stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const first = await new Promise<Buffer>((resolve) => child.stdout!.once('data', resolve));
  child.stdout!.destroy();
  const [code] = await new Promise<[number | null]>((resolve) => child.on('close', (c) => resolve([c])));
  assert.ok(first.length > 0);
  assert.is(code, 141);
  assert.is(stderr, '');
});

s.run();
