import * as assert from 'uvu/assert';
import { workflow, type WorkflowEvent } from '../../aggregates/workflow.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const at = '2026-12-06T10:00:00.000Z';
const failure = { type: 'RecordStepFailure', position: '42', stream: 'connection.x', commitId: 'c1', error: 'TypeError: boom', attempts: 5, at } as const;
const failed: WorkflowEvent = { type: 'WorkflowStepFailed', position: '42', stream: 'connection.x', commitId: 'c1', error: 'TypeError: boom', attempts: 5, at };
const retry = { type: 'RetryStep', position: '42', at } as const;
const recovered = { type: 'RecordStepRecovered', position: '42', at } as const;

const s = suite('workflow (failed steps)');

s('a failed step is recorded once, however many replicas give up on it', () => {
  const next = given(workflow).when(failure).thenEvents([failed]).when(failure).thenEvents([]);
  assert.equal(next.state, { status: 'failed', stream: 'connection.x', error: 'TypeError: boom', attempts: 5, failures: 1 });
});

s('a retry of a step that never failed, or has recovered, is refused', () => {
  given(workflow).when(retry).thenRejected('not-found', 'no workflow step failed at position 42');
  given(workflow, [failed, { type: 'WorkflowStepRetryRequested', position: '42', at }, { type: 'WorkflowStepRecovered', position: '42', at }])
    .when(retry)
    .thenRejected('wrong-state', 'has already recovered');
});

s('a retry asked twice is asked once; it ends recovered, or failed again with the attempts added up', () => {
  const retrying = given(workflow, [failed]).when(retry).thenEvents([{ type: 'WorkflowStepRetryRequested', position: '42', at }]).when(retry).thenEvents([]);
  retrying.when(recovered).thenEvents([{ type: 'WorkflowStepRecovered', position: '42', at }]).when(recovered).thenEvents([]);
  const again = retrying.when(failure).thenEvents([failed]);
  assert.equal([again.state.attempts, again.state.failures, again.state.status], [10, 2, 'failed']);
});

s('recovery is recorded only for a step being retried', () => {
  given(workflow, [failed]).when(recovered).thenEvents([]);
});

s.run();
