// Runs the process manager's reaction to one stored commit until it is done, or gives up on it.
// Infrastructure trouble (RetryLater: the store, NATS, another domain out of reach) is retried
// for as long as it lasts: the world comes back. Anything else (a programming error, a commit an
// older version wrote wrong) is retried a few times, then recorded as a failed step
// (WorkflowStepFailed on workflow.<position>) and left behind, so one poison commit cannot hold
// up its stream and the checkpoint forever. An operator's `nsm workflow retry POSITION` runs the
// step again: WorkflowStepRecovered when it works, WorkflowStepFailed again when it does not.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { WorkflowCommand, WorkflowEvent } from '../../aggregates/workflow.ts';
import { errorText, type Logger } from '../ports/logger.ts';
import type { EventEnvelope, StoredCommit } from '../contracts/envelope.ts';
import { streamName } from '../contracts/envelope.ts';
import type { EventStore } from '../ports/eventStore.ts';
import { execErrorMessage, execute, type ExecDeps } from '../command/execute.ts';
import { RetryLater } from '../command/execute.ts';
import { backoff, sleep as pause } from '../lib/time.ts';

export const DEFAULT_MAX_STEP_ATTEMPTS = 5;
const BACKOFF_CAP_MS = 5000;

export interface StepRunnerDeps extends ExecDeps {
  readonly store: EventStore;
  /** The process manager's reaction to one commit. */
  readonly handle: (commit: StoredCommit) => Promise<void>;
  readonly domain: string;
  readonly log: Logger;
  readonly now: () => Date;
  /** Attempts at a step that keeps failing for another reason than RetryLater. */
  readonly maxAttempts?: number;
  readonly sleep?: (ms: number) => Promise<void>;
  /** Delay before attempt n+1 (default: src/lib/time.ts backoff, at most 5 s). */
  readonly backoffMs?: (attempt: number) => number;
}

export type StepOutcome = 'done' | 'failed' | 'stopped';


export const createStepRunner = (deps: StepRunnerDeps) => {
  const maxAttempts = deps.maxAttempts ?? DEFAULT_MAX_STEP_ATTEMPTS;
  const sleep = deps.sleep ?? pause;
  const delay = deps.backoffMs ?? ((attempt: number) => backoff(attempt, { capMs: BACKOFF_CAP_MS }));

  /** Tries the step: 'done', 'failed' (with the last error) after maxAttempts, or 'stopped' when told to. */
  const attempt = async (commit: StoredCommit, running: () => boolean): Promise<{ outcome: StepOutcome; error?: string; attempts: number }> => {
    let bounded = 0;
    for (let n = 1; ; n++) {
      try {
        await deps.handle(commit);
        return { outcome: 'done', attempts: n };
      } catch (e) {
        const transient = e instanceof RetryLater;
        if (!transient) bounded++;
        const error = errorText(e);
        if (!transient && bounded >= maxAttempts) {
          deps.log.error('process manager step keeps failing; recording it as a failed step and moving on', { stream: commit.stream, position: commit.position, attempts: n, error });
          return { outcome: 'failed', error, attempts: n };
        }
        deps.log[transient ? 'warn' : 'error']('process manager step failed; retrying', { stream: commit.stream, position: commit.position, attempt: n, error });
        // Stopping or no longer leading: leave the step to the next leader rather than retry here.
        if (!running()) return { outcome: 'stopped', attempts: n };
        await sleep(delay(n));
      }
    }
  };

  /** Appends to workflow.<position> until it is stored (store trouble is waited out), unless stopped. */
  const record = async (position: string, command: WorkflowCommand, cause: EventEnvelope | undefined, running: () => boolean): Promise<boolean> => {
    const id = randomUUID();
    for (let n = 1; ; n++) {
      const r = await execute(deps, streamName('workflow', position), command, {
        commandId: id,
        correlationId: cause?.correlationId ?? id,
        causationId: cause?.id ?? id,
        actor: 'control-plane',
        domain: deps.domain,
        now: deps.now,
      });
      if (E.isRight(r) || r.left.kind === 'domain') return true;
      deps.log.warn('could not record the outcome of a workflow step; retrying', { position, error: execErrorMessage(r.left) });
      if (!running()) return false;
      await sleep(delay(n));
    }
  };

  const failure = (commit: StoredCommit, error: string, attempts: number): WorkflowCommand => ({
    type: 'RecordStepFailure',
    position: commit.position.toString(),
    stream: commit.stream,
    commitId: commit.commitId,
    error: error.slice(0, 2000),
    attempts,
    at: deps.now().toISOString(),
  });

  return {
    /** True once the step is behind us (done, or recorded as failed); false when stopped first. */
    run: async (commit: StoredCommit, running: () => boolean): Promise<boolean> => {
      const r = await attempt(commit, running);
      if (r.outcome === 'done') return true;
      if (r.outcome === 'stopped') return false;
      return record(commit.position.toString(), failure(commit, r.error ?? 'unknown error', r.attempts), commit.events[0], running);
    },

    /** An operator asked for a failed step again (WorkflowStepRetryRequested): run it, record how it went. */
    retry: async (env: EventEnvelope<WorkflowEvent>, running: () => boolean): Promise<boolean> => {
      if (env.data.type !== 'WorkflowStepRetryRequested') return true;
      const position = env.data.position;
      const at = BigInt(position);
      let commit: StoredCommit | undefined;
      for await (const c of deps.store.readAll(at - 1n, at)) if (c.position === at) commit = c;
      if (!commit) return record(position, { type: 'RecordStepFailure', position, stream: '', commitId: '', error: `no commit at position ${position}`, attempts: 0, at: deps.now().toISOString() }, env, running);
      deps.log.info('retrying a failed workflow step', { position, stream: commit.stream, by: env.actor });
      const r = await attempt(commit, running);
      if (r.outcome === 'stopped') return false;
      if (r.outcome === 'done') {
        deps.log.info('failed workflow step recovered', { position, stream: commit.stream });
        return record(position, { type: 'RecordStepRecovered', position, at: deps.now().toISOString() }, env, running);
      }
      return record(position, failure(commit, r.error ?? 'unknown error', r.attempts), env, running);
    },
  };
};

export type StepRunner = ReturnType<typeof createStepRunner>;
