// Where the process manager has got to in the log, kept in a NATS KV bucket so that a
// restarted control plane resumes in-flight workflows from there.
import type { KV, NatsConnection } from 'nats';
import { subjectsFor } from '../../src/contracts/subjects.ts';
import type { Checkpoints } from '../../src/ports/checkpoints.ts';
import { CHECKPOINT_KV } from './streams.ts';

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

