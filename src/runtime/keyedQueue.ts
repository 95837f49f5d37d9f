// Runs tasks one at a time per key (one aggregate, one connection) and bounds the total in flight.

export class KeyedQueue {
  private readonly tails = new Map<string, Promise<void>>();
  private inFlight = 0;
  private readonly slotWaiters: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Waits for a free slot, then queues the task behind earlier tasks of the same key. */
  async enqueue(key: string, task: () => Promise<void>): Promise<void> {
    // A freed slot is handed straight to the oldest waiter, so a newcomer cannot overtake it
    // and tasks of one key start in the order they were enqueued.
    if (this.inFlight >= this.limit || this.slotWaiters.length > 0) await new Promise<void>((r) => this.slotWaiters.push(r));
    else this.inFlight++;
    const prev = this.tails.get(key) ?? Promise.resolve();
    const run = prev.then(task).catch(() => undefined).finally(() => {
      if (this.tails.get(key) === run) this.tails.delete(key);
      const next = this.slotWaiters.shift();
      if (next) next();
      else this.inFlight--;
    });
    this.tails.set(key, run);
  }

  async drain(): Promise<void> {
    while (this.tails.size > 0) await Promise.all([...this.tails.values()]);
  }
}
