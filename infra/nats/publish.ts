// A JetStream publish that outlives a stream leader's death. When the leader dies the publish
// gets no answer (a timeout) or "no responders" (503) until the survivors elect another, about
// 4 s on loopback; a publish that timed out may have been stored all the same. Sent again with
// the same msgID inside the stream's duplicate window, it is stored once at most: the second
// answer says "duplicate" and names the first one's sequence (nats-server checks the msgID
// before any expectation, so an expected-sequence publish retried this way is not a conflict).
import type { JetStreamClient, JetStreamPublishOptions, NatsError, PubAck } from 'nats';
import { backoff, sleep } from '../../src/lib/time.ts';
import { DUPLICATE_WINDOW_MS } from './streams.ts';

/** Errors a retry with the same msgID gets past: no answer, or no stream leader yet. */
export const isTransientPublishError = (e: unknown): boolean => {
  const code = (e as NatsError | undefined)?.code;
  const api = (e as NatsError | undefined)?.api_error;
  // 10008: "JetStream system temporarily unavailable" (a leader election in progress).
  return code === 'TIMEOUT' || code === '503' || api?.code === 503 || api?.err_code === 10008;
};

export interface RetriedPublish {
  readonly msgID: string;
  readonly expect?: JetStreamPublishOptions['expect'];
  /** How long one attempt waits for the stream's answer. */
  readonly attemptTimeoutMs?: number;
  /**
   * How long to keep trying, from the first attempt. Kept well inside the duplicate window: an
   * attempt after the window could store the message a second time.
   */
  readonly withinMs?: number;
  /** Told of each attempt that failed and will be made again. */
  readonly onRetry?: (attempt: number, error: unknown) => void;
}

export const DEFAULT_PUBLISH_WITHIN_MS = 60_000;

/** Publishes with a msgID; a transient failure is retried with the same msgID until `withinMs` is over. */
export const publishRetrying = async (js: JetStreamClient, subject: string, data: Uint8Array, o: RetriedPublish): Promise<PubAck> => {
  const within = Math.min(o.withinMs ?? DEFAULT_PUBLISH_WITHIN_MS, DUPLICATE_WINDOW_MS / 2);
  const deadline = Date.now() + within;
  for (let attempt = 1; ; attempt++) {
    const left = deadline - Date.now();
    try {
      return await js.publish(subject, data, {
        msgID: o.msgID,
        ...(o.expect ? { expect: o.expect } : {}),
        timeout: Math.max(200, Math.min(o.attemptTimeoutMs ?? 2000, left)),
      });
    } catch (e) {
      if (!isTransientPublishError(e) || deadline - Date.now() <= 0) throw e;
      o.onRetry?.(attempt, e);
      await sleep(Math.min(backoff(attempt, { baseMs: 100, capMs: 1000 }), Math.max(0, deadline - Date.now())));
    }
  }
};
