// Child processes that must not outlive this process (nats-server under `nsm up` and the test
// harness). A nats-server left behind by a crashed parent keeps the port and the JetStream
// directory, and the next `nsm up` on that directory fails or, on another port, races it.
//
// How a child dies with its parent, on every path out of the parent:
// - orderly exits (Ctrl-C, SIGTERM, SIGHUP, a startup error) stop it through its owner's stop();
// - process.exit() (and a natural end) runs the 'exit' hook below, which signals every owned
//   child that is still running; an uncaught exception in the CLI goes through process.exit;
// - nothing runs in a parent that gets SIGKILL or crashes in native code, so the kernel does
//   it: the child is started through `setpriv --pdeathsig TERM` (util-linux), which sets
//   prctl(PR_SET_PDEATHSIG) and then execs the program, so it keeps its pid and is a direct
//   child. The kernel sends SIGTERM when the thread that forked it exits; Node forks from the
//   main thread, which lives as long as the process. SIGTERM rather than SIGKILL: nats-server
//   then shuts JetStream down cleanly (it stops within a second here).
// - where setpriv is missing or cannot set the signal, a watchdog does it instead: a tiny
//   `sh` whose stdin is a pipe that only this process holds open (Node opens its ends
//   close-on-exec, so no other child inherits them). The kernel closes it when this process
//   dies, however it dies; `read` then sees end of file and the watchdog stops the child
//   (SIGTERM, SIGKILL after 5 s). Nothing polls a pid, so pid reuse cannot fool it.
// The child's output goes to a file it holds itself (not to a pipe into this process): a Go
// program that writes to a broken pipe dies of SIGPIPE mid-shutdown.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/** How an owned child is tied to its parent: the kernel (setpriv) or the watchdog. */
export type Tie = 'pdeathsig' | 'watchdog';

let setprivWorks: boolean | undefined;
const setprivBin = (): string => process.env.NSM_SETPRIV || 'setpriv';
/** Whether `setpriv --pdeathsig` runs here (probed once; NSM_SETPRIV names another binary). */
const canPdeathsig = (): boolean => {
  if (setprivWorks === undefined) {
    const r = spawnSync(setprivBin(), ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' });
    setprivWorks = !r.error && r.status === 0;
  }
  return setprivWorks;
};

const WATCHDOG = [
  // stdin: a pipe whose writing end only the parent holds; end of file: the parent is gone.
  'while read -r _; do :; done',
  'kill -TERM "$1" 2>/dev/null || exit 0',
  'i=0; while [ $i -lt 50 ] && kill -0 "$1" 2>/dev/null; do sleep 0.1; i=$((i+1)); done',
  'kill -KILL "$1" 2>/dev/null',
].join('\n');

const owned = new Set<ChildProcess>();
let hooked = false;
const hookExit = () => {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => signalOwnedChildren('SIGTERM'));
};

/** Signals every owned child still running (synchronous: usable from an exit or fatal-error handler). */
export const signalOwnedChildren = (signal: NodeJS.Signals): void => {
  for (const c of owned) {
    if (c.exitCode === null && c.signalCode === null) {
      try {
        c.kill(signal);
      } catch {
        // gone already
      }
    }
  }
};

export interface OwnedChild {
  readonly child: ChildProcess;
  readonly tie: Tie;
}

/**
 * Starts `bin args` so that it dies with this process (see above). stdout and stderr go to
 * the file descriptor given (a log file opened for appending), stdin is /dev/null.
 */
export const spawnOwned = (bin: string, args: readonly string[], logFd: number): OwnedChild => {
  hookExit();
  const pdeathsig = canPdeathsig();
  const child = pdeathsig
    ? spawn(setprivBin(), ['--pdeathsig', 'TERM', '--', bin, ...args], { stdio: ['ignore', logFd, logFd] })
    : spawn(bin, [...args], { stdio: ['ignore', logFd, logFd] });
  owned.add(child);
  let watchdog: ChildProcess | undefined;
  if (!pdeathsig && child.pid !== undefined) {
    watchdog = spawn('/bin/sh', ['-c', WATCHDOG, 'nsm-watchdog', String(child.pid)], { stdio: ['pipe', 'ignore', 'ignore'] });
    watchdog.on('error', () => undefined);
    watchdog.stdin!.on('error', () => undefined);
    // Neither the watchdog nor its pipe keeps this process alive.
    watchdog.unref();
    (watchdog.stdin as unknown as { unref?: () => void }).unref?.();
  }
  child.once('exit', () => {
    owned.delete(child);
    // Its child is gone: the watchdog must not signal a pid that may be reused.
    watchdog?.kill('SIGKILL');
  });
  return { child, tie: pdeathsig ? 'pdeathsig' : 'watchdog' };
};
