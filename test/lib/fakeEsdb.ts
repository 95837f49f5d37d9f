// An in-memory FAKE of the EventStoreDB client surface the adapter uses (EsdbClient in
// infra/eventstore/esdb.ts). It is NOT EventStoreDB: it models what the adapter relies on, as
// documented for the server and read from @eventstore/db-client v6's source:
// - one global log; every event's commit and prepare positions are its own (byte-like,
//   non-contiguous) log position, as with ESDB's default log format;
// - appends are atomic, checked against the expected revision, and idempotent by event ids the
//   way the server is: a retry at the same expected revision whose ids are already there is
//   acknowledged without writing; partially matching ids are a wrong expected version;
// - the errors are the client's own classes (WrongExpectedVersionError, StreamNotFoundError,
//   UnavailableError...), and a missing stream throws StreamNotFoundError while iterating;
// - subscribeToAll starts strictly after its position (or at it, to check the adapter does not
//   care), filters server-side (stream-name
//   prefixes or an event-type regex), catches up, then stays live; it never resubscribes.
// Plus knobs to break it: failed appends, dropped or refused subscriptions, no positions on
// stream reads (servers before 22.6).
import {
  ANY,
  END,
  NO_STREAM,
  START,
  STREAM_EXISTS,
  StreamNotFoundError,
  WrongExpectedVersionError,
  type AllStreamResolvedEvent,
  type AppendExpectedRevision,
  type AppendResult,
  type Direction,
  type EventData,
  type Filter,
  type Position,
  type ReadPosition,
  type ReadRevision,
  type ResolvedEvent,
} from '@eventstore/db-client';
import type { EsdbClient, EsdbRead, EsdbSubscription } from '../../infra/eventstore/esdb.ts';

interface Rec {
  readonly streamId: string;
  readonly id: string;
  readonly type: string;
  readonly revision: bigint;
  readonly data: unknown;
  readonly metadata: unknown;
  readonly position: Position;
}

export interface AppendFault {
  readonly error: Error;
  /** Store the events, then fail: a response lost in transit. */
  readonly afterStore?: boolean;
}

export interface SubscriptionFault {
  readonly error: Error;
  /** Events delivered before the subscription errors (0: fails at once). */
  readonly after: number;
}

interface LiveSub {
  wake(): void;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
/** What goes over the wire is JSON: anything JSON cannot carry fails here as it would there. */
const wire = (v: unknown): unknown => (v === undefined ? undefined : JSON.parse(JSON.stringify(v)));

export class FakeEsdb implements EsdbClient {
  readonly log: Rec[] = [];
  private readonly streams = new Map<string, Rec[]>();
  private nextPosition = 1024n;
  private readonly live = new Set<LiveSub>();
  readonly appendFaults: AppendFault[] = [];
  readonly subscriptionFaults: SubscriptionFault[] = [];
  /** Every subscribeToAll call, in order: where it started and its filter. */
  readonly subscriptions: { fromPosition: ReadPosition; filter: Filter }[] = [];
  /** Servers before 22.6 send no positions on stream reads. */
  positionsOnStreamReads = true;
  /**
   * Also deliver the event at a subscription's start position. Catch-up subscriptions start
   * strictly after it; the adapter must not depend on that (it is not verified here on a server).
   */
  subscriptionStartInclusive = false;
  /** Write a "$statsCollected" event after every N appends, as a server does on its own. */
  systemNoiseEvery = 0;
  appends = 0;
  disposed = false;
  /** Runs as an append reaches the "server", before its checks: to stage a racing writer. */
  beforeAppend: ((streamName: string) => void) | undefined;

  /** Writes events as they are (no checks): for system noise, other domains, foreign writers. */
  writeRaw(streamId: string, events: readonly { id?: string; type: string; data: unknown; metadata?: unknown }[]): Rec[] {
    const stream = this.streams.get(streamId) ?? [];
    const written: Rec[] = events.map((e, i) => {
      const data = wire(e.data);
      const metadata = wire(e.metadata);
      // Positions are byte offsets in a real log: they grow by the record's size.
      const position = this.nextPosition;
      this.nextPosition += 64n + BigInt(JSON.stringify(data ?? null).length + JSON.stringify(metadata ?? null).length);
      return { streamId, id: e.id ?? crypto.randomUUID(), type: e.type, revision: BigInt(stream.length + i), data, metadata, position: { commit: position, prepare: position } };
    });
    stream.push(...written);
    this.streams.set(streamId, stream);
    this.log.push(...written);
    for (const s of this.live) s.wake();
    return written;
  }

  streamLength(streamId: string): number {
    return this.streams.get(streamId)?.length ?? 0;
  }

  async appendToStream(streamName: string, events: EventData[], options: { expectedRevision: AppendExpectedRevision }): Promise<AppendResult> {
    await Promise.resolve(); // a network hop: concurrent appends interleave
    const hook = this.beforeAppend;
    this.beforeAppend = undefined;
    hook?.(streamName);
    const fault = this.appendFaults.shift();
    if (fault && !fault.afterStore) throw fault.error;
    for (const e of events) {
      if (!UUID.test(e.id)) throw new Error(`fake esdb: event id ${e.id} is not a UUID`);
      if (e.contentType !== 'application/json') throw new Error('fake esdb: only JSON events are modelled');
    }
    const result = this.appendChecked(streamName, events, options.expectedRevision);
    if (fault) throw fault.error;
    return result;
  }

  private appendChecked(streamName: string, events: EventData[], expected: AppendExpectedRevision): AppendResult {
    const stream = this.streams.get(streamName);
    const current = stream ? BigInt(stream.length - 1) : undefined;
    const ids = events.map((e) => e.id);
    const matchesAt = (start: number): 'all' | 'some' | 'none' => {
      const hits = ids.filter((id, i) => stream?.[start + i]?.id === id).length;
      return hits === ids.length ? 'all' : hits > 0 ? 'some' : 'none';
    };
    const idempotent = (start: number): AppendResult => {
      const last = stream![start + ids.length - 1]!;
      return { success: true, nextExpectedRevision: last.revision, position: last.position };
    };
    const wrong = (): never => {
      throw new WrongExpectedVersionError(undefined, { streamName, expected, current: current ?? NO_STREAM });
    };
    const write = (): AppendResult => {
      const written = this.writeRaw(
        streamName,
        events.map((e) => ({ id: e.id, type: e.type, data: e.data, metadata: e.metadata })),
      );
      this.appends++;
      if (this.systemNoiseEvery > 0 && this.appends % this.systemNoiseEvery === 0) {
        this.writeRaw('$stats-127.0.0.1:2113', [{ type: '$statsCollected', data: { proc: { cpu: 1 } } }]);
      }
      const last = written[written.length - 1]!;
      return { success: true, nextExpectedRevision: last.revision, position: last.position };
    };

    if (expected === ANY) {
      const first = stream?.findIndex((r) => r.id === ids[0]) ?? -1;
      if (first >= 0) return matchesAt(first) === 'all' ? idempotent(first) : wrong();
      return write();
    }
    if (expected === NO_STREAM) {
      if (!stream) return write();
      return matchesAt(0) === 'all' ? idempotent(0) : wrong();
    }
    if (expected === STREAM_EXISTS) return stream ? write() : wrong();
    if (current === undefined || expected > current) return wrong();
    if (expected === current) return write();
    return matchesAt(Number(expected) + 1) === 'all' ? idempotent(Number(expected) + 1) : wrong();
  }

  private recorded(r: Rec, withPosition: boolean) {
    return {
      streamId: r.streamId,
      id: r.id,
      type: r.type,
      revision: r.revision,
      data: r.data,
      metadata: r.metadata,
      isJson: true as const,
      created: new Date(0),
      ...(withPosition ? { position: r.position } : {}),
    };
  }

  readStream(streamName: string, options: { direction: Direction; fromRevision: ReadRevision; maxCount?: number }): EsdbRead<ResolvedEvent> {
    const stream = this.streams.get(streamName);
    const withPos = this.positionsOnStreamReads;
    const pick = (): Rec[] => {
      if (!stream) return [];
      const max = options.maxCount ?? Number.MAX_SAFE_INTEGER;
      if (options.direction === 'forwards') {
        const from = options.fromRevision === START ? 0 : options.fromRevision === END ? stream.length : Number(options.fromRevision);
        return stream.slice(from, from + max);
      }
      const from = options.fromRevision === END ? stream.length - 1 : options.fromRevision === START ? -1 : Math.min(stream.length - 1, Number(options.fromRevision));
      return stream.slice(Math.max(0, from - max + 1), from + 1).reverse();
    };
    const self = this;
    return {
      cancel: async () => undefined,
      async *[Symbol.asyncIterator]() {
        await Promise.resolve();
        if (!stream) throw new StreamNotFoundError(undefined, streamName);
        for (const r of pick()) yield { event: self.recorded(r, withPos), ...(withPos ? { commitPosition: r.position.commit } : {}) } as ResolvedEvent;
      },
    };
  }

  readAll(options: { direction: Direction; fromPosition: ReadPosition; maxCount?: number }): EsdbRead<AllStreamResolvedEvent> {
    const max = options.maxCount ?? Number.MAX_SAFE_INTEGER;
    const from = options.fromPosition;
    const snapshot = [...this.log];
    let picked: Rec[];
    if (options.direction === 'forwards') {
      picked = from === START ? snapshot : from === END ? [] : snapshot.filter((r) => r.position.commit >= from.commit);
    } else {
      picked = (from === END ? snapshot : from === START ? [] : snapshot.filter((r) => r.position.commit < from.commit)).reverse();
    }
    const self = this;
    return {
      cancel: async () => undefined,
      async *[Symbol.asyncIterator]() {
        await Promise.resolve();
        for (const r of picked.slice(0, max)) yield { event: self.recorded(r, true), commitPosition: r.position.commit } as AllStreamResolvedEvent;
      },
    };
  }

  subscribeToAll(options: { fromPosition: ReadPosition; filter: Filter }): EsdbSubscription {
    this.subscriptions.push(options);
    const fault = this.subscriptionFaults.shift();
    const { fromPosition, filter } = options;
    const matches = (r: Rec): boolean => {
      if (filter.filterOn === 'streamName') {
        return 'prefixes' in filter ? filter.prefixes.some((p) => r.streamId.startsWith(p)) : new RegExp(filter.regex).test(r.streamId);
      }
      return 'prefixes' in filter ? filter.prefixes.some((p) => r.type.startsWith(p)) : new RegExp(filter.regex).test(r.type);
    };
    // Strictly after the start position, as a catch-up subscription does (unless told otherwise).
    const inclusive = this.subscriptionStartInclusive;
    let cursor =
      fromPosition === START ? 0
      : fromPosition === END ? this.log.length
      : this.log.findIndex((r) => (inclusive ? r.position.commit >= fromPosition.commit : r.position.commit > fromPosition.commit));
    if (cursor < 0) cursor = this.log.length;
    let delivered = 0;
    let closed = false;
    let waiting: (() => void) | undefined;
    const self = this;
    const liveSub: LiveSub = { wake: () => waiting?.() };
    this.live.add(liveSub);
    const close = () => {
      closed = true;
      self.live.delete(liveSub);
      waiting?.();
    };
    // Like a Readable's iterator: next() is already resolved when an event is buffered.
    const iterator: AsyncIterator<AllStreamResolvedEvent> = {
      async next() {
        for (;;) {
          if (closed) return { done: true, value: undefined };
          if (fault && delivered >= fault.after) {
            close();
            throw fault.error;
          }
          while (cursor < self.log.length && !matches(self.log[cursor]!)) cursor++;
          const r = self.log[cursor];
          if (r) {
            cursor++;
            delivered++;
            return { done: false, value: { event: self.recorded(r, true), commitPosition: r.position.commit } as AllStreamResolvedEvent };
          }
          await new Promise<void>((resolve) => (waiting = resolve));
          waiting = undefined;
        }
      },
      async return() {
        close();
        return { done: true, value: undefined };
      },
    };
    return {
      // The client cancels the gRPC call on the next turn of the event loop (setImmediate).
      unsubscribe: () => new Promise<void>((resolve) => setImmediate(() => (close(), resolve()))),
      [Symbol.asyncIterator]: () => iterator,
    };
  }

  /** Live subscriptions (not yet unsubscribed or failed). */
  get liveSubscriptions(): number {
    return this.live.size;
  }

  async dispose(): Promise<void> {
    this.disposed = true;
  }
}
