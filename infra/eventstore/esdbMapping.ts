// The pure half of the EventStoreDB adapter (infra/eventstore/esdb.ts): stream names, the
// commit <-> ESDB events mapping, deterministic event ids, revision and position conversions,
// and regrouping events read back into commits. No I/O here, so all of it is unit tested.
//
// Layout in EventStoreDB, for domain D and the canonical stream "<aggregate>.<id>":
//   ESDB stream     nsm.D.<aggregate>.<id>   (a domain never contains ".", so the prefix
//                                             "nsm.D." cannot match another domain's streams)
//   ESDB event      one per envelope; type = envelope type, data = envelope data,
//                   metadata = the other envelope fields + the commit grouping (see EsdbEventMetadata)
//   ESDB event id   UUID v5 of "<commitId>/<index>": a retried append of the same commit carries the
//                   same ids, which is what EventStoreDB's idempotent-append check compares.
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { ANY, NO_STREAM, START, jsonEvent, type AppendExpectedRevision, type EventData, type ReadPosition } from '@eventstore/db-client';
import * as D from '../../src/contracts/decode.ts';
import { asPosition, type Commit, type EventEnvelope, type StoredCommit } from '../../src/contracts/envelope.ts';
import type { ExpectedVersion } from '../../src/ports/eventStore.ts';
import { DOMAIN_PATTERN } from '../../src/contracts/subjects.ts';

export const streamPrefix = (domain: string): string => {
  // The prefix is only a safe filter because the domain cannot contain the separator.
  if (!DOMAIN_PATTERN.test(domain)) throw new Error(`invalid domain ${JSON.stringify(domain)} for the EventStoreDB store`);
  return `nsm.${domain}.`;
};

export const esdbStreamName = (domain: string, stream: string): string => `${streamPrefix(domain)}${stream}`;

/** The canonical "<aggregate>.<id>" of an ESDB stream of this domain; undefined for any other stream. */
export const canonicalStream = (domain: string, esdbStream: string): string | undefined => {
  const prefix = streamPrefix(domain);
  return esdbStream.startsWith(prefix) && esdbStream.length > prefix.length ? esdbStream.slice(prefix.length) : undefined;
};

/** System streams start with "$", system event types too (e.g. "$metadata", "$>" links, "$statsCollected"). */
export const isSystem = (esdbStream: string, type: string): boolean => esdbStream.startsWith('$') || type.startsWith('$');

// A fixed namespace for the v5 ids of nsm commit events (generated once; never change it, or
// retries of commits written before the change would no longer be recognised).
const COMMIT_EVENT_NAMESPACE = 'eb9ecbc8-6852-4334-b231-1efd49b37f11';

const uuidBytes = (uuid: string): Buffer => Buffer.from(uuid.replace(/-/g, ''), 'hex');

/** RFC 4122 name-based UUID (version 5, SHA-1). */
export const uuidV5 = (namespace: string, name: string): string => {
  const hash = createHash('sha1').update(uuidBytes(namespace)).update(name, 'utf8').digest();
  const b = hash.subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x50;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};

/** The ESDB event id of event `index` of a commit. The index has no "/", so the name is unambiguous. */
export const commitEventId = (commitId: string, index: number): string => uuidV5(COMMIT_EVENT_NAMESPACE, `${commitId}/${index}`);

/** What each ESDB event carries besides type and data. */
export interface EsdbEventMetadata {
  readonly id: string;
  readonly stream: string;
  readonly version: number;
  readonly time: string;
  readonly correlationId: string;
  readonly causationId: string;
  readonly domain: string;
  readonly actor: string;
  readonly schema: number;
  readonly commitId: string;
  /** 0-based index of this event in its commit, and the commit's event count: the grouping. */
  readonly commitIndex: number;
  readonly commitSize: number;
  /** Random per append call: tells our own write from an earlier one that ESDB reports as idempotent. */
  readonly appendId: string;
  /** The commit's place in its stream's hash chain (docs/audit.md); on the commit's first event only. */
  readonly commitPrevHash?: string;
  readonly commitHash?: string;
  // ESDB's own conventions, so its by-correlation projections work on our events.
  readonly $correlationId: string;
  readonly $causationId: string;
}

export const toEsdbEvents = (commit: Commit, appendId: string): EventData[] =>
  commit.events.map((ev, i) => {
    const metadata: EsdbEventMetadata = {
      id: ev.id,
      stream: ev.stream,
      version: ev.version,
      time: ev.time,
      correlationId: ev.correlationId,
      causationId: ev.causationId,
      domain: ev.domain,
      actor: ev.actor,
      schema: ev.schema,
      commitId: commit.commitId,
      commitIndex: i,
      commitSize: commit.events.length,
      appendId,
      ...(i === 0 && commit.prevHash !== undefined ? { commitPrevHash: commit.prevHash } : {}),
      ...(i === 0 && commit.hash !== undefined ? { commitHash: commit.hash } : {}),
      $correlationId: ev.correlationId,
      $causationId: ev.causationId,
    };
    return jsonEvent({
      id: commitEventId(commit.commitId, i),
      type: ev.type,
      data: ev.data as unknown as Record<string, unknown>,
      metadata: metadata as unknown as Record<string, unknown>,
    });
  });

const text = D.string({ min: 1, max: 1024 });
const count = D.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const hashText = D.string({ min: 1, max: 128, pattern: /^[0-9a-f]+$/, patternHint: 'a hex hash' });
const metadataDecoder = D.object({
  id: text,
  stream: text,
  version: D.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  time: text,
  correlationId: text,
  causationId: text,
  domain: text,
  actor: text,
  schema: count,
  commitId: text,
  commitIndex: count,
  commitSize: D.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
  appendId: text,
}, { commitPrevHash: hashText, commitHash: hashText });
const METADATA_KEYS = ['id', 'stream', 'version', 'time', 'correlationId', 'causationId', 'domain', 'actor', 'schema', 'commitId', 'commitIndex', 'commitSize', 'appendId', 'commitPrevHash', 'commitHash'] as const;
export type DecodedMetadata = Omit<EsdbEventMetadata, '$correlationId' | '$causationId'>;

/**
 * Decodes an event's metadata. Keys we do not know are ignored rather than refused: the log
 * outlives this code, and a newer writer adding a field must not make older readers stop.
 */
export const decodeMetadata = (raw: unknown, path: string): E.Either<D.DecodeError, DecodedMetadata> => {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw) || raw instanceof Uint8Array) {
    return E.left({ path, message: 'expected JSON metadata written by nsm' });
  }
  const known: Record<string, unknown> = {};
  for (const k of METADATA_KEYS) if (k in raw) known[k] = (raw as Record<string, unknown>)[k];
  const r = metadataDecoder(known, path);
  if (E.isRight(r) && r.right.commitIndex >= r.right.commitSize) {
    return E.left({ path: `${path}.commitIndex`, message: `${r.right.commitIndex} is not below commitSize ${r.right.commitSize}` });
  }
  return r;
};

/** The parts of a recorded ESDB event the adapter uses, whichever read produced it. */
export interface RecordedLike {
  readonly streamId: string;
  readonly id: string;
  readonly type: string;
  readonly revision: bigint;
  readonly data: unknown;
  readonly metadata: unknown;
  readonly position?: { readonly commit: bigint; readonly prepare: bigint };
}

/** One of our events, decoded, with where it sits in its ESDB stream and in the global log. */
export interface DecodedEvent {
  readonly stream: string;
  readonly revision: bigint;
  readonly position: bigint;
  readonly meta: DecodedMetadata;
  readonly envelope: EventEnvelope;
}

/**
 * Decodes a recorded event. Right(undefined): not ours (another domain, a system stream or a
 * system event type), skip it. Left: ours but not readable, the log is corrupt.
 * `commitPosition` is the ResolvedEvent's, used when the record itself has no position.
 */
export const decodeRecorded = (domain: string, ev: RecordedLike, commitPosition?: bigint): E.Either<string, DecodedEvent | undefined> => {
  if (isSystem(ev.streamId, ev.type)) return E.right(undefined);
  const stream = canonicalStream(domain, ev.streamId);
  if (stream === undefined) return E.right(undefined);
  const where = `event ${ev.id} (${ev.streamId}@${ev.revision})`;
  const position = ev.position?.commit ?? commitPosition;
  if (position === undefined) {
    return E.left(`${where} has no log position: this adapter needs EventStoreDB 22.10 or later (positions on stream reads)`);
  }
  const meta = decodeMetadata(ev.metadata, 'metadata');
  if (E.isLeft(meta)) return E.left(`${where} was not written by nsm: ${D.formatDecodeError(meta.left)}`);
  const data = ev.data;
  if (typeof data !== 'object' || data === null || Array.isArray(data) || data instanceof Uint8Array) {
    return E.left(`${where}: data is not a JSON object`);
  }
  const m = meta.right;
  const envelope: EventEnvelope = {
    id: m.id,
    type: ev.type,
    stream: m.stream,
    version: m.version,
    time: m.time,
    correlationId: m.correlationId,
    causationId: m.causationId,
    domain: m.domain,
    actor: m.actor,
    schema: m.schema,
    data: data as { readonly type: string },
  };
  return E.right({ stream, revision: ev.revision, position, meta: m, envelope });
};

/** ExpectedVersion of the port -> ESDB's expected revision. */
export const toExpectedRevision = (expected: ExpectedVersion): E.Either<string, AppendExpectedRevision> => {
  if (expected === 'any') return E.right(ANY);
  if (expected === 'none') return E.right(NO_STREAM);
  if (!Number.isSafeInteger(expected) || expected < 0) return E.left(`expected version ${expected} is not a stream revision`);
  return E.right(BigInt(expected));
};

/** An ESDB revision (bigint) as the port's number; refuses what a number cannot hold exactly. */
export const revisionToNumber = (revision: bigint): E.Either<string, number> =>
  revision >= 0n && revision <= BigInt(Number.MAX_SAFE_INTEGER) ? E.right(Number(revision)) : E.left(`stream revision ${revision} does not fit a JS number`);

/**
 * Where a read or subscription of $all starts for "strictly after `after`". 0n is the start of
 * the log. Any other value is the commit position of a commit this store returned: with
 * EventStoreDB's log format every event's commit and prepare positions are its own log position,
 * so {after, after} is a real record. Readers still drop events at or before `after` themselves,
 * whether the server treats the start position as inclusive or exclusive.
 */
export const toReadPosition = (after: bigint): ReadPosition => (after <= 0n ? START : { commit: after, prepare: after });

/**
 * Regroups events, read in log order, into commits. Events of one commit are written by one
 * append, so they are contiguous in their stream and in the domain's filtered view of $all.
 */
export class CommitAssembler {
  private pending: DecodedEvent[] = [];

  /** Right(commit) when `ev` completes one, Right(undefined) while a commit is still open. */
  push(ev: DecodedEvent): E.Either<string, StoredCommit | undefined> {
    const first = this.pending[0];
    const m = ev.meta;
    if (!first) {
      if (m.commitIndex !== 0) return E.left(`commit ${m.commitId} in ${ev.stream} starts at event index ${m.commitIndex}, not 0`);
    } else if (m.commitId !== first.meta.commitId || ev.stream !== first.stream || m.commitSize !== first.meta.commitSize || m.commitIndex !== this.pending.length) {
      const had = `${this.pending.length} of ${first.meta.commitSize} events of commit ${first.meta.commitId} in ${first.stream}`;
      return E.left(`after ${had}, found event ${m.commitIndex} of commit ${m.commitId} in ${ev.stream}`);
    }
    this.pending.push(ev);
    if (this.pending.length < m.commitSize) return E.right(undefined);
    const events = this.pending;
    this.pending = [];
    const revision = revisionToNumber(ev.revision);
    if (E.isLeft(revision)) return revision;
    const chain = events[0]!.meta;
    return E.right({
      commitId: m.commitId,
      stream: ev.stream,
      events: events.map((e) => e.envelope),
      ...(chain.commitPrevHash !== undefined ? { prevHash: chain.commitPrevHash } : {}),
      ...(chain.commitHash !== undefined ? { hash: chain.commitHash } : {}),
      revision: revision.right,
      position: asPosition(ev.position),
    });
  }

  /** True while a commit has started but not ended. */
  get open(): boolean {
    return this.pending.length > 0;
  }

  /** Forgets a partly read commit, which will then be read again whole. */
  reset(): void {
    this.pending = [];
  }
}

/** Delay before resubscription attempt `attempt` (1-based): doubling from minMs, capped at maxMs. */
export const resubscribeDelay = (attempt: number, opts: { readonly minMs: number; readonly maxMs: number }): number =>
  Math.min(opts.maxMs, opts.minMs * 2 ** Math.min(30, Math.max(0, attempt - 1)));
