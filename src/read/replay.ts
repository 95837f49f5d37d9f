// Time travel: the whole mesh read model as of a log position or a moment, folded from the log
// alone with the same pure projections the control plane uses (no snapshot needed).
import * as E from 'fp-ts/lib/Either.js';
import { emptyMesh, meshBuilder, type MeshModel } from '../../projections/mesh.ts';
import type { StoredCommit } from '../contracts/envelope.ts';
import type { EventStore } from '../ports/eventStore.ts';

export interface FoldProgress {
  /** Commits and events folded so far. */
  readonly commits: number;
  readonly events: number;
  /** Position of the last commit folded. */
  readonly position: number;
}

export interface FoldOptions {
  /** Start from this model instead of the empty one (a snapshot, a model being caught up). */
  readonly from?: MeshModel;
  /**
   * Commits folded between two looks at the event loop and two progress reports (default 250):
   * often enough for a server folding to keep answering and for the store's reader to refill
   * while the fold runs (bench/rebuild.ts measured 250 no slower than 1000).
   */
  readonly batch?: number;
  /** Called after every batch. */
  readonly onBatch?: (p: FoldProgress) => void;
  /** Stop before the first commit whose events were decided after this time (envelope time). */
  readonly beforeTime?: Date;
  /** Yield to the event loop between batches so that a server folding keeps answering (default true). */
  readonly yieldEvery?: boolean;
}

export interface FoldResult {
  readonly model: MeshModel;
  readonly commits: number;
  readonly events: number;
  /** Envelope time of the last commit folded. */
  readonly time?: string;
}

const tick = () => new Promise<void>((r) => setImmediate(r));

/** Folds commits in log order into the mesh model, in place on a private copy (projections/mesh.ts meshBuilder). */
export const foldLog = async (commits: AsyncIterable<StoredCommit>, o: FoldOptions = {}): Promise<FoldResult> => {
  const size = o.batch ?? 250;
  const builder = meshBuilder(o.from ?? emptyMesh);
  let batch: StoredCommit[] = [];
  let count = 0;
  let events = 0;
  let time: string | undefined;
  const cutoff = o.beforeTime?.getTime();
  const apply = async () => {
    builder.apply(batch);
    batch = [];
    o.onBatch?.({ commits: count, events, position: builder.position });
    if (o.yieldEvery !== false) await tick();
  };
  for await (const c of commits) {
    const t = c.events[0]?.time;
    if (cutoff !== undefined && t !== undefined && Date.parse(t) > cutoff) break;
    batch.push(c);
    count++;
    events += c.events.length;
    time = t ?? time;
    if (batch.length >= size) await apply();
  }
  if (batch.length > 0) await apply();
  return { model: builder.finish(), commits: count, events, ...(time ? { time } : {}) };
};

/** A moment in the log: a position, or a time (stored at or before it, to the millisecond). */
export type Bound = { readonly position: bigint } | { readonly time: Date };

export const parseBound = (text: string, what: string): E.Either<string, Bound> => {
  const t = text.trim();
  if (/^\d{1,19}$/.test(t)) return E.right({ position: BigInt(t) });
  // Only full ISO-8601 times: Date.parse accepts far too much ("1", "May 3").
  if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(t) && !Number.isNaN(Date.parse(t))) return E.right({ time: new Date(Date.parse(t)) });
  return E.left(`${what} ${JSON.stringify(text)}: expected a log position (e.g. 1234) or an ISO time (e.g. 2024-05-01T10:04:00Z)`);
};

export interface Resolved {
  /** Last position included. */
  readonly position: bigint;
  /** When the store cannot map times to positions: stop at envelope times after this. */
  readonly beforeTime?: Date;
}

/** The last position included by a bound, clamped to the end of the log. */
export const resolveBound = async (store: EventStore, bound: Bound): Promise<E.Either<string, Resolved>> => {
  const last = await store.lastPosition()();
  if (E.isLeft(last)) return E.left(`event store: ${last.left.message}`);
  if ('position' in bound) return E.right({ position: bound.position < last.right ? bound.position : last.right });
  if (store.positionAt) {
    const p = await store.positionAt(bound.time)();
    return E.isLeft(p) ? E.left(`event store: ${p.left.message}`) : E.right({ position: p.right });
  }
  return E.right({ position: last.right, beforeTime: bound.time });
};

export interface MeshAt extends FoldResult {
  /** The position asked for after resolution (the model's position may be lower: no commit in between). */
  readonly until: bigint;
}

export const replayAt = async (store: EventStore, bound: Bound, o: Omit<FoldOptions, 'from' | 'beforeTime'> = {}): Promise<E.Either<string, MeshAt>> => {
  const r = await resolveBound(store, bound);
  return E.isLeft(r) ? r : replayResolved(store, r.right, o);
};

/** The model at a bound already resolved (resolveBound). */
const replayResolved = async (store: EventStore, { position, beforeTime }: Resolved, o: Omit<FoldOptions, 'from' | 'beforeTime'> = {}): Promise<E.Either<string, MeshAt>> => {
  if (position === 0n) return E.right({ model: emptyMesh, commits: 0, events: 0, until: 0n });
  try {
    const folded = await foldLog(store.readAll(0n, position), { ...o, ...(beforeTime ? { beforeTime } : {}) });
    return E.right({ ...folded, until: position });
  } catch (e) {
    return E.left(`replay failed: ${(e as Error).message}`);
  }
};

/**
 * Replays for a server: the log never changes below its end, so a model at a position is cached
 * (the last few), and a bound at or past the live model's position is answered by it.
 */
export const createReplayer = (store: EventStore, live: () => MeshModel, keep = 2) => {
  const cache = new Map<bigint, MeshAt>();
  const inFlight = new Map<bigint, Promise<E.Either<string, MeshAt>>>();
  return async (bound: Bound): Promise<E.Either<string, MeshAt>> => {
    const r = await resolveBound(store, bound);
    if (E.isLeft(r)) return r;
    if (r.right.beforeTime) return replayResolved(store, r.right);
    const position = r.right.position;
    const now = live();
    // The live model changes in place (src/read/meshView.ts): answer with a copy of it as it is now.
    if (BigInt(now.position) === position) return E.right({ model: structuredClone(now), commits: 0, events: 0, until: position });
    const hit = cache.get(position);
    if (hit) return E.right(hit);
    let p = inFlight.get(position);
    if (!p) {
      p = replayResolved(store, r.right);
      inFlight.set(position, p);
      void p.finally(() => inFlight.delete(position));
    }
    const out = await p;
    if (E.isRight(out)) {
      cache.set(position, out.right);
      while (cache.size > keep) cache.delete(cache.keys().next().value!);
    }
    return out;
  };
};

export type Replayer = ReturnType<typeof createReplayer>;
