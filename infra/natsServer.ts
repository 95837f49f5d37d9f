// Launches nats-server as a child process with JetStream on loopback, data in a directory.
// The server dies with the process that started it (./ownedChild.ts); a pid file in the data
// dir lets the next start find a server an earlier one left behind (staleServer below).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, chmodSync, closeSync, constants as fsConstants, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type ConnectionOptions } from 'nats';
import { portIsFree } from './net.ts';
import { spawnOwned, type Tie } from './ownedChild.ts';
import { sleep } from '../src/lib/time.ts';

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
  /**
   * When the server counts as started: JetStream answers (default), or it takes connections (a
   * cluster server, whose JetStream waits for a quorum of the others: see waitForJetStream).
   */
  readonly readiness?: 'jetstream' | 'connect';
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
  /** Makes the server read its configuration again (the files it includes may have changed). */
  reload(timeoutMs?: number): Promise<E.Either<string, void>>;
  readonly exited: Promise<number | null>;
  /** False once the server has exited. */
  isRunning(): boolean;
  /** How the server is tied to this process (./ownedChild.ts). */
  readonly tie: Tie;
  /** What the start had to clear first (a server an earlier, crashed start left behind), for the log. */
  readonly notes: readonly string[];
}

/** The one command that installs what `nsm up` needs, and the alternative. */
export const INSTALL_HINT =
  'Install it with "sudo apt-get install --no-install-recommends nats-server" (Debian/Ubuntu), or set NSM_NATS_SERVER to its path.';

/** Where Debian's package puts nats-server: searched after the PATH, which lacks them for users other than root. */
export const SBIN_DIRS: readonly string[] = ['/usr/local/sbin', '/usr/sbin', '/sbin'];

export const APT_INSTALL_ARGS: readonly string[] = ['install', '-y', '--no-install-recommends', 'nats-server'];

export interface NatsServerLookup {
  /** NSM_NATS_SERVER and PATH are read from here (default: process.env); apt-get runs with it. */
  readonly env?: NodeJS.ProcessEnv;
  /** Searched after the PATH (default SBIN_DIRS). */
  readonly sbinDirs?: readonly string[];
  /** The effective user id (default: this process's): only root installs. */
  readonly uid?: number;
  /** Where what is being done is said, one line at a time (default: stderr). */
  readonly say?: (line: string) => void;
  /** Where apt-get's own output goes (default: this process's stderr). */
  readonly aptOutput?: (chunk: string) => void;
}

const executableFile = (file: string): boolean => {
  try {
    accessSync(file, fsConstants.X_OK);
    return statSync(file).isFile();
  } catch {
    return false;
  }
};

/** nats-server on the PATH, then in the sbin directories; undefined when none is there. */
export const locateNatsServer = (o: Pick<NatsServerLookup, 'env' | 'sbinDirs'> = {}): string | undefined => {
  const env = o.env ?? process.env;
  const dirs = [...(env.PATH ?? '').split(':').filter((d) => d !== ''), ...(o.sbinDirs ?? SBIN_DIRS)];
  for (const dir of dirs) {
    const file = join(dir, 'nats-server');
    if (executableFile(file)) return file;
  }
  return undefined;
};

const searched = (o: Pick<NatsServerLookup, 'sbinDirs'>): string => {
  const dirs = o.sbinDirs ?? SBIN_DIRS;
  return dirs.length > 0 ? `looked on the PATH and in ${dirs.join(', ')}` : 'looked on the PATH';
};

/** Runs `bin --version`: undefined if it works, else why not. */
const probe = (bin: string, env: NodeJS.ProcessEnv): string | undefined => {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', env, timeout: 10_000 });
  if (r.error) return (r.error as NodeJS.ErrnoException).code ?? r.error.message;
  if (r.status !== 0) return `exit status ${r.status}${r.stderr.trim() ? `: ${r.stderr.trim().split('\n').pop()}` : ''}`;
  return undefined;
};

/** Runs apt-get with these arguments; its output goes to `output`; resolves to its exit status and output. */
const aptGet = (args: readonly string[], env: NodeJS.ProcessEnv, output: (chunk: string) => void): Promise<{ status: number | null; text: string; spawnError?: string }> =>
  new Promise((resolve) => {
    let text = '';
    const child = spawn('apt-get', args, { env: { ...env, DEBIAN_FRONTEND: 'noninteractive' }, stdio: ['ignore', 'pipe', 'pipe'] });
    for (const stream of [child.stdout, child.stderr]) {
      stream.setEncoding('utf8');
      stream.on('data', (chunk: string) => {
        text += chunk;
        output(chunk);
      });
    }
    child.once('error', (e: NodeJS.ErrnoException) => resolve({ status: null, text, spawnError: e.code ?? e.message }));
    child.once('close', (status) => resolve({ status, text }));
  });

/** apt's own reason: its last "E: ..." line (else its last line). */
const aptError = (text: string): string => {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return [...lines].reverse().find((l) => l.startsWith('E:')) ?? lines[lines.length - 1] ?? 'no output';
};

/** One install at a time per process: several servers may be starting at once. */
let installing: Promise<E.Either<string, string>> | undefined;

const install = async (o: NatsServerLookup, env: NodeJS.ProcessEnv): Promise<E.Either<string, string>> => {
  const say = o.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const output = o.aptOutput ?? ((chunk: string) => process.stderr.write(chunk));
  say(`nats-server is not installed; installing it: apt-get ${APT_INSTALL_ARGS.join(' ')}`);
  let r = await aptGet(APT_INSTALL_ARGS, env, output);
  // A machine that never ran apt-get update knows no package yet.
  if (r.status !== 0 && r.spawnError === undefined && /Unable to locate package|has no installation candidate/.test(r.text)) {
    say('apt-get does not know nats-server yet; running apt-get update, then installing again');
    const update = await aptGet(['update'], env, output);
    if (update.status !== 0) return E.left(`cannot install nats-server: apt-get update failed: ${update.spawnError ?? aptError(update.text)}. ${INSTALL_HINT}`);
    r = await aptGet(APT_INSTALL_ARGS, env, output);
  }
  if (r.spawnError !== undefined) return E.left(`cannot install nats-server: apt-get did not run (${r.spawnError}). ${INSTALL_HINT}`);
  if (r.status !== 0) return E.left(`cannot install nats-server: ${aptError(r.text)}`);
  const found = locateNatsServer({ env, ...(o.sbinDirs ? { sbinDirs: o.sbinDirs } : {}) });
  if (found === undefined) return E.left(`apt-get installed nats-server, but it is not to be found (${searched(o)}). ${INSTALL_HINT}`);
  const broken = probe(found, env);
  if (broken) return E.left(`apt-get installed nats-server, but ${found} does not run (${broken})`);
  say(`nats-server installed: ${found}`);
  return E.right(found);
};

/**
 * The nats-server to run: NSM_NATS_SERVER when set (and then only that), else nats-server on the
 * PATH or in the sbin directories. When there is none and this process is root, it is installed
 * with apt-get (said on stderr first); otherwise the answer is one line with the command to run.
 */
export const findNatsServer = async (o: NatsServerLookup = {}): Promise<E.Either<string, string>> => {
  const env = o.env ?? process.env;
  const chosen = env.NSM_NATS_SERVER;
  if (chosen !== undefined && chosen !== '') {
    const broken = probe(chosen, env);
    return broken ? E.left(`nats-server was not found: NSM_NATS_SERVER is "${chosen}", which does not run (${broken}). ${INSTALL_HINT}`) : E.right(chosen);
  }
  const found = locateNatsServer(o);
  if (found !== undefined) {
    const broken = probe(found, env);
    return broken ? E.left(`${found} does not run (${broken}). ${INSTALL_HINT}`) : E.right(found);
  }
  const uid = o.uid ?? process.geteuid?.() ?? -1;
  if (uid !== 0) return E.left(`nats-server was not found (${searched(o)}). ${INSTALL_HINT}`);
  // Only the process's own lookup is shared: an injected one (tests) installs on its own.
  if (o.env !== undefined || o.sbinDirs !== undefined) return install(o, env);
  installing ??= install(o, env).finally(() => {
    installing = undefined;
  });
  return installing;
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
    else {
      child.once('exit', (code) => resolve(code));
      // Not started at all (the binary vanished since the probe).
      child.once('error', () => resolve(null));
    }
  });

// ---- a server an earlier start left behind -----------------------------------------------------

/** What a started server records in its data dir: its pid, and the process it belongs to. */
interface PidRecord {
  readonly pid: number;
  readonly parent: number;
  readonly port: number;
}

export const pidFileOf = (dataDir: string): string => join(dataDir, 'nats-server.pid');

const readPidRecord = (file: string): PidRecord | undefined => {
  try {
    const r = JSON.parse(readFileSync(file, 'utf8')) as Partial<PidRecord>;
    return Number.isInteger(r.pid) && Number.isInteger(r.parent) && Number.isInteger(r.port) ? { pid: r.pid!, parent: r.parent!, port: r.port! } : undefined;
  } catch {
    return undefined;
  }
};

const procArgv = (pid: number): string[] | undefined => {
  try {
    const parts = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return parts[parts.length - 1] === '' ? parts.slice(0, -1) : parts;
  } catch {
    return undefined;
  }
};

/** State and parent pid from /proc/PID/stat (the command name, field 2, may hold spaces). */
const procStat = (pid: number): { state: string; ppid: number } | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { state: state ?? '?', ppid: Number(ppid) };
  } catch {
    return undefined;
  }
};

const running = (pid: number): boolean => {
  const s = procStat(pid);
  return s !== undefined && s.state !== 'Z' && s.state !== 'X';
};

/** Processes (not zombies) whose command line runs this configuration file: `... -c FILE`. */
const serversOn = (confFile: string): number[] =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .map(Number)
    .filter((pid) => pid !== process.pid && running(pid))
    .filter((pid) => {
      const argv = procArgv(pid) ?? [];
      return argv.some((a, i) => (a === '-c' || a === '--config') && argv[i + 1] === confFile);
    });


const stopPid = async (pid: number): Promise<boolean> => {
  for (const [signal, waitMs] of [['SIGTERM', 5000], ['SIGKILL', 2000]] as const) {
    try {
      process.kill(pid, signal);
    } catch {
      return true;
    }
    for (let t = 0; t < waitMs && running(pid); t += 100) await sleep(100);
    if (!running(pid)) return true;
  }
  return false;
};

/**
 * Before a server starts on a data dir: another server running on that dir's configuration.
 * One that this code started for a process that is gone (the pid file names it, and it is no
 * longer that process's child: a crash the parent-death signal could not cover, or an older
 * nsm) is certainly an orphan of ours: it is stopped, and a note says so. Any other is an
 * error naming it: a running `nsm up` on the same directory, or a server started by hand.
 * Only on Linux (/proc); elsewhere the port check that follows is all there is.
 */
const clearStaleServer = async (dataDir: string, confFile: string): Promise<E.Either<string, string[]>> => {
  let procs: number[];
  try {
    procs = serversOn(confFile);
  } catch {
    return E.right([]);
  }
  const pidFile = pidFileOf(dataDir);
  const record = readPidRecord(pidFile);
  const notes: string[] = [];
  for (const pid of procs) {
    const ppid = procStat(pid)?.ppid;
    if (record?.pid === pid && ppid !== record.parent) {
      if (!(await stopPid(pid))) return E.left(`the data dir ${dataDir} is held by nats-server pid ${pid} (left by an earlier nsm up, pid ${record.parent}, that is gone), and it does not stop: kill -9 ${pid}`);
      notes.push(`stopped nats-server pid ${pid} (port ${record.port}) that an earlier nsm up (pid ${record.parent}, no longer running) left on ${dataDir}`);
    } else if (record?.pid === pid) {
      return E.left(`the data dir ${dataDir} is in use: its nats-server (pid ${pid}, port ${record.port}) belongs to process ${record.parent}, which is still running (another nsm up on this data dir?)`);
    } else {
      return E.left(`the data dir ${dataDir} is in use by a nats-server that no earlier nsm up left behind (pid ${pid}: ${(procArgv(pid) ?? []).join(' ')}); stop it first`);
    }
  }
  if (record) rmSync(pidFile, { force: true });
  return E.right(notes);
};

/** Waits until JetStream answers, not just until the port is open. */
const waitReady = async (url: string, deadline: number, exited: () => boolean, probe: Partial<ConnectionOptions> = {}, jetstream = true): Promise<E.Either<string, void>> => {
  let last = 'not started';
  while (Date.now() < deadline) {
    if (exited()) return E.left('nats-server exited during start');
    try {
      const nc = await connect({ ...probe, servers: url, reconnect: false, timeout: 500 });
      try {
        if (jetstream) await (await nc.jetstreamManager({ timeout: 1000 })).getAccountInfo();
        return E.right(undefined);
      } finally {
        await nc.close();
      }
    } catch (e) {
      last = (e as Error).message;
      await sleep(100);
    }
  }
  return E.left(`nats-server did not become ready: ${last}`);
};

/**
 * SIGHUP, and wait for the server's log to say it reloaded (or could not). `before` runs just
 * before the signal (the new configuration is written there), after the log was counted.
 */
const signalReload = async (
  pid: number,
  o: { confFile: string; logFile: string; gone: () => boolean; timeoutMs: number; before?: () => void },
): Promise<E.Either<string, void>> => {
  const count = (re: RegExp) => (readLog(o.logFile).match(re) ?? []).length;
  const reloaded = /Reloaded server configuration/g;
  const failed = /Failed to reload server configuration[^\n]*/g;
  const before = { ok: count(reloaded), failed: count(failed) };
  o.before?.();
  try {
    process.kill(pid, 'SIGHUP');
  } catch (e) {
    return E.left(`cannot signal nats-server pid ${pid}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  for (const deadline = Date.now() + o.timeoutMs; Date.now() < deadline; ) {
    if (count(reloaded) > before.ok) return E.right(undefined);
    if (count(failed) > before.failed) return E.left(`nats-server could not reload ${o.confFile}: ${(readLog(o.logFile).match(failed) ?? []).pop()}`);
    if (o.gone()) return E.left(`nats-server exited while reloading its configuration; full log in ${o.logFile}`);
    await sleep(50);
  }
  return E.left(`nats-server did not reload its configuration within ${o.timeoutMs} ms; full log in ${o.logFile}`);
};

/**
 * Makes the nats-server that `nsm up` runs on this data dir (its pid file names it) read its
 * configuration again: 'not-running' when none runs there.
 */
export const reloadServerOn = async (dataDir: string, timeoutMs = 10_000): Promise<E.Either<string, 'reloaded' | 'not-running'>> => {
  const dir = resolve(dataDir);
  const confFile = join(dir, 'nats-server.conf');
  const record = readPidRecord(pidFileOf(dir));
  if (!record || !running(record.pid)) return E.right('not-running');
  const argv = procArgv(record.pid) ?? [];
  if (!argv.some((a, i) => (a === '-c' || a === '--config') && argv[i + 1] === confFile)) return E.right('not-running');
  const r = await signalReload(record.pid, { confFile, logFile: join(dir, 'nats-server.log'), gone: () => !running(record.pid), timeoutMs });
  return E.map(() => 'reloaded' as const)(r);
};

/**
 * The configuration file of one server: its name, client listener, JetStream store, and the
 * lines that follow (authorization include, cluster or leafnode blocks). `nsm init --cluster`
 * writes each cluster server's file with this, and `nsm up --cluster-node` runs the same one.
 */
export const natsServerConfig = (o: { serverName: string; host: string; port: number; storeDir: string; jetstreamDomain?: string; extra: string }): string =>
  [
    `server_name: ${JSON.stringify(o.serverName)}`,
    `listen: "${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}"`,
    'max_payload: 1048576',
    `jetstream { store_dir: ${JSON.stringify(o.storeDir)}${o.jetstreamDomain ? `, domain: ${JSON.stringify(o.jetstreamDomain)}` : ''} }`,
    o.extra,
  ].join('\n') + '\n';

export const startNatsServer = async (opts: NatsServerOptions): Promise<E.Either<string, RunningNatsServer>> => {
  const bin = await findNatsServer();
  if (E.isLeft(bin)) return bin;
  const host = opts.host ?? '127.0.0.1';
  // Absolute: the command line names the configuration, and that is how a server left
  // behind on this data dir is recognised (clearStaleServer).
  const dataDir = resolve(opts.dataDir);
  const confFile = join(dataDir, 'nats-server.conf');
  const logFile = join(dataDir, 'nats-server.log');
  const pidFile = pidFileOf(dataDir);
  mkdirSync(join(dataDir, 'jetstream'), { recursive: true });
  // First: a server left running on this data dir would hold its JetStream directory (and
  // perhaps the port) with our own configuration.
  const stale = await clearStaleServer(dataDir, confFile);
  if (E.isLeft(stale)) return E.left(`cannot start nats-server: ${stale.left}`);
  // Checked next: a server already on the port would answer the readiness probe below in
  // place of ours, which exits on the failed bind.
  if (!(await portIsFree(opts.port, host))) return E.left(`cannot start nats-server: ${host}:${opts.port} is already in use (another nsm up or nats-server?)`);
  const writeConfig = (extra: string) => {
    // It may hold a secret: a leafnode remote's password (docs/federation.md).
    writeFileSync(
      confFile,
      natsServerConfig({ serverName: opts.serverName ?? `nsm-${opts.port}`, host, port: opts.port, storeDir: join(dataDir, 'jetstream'), ...(opts.jetstreamDomain ? { jetstreamDomain: opts.jetstreamDomain } : {}), extra }),
      { mode: 0o600 },
    );
    chmodSync(confFile, 0o600);
  };
  writeConfig(opts.extraConfig ?? '');
  // The server writes its log itself: no pipe through this process that its death would break.
  const logFd = openSync(logFile, 'a');
  let owned;
  try {
    owned = spawnOwned(bin.right, ['-c', confFile], logFd);
  } finally {
    closeSync(logFd);
  }
  const { child, tie } = owned;
  const exited = waitForExit(child);
  let hasExited = false;
  if (child.pid !== undefined) writeFileSync(pidFile, JSON.stringify({ pid: child.pid, parent: process.pid, port: opts.port }) + '\n');
  void exited.then(() => {
    hasExited = true;
    // Unless a later start on this data dir has replaced it.
    if (readPidRecord(pidFile)?.pid === child.pid) rmSync(pidFile, { force: true });
  });
  const url = `nats://${host.includes(':') ? `[${host}]` : host}:${opts.port}`;
  const ready = await waitReady(url, Date.now() + (opts.readyTimeoutMs ?? 15000), () => hasExited, opts.probe, opts.readiness !== 'connect');
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
      return signalReload(child.pid!, { confFile, logFile, gone: () => hasExited, timeoutMs, before: () => writeConfig(extra) });
    },
    reload: async (timeoutMs = 10_000) => (hasExited ? E.left('nats-server is not running') : signalReload(child.pid!, { confFile, logFile, gone: () => hasExited, timeoutMs })),
    exited,
    isRunning: () => !hasExited,
    tie,
    notes: stale.right,
  });
};
