// The control plane (its own OS process) is SIGKILLed while it heals 500 connections away from
// an endpoint that stopped refreshing, and started again: the heal completes from the log, and
// each connection is healed exactly once.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { Subscription } from 'nats';
import * as assert from 'uvu/assert';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { createLogger } from '../../infra/log.ts';
import { subjectsFor } from '../../src/contracts/subjects.ts';
import type { ConnectionEvent } from '../../aggregates/connection/index.ts';
import type { EventEnvelope, StoredCommit } from '../../src/contracts/envelope.ts';
import { keepEndpointRegistered, type KeptRegistration } from '../../src/client/index.ts';
import { eventually } from '../lib/eventually.ts';
import { logWithEvery } from '../lib/eventLog.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';
import { startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

const dec = new TextDecoder();
const N = 500;

const startControlPlaneProcess = async (url: string, domain: string): Promise<NsmProcess> => {
  // A short lease, so that the restarted process does not wait out the killed one's.
  const p = startNsm(['control-plane', '--insecure', '--server', url, '--domain', domain, '--lease-ttl', '2s'], { NSM_LOG_LEVEL: 'info' });
  await p.waitFor('"control plane running"', 60000);
  return p;
};

type Ctx = { mesh?: TestMesh; cps: NsmProcess[]; regs: KeptRegistration[]; sub?: Subscription };
const s = suite<Ctx>('control plane killed during a heal of 500 connections', { cps: [], regs: [] });

s.after(async (ctx) => {
  ctx.sub?.unsubscribe();
  for (const r of ctx.regs) await r.stop({ unregister: false });
  await Promise.all(ctx.cps.map((p) => p.stop('SIGKILL')));
  await ctx.mesh?.stop();
});

s('the heal completes after the restart, each connection healed once', async (ctx) => {
  const mesh = (ctx.mesh = await startTestMesh({ domain: 'crashheal', controlPlane: false }));
  ctx.cps.push(await startControlPlaneProcess(mesh.nats.url, mesh.domain));
  for (const n of ['n1', 'n2', 'n3']) await mesh.addNode(n);
  for (const a of mesh.agents.values()) await a.agent.ready;
  const admin = await mesh.client('admin');
  const log = createLogger('test');
  must(await admin.send('service.register', { name: 'svc' }));
  for (const [name, node, prefix] of [['ep-a', 'n1', '10.1.0.0/22'], ['ep-b', 'n2', '10.2.0.0/22'], ['ep-c', 'n3', '10.3.0.0/22']] as const) {
    const kept = await keepEndpointRegistered(admin, { name, node, prefix, networkServiceNames: ['svc'] }, { expirationSeconds: 3, log });
    if (E.isLeft(kept)) throw new Error(kept.left);
    ctx.regs.push(kept.right);
  }

  // All 500 clients on n1: the local endpoint ep-a serves every one of them.
  const ids = Array.from({ length: N }, () => randomUUID());
  await Promise.all(ids.map(async (id) => must(await admin.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n1' }, { wait: false }))));
  await eventually('all established on ep-a', async () => {
    const rows = must(await admin.query<{ networkServiceEndpointName: string }[]>('connections', { state: 'established' }));
    return rows.length === N && rows.every((r) => r.networkServiceEndpointName === 'ep-a') ? true : undefined;
  }, { timeoutMs: 120_000, intervalMs: 500 });

  // Count heals as they are stored.
  const healed = new Set<string>();
  const nc = await mesh.nats.connect();
  ctx.sub = nc.subscribe(subjectsFor(mesh.domain).event('connection.>'), {
    callback: (_e, m) => {
      const commit = JSON.parse(dec.decode(m.data)) as StoredCommit;
      if (commit.events.some((e) => e.type === 'ConnectionHealed')) healed.add(commit.stream);
    },
  });

  // ep-a stops refreshing; kill the control plane once the heal is well under way.
  await ctx.regs.shift()!.stop({ unregister: false });
  await eventually('a fifth of the heals done', () => healed.size >= N / 5 || undefined, { timeoutMs: 60_000, intervalMs: 20 });
  const first = ctx.cps[0]!;
  first.child.kill('SIGKILL');
  await first.exited;
  const atKill = healed.size;
  assert.ok(atKill < N, `killed mid-heal (${atKill} of ${N} healed)`);
  ctx.cps.push(await startControlPlaneProcess(mesh.nats.url, mesh.domain));
  await eventually('every connection healed', () => healed.size === N || undefined, { timeoutMs: 120_000, intervalMs: 100, describe: () => ({ healed: healed.size }) });
  process.stderr.write(`killed at ${atKill}/${N} healed; all ${N} healed after the restart\n`);

  // The log: one expiry, one heal per connection, one move, consistent pools.
  const store = await jetStreamEventStore(await mesh.nats.connect(), mesh.domain);
  // The heals were counted off the plain event subject.
  const commits = await logWithEvery(store, 'ConnectionHealed', N);
  await store.close();
  const ids0 = new Set(commits.map((c) => c.commitId));
  assert.is(ids0.size, commits.length, 'no commit stored twice');
  assert.is(commits.flatMap((c) => c.events).filter((e) => e.type === 'EndpointExpired').length, 1, 'one EndpointExpired');
  const wrong: string[] = [];
  for (const id of ids) {
    const evs = commits.filter((c) => c.stream === `connection.${id}`).flatMap((c) => c.events as EventEnvelope<ConnectionEvent>[]);
    const count = (t: string) => evs.filter((e) => e.type === t).length;
    const healedEv = evs.find((e) => e.data.type === 'ConnectionHealed')?.data as Extract<ConnectionEvent, { type: 'ConnectionHealed' }> | undefined;
    const ok =
      count('ConnectionHealing') === 1 &&
      count('ConnectionHealed') === 1 &&
      count('EndpointSelected') === 2 &&
      count('PathPlanned') === 2 &&
      count('ConnectionEstablished') === 2 &&
      healedEv?.oldEndpoint === 'ep-a' &&
      (healedEv.newEndpoint === 'ep-b' || healedEv.newEndpoint === 'ep-c');
    if (!ok) wrong.push(`${id}: ${evs.map((e) => e.type).join(' ')}`);
  }
  assert.equal(wrong.slice(0, 3), [], `${wrong.length} connections were not healed exactly once`);
  const poolEvents = commits.filter((c) => c.stream.startsWith('pool.')).flatMap((c) => c.events.map((e) => ({ pool: c.stream, ...(e.data as unknown as { type: string; connectionId: string; pairs?: { src: string }[] }) })));
  // Pairs live now, by pool and client address; a release gives back every pair of its connection.
  const live = new Map<string, string>();
  for (const e of poolEvents) {
    if (e.type === 'AddressesAllocated') {
      for (const p of e.pairs ?? []) {
        const key = `${e.pool}#${p.src}`;
        assert.ok(!live.has(key), `pair ${key} handed out twice`);
        live.set(key, e.connectionId);
      }
    } else for (const [key, id] of live) if (id === e.connectionId && key.startsWith(`${e.pool}#`)) live.delete(key);
  }
  assert.equal([...live.keys()].filter((k) => k.startsWith('pool.ep-a#')), [], "nothing left allocated from ep-a's pool");
  assert.is(live.size, N, 'one live pair per connection');
});
s.run();
