// Runs bin/nsm as a child process, the way a user does: short commands to completion, long-running
// ones (up, control-plane, agent) in the background with their output kept for assertions.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const NSM_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'bin', 'nsm');

let xdgRoot: string | undefined;
/**
 * XDG_CONFIG_HOME and XDG_DATA_HOME of this test process's own, in a temp dir removed at exit:
 * bin/nsm run by a test never reads the user's pointers (~/.config/nsm/<domain>.json) or
 * deployments (~/.local/share/nsm), and never writes or removes a pointer there.
 */
export const isolatedXdg = (): { XDG_CONFIG_HOME: string; XDG_DATA_HOME: string } => {
  if (xdgRoot === undefined) {
    const root = mkdtempSync(path.join(tmpdir(), 'nsm-test-xdg-'));
    xdgRoot = root;
    process.on('exit', () => rmSync(root, { recursive: true, force: true }));
  }
  return { XDG_CONFIG_HOME: path.join(xdgRoot, 'config'), XDG_DATA_HOME: path.join(xdgRoot, 'data') };
};

/** The environment bin/nsm runs with in tests: this process's, isolated XDG dirs (unless given), then `env`. */
export const nsmEnv = (env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ ...process.env, ...isolatedXdg(), ...env });

export interface NsmResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface NsmProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  /** Everything written so far. */
  stdout(): string;
  stderr(): string;
  /** Resolves when the process has exited. */
  readonly exited: Promise<NsmResult>;
  /** Resolves when stderr or stdout contains the text; rejects on exit or timeout. */
  waitFor(text: string | RegExp, timeoutMs?: number): Promise<void>;
  /** The structured log lines (JSON on stderr) with this msg. */
  logs(msg: string): Record<string, unknown>[];
  /** Sends the signal if the process is still running and waits for its exit. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<NsmResult>;
}

const lineMatches = (text: string, pattern: string | RegExp) => (typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text));

/** Starts `nsm ARGS...` in the background. */
export const startNsm = (args: readonly string[], env: NodeJS.ProcessEnv = {}): NsmProcess => {
  const child = spawn(NSM_BIN, args, { env: nsmEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const watchers = new Set<() => void>();
  child.stdout!.setEncoding('utf8').on('data', (d: string) => ((out += d), watchers.forEach((w) => w())));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => ((err += d), watchers.forEach((w) => w())));
  let done = false;
  const exited = new Promise<NsmResult>((resolve) => {
    child.once('exit', (code, signal) => {
      done = true;
      // Let the pipes drain what was written just before the exit.
      setTimeout(() => {
        watchers.forEach((w) => w());
        resolve({ code, signal, stdout: out, stderr: err });
      }, 50);
    });
  });
  const p: NsmProcess = {
    child,
    pid: child.pid!,
    stdout: () => out,
    stderr: () => err,
    exited,
    waitFor: (text, timeoutMs = 30000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (lineMatches(out, text) || lineMatches(err, text)) return finish();
          if (done) return finish(new Error(`nsm ${args.join(' ')} exited before printing ${String(text)}; stderr:\n${err.slice(-2000)}`));
        };
        const timer = setTimeout(() => finish(new Error(`nsm ${args.join(' ')} did not print ${String(text)} within ${timeoutMs} ms; stderr:\n${err.slice(-2000)}`)), timeoutMs);
        const finish = (e?: Error) => {
          clearTimeout(timer);
          watchers.delete(check);
          if (e) reject(e);
          else resolve();
        };
        watchers.add(check);
        void exited.then(check);
        check();
      }),
    logs: (msg) =>
      err
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => {
          try {
            return JSON.parse(l) as Record<string, unknown>;
          } catch {
            return {};
          }
        })
        .filter((l) => l.msg === msg),
    stop: async (signal = 'SIGTERM', graceMs = 10000) => {
      if (!done) child.kill(signal);
      const timer = setTimeout(() => !done && child.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
  };
  return p;
};

/** Runs `nsm ARGS...` to completion. */
export const runNsm = async (args: readonly string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 60000): Promise<NsmResult> => {
  const p = startNsm(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const r = await p.exited;
  clearTimeout(timer);
  return r;
};

/** True while a process with this pid exists (signal 0 probes without touching it). */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
};
