// A poison commit (one the process manager cannot react to: here a PathPlanned an older, buggy
// version wrote without its plan) on the default secure mesh run by `nsm up`: the step is tried a
// bounded number of times, then recorded as failed and left behind; it shows in `nsm status`,
// `nsm workflow ls` and `nsm history POSITION`; other connections are set up meanwhile; the
// checkpoint moves past it, so a restart does not try it again; an operator (not a client) can
// ask for it to be retried, and the retry is recorded.
import * as E from 'fp-ts/lib/Either.js';
import { connect } from 'nats';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { commitHash, GENESIS_HASH } from '../../src/audit/hash.ts';
import type { EventEnvelope } from '../../src/contracts/envelope.ts';
import { natsAuthOptions, readCredentials } from '../../src/security/credentials.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { startSecureUp, type SecureUp } from '../lib/secureUp.ts';

type Ctx = { mesh?: SecureUp; position?: string };
const s = suite<Ctx>('a poison commit on the default secure mesh', {});

s.before(async (ctx) => {
  ctx.mesh = await startSecureUp({ clients: ['alice'] });
  for (const args of [['service', 'register', 'web'], ['endpoint', 'register', 'ep-1', '--service', 'web', '--node', 'n1', '--prefix', '10.61.0.0/24']]) {
    const r = await ctx.mesh.nsm('operator', args);
    assert.is(r.code, 0, r.stderr);
  }
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

const json = async <T>(m: SecureUp, identity: string, args: string[]): Promise<T> => {
  const r = await m.nsm(identity, [...args, '--json']);
  assert.is(r.code, 0, `nsm ${args.join(' ')}: ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
};

s('the step is given up on after bounded attempts, recorded, and shown; other work goes on', async (ctx) => {
  const m = ctx.mesh!;
  // What a buggy older version could have written: a plan without its content.
  const creds = readCredentials(join(m.dataDir, 'creds', 'control-plane.creds'));
  if (E.isLeft(creds)) throw new Error(creds.left);
  const nc = await connect({ servers: m.natsUrl, ...natsAuthOptions(creds.right) });
  try {
    const store = await jetStreamEventStore(nc, m.domain, { create: false });
    const stream = 'connection.poison-1';
    const env = (version: number, data: Record<string, unknown>): EventEnvelope => ({
      id: `poison-ev-${version}`, type: data.type as string, stream, version, time: new Date().toISOString(), correlationId: 'poison', causationId: 'poison', domain: m.domain, actor: 'control-plane', schema: 1, data: data as { type: string },
    });
    const events = [
      env(1, { type: 'ConnectionRequested', connectionId: 'poison-1', networkService: 'web', payload: 'IP', labels: {}, clientNode: 'ghost-a', clientInterface: 'nsmpoison', mechanismPreferences: [], requestId: 'poison-1' }),
      env(2, { type: 'EndpointSelected', endpoint: 'ghost-ep', endpointNode: 'ghost-b', considered: 1, excluded: [] }),
      env(3, { type: 'PathPlanned', generation: 1 }),
    ];
    const appended = await store.append({ commitId: 'poison-commit', stream, events, prevHash: GENESIS_HASH, hash: commitHash({ commitId: 'poison-commit', stream, events, prevHash: GENESIS_HASH }) }, 'none')();
    if (E.isLeft(appended)) throw new Error(appended.left.message);
    ctx.position = appended.right.position.toString();
    await store.close();
  } finally {
    await nc.close();
  }
  const status = await eventually('the failed step in nsm status', async () => {
    const st = await json<{ failedSteps: number }>(m, 'operator', ['status']);
    return st.failedSteps === 1 ? st : undefined;
  }, { timeoutMs: 30000 });
  assert.is(status.failedSteps, 1);
  const failed = await json<{ position: string; stream: string; error: string; attempts: number; failures: number }[]>(m, 'operator', ['workflow', 'ls']);
  assert.equal(failed.map((f) => [f.position, f.stream, f.attempts, f.failures]), [[ctx.position, 'connection.poison-1', 5, 1]]);
  assert.match(failed[0]!.error, /TypeError|undefined/);
  const failures = m.up.logs('process manager step keeps failing; recording it as a failed step and moving on');
  assert.is(failures.length, 1);
  const history = await json<{ stream: string; event: { type: string; actor: string } }[]>(m, 'operator', ['history', ctx.position!]);
  assert.equal(history.map((h) => [h.stream, h.event.type, h.event.actor]), [[`workflow.${ctx.position}`, 'WorkflowStepFailed', 'control-plane']]);
  // Meanwhile other connections are set up as usual.
  const ok = await json<{ state: string }>(m, 'alice', ['connect', 'web', '--node', 'n1', '--netns', 'ns1', '--wait', '--id', 'after-poison']);
  assert.is(ok.state, 'established');
});

s('only an operator may ask for a retry; the retry runs the step again and is recorded', async (ctx) => {
  const m = ctx.mesh!;
  const byClient = await m.nsm('alice', ['workflow', 'retry', ctx.position!]);
  assert.is(byClient.code, 1);
  assert.match(byClient.stderr, /^nsm workflow: (alice \(client\) may not send workflow\.retry|.*Permissions Violation|.*permission)/i);
  const r = await m.nsm('operator', ['workflow', 'retry', ctx.position!]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`retry of the workflow step at position ${ctx.position} requested`));
  const types = await eventually('the retry recorded as failed again', async () => {
    const h = await json<{ event: { type: string; actor: string } }[]>(m, 'operator', ['history', ctx.position!]);
    const t = h.map((x) => `${x.event.type}/${x.event.actor}`);
    return t.length === 3 ? t : undefined;
  }, { timeoutMs: 30000 });
  assert.equal(types, ['WorkflowStepFailed/control-plane', 'WorkflowStepRetryRequested/operator', 'WorkflowStepFailed/control-plane']);
  const failed = await json<{ failures: number; attempts: number }[]>(m, 'operator', ['workflow', 'ls']);
  assert.equal(failed.map((f) => [f.failures, f.attempts]), [[2, 10]]);
});

s('the checkpoint moved past the step: a restart does not try it again', async (ctx) => {
  const m = ctx.mesh!;
  const up = await m.restart();
  const again = await json<{ state: string }>(m, 'alice', ['connect', 'web', '--node', 'n1', '--netns', 'ns2', '--wait', '--id', 'after-restart']);
  assert.is(again.state, 'established');
  assert.equal(up.logs('process manager step failed; retrying'), [], 'no attempt at the poison commit after the restart');
  assert.is((await json<{ failedSteps: number }>(m, 'operator', ['status'])).failedSteps, 1);
});

s.run();
