// `nsm up`'s nats-server never outlives it: not when it is stopped, not when its start fails,
// not when it is killed with SIGKILL (nothing runs in it then: the kernel's parent-death signal,
// or the watchdog where that is not available, stops the server). A server that an earlier crash
// still left behind is found by the next `nsm up` on the data dir, and stopped when it is
// certainly an orphan of ours; anything else holding the data dir is named in one line.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { freePort, portIsFree } from '../../infra/net.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { runId } from '../lib/nats.ts';
import { runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

type Ctx = { tmp: string; procs: NsmProcess[]; servers: Server[] };
const s = suite<Ctx>('nsm up: child processes die with it', { tmp: '', procs: [], servers: [] });

const stat = (pid: number): { state: string; ppid: number } | undefined => {
  try {
    const t = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = t.slice(t.lastIndexOf(')') + 2).split(' ');
    return { state: state!, ppid: Number(ppid) };
  } catch {
    return undefined;
  }
};
/** Running: it exists and is not a zombie waiting to be reaped. */
const running = (pid: number) => {
  const st = stat(pid);
  return st !== undefined && st.state !== 'Z' && st.state !== 'X';
};
const cmdline = (pid: number): string[] => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    return [];
  }
};
const allPids = () => readdirSync('/proc').filter((d) => /^\d+$/.test(d)).map(Number);
/** Every running process whose command line runs the data dir's nats-server configuration. */
const serversOn = (dataDir: string): number[] => allPids().filter((p) => running(p) && cmdline(p).includes(join(dataDir, 'nats-server.conf')));
const childrenOf = (pid: number): number[] => allPids().filter((p) => stat(p)?.ppid === pid && running(p));

s.before((ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-cli-children-'));
});
s.after(async (ctx) => {
  for (const p of ctx.procs) await p.stop('SIGKILL');
  // Whatever a failed test left: every server on a data dir of this test, and watchdogs.
  for (const pid of allPids().filter((p) => running(p) && cmdline(p).some((a) => a.startsWith(ctx.tmp)))) process.kill(pid, 'SIGKILL');
  for (const srv of ctx.servers) srv.close();
  rmSync(ctx.tmp, { recursive: true, force: true });
});

const envOf = (ctx: Ctx, domain: string, extra: NodeJS.ProcessEnv = {}) => ({
  XDG_CONFIG_HOME: join(ctx.tmp, 'config'),
  XDG_DATA_HOME: join(ctx.tmp, 'data'),
  NSM_DOMAIN: domain,
  NSM_CREDS: '',
  NSM_NATS_URL: '',
  NSM_ACTOR: '',
  // The nats-server pid is read from the info log.
  NSM_LOG_LEVEL: 'info',
  ...extra,
});

interface Up {
  readonly p: NsmProcess;
  readonly natsPid: number;
  readonly dataDir: string;
  readonly natsPort: number;
  readonly httpPort: number;
}

/** `nsm up` on the default secure mesh, the simulated dataplane. */
const up = async (ctx: Ctx, o: { domain: string; dataDir: string; natsPort?: number; httpPort?: number; env?: NodeJS.ProcessEnv }): Promise<Up> => {
  const natsPort = o.natsPort ?? (await freePort());
  const httpPort = o.httpPort ?? (await freePort());
  const p = startNsm(['up', '--data-dir', o.dataDir, '--nats-port', String(natsPort), '--http-port', String(httpPort), '--node', 'n1'], envOf(ctx, o.domain, o.env));
  ctx.procs.push(p);
  await p.waitFor(`mesh "${o.domain}" is up`, 90_000);
  const natsPid = p.logs('nats-server started')[0]?.pid;
  assert.ok(typeof natsPid === 'number', 'nsm up logs its nats-server pid');
  assert.ok(running(natsPid as number));
  return { p, natsPid: natsPid as number, dataDir: o.dataDir, natsPort, httpPort };
};

const goneWithin = async (what: string, pids: readonly number[], ms: number) => {
  const t0 = Date.now();
  await eventually(what, () => pids.every((p) => !running(p)), { timeoutMs: ms, describe: () => pids.filter(running).map((p) => `${p}: ${cmdline(p).join(' ')}`) });
  return Date.now() - t0;
};

const killAndRestart = async (ctx: Ctx, env: NodeJS.ProcessEnv) => {
  const domain = `kill-${runId()}`;
  const first = await up(ctx, { domain, dataDir: join(ctx.tmp, domain), env });
  const helpers = childrenOf(first.p.pid).filter((c) => c !== first.natsPid && cmdline(c).includes('nsm-watchdog'));
  const reg = await runNsm(['service', 'register', 'kept'], envOf(ctx, domain));
  assert.is(reg.code, 0, reg.stderr);
  first.p.child.kill('SIGKILL');
  await first.p.exited;
  const ms = await goneWithin(`nats-server ${first.natsPid} to stop after its nsm up was killed`, [first.natsPid], 5000);
  // No watchdog is left either (there is one only without setpriv).
  await goneWithin('the watchdog to end', helpers, 8000);
  assert.equal(serversOn(first.dataDir), []);
  // The same data dir and the same ports: a new nsm up starts, and finds what was there.
  const again = await up(ctx, { domain, dataDir: first.dataDir, natsPort: first.natsPort, httpPort: first.httpPort, env });
  const ls = await runNsm(['ls', 'services', '--json'], envOf(ctx, domain));
  assert.is(ls.code, 0, ls.stderr);
  assert.equal((JSON.parse(ls.stdout) as { name: string }[]).map((x) => x.name), ['kept']);
  const stopped = await again.p.stop('SIGTERM', 20_000);
  assert.is(stopped.code, 0, stopped.stderr.slice(-2000));
  assert.not.ok(running(again.natsPid));
  return ms;
};

s('nsm up killed with SIGKILL: its nats-server stops within seconds, and nsm up starts again on the same data dir and port', async (ctx) => {
  const ms = await killAndRestart(ctx, {});
  process.stdout.write(`  (nats-server gone ${ms} ms after SIGKILL, parent-death signal)\n`);
});

s('the same without setpriv: the watchdog stops the server', async (ctx) => {
  // NSM_SETPRIV names the setpriv binary; one that does not exist forces the watchdog.
  const ms = await killAndRestart(ctx, { NSM_SETPRIV: join(ctx.tmp, 'no-setpriv') });
  process.stdout.write(`  (nats-server gone ${ms} ms after SIGKILL, watchdog)\n`);
});

s('SIGHUP (a closed terminal) stops nsm up and its nats-server cleanly', async (ctx) => {
  const domain = `hup-${runId()}`;
  const u = await up(ctx, { domain, dataDir: join(ctx.tmp, domain) });
  const r = await u.p.stop('SIGHUP', 20_000);
  assert.is(r.signal, null, `exited by itself, not by the signal (${r.signal}): ${r.stderr.slice(-1500)}`);
  assert.is(r.code, 0, r.stderr.slice(-2000));
  assert.not.ok(running(u.natsPid), 'nats-server is gone');
  assert.equal(serversOn(u.dataDir), []);
});

s('a nats-server an earlier crash left behind is stopped by the next nsm up, which says so', async (ctx) => {
  const domain = `stale-${runId()}`;
  // A crash no protection covered: the watchdog is killed first, then nsm up, both with SIGKILL.
  const env = { NSM_SETPRIV: join(ctx.tmp, 'no-setpriv') };
  const first = await up(ctx, { domain, dataDir: join(ctx.tmp, domain), env });
  const watchdog = childrenOf(first.p.pid).find((c) => cmdline(c).includes('nsm-watchdog'));
  assert.ok(watchdog !== undefined, 'a watchdog runs beside nats-server');
  process.kill(watchdog!, 'SIGKILL');
  first.p.child.kill('SIGKILL');
  await first.p.exited;
  await new Promise((r) => setTimeout(r, 1000));
  assert.ok(running(first.natsPid), 'the orphaned nats-server still runs (what an older nsm left behind)');
  assert.not.ok(await portIsFree(first.natsPort), 'and holds the port');
  const again = await up(ctx, { domain, dataDir: first.dataDir, natsPort: first.natsPort, httpPort: first.httpPort });
  assert.not.ok(running(first.natsPid));
  assert.match(again.p.stderr(), new RegExp(`stopped nats-server pid ${first.natsPid} \\(port ${first.natsPort}\\) that an earlier nsm up \\(pid ${first.p.pid}, no longer running\\) left on ${first.dataDir.replace(/[.]/g, '\\.')}`));
  assert.equal(serversOn(first.dataDir), [again.natsPid]);
  await again.p.stop('SIGTERM', 20_000);
});

s('a data dir in use by a running nsm up: a second nsm up on it says so in one line and changes nothing', async (ctx) => {
  const domain = `busy-${runId()}`;
  const first = await up(ctx, { domain, dataDir: join(ctx.tmp, domain) });
  // Another port: the port check alone would have let a second server onto the same JetStream directory.
  const r = await runNsm(['up', '--data-dir', first.dataDir, '--nats-port', String(await freePort()), '--http-port', String(await freePort()), '--node', 'n1'], envOf(ctx, domain, { NSM_LOG_LEVEL: 'error' }), 60_000);
  assert.is(r.code, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n'), [
    `nsm up: cannot start nats-server: the data dir ${first.dataDir} is in use: its nats-server (pid ${first.natsPid}, port ${first.natsPort}) belongs to process ${first.p.pid}, which is still running (another nsm up on this data dir?)`,
  ]);
  assert.equal(serversOn(first.dataDir), [first.natsPid]);
  const ls = await runNsm(['ls', 'nodes'], envOf(ctx, domain));
  assert.is(ls.code, 0, ls.stderr);
  await first.p.stop('SIGTERM', 20_000);
});

s('a nats-server started by hand on the data dir: nsm up names it instead of racing it', async (ctx) => {
  const domain = `hand-${runId()}`;
  const first = await up(ctx, { domain, dataDir: join(ctx.tmp, domain) });
  await first.p.stop('SIGTERM', 20_000);
  const server = spawn('nats-server', ['-c', join(first.dataDir, 'nats-server.conf')], { stdio: 'ignore' });
  try {
    await eventually('the hand-started server to listen', async () => !(await portIsFree(first.natsPort)), { timeoutMs: 10_000 });
    const r = await runNsm(['up', '--data-dir', first.dataDir, '--nats-port', String(await freePort()), '--http-port', String(await freePort()), '--node', 'n1'], envOf(ctx, domain, { NSM_LOG_LEVEL: 'error' }), 60_000);
    assert.is(r.code, 1, r.stderr);
    assert.equal(r.stderr.trim().split('\n'), [
      `nsm up: cannot start nats-server: the data dir ${first.dataDir} is in use by a nats-server that no earlier nsm up left behind (pid ${server.pid}: nats-server -c ${join(first.dataDir, 'nats-server.conf')}); stop it first`,
    ]);
    assert.ok(running(server.pid!), 'it is left alone');
  } finally {
    server.kill('SIGKILL');
  }
});

s('SIGTERM while nsm up is still starting: it ends at once, and its nats-server with it', async (ctx) => {
  const domain = `early-${runId()}`;
  const dataDir = join(ctx.tmp, domain);
  const p = startNsm(['up', '--data-dir', dataDir, '--nats-port', String(await freePort()), '--http-port', String(await freePort()), '--node', 'n1'], envOf(ctx, domain));
  ctx.procs.push(p);
  // Between the server's start and "is up" come the control plane, the HTTP API and the agent.
  await p.waitFor('"nats-server started"', 90_000);
  const natsPid = p.logs('nats-server started')[0]!.pid as number;
  const r = await p.stop('SIGTERM', 20_000);
  assert.is(r.signal, null, 'it ended by itself, not by the signal');
  if (!r.stderr.includes('is up')) {
    assert.is(r.code, 143, r.stderr.slice(-1500));
    assert.match(r.stderr, /"msg":"stopped while starting"/);
  }
  await goneWithin('nats-server to stop', [natsPid], 5000);
  assert.equal(serversOn(dataDir), []);
});

s('a startup error after nats-server started (HTTP port in use) leaves no nats-server behind', async (ctx) => {
  const domain = `http-${runId()}`;
  const httpPort = await freePort();
  const blocker = createServer();
  ctx.servers.push(blocker);
  await new Promise<void>((r) => blocker.listen(httpPort, '127.0.0.1', r));
  const dataDir = join(ctx.tmp, domain);
  const natsPort = await freePort();
  const r = await runNsm(['up', '--data-dir', dataDir, '--nats-port', String(natsPort), '--http-port', String(httpPort), '--node', 'n1'], envOf(ctx, domain, { NSM_LOG_LEVEL: 'error' }), 90_000);
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^nsm up: HTTP API cannot listen on 127\\.0\\.0\\.1:${httpPort}: .*EADDRINUSE`));
  assert.equal(serversOn(dataDir), [], 'no nats-server runs on the data dir');
  assert.ok(await portIsFree(natsPort), 'the NATS port is free again');
});

s.run();
