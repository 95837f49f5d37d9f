// Projection snapshots in a JetStream object store (objects can be larger than a KV value, and
// the store chunks them). One object per projection name; putting it again replaces it.
import { StorageType, type NatsConnection } from 'nats';
import type { Snapshot, SnapshotStore } from '../../src/projectionSnapshots.ts';
import { decodeSnapshot } from '../../src/projectionSnapshots.ts';
import { subjectsFor, type Subjects } from './subjects.ts';

const enc = new TextEncoder();

export const natsSnapshotStore = async (nc: NatsConnection, domain: string | Subjects, opts: { replicas?: number } = {}): Promise<SnapshotStore> => {
  const subjects = typeof domain === 'string' ? subjectsFor(domain) : domain;
  const os = await nc.jetstream().views.os(subjects.snapshotBucket, { storage: StorageType.File, replicas: opts.replicas ?? 1 });
  return {
    load: async (name) => {
      const blob = await os.getBlob(name);
      return blob ? decodeSnapshot(blob, `snapshot ${name}`) : undefined;
    },
    save: async (name, s: Snapshot) => {
      await os.putBlob({ name }, enc.encode(JSON.stringify(s)));
    },
  };
};
