// The mesh's JetStream streams and buckets for a domain: their configuration, their creation
// (by an insecure control plane itself, or by `nsm up`'s administrative setup step on an
// authenticated mesh, whose identities may not create, update or delete them: docs/security.md),
// and the check that they exist.
import * as E from 'fp-ts/lib/Either.js';
import { DiscardPolicy, RetentionPolicy, StorageType, nanos, type JetStreamManager, type KvOptions, type NatsConnection, type NatsError, type ObjectStoreOptions, type StreamConfig } from 'nats';
import type { Subjects } from '../../src/contracts/subjects.ts';

export const COMMAND_MAX_BYTES = 64 * 1024;
export const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;
/** The control planes' one durable consumer of the command stream, shared by the replicas. */
export const CONTROL_PLANE_CONSUMER = 'control-plane';

export interface StreamOptions {
  readonly replicas?: number;
}

const ensure = async (jsm: JetStreamManager, config: Partial<StreamConfig> & { name: string }): Promise<void> => {
  try {
    await jsm.streams.info(config.name);
  } catch (e) {
    if ((e as { code?: string }).code !== '404') throw e;
    await jsm.streams.add(config);
  }
};

/** A stream that must never lose or rewrite a message: the log, and the seals that chain it. */
const permanentStream = (name: string, subject: string, opts: StreamOptions): Partial<StreamConfig> & { name: string } => ({
  name,
  subjects: [subject],
  storage: StorageType.File,
  retention: RetentionPolicy.Limits,
  discard: DiscardPolicy.New,
  deny_delete: true,
  deny_purge: true,
  allow_direct: true,
  duplicate_window: nanos(DUPLICATE_WINDOW_MS),
  // A commit, or a seal of 1000 entries (about 80 KB), fits with room to spare.
  max_msg_size: 1024 * 1024,
  num_replicas: opts.replicas ?? 1,
});

/** The system of record. */
export const eventStreamConfig = (s: Subjects, opts: StreamOptions = {}) => permanentStream(s.streams.events, s.allEvents, opts);

/** The audit chain's seals: as permanent as the log they seal. */
export const sealStreamConfig = (s: Subjects, opts: StreamOptions = {}) => permanentStream(s.streams.seals, s.seal, opts);

/**
 * The command stream's subjects: the domain's commands, and commands from peer domains on
 * nsm.<domain>.fed.<peer>.cmd.<verb> (docs/federation.md): from the named peers, or from any.
 */
export const commandStreamSubjects = (s: Subjects, peers?: readonly string[]): string[] => [
  s.allCommands,
  ...s.fedCommands(peers?.filter((p) => p !== s.domain)),
];

/** The process manager's checkpoints (src/runtime/checkpoints.ts). */
export const CHECKPOINT_KV: Partial<KvOptions> = { history: 1 };
/** The replicas' leadership lease (src/runtime/lease.ts): its entries expire after the lease's TTL. */
export const leaseKv = (ttlMs: number): Partial<KvOptions> => ({ history: 1, ttl: ttlMs });
/**
 * The projection snapshots (infra/nats/snapshots.ts). The object store's stream is made here
 * (objectStoreConfig), not by nats.js: its views.os copies its options into the stream's
 * configuration as they are, and a current nats-server (2.11 and later) refuses the unknown field
 * `replicas` there ("invalid json"), so views.os is only given what is a stream field too.
 */
export const SNAPSHOT_OS: Partial<ObjectStoreOptions> = { storage: StorageType.File };

/** The object store's stream as nats.js makes it (the same subjects and flags), with its replicas. */
export const objectStoreConfig = (bucket: string, opts: StreamOptions = {}): Partial<StreamConfig> & { name: string } => ({
  name: objectStream(bucket),
  subjects: [`$O.${bucket}.C.>`, `$O.${bucket}.M.>`],
  storage: StorageType.File,
  max_age: 0,
  allow_direct: true,
  allow_rollup_hdrs: true,
  discard: DiscardPolicy.New,
  num_replicas: opts.replicas ?? 1,
});

/** Makes the snapshot store's stream when it is missing (what views.os would do, with the replicas). */
export const ensureObjectStore = (jsm: JetStreamManager, bucket: string, opts: StreamOptions = {}): Promise<void> => ensure(jsm, objectStoreConfig(bucket, opts));

export const kvStream = (bucket: string): string => `KV_${bucket}`;
export const objectStream = (bucket: string): string => `OBJ_${bucket}`;

/**
 * Every stream the mesh keeps, with what it is. On an authenticated mesh none of them may be
 * created, updated or deleted by any identity at run time (src/security/permissions.ts): the
 * setup step of `nsm up` makes them.
 */
export const meshStreams = (s: Subjects): readonly { readonly name: string; readonly what: string }[] => [
  { name: s.streams.events, what: 'the event log' },
  { name: s.streams.seals, what: 'the seals of the log' },
  { name: s.streams.commands, what: 'the command stream' },
  { name: s.streams.nodeCommands, what: 'the node command stream' },
  { name: kvStream(s.checkpointBucket), what: 'the process manager checkpoints (KV)' },
  { name: kvStream(s.leaseBucket), what: 'the leadership lease (KV)' },
  { name: objectStream(s.snapshotBucket), what: 'the projection snapshots (object store)' },
];

export const ensureStreams = async (jsm: JetStreamManager, s: Subjects, opts: StreamOptions = {}): Promise<void> => {
  await ensure(jsm, eventStreamConfig(s, opts));
  await ensure(jsm, sealStreamConfig(s, opts));
  await ensure(jsm, {
    name: s.streams.commands,
    subjects: commandStreamSubjects(s),
    storage: StorageType.File,
    retention: RetentionPolicy.Workqueue,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    max_msg_size: COMMAND_MAX_BYTES,
    num_replicas: opts.replicas ?? 1,
  });
  await ensure(jsm, {
    name: s.streams.nodeCommands,
    subjects: [s.allNodeCommands],
    storage: StorageType.File,
    retention: RetentionPolicy.Workqueue,
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    max_msg_size: 256 * 1024,
    num_replicas: opts.replicas ?? 1,
  });
};

export interface ProvisionOptions extends StreamOptions {
  /** TTL of the leadership lease's entries (the control planes' healing.leaseTtlMs). */
  readonly leaseTtlMs: number;
  /** Federation: the peer domains whose commands the command stream takes (absent: any peer). */
  readonly peers?: readonly string[];
}

export interface Provisioned {
  /** Streams created this time. */
  readonly created: readonly string[];
  /** Streams whose configuration was brought up to date (the command stream's peer subjects). */
  readonly updated: readonly string[];
}

const exists = async (jsm: JetStreamManager, name: string): Promise<StreamConfig | undefined> => {
  try {
    return (await jsm.streams.info(name)).config;
  } catch (e) {
    if ((e as { code?: string }).code === '404') return undefined;
    throw e;
  }
};

/**
 * The administrative step of an authenticated mesh (`nsm up`, before any other identity
 * connects): creates every stream and bucket of meshStreams that is missing, and points the
 * command stream at the federation's peers. Needs the rights no run-time identity has; the
 * control plane then only opens what is here (checkMeshStreams).
 */
export const provisionMesh = async (nc: NatsConnection, s: Subjects, o: ProvisionOptions): Promise<Provisioned> => {
  const jsm = await nc.jetstreamManager();
  const before = new Set<string>();
  for (const { name } of meshStreams(s)) if (await exists(jsm, name)) before.add(name);
  const updated: string[] = [];
  await ensureStreams(jsm, s, o);
  const commands = await exists(jsm, s.streams.commands);
  const wanted = commandStreamSubjects(s, o.peers);
  if (commands && JSON.stringify(commands.subjects) !== JSON.stringify(wanted)) {
    await jsm.streams.update(s.streams.commands, { ...commands, subjects: wanted });
    updated.push(s.streams.commands);
  }
  const js = nc.jetstream();
  // Replicated like the streams: the lease and the checkpoints must outlive any one server.
  await js.views.kv(s.checkpointBucket, { ...CHECKPOINT_KV, replicas: o.replicas ?? 1 });
  await js.views.kv(s.leaseBucket, { ...leaseKv(o.leaseTtlMs), replicas: o.replicas ?? 1 });
  await ensureObjectStore(jsm, s.snapshotBucket, o);
  await js.views.os(s.snapshotBucket, SNAPSHOT_OS);
  const created: string[] = [];
  for (const { name } of meshStreams(s)) {
    if (before.has(name)) continue;
    // views.os swallows a failed create: make sure everything is really there.
    if (!(await exists(jsm, name))) throw new Error(`could not create stream ${name}`);
    created.push(name);
  }
  return { created, updated };
};

/** Whether every stream of meshStreams exists: what an authenticated control plane, which may not create them, checks at start. */
export const checkMeshStreams = async (jsm: JetStreamManager, s: Subjects): Promise<E.Either<string, void>> => {
  const missing: string[] = [];
  for (const x of meshStreams(s)) {
    try {
      if (!(await exists(jsm, x.name))) missing.push(`${x.name} (${x.what})`);
    } catch (e) {
      return E.left(`cannot read stream ${x.name}: ${(e as Error).message}`);
    }
  }
  return missing.length === 0
    ? E.right(undefined)
    : E.left(
        `missing JetStream stream${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: on an authenticated mesh no identity may create them at run time; ` +
          '`nsm up` creates them in its setup step before the control plane connects (docs/security.md)',
      );
};

/** JetStream's answer to a publish whose expected last subject sequence is not the subject's: another writer came first. */
export const isWrongLastSequence = (e: unknown): boolean => (e as NatsError | undefined)?.api_error?.err_code === 10071;
