// Runs system tools (ip, wg, sysctl, wireguard-go) without a shell: argument arrays only, so no
// value can be read as shell syntax. A failure is a value carrying the command line and the
// tool's own words (stderr); stdin is never part of a message, which is how private keys are
// handed to `wg` without showing up anywhere.
import { spawn } from 'node:child_process';
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';

export interface CommandError {
  /** The command line as one could type it (arguments quoted where needed). */
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  readonly message: string;
}

export interface RunOptions {
  /** Written to stdin, then stdin is closed. Never logged, never in an error. */
  readonly input?: string;
  readonly timeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Start in a new session so that a signal to the caller's process group does not reach it. */
  readonly detached?: boolean;
}

const MAX_OUTPUT = 8 * 1024 * 1024;

const quote = (a: string): string => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
export const commandLine = (argv: readonly string[]): string => argv.map(quote).join(' ');

const failure = (argv: readonly string[], exitCode: number | null, stderr: string, why?: string): CommandError => {
  const command = commandLine(argv);
  const said = stderr.trim().split('\n').slice(-5).join(' | ');
  return { command, exitCode, stderr, message: `${command}: ${why ?? (said || `exit code ${exitCode}`)}` };
};

/** Runs argv[0] with the other arguments; resolves with stdout when it exits with status 0. */
export const run =
  (argv: readonly string[], opts: RunOptions = {}): TE.TaskEither<CommandError, string> =>
  () =>
    new Promise((resolve) => {
      const [bin, ...args] = argv;
      if (!bin) return resolve(E.left(failure(argv, null, '', 'empty command')));
      const child = spawn(bin, args, {
        stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
        env: opts.env ?? process.env,
        detached: opts.detached ?? false,
      });
      let stdout = '';
      let stderr = '';
      let settled = false;
      const done = (r: E.Either<CommandError, string>) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(r);
      };
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        done(E.left(failure(argv, null, stderr, `did not finish within ${opts.timeoutMs ?? 30000} ms`)));
      }, opts.timeoutMs ?? 30000);
      child.stdout!.setEncoding('utf8').on('data', (d: string) => {
        if (stdout.length < MAX_OUTPUT) stdout += d;
      });
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        if (stderr.length < MAX_OUTPUT) stderr += d;
      });
      child.on('error', (e: NodeJS.ErrnoException) =>
        done(E.left(failure(argv, null, '', e.code === 'ENOENT' ? `${bin} is not installed (not found on PATH)` : e.message))),
      );
      child.on('close', (code, signal) =>
        done(code === 0 ? E.right(stdout) : E.left(failure(argv, code, stderr, signal ? `killed by ${signal}` : undefined))),
      );
      if (opts.input !== undefined) {
        child.stdin!.on('error', () => undefined);
        child.stdin!.end(opts.input);
      }
      if (opts.detached) child.unref();
    });

/** True when the command can be started and exits 0 (used to probe for tools and kernel features). */
export const succeeds = async (argv: readonly string[], opts: RunOptions = {}): Promise<boolean> => E.isRight(await run(argv, opts)());
