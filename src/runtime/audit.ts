// What the control plane runs for audit and projections: resume the read model from its
// snapshot, seal the log, save snapshots, serve replays and forced rebuilds. Kept out of
// controlPlane.ts so that file only wires it in.
import type { NatsConnection } from 'nats';
import { errorText, type Logger } from '../ports/logger.ts';
import { jetStreamSealStore } from '../../infra/nats/seals.ts';
import { natsSnapshotStore } from '../../infra/nats/snapshots.ts';
import type { Subjects } from '../contracts/subjects.ts';
import type { EventStore } from '../ports/eventStore.ts';
import type { MeshView } from '../read/meshView.ts';
import { loadMeshSnapshot, rebuildBeside, startSnapshotter, type RebuildResult, type RebuildStart, type Snapshotter } from '../read/snapshots.ts';
import type { SnapshotStore } from '../ports/snapshotStore.ts';
import { createReplayer, type Replayer } from '../read/replay.ts';
import { startSealer, type Sealer, type SealerOptions } from '../audit/sealer.ts';
import type { SealStore } from '../ports/sealStore.ts';

export interface AuditOptions {
  /** false: no snapshots (fold the whole log at every start, as before). */
  readonly snapshots?: SnapshotStore | false;
  readonly snapshotEveryPositions?: number;
  readonly snapshotIntervalMs?: number;
  /** Give up a snapshot read that receives nothing for this long and fold the log instead (default SNAPSHOT_STALL_MS). */
  readonly snapshotStallMs?: number;
  /** false: this replica does not seal (another one does). */
  readonly seals?: SealStore | false;
  readonly sealer?: Pick<SealerOptions, 'maxEntries' | 'maxDelayMs'>;
}

/** Progress messages on nsm.<domain>.progress.<id>: several `progress`, then one `done` or `failed`. */
export type RebuildMessage =
  | ({ readonly kind: 'progress' } & { commits: number; events: number; position: number; target: number; elapsedMs: number })
  | ({ readonly kind: 'done' } & RebuildResult)
  | { readonly kind: 'failed'; readonly error: string };

export interface AuditRuntime {
  /** How the read model started: resumed from a snapshot or folded from the log, and why. */
  readonly resumed: { readonly from: 'snapshot' | 'log'; readonly position: number; readonly reason?: string };
  /** Call once the view has caught up with the log. */
  start(): Promise<void>;
  readonly replay: Replayer;
  rebuild(id: string): RebuildStart;
  readonly sealer: () => Sealer | undefined;
  stop(): Promise<void>;
}

const enc = new TextEncoder();

export const prepareAudit = async (o: {
  nc: NatsConnection;
  subjects: Subjects;
  store: EventStore;
  view: MeshView;
  log: Logger;
  options: AuditOptions;
}): Promise<AuditRuntime> => {
  const { nc, subjects, store, view, log } = o;
  const snapshots = o.options.snapshots === false ? undefined : (o.options.snapshots ?? (await natsSnapshotStore(nc, subjects)));
  let resumed: AuditRuntime['resumed'] = { from: 'log', position: 0, reason: 'snapshots off' };
  if (snapshots) {
    const verdict = await loadMeshSnapshot(snapshots, store, o.options.snapshotStallMs !== undefined ? { stallMs: o.options.snapshotStallMs } : {});
    if (verdict.kind === 'resume' && view.replace(verdict.model)) {
      resumed = { from: 'snapshot', position: verdict.model.position };
      log.info('read model resumed from its snapshot', { position: verdict.model.position, savedAt: verdict.savedAt });
    } else {
      resumed = { from: 'log', position: 0, reason: verdict.kind === 'fold' ? verdict.reason : 'snapshot behind the view' };
      // A snapshot that is there but cannot be used is worth a warning: the start is slower than it should be.
      log[verdict.kind === 'fold' && verdict.trouble ? 'warn' : 'info']('read model folded from the log', { reason: resumed.reason });
    }
  }
  let sealer: Sealer | undefined;
  // Started now, so that a long fold at start already leaves checkpoints behind.
  const snapshotter: Snapshotter | undefined = snapshots
    ? startSnapshotter(
        {
          view,
          snapshots,
          log,
          ...(o.options.snapshotEveryPositions !== undefined ? { everyPositions: o.options.snapshotEveryPositions } : {}),
          ...(o.options.snapshotIntervalMs !== undefined ? { intervalMs: o.options.snapshotIntervalMs } : {}),
        },
        resumed.from === 'snapshot' ? resumed.position : 0,
      )
    : undefined;
  let running: { id: string; done: Promise<void> } | undefined;
  const replay = createReplayer(store, () => view.current);

  const publish = (id: string, m: RebuildMessage) => {
    try {
      nc.publish(subjects.progress(id), enc.encode(JSON.stringify(m)));
    } catch {
      // connection closing: the rebuild's result is also logged
    }
  };

  return {
    resumed,
    replay,
    sealer: () => sealer,
    start: async () => {
      // A model folded from the log is worth keeping right away.
      if (snapshotter && resumed.from === 'log') void snapshotter.save();
      if (o.options.seals !== false) {
        const seals = o.options.seals ?? (await jetStreamSealStore(nc, subjects));
        sealer = await startSealer({ store, seals, log, ...o.options.sealer });
      }
    },
    rebuild: (id) => {
      if (running) return { id: running.id, started: false, target: view.current.position };
      const target = view.current.position;
      let last = 0;
      log.info('projection rebuild started', { id, target });
      const done = rebuildBeside({
        store,
        view,
        onProgress: (p) => {
          if (Date.now() - last < 200) return;
          last = Date.now();
          publish(id, { kind: 'progress', ...p });
        },
      }).then(
        async (r) => {
          log.info('projection rebuilt and swapped in', { id, ...r });
          await snapshotter?.save(true);
          publish(id, { kind: 'done', ...r });
        },
        (e) => {
          log.error('projection rebuild failed', { id, error: errorText(e) });
          publish(id, { kind: 'failed', error: errorText(e) });
        },
      ).finally(() => {
        running = undefined;
      });
      running = { id, done };
      return { id, started: true, target };
    },
    stop: async () => {
      await running?.done;
      await sealer?.stop().catch((e) => log.warn('sealer stop failed', { error: errorText(e) }));
      await snapshotter?.stop();
    },
  };
};
