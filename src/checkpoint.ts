// Where the process manager has got to in the log, kept in a NATS KV bucket so that a
// restarted control plane resumes in-flight workflows from there.
import type { KV, NatsConnection } from 'nats';
import { CHECKPOINT_KV } from '../infra/nats/streams.ts';
import { subjectsFor } from '../infra/nats/subjects.ts';

export interface Checkpoints {
  read(name: string): Promise<number>;
  write(name: string, position: number): Promise<void>;
}

export const natsCheckpoints = async (nc: NatsConnection, domain: string, onInvalid?: (name: string, value: string) => void): Promise<Checkpoints> => {
  const kv: KV = await nc.jetstream().views.kv(subjectsFor(domain).checkpointBucket, CHECKPOINT_KV);
  return {
    read: async (name) => {
      const e = await kv.get(name);
      if (!e || e.operation !== 'PUT') return 0;
      const n = Number(e.string());
      if (Number.isSafeInteger(n) && n >= 0) return n;
      // Not a position (something other than the control plane wrote it): start over; the
      // workflows it drives are idempotent.
      onInvalid?.(name, e.string().slice(0, 200));
      return 0;
    },
    write: async (name, position) => {
      await kv.put(name, String(position));
    },
  };
};

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
