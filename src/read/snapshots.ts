// Checkpoints of the mesh read model: a snapshot (model, log position, projection version) is
// saved periodically and on stop, so a restarted control plane resumes from it instead of
// folding the whole log; a model can be rebuilt from the log beside the live one and swapped in
// while queries keep being answered. The store itself is an adapter (infra/nats/snapshots.ts).
import * as E from 'fp-ts/lib/Either.js';
import { errorText, type Logger } from '../ports/logger.ts';
import { MESH_PROJECTION_VERSION, type MeshModel } from '../../projections/mesh.ts';
import { foldLog } from './replay.ts';
import type { EventStore } from '../ports/eventStore.ts';
import type { MeshView } from './meshView.ts';
import type { Snapshot } from '../contracts/snapshot.ts';
import type { SnapshotStore } from '../ports/snapshotStore.ts';

export const MESH_SNAPSHOT = 'mesh';

export type SnapshotVerdict =
  | { readonly kind: 'resume'; readonly model: MeshModel; readonly savedAt: string }
  | { readonly kind: 'fold'; readonly reason: string; /** Something is wrong (not merely no snapshot, or one of another version). */ readonly trouble?: boolean };

/** How long a snapshot read may go without receiving a byte before it is given up (the model is then folded from the log). */
export const SNAPSHOT_STALL_MS = 15_000;

/**
 * Reads a snapshot, giving up when no byte has arrived for `stallMs` (a read that makes
 * progress may take as long as it needs: a large model is many megabytes). Never waits forever,
 * even on a store that ignores the abort: the answer is then a Left saying why.
 */
export const readSnapshot = (snapshots: SnapshotStore, name: string, stallMs: number): Promise<E.Either<string, Snapshot | undefined>> =>
  new Promise((resolve) => {
    const abort = new AbortController();
    let bytes = 0;
    let timer: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (r: E.Either<string, Snapshot | undefined>) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(r);
    };
    const arm = () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        finish(E.left(`snapshot read stalled: nothing arrived for ${stallMs / 1000} s${bytes > 0 ? ` after ${bytes} bytes` : ''}`));
        abort.abort();
      }, stallMs);
    };
    arm();
    snapshots
      .load(name, {
        signal: abort.signal,
        onProgress: (n) => {
          bytes = n;
          if (!done) arm();
        },
      })
      .then(
        (s) => finish(E.right(s)),
        (e) => finish(E.left(`snapshot unreadable (${errorText(e)})`)),
      );
  });

/** The snapshot to resume from, or why the model must be folded from the log. */
export const loadMeshSnapshot = async (snapshots: SnapshotStore, store: EventStore, o: { stallMs?: number } = {}): Promise<SnapshotVerdict> => {
  const read = await readSnapshot(snapshots, MESH_SNAPSHOT, o.stallMs ?? SNAPSHOT_STALL_MS);
  if (E.isLeft(read)) return { kind: 'fold', reason: read.left, trouble: true };
  const s = read.right;
  if (!s) return { kind: 'fold', reason: 'no snapshot' };
  if (s.version !== MESH_PROJECTION_VERSION) return { kind: 'fold', reason: `snapshot of projection version ${s.version}, code is at ${MESH_PROJECTION_VERSION}` };
  const last = await store.lastPosition()();
  if (E.isLeft(last)) return { kind: 'fold', reason: `event store: ${last.left.message}`, trouble: true };
  // A snapshot ahead of the log belongs to another log (a store wiped and recreated): unusable.
  if (BigInt(s.position) > last.right) return { kind: 'fold', reason: `snapshot at position ${s.position} is past the end of the log (${last.right})`, trouble: true };
  const model = s.model as MeshModel;
  if (model?.position !== s.position) return { kind: 'fold', reason: 'snapshot model and header disagree on the position', trouble: true };
  return { kind: 'resume', model, savedAt: s.savedAt };
};

export interface SnapshotterOptions {
  readonly view: MeshView;
  readonly snapshots: SnapshotStore;
  readonly log: Logger;
  /** Save when the model moved this many positions since the last save (default 100,000)... */
  readonly everyPositions?: number;
  /** ...and at this interval when it moved at all (default 60 s). */
  readonly intervalMs?: number;
  readonly now?: () => Date;
}

export interface Snapshotter {
  /** Saves the current model now; skipped when nothing changed since the last save, unless forced (a rebuilt model). */
  save(force?: boolean): Promise<void>;
  stop(): Promise<void>;
}

export const startSnapshotter = (o: SnapshotterOptions, savedPosition = o.view.current.position): Snapshotter => {
  const now = o.now ?? (() => new Date());
  const every = o.everyPositions ?? 100_000;
  let saved = savedPosition;
  let saving: Promise<void> | undefined;
  const save = async (force = false): Promise<void> => {
    while (saving) await saving;
    // The live model changes in place: it is serialized in this same turn (snapshots.save stringifies
    // before its first await), so position and content agree.
    const model = o.view.current;
    if (model.position <= saved && !(force && model.position > 0)) return;
    saving = (async () => {
      const started = Date.now();
      try {
        await o.snapshots.save(MESH_SNAPSHOT, { version: MESH_PROJECTION_VERSION, position: model.position, savedAt: now().toISOString(), model });
        saved = model.position;
        o.log.debug('mesh snapshot saved', { position: model.position, ms: Date.now() - started });
      } catch (e) {
        o.log.warn('could not save the mesh snapshot', { error: errorText(e), position: model.position });
      }
    })();
    try {
      await saving;
    } finally {
      saving = undefined;
    }
  };
  const timer = setInterval(() => void save(), o.intervalMs ?? 60_000);
  timer.unref();
  const off = o.view.onChange((m) => {
    if (m.position - saved >= every && !saving) void save();
  });
  return {
    save,
    stop: async () => {
      clearInterval(timer);
      off();
      await save();
    },
  };
};

export interface RebuildProgress {
  readonly commits: number;
  readonly events: number;
  readonly position: number;
  /** Position the rebuild is catching up to (the live model's, which moves on). */
  readonly target: number;
  readonly elapsedMs: number;
}

export interface RebuildResult {
  readonly commits: number;
  readonly events: number;
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** Position at which the rebuilt model replaced the live one. */
  readonly swappedAt: number;
}

/**
 * Folds the whole log into a new model beside the live view, catches it up with the commits the
 * view took meanwhile, and swaps it in at the same position: queries read the old model until
 * the swap and never wait for the rebuild.
 */
export const rebuildBeside = async (
  o: { store: EventStore; view: MeshView; onProgress?: (p: RebuildProgress) => void; batch?: number },
): Promise<RebuildResult> => {
  const started = Date.now();
  let commits = 0;
  let events = 0;
  let model: MeshModel | undefined;
  for (;;) {
    const target = o.view.current.position;
    const from = BigInt(model?.position ?? 0);
    if (model && model.position >= target) {
      // Both at the same position, checked and swapped without a pause in between.
      if (o.view.replace(model)) break;
      continue;
    }
    const done = { commits, events };
    const r = await foldLog(o.store.readAll(from, BigInt(target)), {
      ...(model ? { from: model } : {}),
      ...(o.batch ? { batch: o.batch } : {}),
      onBatch: (p) => o.onProgress?.({ commits: done.commits + p.commits, events: done.events + p.events, position: p.position, target: o.view.current.position, elapsedMs: Date.now() - started }),
    });
    model = r.model;
    commits += r.commits;
    events += r.events;
    // Nothing to fold but the position did not reach the target: the log below it is gone.
    if (r.commits === 0 && model.position < target) throw new Error(`rebuild stopped at position ${model.position}: the log ends before the live model's position ${target}`);
  }
  const seconds = (Date.now() - started) / 1000;
  return { commits, events, seconds, eventsPerSecond: seconds > 0 ? events / seconds : events, swappedAt: model.position };
};

/** The answer to a request for a rebuild: which rebuild runs (a new one, or the one already running), up to where. */
export type RebuildStart = { readonly id: string; readonly started: boolean; readonly target: number };
