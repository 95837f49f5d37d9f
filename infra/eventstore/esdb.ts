// EventStore on EventStoreDB (@eventstore/db-client v6). One ESDB stream per aggregate stream,
// one ESDB append per commit; the mapping (names, metadata, event ids, regrouping) lives in
// ./esdbMapping.ts. See docs/eventstoredb.md for what differs from the JetStream adapter.
//
// Three things the client does not do for us, done here:
// - Dedupe by commit id. ESDB's idempotent append only recognises a retry made at the same
//   expected revision; a command redelivered after its commit was stored is retried at the
//   stream's *new* revision. So append first looks for the commit id in the stream's last
//   `dedupeDepth` events, and after a success reads the written event back to tell our write
//   from an identical one ESDB acknowledged as idempotent (the appendId in the metadata differs).
// - Filtered reads of $all. v6's readAll has no filter, so readAll runs a subscription with a
//   server-side stream-name prefix filter and stops at the domain's last position.
// - Resubscribing. A dropped subscription is reopened from the last delivered commit, with a
//   bounded exponential backoff; onError is called only when it gives up.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import {
  BACKWARDS,
  END,
  ErrorType,
  EventStoreDBClient,
  FORWARDS,
  START,
  streamNameFilter,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type AppendResult as EsdbAppendResult,
  type Direction,
  type EventData,
  type Filter,
  type ReadPosition,
  type ReadRevision,
  type ResolvedEvent,
} from '@eventstore/db-client';
import { asPosition, type Commit, type Position, type StoredCommit } from '../../src/contracts/envelope.ts';
import type { AppendResult, EventStore, ExpectedVersion, StoreError, StreamRead, SubscribeHandlers, Subscription } from '../../src/ports/eventStore.ts';
import { createLogger } from '../log.ts';
import { errorText, type Logger } from '../../src/ports/logger.ts';
import {
  CommitAssembler,
  decodeRecorded,
  esdbStreamName,
  resubscribeDelay,
  revisionToNumber,
  streamPrefix,
  toEsdbEvents,
  toExpectedRevision,
  toReadPosition,
  type DecodedEvent,
} from './esdbMapping.ts';
import { sleep, backoff } from '../../src/lib/time.ts';

/** A finite read: iterate it; cancel() when leaving early. */
export interface EsdbRead<T> extends AsyncIterable<T> {
  cancel(): Promise<void>;
}

/** A catch-up subscription: iteration throws when it drops. */
export interface EsdbSubscription extends AsyncIterable<AllStreamResolvedEvent> {
  unsubscribe(): Promise<void>;
}

/**
 * The part of EventStoreDBClient this adapter uses, with the same signatures, so that tests can
 * give it an in-memory fake (test/lib/fakeEsdb.ts) and know the adapter uses nothing else.
 */
export interface EsdbClient {
  appendToStream(streamName: string, events: EventData[], options: { expectedRevision: AppendExpectedRevision }): Promise<EsdbAppendResult>;
  readStream(streamName: string, options: { direction: Direction; fromRevision: ReadRevision; maxCount?: number }): EsdbRead<ResolvedEvent>;
  readAll(options: { direction: Direction; fromPosition: ReadPosition; maxCount?: number }): EsdbRead<AllStreamResolvedEvent>;
  subscribeToAll(options: { fromPosition: ReadPosition; filter: Filter }): EsdbSubscription;
  dispose(): Promise<void>;
}

export interface ResubscribeOptions {
  /** Consecutive failed attempts before giving up and calling onError. */
  readonly attempts: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export interface EsdbStoreOptions {
  readonly log?: Logger;
  /** How many of a stream's last events append searches for an earlier write of the same commit id. */
  readonly dedupeDepth?: number;
  /** Attempts for an append that failed in transit (unavailable, timeout, not leader); same event ids each time. */
  readonly appendAttempts?: number;
  readonly resubscribe?: ResubscribeOptions;
  /** close() disposes the client: set when the store created it. */
  readonly ownsClient?: boolean;
}

export const DEFAULT_RESUBSCRIBE: ResubscribeOptions = { attempts: 20, minMs: 100, maxMs: 10_000 };
const DEFAULT_DEDUPE_DEPTH = 64;

const TRANSIENT: readonly string[] = [ErrorType.UNAVAILABLE, ErrorType.DEADLINE_EXCEEDED, ErrorType.TIMEOUT, ErrorType.NOT_LEADER];
const PERMANENT: readonly string[] = [ErrorType.ACCESS_DENIED, ErrorType.INVALID_ARGUMENT, ErrorType.UNSUPPORTED];
const errType = (e: unknown): string | undefined => {
  const t = (e as { type?: unknown } | null)?.type;
  return typeof t === 'string' ? t : undefined;
};
const unavailable = (e: unknown): StoreError => ({ kind: 'unavailable', message: errorText(e) });
const corrupt = (message: string): StoreError => ({ kind: 'corrupt', message });
const ignore = () => undefined;

class Corrupt extends Error {}

/** Reads the stream from `fromRevision`; undefined when it does not exist (the client throws StreamNotFoundError mid-iteration). */
const readEsdbStream = async (
  client: EsdbClient,
  name: string,
  options: { direction: Direction; fromRevision: ReadRevision; maxCount?: number },
): Promise<ResolvedEvent[] | undefined> => {
  const read = client.readStream(name, options);
  const out: ResolvedEvent[] = [];
  try {
    for await (const r of read) out.push(r);
  } catch (e) {
    if (errType(e) === ErrorType.STREAM_NOT_FOUND) return undefined;
    throw e;
  }
  return out;
};

const decodeOrThrow = (domain: string, r: ResolvedEvent | AllStreamResolvedEvent): DecodedEvent | undefined => {
  if (!r.event) return undefined; // a link whose target is gone; we never write links
  const d = decodeRecorded(domain, r.event, r.commitPosition);
  if (E.isLeft(d)) throw new Corrupt(d.left);
  return d.right;
};

const toStoreError = (e: unknown): StoreError => (e instanceof Corrupt ? corrupt(e.message) : unavailable(e));

export const esdbEventStore = (client: EsdbClient, domain: string, opts: EsdbStoreOptions = {}): EventStore => {
  const prefix = streamPrefix(domain);
  const log = opts.log ?? createLogger('eventstore-esdb', { domain });
  const dedupeDepth = opts.dedupeDepth ?? DEFAULT_DEDUPE_DEPTH;
  const appendAttempts = opts.appendAttempts ?? 5;
  const resub = opts.resubscribe ?? DEFAULT_RESUBSCRIBE;
  const filter = (): Filter => streamNameFilter({ prefixes: [prefix] });
  const live = new Set<() => Promise<void>>();

  /** The commit `commitId` among the stream's last events: its last event's revision and position. */
  const findCommit = async (name: string, commitId: string): Promise<{ revision: bigint; position: bigint } | undefined> => {
    const tail = await readEsdbStream(client, name, { direction: BACKWARDS, fromRevision: END, maxCount: dedupeDepth });
    for (const r of tail ?? []) {
      const d = decodeOrThrow(domain, r);
      if (!d || d.meta.commitId !== commitId) continue;
      // Read backwards, so the first event of the commit we meet is its newest.
      if (d.meta.commitIndex !== d.meta.commitSize - 1) throw new Corrupt(`commit ${commitId} in ${name} has no event after index ${d.meta.commitIndex} of ${d.meta.commitSize}`);
      return { revision: d.revision, position: d.position };
    }
    return undefined;
  };

  const stored = (found: { revision: bigint; position: bigint }, duplicate: boolean): E.Either<StoreError, AppendResult> => {
    const revision = revisionToNumber(found.revision);
    return E.isLeft(revision) ? E.left(corrupt(revision.left)) : E.right({ revision: revision.right, position: asPosition(found.position), duplicate });
  };

  const append = (commit: Commit, expected: ExpectedVersion) => async (): Promise<E.Either<StoreError, AppendResult>> => {
    const wrongVersion = (message: string): E.Either<StoreError, AppendResult> =>
      E.left({ kind: 'wrong-expected-version', stream: commit.stream, expected, message });
    if (commit.events.length === 0) return E.left(corrupt(`commit ${commit.commitId} has no events; EventStoreDB cannot store an empty append`));
    const expectedRevision = toExpectedRevision(expected);
    if (E.isLeft(expectedRevision)) return wrongVersion(expectedRevision.left);
    const name = esdbStreamName(domain, commit.stream);
    try {
      const earlier = await findCommit(name, commit.commitId);
      if (earlier) return stored(earlier, true);

      const appendId = randomUUID();
      const events = toEsdbEvents(commit, appendId);
      let result: EsdbAppendResult | undefined;
      for (let attempt = 1; !result; attempt++) {
        try {
          const r = await client.appendToStream(name, events, { expectedRevision: expectedRevision.right });
          // Only with throwOnAppendFailure: false; the default throws WrongExpectedVersionError instead.
          if (!r.success) throw Object.assign(new Error('wrong expected version'), { type: ErrorType.WRONG_EXPECTED_VERSION });
          result = r;
        } catch (e) {
          if (errType(e) === ErrorType.WRONG_EXPECTED_VERSION) {
            // Lost a race against another append of this very commit?
            const raced = await findCommit(name, commit.commitId);
            if (raced) return stored(raced, true);
            const actual = (e as { actualVersion?: unknown }).actualVersion;
            const at = actual === undefined ? '' : actual === 'no_stream' ? ' (it does not exist)' : ` (it is at ${String(actual)})`;
            return wrongVersion(`stream ${commit.stream} is not at revision ${String(expected)}${at}`);
          }
          if (TRANSIENT.includes(errType(e) ?? '') && attempt < appendAttempts) {
            await sleep(backoff(attempt, { baseMs: 100, capMs: 2000 }));
            continue;
          }
          return E.left(unavailable(e));
        }
      }

      // Read our last event back: its position is the one readStream and $all report, and its
      // appendId says whether this call wrote it or ESDB acknowledged an identical earlier write.
      const back = await readEsdbStream(client, name, { direction: FORWARDS, fromRevision: result.nextExpectedRevision, maxCount: 1 });
      const last = back?.[0] ? decodeOrThrow(domain, back[0]) : undefined;
      if (last?.meta.appendId === appendId && last.meta.commitIndex === commit.events.length - 1) return stored(last, false);
      if (last?.meta.commitId === commit.commitId) {
        // Acknowledged as idempotent: an earlier append of this commit id, possibly with other
        // events (a command decided again), so report where *that* commit ends.
        const earlierWrite = await findCommit(name, commit.commitId);
        if (earlierWrite) return stored(earlierWrite, true);
      }
      return E.left(corrupt(`after appending commit ${commit.commitId}, ${name}@${result.nextExpectedRevision} is not its last event`));
    } catch (e) {
      return E.left(toStoreError(e));
    }
  };

  const readStream = (stream: string) => async (): Promise<E.Either<StoreError, StreamRead>> => {
    const name = esdbStreamName(domain, stream);
    try {
      const events = await readEsdbStream(client, name, { direction: FORWARDS, fromRevision: START });
      if (!events || events.length === 0) return E.right({ commits: [], revision: 'none' });
      const assembler = new CommitAssembler();
      const commits: StoredCommit[] = [];
      for (const r of events) {
        const d = decodeOrThrow(domain, r);
        if (!d) continue;
        const c = assembler.push(d);
        if (E.isLeft(c)) return E.left(corrupt(c.left));
        if (c.right) commits.push(c.right);
      }
      if (assembler.open) return E.left(corrupt(`${name} ends inside a commit`));
      // The stream's own revision, not the last commit's: the next append is checked against it.
      const streamRevision = events[events.length - 1]!.event?.revision;
      if (streamRevision === undefined) return E.right({ commits, revision: commits.at(-1)?.revision ?? 'none' });
      const revision = revisionToNumber(streamRevision);
      return E.isLeft(revision) ? E.left(corrupt(revision.left)) : E.right({ commits, revision: revision.right });
    } catch (e) {
      return E.left(toStoreError(e));
    }
  };

  /** The last commit of this domain: scan $all backwards (v6 has no filtered readAll) to our newest event. */
  const lastPositionOrThrow = async (): Promise<bigint> => {
    const read = client.readAll({ direction: BACKWARDS, fromPosition: END });
    try {
      for await (const r of read) {
        const d = decodeOrThrow(domain, r);
        if (!d) continue;
        if (d.meta.commitIndex !== d.meta.commitSize - 1) throw new Corrupt(`the newest event of domain ${domain} (${d.stream}@${d.revision}) does not end its commit`);
        return d.position;
      }
      return 0n;
    } finally {
      await read.cancel().catch(ignore);
    }
  };

  const lastPosition = () => async (): Promise<E.Either<StoreError, Position>> => {
    try {
      return E.right(asPosition(await lastPositionOrThrow()));
    } catch (e) {
      return E.left(toStoreError(e));
    }
  };

  async function* readAll(after: bigint, until?: bigint): AsyncIterable<StoredCommit> {
    // Bounded by the domain's last commit now: the subscription below would otherwise wait for
    // commits that do not exist yet.
    const last = await lastPositionOrThrow();
    const end = until === undefined || until > last ? last : until;
    if (end <= after) return;
    const sub = client.subscribeToAll({ fromPosition: toReadPosition(after), filter: filter() });
    const assembler = new CommitAssembler();
    try {
      for await (const r of sub) {
        const d = decodeOrThrow(domain, r);
        if (!d || d.position <= after) continue;
        const c = assembler.push(d);
        if (E.isLeft(c)) throw new Corrupt(c.left);
        if (!c.right) continue;
        if (c.right.position > end) return;
        yield c.right;
        if (c.right.position >= end) return;
      }
    } finally {
      await sub.unsubscribe().catch(ignore);
    }
  }

  const subscribeAll = async (after: bigint, handlers: SubscribeHandlers): Promise<Subscription> => {
    const target = await lastPositionOrThrow();
    let markCaughtUp!: () => void;
    const caughtUp = new Promise<void>((r) => (markCaughtUp = r));
    if (target <= after) markCaughtUp();

    let stopped = false;
    let wake!: () => void;
    const stopSignal = new Promise<'stop'>((r) => (wake = () => r('stop')));
    let current: EsdbSubscription | undefined;
    /** Position of the last commit handed to onCommit: where a new subscription resumes. */
    let delivered = after;

    /** Runs one subscription until it drops (returns the error) or the subscription is over (returns undefined). */
    const runOnce = async (): Promise<{ error: unknown; progressed: boolean } | undefined> => {
      const sub = client.subscribeToAll({ fromPosition: toReadPosition(delivered), filter: filter() });
      current = sub;
      const it = sub[Symbol.asyncIterator]();
      const assembler = new CommitAssembler();
      let progressed = false;
      try {
        for (;;) {
          const next = await Promise.race([it.next(), stopSignal]);
          if (next === 'stop') return undefined;
          if (next.done) return { error: new Error('the server ended the subscription'), progressed };
          progressed = true;
          const d = decodeOrThrow(domain, next.value);
          if (!d || d.position <= delivered) continue;
          const c = assembler.push(d);
          if (E.isLeft(c)) throw new Corrupt(c.left);
          if (!c.right || stopped) continue;
          try {
            await handlers.onCommit(c.right);
          } catch (e) {
            handlers.onError?.({ kind: 'unavailable', message: `subscriber failed at position ${c.right.position}: ${errorText(e)}` });
            return undefined;
          }
          delivered = c.right.position;
          if (delivered >= target) markCaughtUp();
        }
      } catch (e) {
        if (e instanceof Corrupt) {
          handlers.onError?.(corrupt(e.message));
          return undefined;
        }
        return { error: e, progressed };
      } finally {
        current = undefined;
        await it.return?.().catch(ignore);
        await sub.unsubscribe().catch(ignore);
      }
    };

    const done = (async () => {
      let failures = 0;
      while (!stopped) {
        const dropped = await runOnce();
        if (!dropped || stopped) return;
        failures = dropped.progressed ? 1 : failures + 1;
        const permanent = PERMANENT.includes(errType(dropped.error) ?? '');
        if (permanent || failures > resub.attempts) {
          const why = permanent ? 'cannot subscribe' : `gave up after ${resub.attempts} attempts to resubscribe`;
          handlers.onError?.({ kind: 'unavailable', message: `subscription to $all of domain ${domain} ${why}: ${errorText(dropped.error)}` });
          return;
        }
        const delay = resubscribeDelay(failures, resub);
        log.warn('event subscription dropped; resubscribing', { from: delivered, attempt: failures, delayMs: delay, error: errorText(dropped.error) });
        await Promise.race([sleep(delay), stopSignal]);
      }
    })();

    const stop = async () => {
      stopped = true;
      wake();
      await current?.unsubscribe().catch(ignore);
      await done;
      live.delete(stop);
    };
    live.add(stop);
    return { caughtUp, stop };
  };

  return {
    kind: 'esdb',
    append,
    readStream,
    readAll,
    subscribeAll,
    lastPosition,
    close: async () => {
      await Promise.all([...live].map((stop) => stop()));
      if (opts.ownsClient) await client.dispose();
    },
  };
};

/** Connects to `url` (esdb://host:2113?tls=false, esdb+discover://...) and returns the domain's store. Throws on a malformed URL. */
export const connectEsdbEventStore = (url: string, domain: string, opts: Omit<EsdbStoreOptions, 'ownsClient'> = {}): EventStore => {
  const client: EsdbClient = EventStoreDBClient.connectionString(url);
  return esdbEventStore(client, domain, { ...opts, ownsClient: true });
};
