// The snapshot store port. Adapter: infra/nats/snapshots.ts (a JetStream object store).
import type { Snapshot } from '../contracts/snapshot.ts';

export interface SnapshotLoadOptions {
  /** Stop reading (the read is abandoned; the promise rejects). */
  readonly signal?: AbortSignal;
  /** Called as bytes arrive, with the total so far: a read that makes progress is not stalled. */
  readonly onProgress?: (bytes: number) => void;
}

export interface SnapshotStore {
  load(name: string, o?: SnapshotLoadOptions): Promise<Snapshot | undefined>;
  save(name: string, snapshot: Snapshot): Promise<void>;
}

