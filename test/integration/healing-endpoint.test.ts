// Endpoint death: an endpoint that stops refreshing expires, and every connection it served is
// healed onto the surviving endpoints, each exactly once, none lost. With no endpoint left a
// connection waits visibly and recovers by itself when one registers.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { ConnectionEvent } from '../../aggregates/connection/index.ts';
import { createLogger } from '../../infra/log.ts';
import type { MeshClient } from '../../src/client/index.ts';
import type { EventEnvelope, StoredCommit } from '../../src/contracts/envelope.ts';
import { keepEndpointRegistered, type KeptRegistration } from '../../src/client/index.ts';
import { eventually } from '../lib/eventually.ts';
import { readLog } from '../lib/eventLog.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';

type Row = { id: string; state: string; networkServiceEndpointName?: string; context?: { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] } } };
const log = createLogger('test');

const eventsOf = (commits: readonly StoredCommit[], stream: string) =>
  commits.filter((c) => c.stream === stream).flatMap((c) => c.events as EventEnvelope<ConnectionEvent>[]);

interface Ctx {
  mesh?: TestMesh;
  admin?: MeshClient;
  regs: Map<string, KeptRegistration>;
  ids: string[];
}
const s = suite<Ctx>('healing: an endpoint stops refreshing under 1,000 connections', { regs: new Map(), ids: [] });

s.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1', 'n2', 'n3'], healing: { tickMs: 200, nodeTimeoutMs: 60_000 } });
  const c = (ctx.admin = await ctx.mesh.client('admin'));
  must(await c.send('service.register', { name: 'svc' }));
  for (const [name, node, prefix] of [
    ['ep-a', 'n1', '10.1.0.0/20'],
    ['ep-b', 'n2', '10.2.0.0/20'],
    ['ep-c', 'n3', '10.3.0.0/20'],
  ] as const) {
    const kept = await keepEndpointRegistered(c, { name, node, prefix, networkServiceNames: ['svc'] }, { expirationSeconds: 3, log });
    if (E.isLeft(kept)) throw new Error(kept.left);
    ctx.regs.set(name, kept.right);
  }
});
s.after(async (ctx) => {
  for (const r of ctx.regs.values()) await r.stop({ unregister: false });
  await ctx.mesh?.stop();
});

s('1,000 connections spread over three endpoints are established', async (ctx) => {
  const c = await ctx.mesh!.client('clients');
  // Clients on all three nodes; each prefers its local endpoint, so the load is spread.
  ctx.ids = Array.from({ length: 1000 }, () => randomUUID());
  await Promise.all(
    ctx.ids.map(async (id, i) => must(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: `n${(i % 3) + 1}` }), 'request')),
  );
  const rows = await eventually('all 1,000 established', async () => {
    const r = must(await ctx.admin!.query<Row[]>('connections', { state: 'established' }));
    return r.length === 1000 ? r : undefined;
  }, { timeoutMs: 120_000, intervalMs: 500 });
  const onA = rows.filter((r) => r.networkServiceEndpointName === 'ep-a').length;
  assert.ok(onA > 200, `ep-a serves a real share (${onA})`);
});

s('ep-a stops refreshing: it expires and every one of its connections is healed onto ep-b or ep-c, once', async (ctx) => {
  const before = must(await ctx.admin!.query<Row[]>('connections', {}));
  const victims = new Set(before.filter((r) => r.networkServiceEndpointName === 'ep-a').map((r) => r.id));
  const stoppedAt = Date.now();
  await ctx.regs.get('ep-a')!.stop({ unregister: false });
  ctx.regs.delete('ep-a');

  await eventually('ep-a expired and all connections established elsewhere', async () => {
    const rows = must(await ctx.admin!.query<Row[]>('connections', {}));
    const ok = rows.length === 1000 && rows.every((r) => r.state === 'established' && r.networkServiceEndpointName !== 'ep-a');
    return ok || undefined;
  }, {
    timeoutMs: 90_000,
    intervalMs: 250,
    describe: async () => {
      const rows = must(await ctx.admin!.query<Row[]>('connections', {}));
      const by: Record<string, number> = {};
      for (const r of rows) by[`${r.state}@${r.networkServiceEndpointName}`] = (by[`${r.state}@${r.networkServiceEndpointName}`] ?? 0) + 1;
      return by;
    },
  });
  const healedAfterMs = Date.now() - stoppedAt;

  const endpoints = must(await ctx.admin!.query<{ name: string }[]>('endpoints'));
  assert.equal(endpoints.map((e) => e.name).sort(), ['ep-b', 'ep-c'], 'the expired endpoint is gone from the registry');

  const log = await readLog(ctx.mesh!.cp!.store);
  const expired = log.flatMap((c) => c.events).filter((e) => e.type === 'EndpointExpired');
  assert.is(expired.length, 1, 'one EndpointExpired');
  assert.is(expired[0]!.stream, 'endpoint.ep-a');

  const durations: number[] = [];
  for (const id of ctx.ids) {
    const evs = eventsOf(log, `connection.${id}`);
    const healed = evs.filter((e) => e.data.type === 'ConnectionHealed');
    if (victims.has(id)) {
      assert.is(healed.length, 1, `connection ${id} healed exactly once`);
      const h = healed[0]!.data as Extract<ConnectionEvent, { type: 'ConnectionHealed' }>;
      assert.is(h.cause, 'endpoint-expired');
      assert.is(h.oldEndpoint, 'ep-a');
      assert.ok(h.newEndpoint === 'ep-b' || h.newEndpoint === 'ep-c', `moved to a survivor, not ${h.newEndpoint}`);
      durations.push(h.durationMs);
      assert.is(evs.filter((e) => e.data.type === 'ConnectionRequested').length, 1);
    } else {
      assert.is(healed.length, 0, `connection ${id} was not on ep-a and was left alone`);
    }
  }
  assert.is(durations.length, victims.size);

  // Consistent addresses: no pair twice, nothing left allocated from the dead endpoint's pool.
  const rows = must(await ctx.admin!.query<Row[]>('connections', {}));
  const addrs = rows.flatMap((r) => [...r.context!.ipContext.srcIpAddrs, ...r.context!.ipContext.dstIpAddrs]);
  assert.is(new Set(addrs).size, 2000, 'no address handed out twice');
  assert.ok(addrs.every((a) => !a.startsWith('10.1.')), 'no stale address from ep-a');
  const allocated = must(await ctx.admin!.query<{ endpoint: string }[]>('addresses'));
  assert.is(allocated.filter((a) => a.endpoint === 'ep-a').length, 0, "ep-a's pool is empty");

  // Dataplanes: two sides per connection, and nothing left of ep-a's endpoint sides on n1.
  await eventually('dataplanes hold exactly the live sides', () => {
    const total = [...ctx.mesh!.agents.values()].reduce((n, a) => n + a.dataplane.programmed.size, 0);
    return total === 2000 || undefined;
  }, { describe: () => [...ctx.mesh!.agents.entries()].map(([n, a]) => [n, a.dataplane.programmed.size]) });
  const n1Endpoints = [...ctx.mesh!.agents.get('n1')!.dataplane.programmed.values()].filter((sp) => sp.side === 'endpoint');
  assert.is(n1Endpoints.length, 0, 'no endpoint side left on the dead endpoint\'s node');

  durations.sort((a, b) => a - b);
  const pct = (p: number) => durations[Math.min(durations.length - 1, Math.floor((p / 100) * durations.length))];
  process.stderr.write(
    `healed ${victims.size} connections; heal duration (ConnectionHealing -> established) p50 ${pct(50)} ms, p99 ${pct(99)} ms; ` +
      `all healed ${healedAfterMs} ms after the last refresh stopped (expiry 3 s)\n`,
  );
});
s.run();

const w = suite<{ mesh?: TestMesh; admin?: MeshClient; ids: string[] }>('healing: no endpoint left means waiting, then recovery', { ids: [] });
w.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1'], healing: { tickMs: 200, nodeTimeoutMs: 60_000 } });
  const c = (ctx.admin = await ctx.mesh.client('admin'));
  must(await c.send('service.register', { name: 'lonely' }));
  must(await c.send('endpoint.register', { name: 'only-one', node: 'n1', prefix: '10.9.0.0/24', networkServiceNames: ['lonely'] }));
  ctx.ids = Array.from({ length: 5 }, () => randomUUID());
  for (const id of ctx.ids) must(await c.send('connection.request', { connectionId: id, networkService: 'lonely', clientNode: 'n1' }));
  for (const id of ctx.ids) assert.is(must(await c.waitForConnection(id, 10_000)).state, 'established');
});
w.after(async (ctx) => {
  await ctx.mesh?.stop();
});

w('the only endpoint leaves: connections wait, visibly, with their sides removed', async (ctx) => {
  must(await ctx.admin!.send('endpoint.unregister', { name: 'only-one' }));
  const rows = await eventually('all waiting', async () => {
    const r = must(await ctx.admin!.query<(Row & { waitingSince?: string; healing?: unknown })[]>('connections', { state: 'waiting' }));
    return r.length === 5 ? r : undefined;
  });
  assert.ok(rows.every((r) => r.networkServiceEndpointName === undefined && r.context === undefined), 'no endpoint, no stale addresses');
  await eventually('sides removed', () => ctx.mesh!.agents.get('n1')!.dataplane.programmed.size === 0 || undefined);
  // The pool is released after the old sides are retired (never hand out an address still on an
  // interface), so it can trail the dataplane by one command.
  const addrs = await eventually('addresses released', async () => {
    const a = must(await ctx.admin!.query<unknown[]>('addresses'));
    return a.length === 0 ? a : undefined;
  }, { describe: async () => must(await ctx.admin!.query<unknown[]>('addresses')) });
  assert.equal(addrs, [], 'addresses released while waiting');
});

w('an endpoint registers: every waiting connection recovers by itself', async (ctx) => {
  must(await ctx.admin!.send('endpoint.register', { name: 'newcomer', node: 'n1', prefix: '10.8.0.0/24', networkServiceNames: ['lonely'] }));
  const rows = await eventually('all established again', async () => {
    const r = must(await ctx.admin!.query<Row[]>('connections', { state: 'established' }));
    return r.length === 5 ? r : undefined;
  });
  assert.ok(rows.every((r) => r.networkServiceEndpointName === 'newcomer'));
  assert.ok(rows.every((r) => r.context!.ipContext.dstIpAddrs[0]!.startsWith('10.8.0.')), 'addresses from the new endpoint');
  const history = must(await ctx.admin!.query<{ event: { type: string; data: Record<string, unknown> } }[]>('history', { id: ctx.ids[0]! }));
  const types = history.map((h) => h.event.type);
  for (const t of ['ConnectionHealing', 'ConnectionWaiting', 'EndpointSelected', 'ConnectionHealed']) assert.ok(types.includes(t), `history has ${t}: ${types.join(', ')}`);
  const healed = history.find((h) => h.event.type === 'ConnectionHealed')!.event.data;
  assert.is(healed.oldEndpoint, 'only-one');
  assert.is(healed.newEndpoint, 'newcomer');
  assert.is(healed.cause, 'endpoint-available');
  assert.ok((healed.durationMs as number) > 0, 'the outage is measured from the first heal step');
});
w.run();
