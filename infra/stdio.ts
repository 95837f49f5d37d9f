// Leaving a process without losing its output. process.stdout and process.stderr are
// asynchronous when they are pipes (Node on Linux: a write that does not fit in the pipe is
// queued in the process), and process.exit() drops that queue: `nsm ls --json | consumer` was
// cut at the pipe's 64 KiB while `nsm ls --json > file` was whole. Every exit of the CLI and
// of the mesh's processes goes through exitWhenFlushed.

/** Resolves once everything written to the stream so far has been handed to the OS (or the stream failed). */
export const flushed = (s: NodeJS.WritableStream & { writableLength?: number; destroyed?: boolean; writableEnded?: boolean }): Promise<void> =>
  new Promise((resolve) => {
    if (s.destroyed || s.writableEnded) return resolve();
    // Writes complete in order: the callback of this empty write runs after every earlier one.
    try {
      s.write('', () => resolve());
    } catch {
      resolve();
    }
  });

/** Waits for stdout and stderr to drain, then exits with the code. */
export const exitWhenFlushed = async (code: number): Promise<never> => {
  process.exitCode = code;
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  return process.exit(code);
};

/**
 * A reader that goes away (`nsm ls --json | head -1`) makes writes fail with EPIPE, which Node
 * raises as an 'error' event and, unhandled, a crash with a stack trace. A closed stdout ends
 * the process as SIGPIPE would end a C program (exit status 141, nothing printed; children are
 * stopped by their exit hooks); a closed stderr leaves nobody to tell, so its errors are dropped.
 */
export const handleClosedPipes = (): void => {
  process.stdout.on('error', (e: NodeJS.ErrnoException) => {
    if (e.code === 'EPIPE' || e.code === 'ERR_STREAM_DESTROYED') process.exit(141);
    throw e;
  });
  process.stderr.on('error', () => undefined);
};
