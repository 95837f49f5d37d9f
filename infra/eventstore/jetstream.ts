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
}

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
    const messages = await consumeOrdered(js, streamName, subjects.allEvents, Number(after), 1000);
    try {
      for await (const m of messages) {
        if (m.seq > endSeq) break;
        const r = read(m.data, m.seq);
        if (!isForeign(r)) yield r;
        if (m.seq >= endSeq) break;
      }
    } finally {
      messages.stop();
    }
  }

  const subscribeAll = async (after: bigint, handlers: Parameters<EventStore['subscribeAll']>[1]): Promise<Subscription> => {
    const target = await lastSeq();
    let markCaughtUp!: () => void;
    const caughtUp = new Promise<void>((r) => (markCaughtUp = r));
    if (BigInt(target) <= after) markCaughtUp();
    const messages = await consumeOrdered(js, streamName, subjects.allEvents, Number(after), 1000);
    live.add(messages);
    const done = (async () => {
      for await (const m of messages) {
        const commit = read(m.data, m.seq);
        if (isForeign(commit)) {
          if (m.seq >= target) markCaughtUp();
          continue;
        }
        try {
          await handlers.onCommit(commit);
        } catch (e) {
          handlers.onError?.({ kind: 'unavailable', message: `subscriber failed at position ${m.seq}: ${(e as Error).message}` });
          messages.stop();
          return;
        }
        if (m.seq >= target) markCaughtUp();
      }
    })();
    return {
      caughtUp,
      stop: async () => {
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
      for (const m of live) m.stop();
      live.clear();
    },
  };
};

export { AckPolicy };
