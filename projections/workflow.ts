// Workflow steps the process manager gave up on and that have not recovered since: what `nsm
// status` counts and `nsm workflow ls` lists, until an operator's retry works.
import { castDraft, type Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface FailedStep {
  readonly position: string;
  readonly stream: string;
  readonly commitId: string;
  readonly error: string;
  /** Attempts over every try. */
  readonly attempts: number;
  readonly failures: number;
  readonly failedAt: string;
  readonly retrying: boolean;
}

export interface WorkflowModel {
  /** By the log position of the commit whose reaction failed. */
  readonly failed: Readonly<Record<string, FailedStep>>;
  readonly recovered: number;
}

export const emptyWorkflow: WorkflowModel = { failed: {}, recovered: 0 };

export const applyWorkflow = (m: Draft<WorkflowModel>, e: EventEnvelope<DomainEvent>): void => {
  const ev = e.data;
  switch (ev.type) {
    case 'WorkflowStepFailed': {
      const before = m.failed[ev.position];
      m.failed[ev.position] = castDraft({
        position: ev.position,
        stream: ev.stream,
        commitId: ev.commitId,
        error: ev.error,
        attempts: (before?.attempts ?? 0) + ev.attempts,
        failures: (before?.failures ?? 0) + 1,
        failedAt: ev.at,
        retrying: false,
      });
      break;
    }
    case 'WorkflowStepRetryRequested': {
      const row = m.failed[ev.position];
      if (row) row.retrying = true;
      break;
    }
    case 'WorkflowStepRecovered':
      if (m.failed[ev.position]) {
        delete m.failed[ev.position];
        m.recovered += 1;
      }
      break;
    default:
      break;
  }
};
