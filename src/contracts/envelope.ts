// The envelope every stored event travels in, and the commit that groups one decision's events.

export interface EventEnvelope<E extends { readonly type: string } = { readonly type: string }> {
  readonly id: string;
  readonly type: E['type'];
  /** Canonical stream name "<aggregate>.<id>", e.g. "connection.7f0c...". */
  readonly stream: string;
  /** 1-based position of this event within its stream. */
  readonly version: number;
  readonly time: string;
  /** The id that ties a whole workflow together (the originating client command's id). */
  readonly correlationId: string;
  /** The id of the command or event that directly caused this event. */
  readonly causationId: string;
  readonly domain: string;
  /**
   * Who issued the command: the actor token of its subject. On an authenticated mesh the NATS
   * permissions pin each identity to its own token, so this is the sender's identity; on an
   * insecure one it is whatever the sender claimed.
   */
  readonly actor: string;
  /** Shape version of `data`, for upcasting older logs. */
  readonly schema: number;
  readonly data: E;
}

/** All events of one decision; stored atomically as one unit. */
export interface Commit {
  readonly commitId: string;
  readonly stream: string;
  readonly events: readonly EventEnvelope[];
  /**
   * Hash of the previous commit of this stream (GENESIS_HASH for the first), and this commit's
   * own hash over {commitId, stream, events, prevHash} (src/audit/hash.ts). Set on every append
   * since the audit chain; absent only in commits written before it ("unchained").
   */
  readonly prevHash?: string;
  readonly hash?: string;
}

/**
 * A place in the whole log (JetStream stream sequence, EventStoreDB commit position): 64-bit,
 * ordered, given out by the store. Branded, so that a stream's revision or a seal's sequence is
 * not taken for one; made only by asPosition, where a position comes in from the store or the wire.
 */
export type Position = bigint & { readonly __brand: 'Position' };
export const asPosition = (n: bigint | number | string): Position => BigInt(n) as Position;
/** Before the first commit: read "after the start" to read everything. */
export const START: Position = asPosition(0);

export interface StoredCommit extends Commit {
  /** The stream's revision after this commit: pass it back as the expected version. */
  readonly revision: number;
  /** Global position in the store's log. */
  readonly position: Position;
}

/** A stream's name; its type keeps the aggregate, so that a command for it can be checked against that aggregate's commands. */
export const streamName = <A extends string>(aggregate: A, id: string): `${A}.${string}` => `${aggregate}.${id}`;

export const parseStreamName = (stream: string): { aggregate: string; id: string } => {
  const dot = stream.indexOf('.');
  return { aggregate: stream.slice(0, dot), id: stream.slice(dot + 1) };
};
