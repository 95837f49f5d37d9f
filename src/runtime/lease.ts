// Leadership among control-plane replicas: one key in a NATS KV bucket whose entries expire
// after the lease's TTL. The holder renews it with a compare-and-set on the key's revision;
// the others try to create it. A holder that cannot renew (the key moved on) steps down, so at
// most one replica believes it leads for longer than one renewal interval.
import type { KV, NatsConnection } from 'nats';
import { errorText, type Logger } from '../ports/logger.ts';
import { leaseKv } from '../../infra/nats/streams.ts';
import { subjectsFor } from '../contracts/subjects.ts';

export interface Lease {
  /** When this replica became leader (ms since epoch), or undefined when it is not leading. */
  leaderSince(): number | undefined;
  /** Which replica holds the lease now, as the bucket says (this one or another). */
  holder(): Promise<{ replica: string; renewedAt?: string } | undefined>;
  stop(): Promise<void>;
}

const KEY = 'timers';
const enc = new TextEncoder();
const dec = new TextDecoder();

const ownedBy = (value: Uint8Array, replica: string): boolean => {
  try {
    return (JSON.parse(dec.decode(value)) as { replica?: unknown }).replica === replica;
  } catch {
    return false;
  }
};

/** Who holds the lease now (`nsm status`): the replica and when it last renewed, or undefined. */
export const leaseHolder = async (kv: KV): Promise<{ replica: string; renewedAt?: string } | undefined> => {
  const e = await kv.get(KEY);
  if (!e || e.operation !== 'PUT') return undefined;
  try {
    const v = JSON.parse(dec.decode(e.value)) as { replica?: unknown; at?: unknown };
    return typeof v.replica === 'string' ? { replica: v.replica, ...(typeof v.at === 'string' ? { renewedAt: v.at } : {}) } : undefined;
  } catch {
    return undefined;
  }
};

export const leaseBucket = (domain: string) => subjectsFor(domain).leaseBucket;

export const startLease = async (opts: {
  readonly nc: NatsConnection;
  readonly domain: string;
  readonly replicaId: string;
  readonly ttlMs: number;
  readonly log: Logger;
  readonly now?: () => number;
  readonly onChange?: (leading: boolean) => void;
}): Promise<Lease> => {
  const now = opts.now ?? Date.now;
  const kv: KV = await opts.nc.jetstream().views.kv(leaseBucket(opts.domain), leaseKv(opts.ttlMs));
  let revision: number | undefined;
  let since: number | undefined;
  let stopped = false;

  const become = (leading: boolean, why = 'lease lost') => {
    if (leading && since === undefined) {
      since = now();
      opts.log.info('became leader: running timers and death detection', { replica: opts.replicaId });
      opts.onChange?.(true);
    } else if (!leading && since !== undefined) {
      since = undefined;
      revision = undefined;
      if (why === 'stopping') opts.log.info('handed over leadership', { replica: opts.replicaId });
      else opts.log.warn('lost leadership', { replica: opts.replicaId, why });
      opts.onChange?.(false);
    }
  };

  const tick = async () => {
    const value = enc.encode(JSON.stringify({ replica: opts.replicaId, at: new Date(now()).toISOString() }));
    try {
      if (revision !== undefined) {
        revision = await kv.update(KEY, value, revision);
      } else {
        revision = await kv.create(KEY, value);
      }
      become(true);
    } catch (e) {
      if (stopped) return;
      // A write whose answer was lost (a stream leader dying in a cluster) may have been stored:
      // then the key names this replica, and it still holds the lease at the key's new revision.
      const held = await kv.get(KEY).catch(() => null);
      if (held && held.operation === 'PUT' && ownedBy(held.value, opts.replicaId)) {
        revision = held.revision;
        become(true);
        return;
      }
      // Someone else holds it (wrong last sequence), or NATS is unreachable: either way we do not lead.
      if (since !== undefined) opts.log.warn('lease renewal failed', { error: errorText(e) });
      become(false);
    }
  };

  await tick();
  let running = Promise.resolve();
  const timer = setInterval(() => {
    if (!stopped) running = running.then(tick);
  }, Math.max(100, Math.floor(opts.ttlMs / 3)));

  return {
    leaderSince: () => since,
    holder: () => leaseHolder(kv),
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
      // Hand over at once instead of making the next leader wait out the TTL.
      if (revision !== undefined) await kv.delete(KEY, { previousSeq: revision }).catch(() => undefined);
      become(false, 'stopping');
    },
  };
};
