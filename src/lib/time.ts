// Waiting: a pause, and how long to wait before trying again.

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * The delay before attempt `attempt + 1` (attempt counts from 1): doubling from `baseMs` up to
 * `capMs`, with jitter (between half and all of it) so that many retrying at once spread out.
 */
export const backoff = (attempt: number, o: { baseMs?: number; capMs?: number; random?: () => number } = {}): number => {
  const full = Math.min(o.capMs ?? 5000, (o.baseMs ?? 100) * 2 ** Math.max(0, attempt - 1));
  return Math.round(full / 2 + (full / 2) * (o.random ?? Math.random)());
};
