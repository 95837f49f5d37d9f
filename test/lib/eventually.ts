// Polling for a condition with a deadline, for tests that wait on asynchronous workflows.

/** Polls `probe` until it returns a value other than undefined/false; throws with `what` and the last state on timeout. */
export const eventually = async <T>(
  what: string,
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  opts: { timeoutMs?: number; intervalMs?: number; describe?: () => unknown } = {},
): Promise<T> => {
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) {
      const state = opts.describe ? ` (last state: ${JSON.stringify(await opts.describe())})` : '';
      throw new Error(`timed out after ${opts.timeoutMs ?? 20_000} ms waiting for ${what}${state}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
};

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
