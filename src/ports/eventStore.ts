// The EventStore port. Adapters: infra/eventstore/jetstream.ts (default), infra/eventstore/esdb.ts.
// Both pass test/eventstore.conformance.ts.
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { Commit, Position, StoredCommit } from '../contracts/envelope.ts';

/** 'none': the stream must not exist yet; a number: the revision returned by the last read or append. */
export type ExpectedVersion = 'any' | 'none' | number;

export type StoreError =
  | { readonly kind: 'wrong-expected-version'; readonly stream: string; readonly expected: ExpectedVersion; readonly message: string }
  | { readonly kind: 'unavailable'; readonly message: string }
  | { readonly kind: 'corrupt'; readonly message: string };

export interface AppendResult {
  readonly revision: number;
  readonly position: Position;
  /** True when a commit with this id was already stored: nothing new was written. */
  readonly duplicate: boolean;
}

export interface StreamRead {
  readonly commits: readonly StoredCommit[];
  /** 'none' when the stream does not exist. */
  readonly revision: ExpectedVersion;
}

export interface Subscription {
  stop(): Promise<void>;
  /** Resolves when the subscription has delivered everything stored when it started. */
  readonly caughtUp: Promise<void>;
}

export interface SubscribeHandlers {
  /** Called in log order, one commit at a time; the next commit waits for the returned promise. */
  onCommit(commit: StoredCommit): void | Promise<void>;
  /** A subscription that cannot continue (handler threw, store gone for good). */
  onError?(error: StoreError): void;
}

export interface EventStore {
  readonly kind: string;
  append(commit: Commit, expected: ExpectedVersion): TE.TaskEither<StoreError, AppendResult>;
  readStream(stream: string): TE.TaskEither<StoreError, StreamRead>;
  /** Commits strictly after `after` (0n: from the start) up to `until` inclusive (default: the end when called). */
  readAll(after: bigint, until?: bigint): AsyncIterable<StoredCommit>;
  /** Catch up from `after`, then stay live; no gap, no duplicate. */
  subscribeAll(after: bigint, handlers: SubscribeHandlers): Promise<Subscription>;
  /**
   * The last position stored at or before `time` by the store's own clock (0n: none). Optional:
   * without it, time bounds fall back to the envelopes' times (src/read/replay.ts).
   */
  positionAt?(time: Date): TE.TaskEither<StoreError, Position>;
  /** Position of the last stored commit (0n when empty). */
  lastPosition(): TE.TaskEither<StoreError, Position>;
  close(): Promise<void>;
}

export const storeErrorMessage = (e: StoreError): string => `${e.kind}: ${e.message}`;
