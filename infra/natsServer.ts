// Launches nats-server as a child process with JetStream on loopback, data in a directory.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, createWriteStream, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type ConnectionOptions } from 'nats';
import { portIsFree } from './net.ts';

export interface NatsServerOptions {
  readonly dataDir: string;
  readonly port: number;
  readonly host?: string;
  readonly serverName?: string;
  /** JetStream domain of this server (federation: each cluster is one domain, joined by leafnodes). */
  readonly jetstreamDomain?: string;
  /** Lines added verbatim to the generated configuration (leafnodes, accounts, tls...). */
  readonly extraConfig?: string;
  readonly readyTimeoutMs?: number;
  /** How the readiness probe connects when the server requires credentials and TLS. */
  readonly probe?: Partial<ConnectionOptions>;
}

export interface RunningNatsServer {
  readonly url: string;
  readonly port: number;
  readonly pid: number;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
  /** SIGKILL at once (fault injection). */
  kill(): Promise<void>;
  /**
   * Rewrites the configuration with other extra lines and makes the server reload it (SIGHUP):
   * users and permissions change without a restart, and connections of users no longer in the
   * configuration are closed. Resolves once the server says it reloaded.
   */
  reconfigure(extraConfig: string, timeoutMs?: number): Promise<E.Either<string, void>>;
  readonly exited: Promise<number | null>;
}

export const INSTALL_HINT =
  'nats-server was not found. Install it with "sudo apt-get install nats-server" (Debian/Ubuntu), or set NSM_NATS_SERVER to its path.';

export const natsServerBinary = (): E.Either<string, string> => {
  const bin = process.env.NSM_NATS_SERVER ?? 'nats-server';
  const probe = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) return E.left(INSTALL_HINT);
  return E.right(bin);
};

const tail = (file: string, lines = 15): string => {
  try {
    return readFileSync(file, 'utf8').trim().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
};

const readLog = (file: string): string => {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

const waitForExit = (child: ChildProcess): Promise<number | null> =>
  new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve(child.exitCode);
    else child.once('exit', (code) => resolve(code));
  });

/** Waits until JetStream answers, not just until the port is open. */
const waitReady = async (url: string, deadline: number, exited: () => boolean, probe: Partial<ConnectionOptions> = {}): Promise<E.Either<string, void>> => {
  let last = 'not started';
  while (Date.now() < deadline) {
    if (exited()) return E.left('nats-server exited during start');
    try {
      const nc = await connect({ ...probe, servers: url, reconnect: false, timeout: 500 });
      try {
        const jsm = await nc.jetstreamManager({ timeout: 1000 });
        await jsm.getAccountInfo();
        return E.right(undefined);
      } finally {
        await nc.close();
      }
    } catch (e) {
      last = (e as Error).message;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return E.left(`nats-server did not become ready: ${last}`);
};

export const startNatsServer = async (opts: NatsServerOptions): Promise<E.Either<string, RunningNatsServer>> => {
  const bin = natsServerBinary();
  if (E.isLeft(bin)) return bin;
  const host = opts.host ?? '127.0.0.1';
  // Checked first: a server already on the port would answer the readiness probe below in
  // place of ours, which exits on the failed bind.
  if (!(await portIsFree(opts.port, host))) return E.left(`cannot start nats-server: ${host}:${opts.port} is already in use (another nsm up or nats-server?)`);
  mkdirSync(join(opts.dataDir, 'jetstream'), { recursive: true });
  const confFile = join(opts.dataDir, 'nats-server.conf');
  const logFile = join(opts.dataDir, 'nats-server.log');
  const writeConfig = (extra: string) => {
    writeFileSync(
      confFile,
      [
        `server_name: ${JSON.stringify(opts.serverName ?? `nsm-${opts.port}`)}`,
        `listen: "${host}:${opts.port}"`,
        'max_payload: 1048576',
        `jetstream { store_dir: ${JSON.stringify(join(opts.dataDir, 'jetstream'))}${opts.jetstreamDomain ? `, domain: ${JSON.stringify(opts.jetstreamDomain)}` : ''} }`,
        extra,
      ].join('\n') + '\n',
      // It may hold a secret: a leafnode remote's password (docs/federation.md).
      { mode: 0o600 },
    );
    chmodSync(confFile, 0o600);
  };
  writeConfig(opts.extraConfig ?? '');
  const out = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(bin.right, ['-c', confFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.pipe(out);
  child.stderr!.pipe(out);
  const exited = waitForExit(child);
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const url = `nats://${host}:${opts.port}`;
  const ready = await waitReady(url, Date.now() + (opts.readyTimeoutMs ?? 15000), () => hasExited, opts.probe);
  // Our child may have lost a race for the port: then whatever answered was not ours.
  if (E.isRight(ready) && hasExited) return E.left(`nats-server exited during start (port ${opts.port}); full log in ${logFile}`);
  const stop = async (graceMs = 5000) => {
    if (hasExited) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
  };
  if (E.isLeft(ready)) {
    await stop(1000);
    // One line a person can act on: the server's own fatal error, and where the full log is.
    const fatal = tail(logFile, 50).split('\n').reverse().find((l) => /\[(FTL|ERR)\]/.test(l));
    const why = fatal ? `: ${fatal.replace(/^.*?\[(FTL|ERR)\]\s*/, '')}` : '';
    return E.left(`${ready.left} (port ${opts.port})${why}; full log in ${logFile}`);
  }
  return E.right({
    url,
    port: opts.port,
    pid: child.pid!,
    logFile,
    stop,
    kill: async () => {
      if (!hasExited) child.kill('SIGKILL');
      await exited;
    },
    reconfigure: async (extra, timeoutMs = 10_000) => {
      if (hasExited) return E.left('nats-server is not running');
      const count = (re: RegExp) => (readLog(logFile).match(re) ?? []).length;
      const reloaded = /Reloaded server configuration/g;
      const failed = /Failed to reload server configuration[^\n]*/g;
      const before = { ok: count(reloaded), failed: count(failed) };
      writeConfig(extra);
      child.kill('SIGHUP');
      for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; ) {
        if (count(reloaded) > before.ok) return E.right(undefined);
        if (count(failed) > before.failed) return E.left(`nats-server could not reload ${confFile}: ${(readLog(logFile).match(failed) ?? []).pop()}`);
        if (hasExited) return E.left(`nats-server exited while reloading its configuration; full log in ${logFile}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      return E.left(`nats-server did not reload its configuration within ${timeoutMs} ms; full log in ${logFile}`);
    },
    exited,
  });
};
