// The control plane as its own OS process, SIGKILLed while 500 connection requests are in flight
// and started again; then two replicas sharing one command consumer. Exactly-once is checked on
// the event log itself, not only on the projections.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection, Subscription } from 'nats';
import * as assert from 'uvu/assert';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { subjectsFor } from '../../src/contracts/subjects.ts';
import type { MeshClient } from '../../src/client/index.ts';
import { CONTROL_PLANE_CONSUMER } from '../../src/runtime/controlPlane.ts';
import type { StoredCommit } from '../../src/contracts/envelope.ts';
import { eventually } from '../lib/eventually.ts';
import { logWithEvery } from '../lib/eventLog.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';
import { startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

const dec = new TextDecoder();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A control plane process; info logs so that its "running" and "stopped" lines can be read. */
const startControlPlaneProcess = async (url: string, domain: string): Promise<NsmProcess> => {
  const p = startNsm(['control-plane', '--insecure', '--server', url, '--domain', domain], { NSM_LOG_LEVEL: 'info' });
  await p.waitFor('"control plane running"', 60000);
  return p;
};

/** Counts settled connections from the live event subject (core NATS sees every stored commit). */
const watchSettled = (nc: NatsConnection, domain: string) => {
  const requested = new Set<string>();
  const established = new Set<string>();
  const failed = new Map<string, string>();
  const sub: Subscription = nc.subscribe(subjectsFor(domain).event('connection.>'), {
    callback: (_err, m) => {
      const commit = JSON.parse(dec.decode(m.data)) as StoredCommit;
      const id = commit.stream.slice('connection.'.length);
      for (const e of commit.events) {
        const data = e.data as { type: string; reason?: string };
        if (data.type === 'ConnectionRequested') requested.add(id);
        if (data.type === 'ConnectionEstablished') established.add(id);
        if (data.type === 'ConnectionFailed') failed.set(id, data.reason ?? '');
      }
    },
  });
  return { requested, established, failed, stop: () => sub.unsubscribe() };
};

/** For a failure message: the event types of the connections that have not settled. */
const unsettled = async (mesh: TestMesh, ids: readonly string[], settled: ReadonlySet<string>): Promise<string> => {
  const nc = await mesh.nats.connect();
  const store = await jetStreamEventStore(nc, mesh.domain);
  const lines: string[] = [];
  for (const id of ids.filter((i) => !settled.has(i)).slice(0, 5)) {
    const r = await store.readStream(`connection.${id}`)();
    lines.push(`${id}: ${E.isRight(r) ? r.right.commits.flatMap((c) => c.events.map((e) => e.type)).join(' ') : r.left.message}`);
  }
  await store.close();
  return lines.join('\n');
};

const untilTrue = async (what: string, timeoutMs: number, check: () => boolean | Promise<boolean>) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
};

const waitSettled = async (mesh: TestMesh, ids: readonly string[], watch: ReturnType<typeof watchSettled>, what: string) => {
  try {
    await untilTrue(what, 120000, () => watch.established.size + watch.failed.size >= ids.length);
  } catch (e) {
    const settled = new Set([...watch.established, ...watch.failed.keys()]);
    throw new Error(`${(e as Error).message}: ${watch.established.size} established, ${watch.failed.size} failed; some that did not settle:\n${await unsettled(mesh, ids, settled)}`);
  }
};

const setUpService = async (admin: MeshClient) => {
  must(await admin.send('service.register', { name: 'svc' }), 'register service');
  // /21: 1022 usable pairs each, more than 500 connections need even if one endpoint took all.
  must(await admin.send('endpoint.register', { name: 'ep-1', node: 'n1', networkServiceNames: ['svc'], prefix: '10.1.0.0/21', expirationSeconds: 3600 }), 'register ep-1');
  must(await admin.send('endpoint.register', { name: 'ep-2', node: 'n2', networkServiceNames: ['svc'], prefix: '10.2.0.0/21', expirationSeconds: 3600 }), 'register ep-2');
};

/** Publishes every request before any is answered. */
const fireRequests = async (c: MeshClient, ids: readonly string[]) => {
  await Promise.all(
    ids.map(async (id, i) =>
      must(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: i % 2 === 0 ? 'n1' : 'n2' }, { wait: false }), 'publish request'),
    ),
  );
};

const countBy = <T>(items: readonly T[], key: (t: T) => string): Map<string, number> => {
  const m = new Map<string, number>();
  for (const t of items) m.set(key(t), (m.get(key(t)) ?? 0) + 1);
  return m;
};

/** Every assertion that can be made from the log alone, for exactly these connection ids. */
const assertExactlyOnce = async (mesh: TestMesh, ids: readonly string[]) => {
  const nc = await mesh.nats.connect();
  const store = await jetStreamEventStore(nc, mesh.domain);
  // The commits were counted off the plain event subject.
  const commits = await logWithEvery(store, 'ConnectionEstablished', ids.length);
  await store.close();

  const dupCommitIds = [...countBy(commits, (c) => c.commitId)].filter(([, n]) => n > 1);
  assert.equal(dupCommitIds, [], 'no commit id is stored twice');
  const eventIds = commits.flatMap((c) => c.events.map((e) => e.id));
  assert.is(new Set(eventIds).size, eventIds.length, 'no event id is stored twice');

  const wanted = new Set(ids);
  const connStreams = new Set(commits.filter((c) => c.stream.startsWith('connection.')).map((c) => c.stream.slice('connection.'.length)));
  assert.equal([...connStreams].filter((id) => !wanted.has(id)), [], 'no connection the test did not ask for');
  assert.is(connStreams.size, ids.length, 'a stream for every request: none lost');

  const expected = { ConnectionRequested: 1, EndpointSelected: 1, PathPlanned: 1, DataplaneProgrammed: 2, ConnectionEstablished: 1 };
  const byConnection = new Map<string, Map<string, number>>();
  for (const c of commits) {
    if (!c.stream.startsWith('connection.')) continue;
    const counts = byConnection.get(c.stream) ?? new Map<string, number>();
    for (const e of c.events) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
    byConnection.set(c.stream, counts);
  }
  const wrong: string[] = [];
  for (const [stream, counts] of byConnection) {
    const got = Object.fromEntries(counts);
    if (JSON.stringify(got, Object.keys(expected).sort()) !== JSON.stringify(expected, Object.keys(expected).sort()) || counts.size !== Object.keys(expected).length) {
      wrong.push(`${stream}: ${JSON.stringify(got)}`);
    }
  }
  assert.equal(wrong.slice(0, 5), [], `every connection has exactly ${JSON.stringify(expected)} (${wrong.length} do not)`);

  const allocations = commits
    .filter((c) => c.stream.startsWith('pool.'))
    .flatMap((c) => c.events.filter((e) => e.type === 'AddressesAllocated').map((e) => ({ pool: c.stream, ...(e.data as unknown as { connectionId: string; pairs: { src: string; dst: string }[] }) })));
  const releases = commits.flatMap((c) => c.events.filter((e) => e.type === 'AddressesReleased'));
  assert.is(releases.length, 0, 'nothing was released: every address handed out is in use');
  const perConnection = countBy(allocations, (a) => a.connectionId);
  assert.is(perConnection.size, ids.length, 'an allocation for every connection');
  assert.equal([...perConnection].filter(([, n]) => n !== 1), [], 'exactly one AddressesAllocated per connection');
  const pairs = allocations.flatMap((a) => a.pairs.map((p) => `${a.pool}#${p.src}-${p.dst}`));
  assert.is(new Set(pairs).size, pairs.length, 'no address pair handed out twice');
  const addresses = allocations.flatMap((a) => a.pairs.flatMap((p) => [p.src, p.dst]));
  assert.is(new Set(addresses).size, addresses.length, 'no address handed out twice');

  // The projection agrees with the log.
  const admin = await mesh.client('auditor');
  // The last commits were seen on the event subject; the replica that answers (either one, in
  // the pair) folds them from its subscription, which may trail that subject.
  const established = () => admin.query<{ id: string; state: string }[]>('connections', { state: 'established' });
  const rows = await eventually('the connections query to show every one established', async () => {
    const r = must(await established());
    return r.length === ids.length ? r : undefined;
  }, { describe: async () => ({ established: must(await established()).length }) });
  assert.is(rows.length, ids.length, 'the connections query shows every one established');

  // Each side was programmed once on the simulated dataplanes, not once per delivery.
  const journal = [...mesh.agents.values()].flatMap((a) => a.dataplane.journal.filter((j) => j.op === 'program'));
  assert.is(journal.length, 2 * ids.length, 'one dataplane programming per side');
  assert.is(new Set(journal.map((j) => j.key)).size, 2 * ids.length);

  // Nothing is left behind in the command stream. A command is acked after its commit is stored
  // and answered, and one that a killed replica applied but did not ack is redelivered only
  // after its ack wait: both can trail the log.
  const jsm = await nc.jetstreamManager();
  const consumer = () => jsm.consumers.info(subjectsFor(mesh.domain).streams.commands, CONTROL_PLANE_CONSUMER);
  const ci = await eventually('every command to be handled', async () => {
    const i = await consumer();
    return i.num_pending + i.num_ack_pending === 0 ? i : undefined;
  }, { timeoutMs: 30_000, describe: async () => { const i = await consumer(); return { num_pending: i.num_pending, num_ack_pending: i.num_ack_pending }; } });
  assert.is(ci.num_pending + ci.num_ack_pending, 0, 'every command was handled');
  return { commits: commits.length };
};

type Ctx = { mesh?: TestMesh; cps: NsmProcess[] };
const s = suite<Ctx>('control plane crash and replicas (control plane as an OS process, simulated dataplane)', { cps: [] });

const startMesh = async (ctx: Ctx, domain: string, replicas: number) => {
  ctx.mesh = await startTestMesh({ domain, controlPlane: false });
  for (let i = 0; i < replicas; i++) ctx.cps.push(await startControlPlaneProcess(ctx.mesh.nats.url, domain));
  await ctx.mesh.addNode('n1');
  await ctx.mesh.addNode('n2');
  for (const a of ctx.mesh.agents.values()) await a.agent.ready;
  return ctx.mesh;
};

s.after.each(async (ctx) => {
  await Promise.all(ctx.cps.map((p) => p.stop('SIGKILL')));
  ctx.cps = [];
  await ctx.mesh?.stop();
  ctx.mesh = undefined;
});

s('SIGKILL mid-load, restart: all 500 requests settle exactly once', async (ctx) => {
  const mesh = await startMesh(ctx, 'crash', 1);
  const client = await mesh.client('loader');
  await setUpService(client);
  const watch = watchSettled(await mesh.nats.connect(), mesh.domain);
  const ids = Array.from({ length: 500 }, () => randomUUID());

  const t0 = Date.now();
  await fireRequests(client, ids);
  await untilTrue('150 established before the kill', 60000, () => watch.established.size >= 150);
  const first = ctx.cps[0]!;
  first.child.kill('SIGKILL');
  const killed = await first.exited;
  const atKill = watch.established.size;
  const requestedAtKill = watch.requested.size;
  assert.is(killed.signal, 'SIGKILL');
  assert.ok(atKill < ids.length, `the kill came while requests were in flight (${atKill} of ${ids.length} established)`);
  assert.ok(requestedAtKill > atKill, 'some workflows were half done: requested, not yet established');

  // Requests keep arriving while no control plane runs: they wait in the command stream.
  await sleep(500);
  const restartedAt = Date.now();
  ctx.cps.push(await startControlPlaneProcess(mesh.nats.url, mesh.domain));
  await waitSettled(mesh, ids, watch, 'all 500 settled');
  const t1 = Date.now();
  watch.stop();
  assert.equal([...watch.failed].slice(0, 5), [], 'none failed');

  const { commits } = await assertExactlyOnce(mesh, ids);
  process.stdout.write(
    `    killed at ${atKill}/500 established (${requestedAtKill} requested), ${restartedAt - t0} ms after the first request; ` +
      `all established ${t1 - restartedAt} ms after the restart (${t1 - t0} ms in all, ${commits} commits in the log)\n`,
  );
});

s('two replicas share one command consumer: 200 requests settle exactly once', async (ctx) => {
  const mesh = await startMesh(ctx, 'pair', 2);
  const client = await mesh.client('loader');
  await setUpService(client);
  const watch = watchSettled(await mesh.nats.connect(), mesh.domain);
  const ids = Array.from({ length: 200 }, () => randomUUID());
  const t0 = Date.now();
  await fireRequests(client, ids);
  await waitSettled(mesh, ids, watch, 'all 200 settled');
  const t1 = Date.now();
  watch.stop();
  assert.equal([...watch.failed].slice(0, 5), [], 'none failed');
  await assertExactlyOnce(mesh, ids);

  const stats = [];
  for (const p of ctx.cps) {
    const r = await p.stop('SIGTERM');
    assert.is(r.code, 0, 'a replica stops cleanly on SIGTERM');
    const line = p.logs('control plane stopped')[0];
    assert.ok(line, 'the replica logs what it did when it stops');
    stats.push(line as { commandsApplied: number; commandsRejected: number; workflowSteps: number });
  }
  ctx.cps = [];
  for (const st of stats) assert.ok(st.commandsApplied > 0, `each replica applied commands (${stats.map((x) => x.commandsApplied).join(' + ')})`);
  // 3 registrations, 2 node joins, 200 requests, 400 dataplane reports; a command redelivered
  // after its ack_wait would be applied (as a no-op) once more, so this is a lower bound.
  assert.ok(stats.reduce((n, x) => n + x.commandsApplied, 0) >= 3 + 2 + 200 + 400, 'every command was applied');
  process.stdout.write(`    replicas applied ${stats.map((x) => x.commandsApplied).join(' + ')} commands; all 200 established in ${t1 - t0} ms\n`);
});

s.run();
