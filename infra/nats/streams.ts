// Creates the mesh's JetStream streams for a domain if they do not exist.
import { DiscardPolicy, RetentionPolicy, StorageType, nanos, type JetStreamManager, type NatsError, type StreamConfig } from 'nats';
import type { Subjects } from './subjects.ts';

export const COMMAND_MAX_BYTES = 64 * 1024;
export const DUPLICATE_WINDOW_MS = 2 * 60 * 1000;

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

export const ensureStreams = async (jsm: JetStreamManager, s: Subjects, opts: StreamOptions = {}): Promise<void> => {
  await ensure(jsm, eventStreamConfig(s, opts));
  await ensure(jsm, sealStreamConfig(s, opts));
  await ensure(jsm, {
    name: s.streams.commands,
    // Commands from peer domains arrive on nsm.<domain>.fed.<peer>.cmd.<verb> (docs/federation.md).
    subjects: [s.allCommands, ...s.fedCommands()],
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

/** JetStream's answer to a publish whose expected last subject sequence is not the subject's: another writer came first. */
export const isWrongLastSequence = (e: unknown): boolean => (e as NatsError | undefined)?.api_error?.err_code === 10071;
