// The two ways the mesh reads a stream, written once. A durable work-queue consumer shared by
// everyone doing one job (the control planes' commands, an agent's node commands): created when
// missing, read ahead in batches, every message acknowledged. An ordered consumer from a start
// sequence (the log, the seals, other domains' registries): what nats-server 2.9 takes (one
// filter subject as a string, never an array; a start sequence, never "deliver all" with a start
// sequence, which 2.9 refuses while the client retries silently).
import { AckPolicy, DeliverPolicy, nanos, type ConsumerMessages, type JetStreamClient, type JetStreamManager } from 'nats';
import { errorText, type Logger } from '../../src/ports/logger.ts';

export interface DurableConsumer {
  readonly stream: string;
  readonly durable: string;
  /** Absent: the whole stream. */
  readonly filterSubject?: string;
  /** How long a delivered message may stay unacknowledged before it is delivered again. */
  readonly ackWaitMs: number;
  /** Messages delivered and not yet acknowledged: how far the reader reads ahead. */
  readonly maxAckPending: number;
}

/**
 * Creates the durable consumer when it is missing; one that exists with a smaller read-ahead is
 * updated (a failed update is logged: the consumer still works, with less read-ahead).
 */
export const ensureDurable = async (jsm: JetStreamManager, c: DurableConsumer, log?: Logger): Promise<void> => {
  let info;
  try {
    info = await jsm.consumers.info(c.stream, c.durable);
  } catch {
    await jsm.consumers.add(c.stream, {
      durable_name: c.durable,
      ...(c.filterSubject ? { filter_subject: c.filterSubject } : {}),
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: nanos(c.ackWaitMs),
      max_ack_pending: c.maxAckPending,
    });
    return;
  }
  if ((info.config.max_ack_pending ?? 0) < c.maxAckPending) {
    await jsm.consumers.update(c.stream, c.durable, { max_ack_pending: c.maxAckPending }).then(
      () => log?.info('durable consumer reads further ahead', { stream: c.stream, durable: c.durable, maxAckPending: c.maxAckPending }),
      (e) => log?.warn('could not let a durable consumer read further ahead', { stream: c.stream, durable: c.durable, error: errorText(e) }),
    );
  }
};

/**
 * How long a pull waits on the server. The client expects a heartbeat every half of it and, when
 * two are missed, pulls again: that is how a reader notices that the server holding its consumer
 * died (a consumer's leader lost in a cluster, its pending pulls with it). nats.js's default, 30
 * s, left the commands unread for about 40 s after a server was killed; 5 s costs one pull
 * request every 5 s per idle reader, and brings the reader back within about 5 s.
 */
export const PULL_EXPIRES_MS = 5_000;

/** Reads the durable consumer (created or updated first), `batch` messages per pull. */
export const consumeDurable = async (js: JetStreamClient, jsm: JetStreamManager, c: DurableConsumer, batch: number, log?: Logger): Promise<ConsumerMessages> => {
  await ensureDurable(jsm, c, log);
  const consumer = await js.consumers.get(c.stream, c.durable);
  return consumer.consume({ max_messages: batch, expires: PULL_EXPIRES_MS });
};

/** An ordered read of `stream`'s messages on `filterSubject` after sequence `after`, `batch` per pull. */
export const consumeOrdered = async (js: JetStreamClient, stream: string, filterSubject: string, after: number, batch: number): Promise<ConsumerMessages> => {
  const consumer = await js.consumers.get(stream, { filterSubjects: filterSubject, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: after + 1 });
  return consumer.consume({ max_messages: batch, expires: PULL_EXPIRES_MS });
};
