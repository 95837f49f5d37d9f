// A one-line progress bar on stderr, drawn only when stderr is a terminal: scripts and pipes
// get the final summary line and nothing else.

export interface Progress {
  update(done: number, total: number, detail: string): void;
  /** Clears the bar (the caller prints the summary). */
  done(): void;
}

const WIDTH = 30;

export const progressBar = (label: string, stream: { readonly isTTY?: boolean; write(text: string): unknown } = process.stderr): Progress => {
  if (!stream.isTTY) return { update: () => undefined, done: () => undefined };
  let last = 0;
  let drawn = false;
  return {
    update(done, total, detail) {
      const now = Date.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const frac = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(frac * WIDTH);
      stream.write(`\r\x1b[2K${label} [${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}] ${(frac * 100).toFixed(0).padStart(3)}% ${detail}`);
      drawn = true;
    },
    done() {
      if (drawn) stream.write('\r\x1b[2K');
    },
  };
};

/** "12,345": a count per second, for people. */
export const rate = (n: number, seconds: number): string => Math.round(seconds > 0 ? n / seconds : n).toLocaleString('en-US');
