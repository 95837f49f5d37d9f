// What the agent has done to each side, by side key: the highest generation acted on, and
// whether it was programmed (with an error if that failed) or removed. Commands for an older
// generation, or a "present" arriving after its "absent", are ignored against it.
//
// A removed side's entry is a tombstone. It matters only while a late command for that side can
// still arrive: a "present" whose report failed is delivered again a second later (nak), one
// that was never acknowledged after the ack wait (30 s); after a restart the agent reconciles
// and remembers nothing anyway. So a tombstone is kept for REMOVED_KEPT_MS and then dropped:
// without that, every side the node ever had would stay in memory (a node that churns
// connections for a day would hold hundreds of thousands of them).

export type AppliedSide = { readonly generation: number; readonly desired: 'present' | 'absent'; readonly error?: string };

/** Twice the node-command consumer's ack wait. */
export const REMOVED_KEPT_MS = 60_000;

export class AppliedSides {
  private readonly sides = new Map<string, AppliedSide>();
  /** Removed sides and when, oldest first (a Map keeps insertion order). */
  private readonly removed = new Map<string, number>();
  private present = 0;

  constructor(
    private readonly keepRemovedMs = REMOVED_KEPT_MS,
    private readonly now: () => number = Date.now,
  ) {}

  get(key: string): AppliedSide | undefined {
    return this.sides.get(key);
  }

  set(key: string, a: AppliedSide): void {
    const before = this.sides.get(key);
    this.present += Number(isUp(a)) - Number(before !== undefined && isUp(before));
    this.sides.set(key, a);
    this.removed.delete(key);
    const now = this.now();
    if (a.desired === 'absent') this.removed.set(key, now);
    for (const [oldest, at] of this.removed) {
      if (now - at < this.keepRemovedMs) break;
      this.removed.delete(oldest);
      this.sides.delete(oldest);
    }
  }

  /** Sides programmed without an error (what the heartbeat reports). */
  get programmed(): number {
    return this.present;
  }

  /** Entries held, tombstones included. */
  get size(): number {
    return this.sides.size;
  }
}

const isUp = (a: AppliedSide) => a.desired === 'present' && a.error === undefined;
