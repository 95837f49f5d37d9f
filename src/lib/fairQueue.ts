// Runs tasks with a bound on how many run at once, one at a time per key (one aggregate stream),
// and fairly between lanes (one requester): a free slot goes to the next lane in turn, not to the
// oldest task, and no lane holds more than its share of the slots at once, so one requester's
// backlog of thousands neither delays another's one command nor fills the store's queue with its
// own appends. Within a key, tasks run in the order they were queued, whatever their lane.

interface Job {
  readonly lane: string;
  readonly key: string;
  readonly task: () => Promise<void>;
  readonly done: () => void;
}

export class FairQueue {
  /** Per lane, the runnable jobs (the first of their key), in order. */
  private readonly lanes = new Map<string, Job[]>();
  /** Lanes with runnable jobs, in turn order; `turn` is the next one to serve. */
  private order: string[] = [];
  private turn = 0;
  /** Per key, every job not finished, in order; the first is runnable or running. */
  private readonly byKey = new Map<string, Job[]>();
  private running = 0;
  private readonly runningByLane = new Map<string, number>();
  private readonly waitingByLane = new Map<string, number>();
  private waiting = 0;
  private roomWaiters: { below: number; resolve: () => void }[] = [];
  private idleWaiters: (() => void)[] = [];

  /** `perLane`: the most slots one lane may hold at once (default: all of them). */
  constructor(
    private readonly limit: number,
    private readonly perLane: number = limit,
  ) {}

  /** Tasks queued and not started yet. */
  get queued(): number {
    return this.waiting;
  }

  /** Tasks of the lane queued and not started yet. */
  queuedIn(lane: string): number {
    return this.waitingByLane.get(lane) ?? 0;
  }

  /** Something runs or waits. */
  get busy(): boolean {
    return this.running > 0 || this.waiting > 0;
  }

  /** Resolves once the task has run (its failure is the task's own business: catch inside). */
  enqueue(lane: string, key: string, task: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve) => {
      const job: Job = { lane, key, task, done: resolve };
      this.waiting++;
      this.waitingByLane.set(lane, (this.waitingByLane.get(lane) ?? 0) + 1);
      const same = this.byKey.get(key);
      if (same) same.push(job);
      else {
        this.byKey.set(key, [job]);
        this.runnable(job);
      }
      this.pump();
    });
  }

  /** Resolves when fewer than `below` tasks wait (back-pressure for whoever feeds the queue). */
  room(below: number): Promise<void> {
    if (this.waiting < below) return Promise.resolve();
    return new Promise((resolve) => this.roomWaiters.push({ below, resolve }));
  }

  /** Resolves when nothing runs and nothing waits. */
  drain(): Promise<void> {
    if (this.running === 0 && this.waiting === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private runnable(job: Job): void {
    const lane = this.lanes.get(job.lane);
    if (lane) lane.push(job);
    else {
      this.lanes.set(job.lane, [job]);
      this.order.push(job.lane);
    }
  }

  /** The next lane in turn that is under its share, and its first job. */
  private next(): Job | undefined {
    for (let looked = 0; looked < this.order.length; looked++) {
      if (this.turn >= this.order.length) this.turn = 0;
      const name = this.order[this.turn]!;
      if ((this.runningByLane.get(name) ?? 0) >= this.perLane) {
        this.turn++;
        continue;
      }
      const lane = this.lanes.get(name)!;
      const job = lane.shift()!;
      if (lane.length === 0) {
        this.lanes.delete(name);
        this.order.splice(this.turn, 1);
      } else this.turn++;
      return job;
    }
    return undefined;
  }

  private pump(): void {
    while (this.running < this.limit) {
      const job = this.next();
      if (!job) break;
      this.start(job);
    }
    this.roomWaiters = this.roomWaiters.filter((w) => (this.waiting < w.below ? (w.resolve(), false) : true));
    if (this.running === 0 && this.waiting === 0) for (const w of this.idleWaiters.splice(0)) w();
  }

  private start(job: Job): void {
    this.running++;
    this.runningByLane.set(job.lane, (this.runningByLane.get(job.lane) ?? 0) + 1);
    this.waiting--;
    const w = this.waitingByLane.get(job.lane)! - 1;
    if (w > 0) this.waitingByLane.set(job.lane, w);
    else this.waitingByLane.delete(job.lane);
    void Promise.resolve()
      .then(job.task)
      .catch(() => undefined)
      .finally(() => {
        this.running--;
        const n = this.runningByLane.get(job.lane)! - 1;
        if (n > 0) this.runningByLane.set(job.lane, n);
        else this.runningByLane.delete(job.lane);
        const same = this.byKey.get(job.key)!;
        same.shift();
        if (same.length > 0) this.runnable(same[0]!);
        else this.byKey.delete(job.key);
        job.done();
        this.pump();
      });
  }
}
