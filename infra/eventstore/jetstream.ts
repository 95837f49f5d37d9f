// EventStore on JetStream: one stream per domain, one message per commit on
// nsm.<domain>.evt.<aggregate>.<id>, optimistic concurrency through the subject's last sequence
// and msgID dedupe for retries.
import * as E from 'fp-ts/lib/Either.js';
import { AckPolicy, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type NatsConnection, type NatsError } from 'nats';
import { asPosition, START, type Commit, type Position, type StoredCommit } from '../../src/contracts/envelope.ts';
import type { AppendResult, EventStore, ExpectedVersion, StoreError, StreamRead, Subscription } from '../../src/ports/eventStore.ts';
import { ensureStreams, isWrongLastSequence } from '../nats/streams.ts';
import { subjectsFor, type Subjects } from '../../src/contracts/subjects.ts';
import { consumeOrdered } from '../nats/consumers.ts';
import { publishRetrying } from '../nats/publish.ts';
import { backoff, sleep } from '../../src/lib/time.ts';

interface DirectGet {
  getMessage(stream: string, query: { seq: number; next_by_subj?: string }): Promise<{ seq: number; data: Uint8Array; time: Date }>;
}
const enc = new TextEncoder();
const dec = new TextDecoder();

export interface JetStreamStoreOptions {
  readonly replicas?: number;
  /** How long one publish attempt waits for JetStream's answer. */
  readonly publishTimeoutMs?: number;
  /**
   * How long a publish that timed out or found no stream leader is tried again, with the same
   * msgID, so never stored twice (infra/nats/publish.ts): longer than a leader election.
   */
  readonly publishWithinMs?: number;
  /** false: open an existing log only (readers such as `nsm audit`), never create the streams. */
  readonly create?: boolean;
  /**
   * Told of each message of the log that is not a commit. Such a message is stepped over, never
   * folded: only the control plane appends commits, but on nats-server 2.9 an identity with a
   * JetStream right can have the server store an API answer on a log subject by naming it as the
   * reply subject (docs/security.md, "What a stolen key can do"); it cannot be removed
   * (deny_delete), so readers must not stop at it.
   */
  readonly onForeign?: (f: { readonly position: bigint; readonly reason: string }) => void;
  /** Told when a subscription that stopped receiving while the log grew is started again (see subscribeAll). */
  readonly onResubscribe?: (r: { readonly after: bigint; readonly why: string }) => void;
  /** How long a subscription may receive nothing while the log has more before it is started again. */
  readonly stallMs?: number;
}

/**
 * A subscription that has received nothing for this long while the log holds more is started
 * again from its last position. nats.js's ordered consumer is meant to recreate itself when the
 * server holding it dies (a stream leader killed in a cluster), but it can stop delivering
 * without a word instead: a control plane whose view then stood still answered every query from
 * the moment of the kill (seen here on nats-server 2.15 with nats.js 2.29).
 */
export const DEFAULT_STALL_MS = 10_000;

type Read = StoredCommit | { readonly foreign: string };
const isForeign = (r: Read): r is { readonly foreign: string } => 'foreign' in r;

const decodeCommit = (data: Uint8Array, seq: number): StoredCommit => {
  const raw = JSON.parse(dec.decode(data)) as Commit & { revision: number; position: Position };
  if (typeof raw?.commitId !== 'string' || typeof raw.stream !== 'string' || !Array.isArray(raw.events)) {
    throw new Error(`message ${seq} in the event stream is not a commit`);
  }
  // Completed in place: the object is fresh from JSON.parse, and a copy per commit shows in replays.
  raw.revision = seq;
  raw.position = asPosition(seq);
  return raw;
};

const natsCode = (e: unknown): string | undefined => (e as NatsError)?.code;
const unavailable = (e: unknown): StoreError => ({ kind: 'unavailable', message: (e as Error)?.message ?? String(e) });

export const jetStreamEventStore = async (
  nc: NatsConnection,
  domain: string | Subjects,
  opts: JetStreamStoreOptions = {},
): Promise<EventStore> => {
  const subjects = typeof domain === 'string' ? subjectsFor(domain) : domain;
  const jsm: JetStreamManager = await nc.jetstreamManager();
  const js: JetStreamClient = nc.jetstream();
  // The implementation exposes direct get (2.9+, allow_direct) though the interface type omits it.
  const direct = (jsm as unknown as { direct?: DirectGet }).direct;
  if (!direct) throw new Error('this nats client has no direct get API');
  const streamName = subjects.streams.events;
  if (opts.create === false) {
    try {
      await jsm.streams.info(streamName);
    } catch (e) {
      if (natsCode(e) === '404') throw new Error(`no event log for domain "${subjects.domain}" (stream ${streamName} does not exist)`);
      throw e;
    }
  } else await ensureStreams(jsm, subjects, { replicas: opts.replicas });
  /** A commit, or why the message is not one (told to onForeign). */
  const read = (data: Uint8Array, seq: number): Read => {
    try {
      return decodeCommit(data, seq);
    } catch (e) {
      const reason = e instanceof SyntaxError ? 'not JSON' : (e as Error).message.replace(/^message \d+ in the event stream is /, '');
      opts.onForeign?.({ position: BigInt(seq), reason });
      return { foreign: reason };
    }
  };
  const attemptTimeoutMs = opts.publishTimeoutMs ?? 5000;
  const withinMs = opts.publishWithinMs ?? 30_000;
  const live = new Set<ConsumerMessages>();
  let closed = false;

  const lastSeq = async (): Promise<number> => (await jsm.streams.info(streamName)).state.last_seq;

  const append = (commit: Commit, expected: ExpectedVersion) => async (): Promise<E.Either<StoreError, AppendResult>> => {
    const data = enc.encode(JSON.stringify(commit));
    const expect = expected === 'any' ? {} : { lastSubjectSequence: expected === 'none' ? 0 : expected };
    try {
      const ack = await publishRetrying(js, subjects.event(commit.stream), data, { msgID: commit.commitId, expect, attemptTimeoutMs, withinMs });
      return E.right({ revision: ack.seq, position: asPosition(ack.seq), duplicate: ack.duplicate });
    } catch (e) {
      if (isWrongLastSequence(e)) {
        return E.left({
          kind: 'wrong-expected-version',
          stream: commit.stream,
          expected,
          message: `stream ${commit.stream} moved past revision ${String(expected)}`,
        });
      }
      return E.left(unavailable(e));
    }
  };

  const readStream = (stream: string) => async (): Promise<E.Either<StoreError, StreamRead>> => {
    const subject = subjects.event(stream);
    const commits: StoredCommit[] = [];
    let seq = 1;
    // The subject's last sequence, foreign messages included: what the next append must expect.
    let lastSeq = 0;
    try {
      for (;;) {
        let m;
        try {
          m = await direct.getMessage(streamName, { seq, next_by_subj: subject });
        } catch (e) {
          if (natsCode(e) === '404') break;
          throw e;
        }
        const r = read(m.data, m.seq);
        if (!isForeign(r)) commits.push(r);
        lastSeq = m.seq;
        seq = m.seq + 1;
      }
    } catch (e) {
      return E.left(unavailable(e));
    }
    return E.right({ commits, revision: lastSeq > 0 ? lastSeq : 'none' });
  };

  async function* readAll(after: bigint, until?: bigint): AsyncIterable<StoredCommit> {
    // Clamp to the current end: the consumer below waits for seq `end`, so an `until` past the
    // last message would block until that many more commits were appended.
    const last = BigInt(await lastSeq());
    const end = until === undefined || until > last ? last : until;
    if (end <= after) return;
    const endSeq = Number(end);
    const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
    let at = Number(after);
    // The range is known to be stored: a read that receives nothing for stallMs is started again
    // from where it stood (DEFAULT_STALL_MS), a few times before it fails.
    for (let restarts = 0; at < endSeq; restarts++) {
      const messages = await consumeOrdered(js, streamName, subjects.allEvents, at, 1000);
      let progressAt = Date.now();
      let stalled = false;
      const watchdog = setInterval(() => {
        if (Date.now() - progressAt >= stallMs) {
          stalled = true;
          messages.stop();
        }
      }, Math.max(100, Math.floor(stallMs / 4)));
      watchdog.unref();
      try {
        for await (const m of messages) {
          progressAt = Date.now();
          if (m.seq <= at) continue;
          if (m.seq > endSeq) break;
          at = m.seq;
          const r = read(m.data, m.seq);
          if (!isForeign(r)) yield r;
          // Only the wait for the server counts, not the reader's own time between commits.
          progressAt = Date.now();
          if (m.seq >= endSeq) break;
        }
      } finally {
        clearInterval(watchdog);
        messages.stop();
      }
      if (at >= endSeq || closed) return;
      if (!stalled || restarts >= 5) throw new Error(`reading the log stopped at position ${at} of ${endSeq}${stalled ? `: nothing received for ${stallMs} ms, ${restarts + 1} times` : ''}`);
      opts.onResubscribe?.({ after: BigInt(at), why: `a read of the log received nothing for ${stallMs} ms` });
    }
  }

  const subscribeAll = async (after: bigint, handlers: Parameters<EventStore['subscribeAll']>[1]): Promise<Subscription> => {
    const target = await lastSeq();
    let markCaughtUp!: () => void;
    const caughtUp = new Promise<void>((r) => (markCaughtUp = r));
    if (BigInt(target) <= after) markCaughtUp();
    const stallMs = opts.stallMs ?? DEFAULT_STALL_MS;
    let last = Number(after);
    let stopped = false;
    let progressAt = Date.now();
    let messages = await consumeOrdered(js, streamName, subjects.allEvents, last, 1000);
    live.add(messages);
    let stalled = '';
    // Started again from the last position when it stood still while the log grew (DEFAULT_STALL_MS).
    const watchdog = setInterval(() => {
      if (closed) clearInterval(watchdog);
      if (stopped || closed || Date.now() - progressAt < stallMs) return;
      void lastSeq().then(
        (end) => {
          if (end <= last) progressAt = Date.now(); // nothing to read: idle, not stalled
          else if (!stopped && !closed && Date.now() - progressAt >= stallMs) {
            stalled = `nothing received for ${Math.round((Date.now() - progressAt) / 1000)} s while the log has ${end - last} more`;
            messages.stop();
          }
        },
        () => undefined, // the stream cannot be read now either: asked again at the next tick
      );
    }, Math.max(100, Math.floor(stallMs / 2)));
    watchdog.unref();
    const done = (async () => {
      while (!stopped && !closed) {
        for await (const m of messages) {
          // A consumer started again may repeat what was delivered already.
          if (m.seq <= last) continue;
          progressAt = Date.now();
          const commit = read(m.data, m.seq);
          last = m.seq;
          if (isForeign(commit)) {
            if (m.seq >= target) markCaughtUp();
            continue;
          }
          try {
            await handlers.onCommit(commit);
          } catch (e) {
            stopped = true;
            handlers.onError?.({ kind: 'unavailable', message: `subscriber failed at position ${m.seq}: ${(e as Error).message}` });
            messages.stop();
            return;
          }
          if (m.seq >= target) markCaughtUp();
        }
        live.delete(messages);
        if (stopped || closed) break;
        // The consumer ended without being stopped, or the watchdog stopped it: start it again.
        opts.onResubscribe?.({ after: BigInt(last), why: stalled || 'the ordered consumer ended' });
        stalled = '';
        for (let attempt = 1; !stopped && !closed; attempt++) {
          try {
            messages = await consumeOrdered(js, streamName, subjects.allEvents, last, 1000);
            live.add(messages);
            progressAt = Date.now();
            break;
          } catch {
            await sleep(backoff(attempt, { baseMs: 200, capMs: 2000 }));
          }
        }
      }
    })();
    return {
      caughtUp,
      stop: async () => {
        stopped = true;
        clearInterval(watchdog);
        messages.stop();
        live.delete(messages);
        await done.catch(() => undefined);
      },
    };
  };

  // The last position stored at or before `time` (to the millisecond), by binary search over the
  // server's store timestamps: one clock for the whole log, unlike the envelopes' times.
  const positionAt = (time: Date) => async (): Promise<E.Either<StoreError, Position>> => {
    try {
      const { state } = await jsm.streams.info(streamName);
      if (state.messages === 0 || Date.parse(state.first_ts) > time.getTime()) return E.right(START);
      if (Date.parse(state.last_ts) <= time.getTime()) return E.right(asPosition(state.last_seq));
      let lo = state.first_seq; // stored at or before `time`
      let hi = state.last_seq; // stored after it
      while (hi - lo > 1) {
        const mid = Math.floor((lo + hi) / 2);
        const m = await direct.getMessage(streamName, { seq: mid });
        if (m.time.getTime() <= time.getTime()) lo = mid;
        else hi = mid;
      }
      return E.right(asPosition(lo));
    } catch (e) {
      return E.left(unavailable(e));
    }
  };

  return {
    kind: 'jetstream',
    append,
    readStream,
    readAll,
    subscribeAll,
    positionAt,
    lastPosition: () => async () => {
      try {
        return E.right(asPosition(await lastSeq()));
      } catch (e) {
        return E.left(unavailable(e));
      }
    },
    close: async () => {
      closed = true;
      for (const m of live) m.stop();
      live.clear();
    },
  };
};

export { AckPolicy };
