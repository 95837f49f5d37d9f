// The step runner (src/workflows/stepRunner.ts) against a real JetStream store, with the process
// manager's reaction replaced by one that fails the way a test needs: infrastructure trouble is
// waited out however long it lasts, any other failure is given up on after a bounded number of
// attempts and recorded on workflow.<position>, an operator's retry that works records the
// recovery, and one that fails again records the failure again.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { workflow, type WorkflowState } from '../../aggregates/workflow.ts';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { createLogger } from '../../infra/log.ts';
import type { EventEnvelope, StoredCommit } from '../../src/contracts/envelope.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { execute } from '../../src/command/execute.ts';
import { RetryLater } from '../../src/command/execute.ts';
import { Repository } from '../../src/command/repository.ts';
import { createStepRunner } from '../../src/workflows/stepRunner.ts';
import type { WorkflowEvent } from '../../aggregates/workflow.ts';
import { suite } from '../lib/harness.ts';
import { startTestNats, type TestNats } from '../lib/nats.ts';
import { readLog } from '../lib/eventLog.ts';

type Ctx = { nats?: TestNats; store?: EventStore; repo?: Repository };
const s = suite<Ctx>('workflow step runner: bounded retries, failed steps, operator retries', {});
const domain = 'wf';
const now = () => new Date();
const log = createLogger('test', {}, () => undefined);

s.before(async (ctx) => {
  ctx.nats = await startTestNats();
  ctx.store = await jetStreamEventStore(await ctx.nats.connect(), domain);
  ctx.repo = new Repository(ctx.store);
});
s.after(async (ctx) => {
  await ctx.store?.close();
  await ctx.nats?.stop();
});

/** A commit to react to: a service registered (any stored commit will do). */
const storedCommit = async (ctx: Ctx, name: string): Promise<StoredCommit> => {
  const r = await execute({ store: ctx.store!, repo: ctx.repo! }, `service.${name}`, { type: 'RegisterNetworkService', spec: { name, payload: 'IP', matches: [] } }, { commandId: `reg-${name}`, correlationId: 'c', causationId: 'c', actor: 'operator', domain, now });
  if (E.isLeft(r)) throw new Error(JSON.stringify(r.left));
  return (await readLog(ctx.store!)).find((c) => c.position === r.right.position)!;
};

const runnerWith = (ctx: Ctx, handle: (c: StoredCommit) => Promise<void>) =>
  createStepRunner({ store: ctx.store!, repo: ctx.repo!, handle, domain, log, now, maxAttempts: 3, backoffMs: () => 1 });

const stateOf = async (ctx: Ctx, position: bigint): Promise<{ state: WorkflowState; events: EventEnvelope<WorkflowEvent>[] }> => {
  const read = await ctx.store!.readStream(`workflow.${position}`)();
  if (E.isLeft(read)) throw new Error(read.left.message);
  const events = read.right.commits.flatMap((c) => c.events) as EventEnvelope<WorkflowEvent>[];
  return { state: events.reduce((st, e) => workflow.evolve(st, e.data), workflow.initialState), events };
};

s('a step that keeps failing for another reason than infrastructure is recorded as failed after the bounded attempts', async (ctx) => {
  const commit = await storedCommit(ctx, 'poisoned');
  let calls = 0;
  const runner = runnerWith(ctx, async () => {
    calls++;
    throw new TypeError("Cannot read properties of undefined (reading 'mechanism')");
  });
  assert.is(await runner.run(commit, () => true), true, 'the step is behind us');
  assert.is(calls, 3);
  const { state, events } = await stateOf(ctx, commit.position);
  assert.equal(events.map((e) => e.type), ['WorkflowStepFailed']);
  assert.is(state.status, 'failed');
  assert.is(events[0]!.data.type === 'WorkflowStepFailed' && events[0]!.data.stream, commit.stream);
  assert.match(state.error ?? '', /reading 'mechanism'/);
  assert.is(events[0]!.causationId, commit.events[0]!.id, 'caused by the commit it failed on');
});

s('infrastructure trouble is retried as long as it lasts, and recorded as nothing', async (ctx) => {
  const commit = await storedCommit(ctx, 'flaky');
  let calls = 0;
  const runner = runnerWith(ctx, async () => {
    if (++calls <= 10) throw new RetryLater('JetStream not answering');
  });
  assert.is(await runner.run(commit, () => true), true);
  assert.is(calls, 11, 'ten transient failures, more than the bound of 3, then success');
  assert.is((await stateOf(ctx, commit.position)).events.length, 0);
});

s('a replica that stops leading leaves the step undone and records nothing', async (ctx) => {
  const commit = await storedCommit(ctx, 'handover');
  const runner = runnerWith(ctx, async () => {
    throw new TypeError('boom');
  });
  assert.is(await runner.run(commit, () => false), false);
  assert.is((await stateOf(ctx, commit.position)).events.length, 0);
});

s("an operator's retry that works records the recovery; one that fails records the failure again", async (ctx) => {
  const commit = await storedCommit(ctx, 'fixable');
  let broken = true;
  const runner = runnerWith(ctx, async () => {
    if (broken) throw new Error('a bug, fixed in the next release');
  });
  await runner.run(commit, () => true);
  const retry = async () => {
    const r = await execute({ store: ctx.store!, repo: ctx.repo! }, `workflow.${commit.position}`, { type: 'RetryStep', position: commit.position.toString(), at: now().toISOString() }, { commandId: `retry-${Date.now()}`, correlationId: 'op', causationId: 'op', actor: 'operator', domain, now });
    if (E.isLeft(r)) throw new Error(JSON.stringify(r.left));
    return r.right.events[0] as EventEnvelope<WorkflowEvent>;
  };
  // Still broken: failed again, attempts add up.
  assert.is(await runner.retry(await retry(), () => true), true);
  let st = await stateOf(ctx, commit.position);
  assert.equal(st.events.map((e) => e.type), ['WorkflowStepFailed', 'WorkflowStepRetryRequested', 'WorkflowStepFailed']);
  assert.is(st.state.attempts, 6);
  assert.is(st.state.failures, 2);
  // Fixed: the retry runs the step on the original commit and records the recovery.
  broken = false;
  assert.is(await runner.retry(await retry(), () => true), true);
  st = await stateOf(ctx, commit.position);
  assert.equal(st.events.map((e) => e.type).slice(-2), ['WorkflowStepRetryRequested', 'WorkflowStepRecovered']);
  assert.is(st.state.status, 'recovered');
  // A recovered step is not retried again.
  const again = await execute({ store: ctx.store!, repo: ctx.repo! }, `workflow.${commit.position}`, { type: 'RetryStep', position: commit.position.toString(), at: now().toISOString() }, { commandId: 'retry-late', correlationId: 'op', causationId: 'op', actor: 'operator', domain, now });
  assert.ok(E.isLeft(again) && again.left.kind === 'domain' && /already recovered/.test(again.left.error.message));
});

s.run();
