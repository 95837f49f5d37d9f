// Aggregate states by stream, kept current from the store subscription and from our own
// appends; read from the store when missing, stale, or after a version conflict.
import { FairQueue } from '../lib/fairQueue.ts';
import * as E from 'fp-ts/lib/Either.js';
import { AGGREGATES, type AnyAggregate } from '../../aggregates/index.ts';
import { commitHash, GENESIS_HASH } from '../audit/hash.ts';
import { parseStreamName, type StoredCommit } from '../contracts/envelope.ts';
import { upcastCommit } from '../contracts/upcast.ts';
import type { EventStore, ExpectedVersion, StoreError } from '../ports/eventStore.ts';

export interface Loaded {
  readonly state: unknown;
  readonly revision: ExpectedVersion;
  /** Number of events in the stream, for the next envelope's version. */
  readonly count: number;
  /** Hash of the stream's last commit (GENESIS_HASH when empty): the next commit's prevHash. */
  readonly hash: string;
  /** True when read from the store just now rather than from the cache. */
  readonly fresh: boolean;
}

export const aggregateOf = (stream: string): AnyAggregate | undefined => AGGREGATES[parseStreamName(stream).aggregate];

const fold = (agg: AnyAggregate, state: unknown, commit: StoredCommit): unknown =>
  upcastCommit(commit).events.reduce((s, e) => agg.evolve(s, e.data), state);

/** A commit written before chaining has no hash of its own: chain onto its content hash. */
const hashOf = (commit: StoredCommit): string => commit.hash ?? commitHash(commit);

/** Aggregate states a repository keeps by default (the least recently used beyond are dropped). */
export const REPOSITORY_STREAMS = 10_000;

export class Repository {
  /** In least-recently-used order (a Map keeps insertion order; use re-inserts). */
  private readonly cache = new Map<string, Omit<Loaded, 'fresh'>>();
  private put(stream: string, entry: Omit<Loaded, 'fresh'>): void {
    this.cache.delete(stream);
    this.cache.set(stream, entry);
    // A cache, not the truth: a stream dropped here is read from the store when next needed.
    while (this.cache.size > this.maxStreams) this.cache.delete(this.cache.keys().next().value!);
  }
  private get(stream: string): Omit<Loaded, 'fresh'> | undefined {
    const e = this.cache.get(stream);
    if (e) {
      this.cache.delete(stream);
      this.cache.set(stream, e);
    }
    return e;
  }
  private readonly locks = new Map<string, FairQueue>();
  private calls = 0;

  /**
   * Runs `fn` once every earlier `exclusive` call on the same stream has finished, or, when calls
   * of several lanes wait, in turn between the lanes (a requester's dozens of allocations from
   * one endpoint's pool must not all go before another requester's one). Decisions on one stream
   * made in this process then never race each other to a version conflict; only another replica
   * can cause one.
   */
  exclusive<T>(stream: string, fn: () => Promise<T>, lane = ''): Promise<T> {
    let q = this.locks.get(stream);
    if (!q) this.locks.set(stream, (q = new FairQueue(1)));
    const queue = q;
    return new Promise<T>((resolve, reject) => {
      // One at a time already (a queue of one slot); each call its own key, so lanes can take turns.
      void queue.enqueue(lane, String(this.calls++), () => fn().then(resolve, reject)).then(() => {
        if (!queue.busy && this.locks.get(stream) === queue) this.locks.delete(stream);
      });
    });
  }

  constructor(
    private readonly store: EventStore,
    /**
     * Streams the caller is confident do not exist yet (a connection id its caught-up read model
     * has never seen). They start from the initial state without a read; the append's expected
     * version ('none') still catches one created meanwhile by another replica, and a rejection
     * or no-op decided on such a state is confirmed against the store, as for any cached state.
     */
    private readonly presumeNew: (stream: string) => boolean = () => false,
    /** Aggregate states kept in memory; the least recently used beyond this are dropped. */
    private readonly maxStreams = REPOSITORY_STREAMS,
  ) {}

  /** Applies a stored commit if it is the next one for its stream; a gap drops the entry so the next load reads the store. */
  apply(commit: StoredCommit): void {
    const agg = aggregateOf(commit.stream);
    if (!agg) return;
    const cur = this.get(commit.stream) ?? { state: agg.initialState, revision: 'none' as ExpectedVersion, count: 0, hash: GENESIS_HASH };
    if (cur.revision !== 'none' && commit.revision <= (cur.revision as number)) return;
    const first = commit.events[0];
    if (first && first.version !== cur.count + 1) {
      this.cache.delete(commit.stream);
      return;
    }
    this.put(commit.stream, { state: fold(agg, cur.state, commit), revision: commit.revision, count: cur.count + commit.events.length, hash: hashOf(commit) });
  }

  /** Caches the state after a commit this process appended itself (already folded by the caller). */
  remember(commit: StoredCommit, state: unknown, count: number): void {
    const cur = this.cache.get(commit.stream);
    if (cur && cur.revision !== 'none' && commit.revision <= (cur.revision as number)) return;
    this.put(commit.stream, { state, revision: commit.revision, count, hash: hashOf(commit) });
  }

  async load(stream: string, opts: { fresh?: boolean; minRevision?: number } = {}): Promise<E.Either<StoreError, Loaded>> {
    const agg = aggregateOf(stream);
    if (!agg) return E.left({ kind: 'corrupt', message: `no aggregate for stream ${stream}` });
    const cached = this.get(stream);
    const recentEnough = opts.minRevision === undefined || (cached !== undefined && cached.revision !== 'none' && (cached.revision as number) >= opts.minRevision);
    if (cached && !opts.fresh && recentEnough) return E.right({ ...cached, fresh: false });
    if (!cached && !opts.fresh && opts.minRevision === undefined && this.presumeNew(stream)) {
      return E.right({ state: agg.initialState, revision: 'none', count: 0, hash: GENESIS_HASH, fresh: false });
    }
    const read = await this.store.readStream(stream)();
    if (E.isLeft(read)) return read;
    let state: unknown = agg.initialState;
    let count = 0;
    for (const c of read.right.commits) {
      state = fold(agg, state, c);
      count += c.events.length;
    }
    // Only the last commit's hash chains the next one (a commit stored before the chain has none: it is computed).
    const last = read.right.commits.at(-1);
    const hash = last ? hashOf(last) : GENESIS_HASH;
    const loaded = { state, revision: read.right.revision, count, hash };
    this.put(stream, loaded);
    return E.right({ ...loaded, fresh: true });
  }

  get size(): number {
    return this.cache.size;
  }
}
