// A workflow step that could not be carried out: the process manager gave up on the reaction to
// one stored commit (a programming error, a commit an older version wrote wrong) rather than
// retry it forever and hold up every later step of its stream and the checkpoint. One stream per
// failed log position, workflow.<position>: the failure is a fact in the log (history, status),
// an operator may ask for the step to be tried again, and a retry that works closes it.
import * as E from 'fp-ts/lib/Either.js';
import { produce } from 'immer';
import { reject, type Aggregate } from './domain.ts';

export type WorkflowCommand =
  | {
      readonly type: 'RecordStepFailure';
      readonly position: string;
      /** The stream of the commit whose reaction failed, and its id. */
      readonly stream: string;
      readonly commitId: string;
      readonly error: string;
      /** Attempts made this time before giving up. */
      readonly attempts: number;
      readonly at: string;
    }
  | { readonly type: 'RetryStep'; readonly position: string; readonly at: string }
  | { readonly type: 'RecordStepRecovered'; readonly position: string; readonly at: string };

export type WorkflowEvent =
  | { readonly type: 'WorkflowStepFailed'; readonly position: string; readonly stream: string; readonly commitId: string; readonly error: string; readonly attempts: number; readonly at: string }
  | { readonly type: 'WorkflowStepRetryRequested'; readonly position: string; readonly at: string }
  | { readonly type: 'WorkflowStepRecovered'; readonly position: string; readonly at: string };

export type DeadLetterStatus = 'none' | 'failed' | 'retrying' | 'recovered';

export interface WorkflowState {
  readonly status: DeadLetterStatus;
  readonly stream?: string;
  readonly error?: string;
  /** Attempts over every try, the operator's retries included. */
  readonly attempts: number;
  /** Times it was dead-lettered. */
  readonly failures: number;
}

export const workflow: Aggregate<WorkflowState, WorkflowCommand, WorkflowEvent> = {
  name: 'workflow',
  initialState: { status: 'none', attempts: 0, failures: 0 },
  decide(command, state) {
    switch (command.type) {
      case 'RecordStepFailure': {
        // A replica that took over may give up on the same step again: once is the fact.
        if (state.status === 'failed') return E.right([]);
        const { type: _t, ...failed } = command;
        return E.right([{ type: 'WorkflowStepFailed', ...failed }]);
      }
      case 'RetryStep':
        if (state.status === 'none') return reject('not-found', `no workflow step failed at position ${command.position}`);
        if (state.status === 'recovered') return reject('wrong-state', `the workflow step at position ${command.position} has already recovered`);
        if (state.status === 'retrying') return E.right([]);
        return E.right([{ type: 'WorkflowStepRetryRequested', position: command.position, at: command.at }]);
      case 'RecordStepRecovered':
        if (state.status !== 'retrying') return E.right([]);
        return E.right([{ type: 'WorkflowStepRecovered', position: command.position, at: command.at }]);
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'WorkflowStepFailed':
          s.status = 'failed';
          s.stream = event.stream;
          s.error = event.error;
          s.attempts += event.attempts;
          s.failures += 1;
          break;
        case 'WorkflowStepRetryRequested':
          s.status = 'retrying';
          break;
        case 'WorkflowStepRecovered':
          s.status = 'recovered';
      }
    }),
};
