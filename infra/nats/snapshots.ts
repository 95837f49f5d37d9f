// Projection snapshots in a JetStream object store (objects can be larger than a KV value, and
// the store chunks them). One object per projection name; putting it again replaces it.
//
// Reading an object goes through an ordered push consumer with flow control: past about 2 MB
// the server waits for the reader's answer on $JS.FC.<stream>.> before it sends more, so the
// reader needs that right (src/security/permissions.ts). A read reports its progress and can be
// abandoned (src/read/snapshots.ts readSnapshot gives up on one that stalls).
import type { NatsConnection } from 'nats';
import type { SnapshotLoadOptions, SnapshotStore } from '../../src/ports/snapshotStore.ts';
import type { Snapshot } from '../../src/contracts/snapshot.ts';
import { decodeSnapshot } from '../../src/contracts/snapshot.ts';
import { ensureObjectStore, SNAPSHOT_OS } from './streams.ts';
import { subjectsFor, type Subjects } from '../../src/contracts/subjects.ts';

const enc = new TextEncoder();

export const natsSnapshotStore = async (nc: NatsConnection, domain: string | Subjects, opts: { replicas?: number } = {}): Promise<SnapshotStore> => {
  const subjects = typeof domain === 'string' ? subjectsFor(domain) : domain;
  // Made here when missing (an insecure mesh; an authenticated one's setup step made it already).
  await ensureObjectStore(await nc.jetstreamManager(), subjects.snapshotBucket, opts);
  const os = await nc.jetstream().views.os(subjects.snapshotBucket, SNAPSHOT_OS);
  return {
    load: async (name, o: SnapshotLoadOptions = {}) => {
      o.signal?.throwIfAborted();
      const r = await os.get(name);
      if (!r) return undefined;
      // Settled also when the read is abandoned: never an unhandled rejection.
      r.error.catch(() => undefined);
      const reader = r.data.getReader();
      const onAbort = () => void reader.cancel(o.signal?.reason).catch(() => undefined);
      o.signal?.addEventListener('abort', onAbort, { once: true });
      try {
        const chunks: Uint8Array[] = [];
        let size = 0;
        for (;;) {
          if (o.signal?.aborted) throw new Error(`reading snapshot ${name} was abandoned`);
          const { done, value } = await reader.read();
          if (done) break;
          chunks.push(value);
          size += value.byteLength;
          o.onProgress?.(size);
        }
        if (o.signal?.aborted) throw new Error(`reading snapshot ${name} was abandoned`);
        // The digest check: the store rejects `error` when the chunks do not match the object's digest.
        const problem = await r.error;
        if (problem) throw problem;
        const all = new Uint8Array(size);
        let at = 0;
        for (const c of chunks) {
          all.set(c, at);
          at += c.byteLength;
        }
        return decodeSnapshot(all, `snapshot ${name}`);
      } finally {
        o.signal?.removeEventListener('abort', onAbort);
        try {
          reader.releaseLock();
        } catch {
          // a read still pending on a cancelled stream
        }
      }
    },
    save: async (name, s: Snapshot) => {
      await os.putBlob({ name }, enc.encode(JSON.stringify(s)));
    },
  };
};
