// Which positions of the log are done when steps finish in any order: the checkpoint the
// process manager may save is the watermark, never past a step still running.

/** Lowest position not yet handled, given positions delivered in order and finished in any order. */
export class Watermark {
  private readonly inFlight = new Set<number>();
  private lastDelivered: number;

  constructor(start: number) {
    this.lastDelivered = start;
  }

  begin(position: number): void {
    this.inFlight.add(position);
    this.lastDelivered = Math.max(this.lastDelivered, position);
  }

  end(position: number): void {
    this.inFlight.delete(position);
  }

  skip(position: number): void {
    this.lastDelivered = Math.max(this.lastDelivered, position);
  }

  /** Everything at or below this position is done. */
  get done(): number {
    let min = Infinity;
    for (const p of this.inFlight) if (p < min) min = p;
    return min === Infinity ? this.lastDelivered : min - 1;
  }
}
