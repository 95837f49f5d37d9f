// Fault injection on the simulated dataplane: a cut datapath, a lost node, an agent offline with
// commands pending, a connection its client stopped refreshing, and the leadership lease.
import { randomUUID } from 'node:crypto';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import type { MeshClient } from '../../src/client/index.ts';
import { startControlPlane } from '../../src/runtime/controlPlane.ts';
import { eventually, sleep } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';

type Row = {
  id: string;
  state: string;
  networkServiceEndpointName?: string;
  generation: number;
  closeReason?: string;
  context?: { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] } };
};
type History = { event: { type: string; data: Record<string, unknown> } }[];

const conn = async (c: MeshClient, id: string) => must(await c.query<Row>('connection', { id }));
const history = async (c: MeshClient, id: string) => must(await c.query<History>('history', { id }));

// ---------------------------------------------------------------------------------------------
const dp = suite<{ mesh?: TestMesh; c?: MeshClient }>('healing: a broken datapath', {});
dp.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1', 'n2'], healing: { tickMs: 200, nodeTimeoutMs: 60_000 }, agent: { livenessIntervalMs: 150, livenessFailures: 2 } });
  const c = (ctx.c = await ctx.mesh.client('admin'));
  must(await c.send('service.register', { name: 'svc' }));
  must(await c.send('endpoint.register', { name: 'ep-1', node: 'n1', prefix: '10.1.0.0/24', networkServiceNames: ['svc'] }));
  must(await c.send('endpoint.register', { name: 'ep-2', node: 'n2', prefix: '10.2.0.0/24', networkServiceNames: ['svc'] }));
});
dp.after(async (ctx) => {
  await ctx.mesh?.stop();
});

dp('a transient cut is detected and repaired in place, on the same endpoint with the same addresses', async (ctx) => {
  const c = ctx.c!;
  const id = randomUUID();
  must(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n1' }));
  assert.is(must(await c.waitForConnection(id, 10_000)).state, 'established');
  const before = await conn(c, id);
  assert.is(before.networkServiceEndpointName, 'ep-1');
  const dst = before.context!.ipContext.dstIpAddrs[0]!;
  const n1 = ctx.mesh!.agents.get('n1')!.dataplane;
  n1.cutDatapathTo(dst);
  // The repair re-programs the path; a real cut that the re-programming clears is modelled by lifting it then.
  await eventually('heal started', async () => (await history(c, id)).some((h) => h.event.type === 'ConnectionHealing') || undefined);
  n1.restoreDatapathTo(dst);
  const after = await eventually('re-established on a new generation', async () => {
    const r = await conn(c, id);
    return r.state === 'established' && r.generation === 2 ? r : undefined;
  });
  assert.is(after.networkServiceEndpointName, 'ep-1', 'repaired in place');
  assert.equal(after.context!.ipContext, before.context!.ipContext, 'same addresses');
  const h = await history(c, id);
  const types = h.map((x) => x.event.type);
  assert.ok(types.includes('DatapathDown'), types.join(','));
  const healed = h.find((x) => x.event.type === 'ConnectionHealed')!.event.data;
  assert.is(healed.cause, 'datapath');
  assert.is(healed.newEndpoint, 'ep-1');
  assert.is(h.find((x) => x.event.type === 'ConnectionHealing')!.event.data.inPlace, true);
});

dp('a cut that survives the in-place repair moves the connection to another endpoint', async (ctx) => {
  const c = ctx.c!;
  const id = randomUUID();
  must(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n1' }));
  assert.is(must(await c.waitForConnection(id, 10_000)).state, 'established');
  const before = await conn(c, id);
  assert.is(before.networkServiceEndpointName, 'ep-1');
  const dst = before.context!.ipContext.dstIpAddrs[0]!;
  ctx.mesh!.agents.get('n1')!.dataplane.cutDatapathTo(dst);
  const after = await eventually('moved to ep-2', async () => {
    const r = await conn(c, id);
    return r.state === 'established' && r.networkServiceEndpointName === 'ep-2' ? r : undefined;
  });
  assert.ok(after.context!.ipContext.dstIpAddrs[0]!.startsWith('10.2.0.'), 'addresses from the new endpoint');
  const heals = (await history(c, id)).filter((x) => x.event.type === 'ConnectionHealing').map((x) => x.event.data);
  assert.is(heals.length, 2);
  assert.is(heals[0]!.inPlace, true);
  assert.is(heals[1]!.inPlace, false);
  assert.is(heals[1]!.oldEndpoint, 'ep-1');
  // The endpoint side on ep-1's node is gone, the new one is on n2.
  await eventually('old endpoint side removed', () =>
    [...ctx.mesh!.agents.get('n1')!.dataplane.programmed.values()].every((s) => !(s.connectionId === id && s.side === 'endpoint')) || undefined,
  );
  assert.ok([...ctx.mesh!.agents.get('n2')!.dataplane.programmed.values()].some((s) => s.connectionId === id && s.side === 'endpoint'));
  ctx.mesh!.agents.get('n1')!.dataplane.restoreDatapathTo(dst);
});
dp.run();

// ---------------------------------------------------------------------------------------------
const nd = suite<{ mesh?: TestMesh; c?: MeshClient; onN2: string[]; toN2: string[] }>('healing: a node is lost and comes back', { onN2: [], toN2: [] });
nd.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1', 'n2'], healing: { tickMs: 100, nodeTimeoutMs: 1500, downGraceMs: 60_000 }, agent: { heartbeatMs: 300, livenessIntervalMs: 0 } });
  const c = (ctx.c = await ctx.mesh.client('admin'));
  must(await c.send('service.register', { name: 'svc' }));
  must(await c.send('endpoint.register', { name: 'ep-1', node: 'n1', prefix: '10.1.0.0/24', networkServiceNames: ['svc'] }));
  must(await c.send('endpoint.register', { name: 'ep-2', node: 'n2', prefix: '10.2.0.0/24', networkServiceNames: ['svc'] }));
  for (let i = 0; i < 4; i++) {
    const a = randomUUID();
    must(await c.send('connection.request', { connectionId: a, networkService: 'svc', clientNode: 'n2' }));
    ctx.onN2.push(a);
  }
  // Clients on n1 that are served by ep-2 on n2: the labels pick it.
  must(await c.send('service.register', { name: 'remote', matches: [{ sourceSelector: {}, routes: [{ destinationSelector: { site: 'two' } }], fallthrough: true }] }));
  must(await c.send('endpoint.register', { name: 'ep-2r', node: 'n2', prefix: '10.3.0.0/24', networkServiceNames: ['remote'], networkServiceLabels: { remote: { labels: { site: 'two' } } } }));
  must(await c.send('endpoint.register', { name: 'ep-1r', node: 'n1', prefix: '10.4.0.0/24', networkServiceNames: ['remote'] }));
  for (let i = 0; i < 3; i++) {
    const b = randomUUID();
    must(await c.send('connection.request', { connectionId: b, networkService: 'remote', clientNode: 'n1' }));
    ctx.toN2.push(b);
  }
  for (const id of [...ctx.onN2, ...ctx.toN2]) assert.is(must(await c.waitForConnection(id, 10_000)).state, 'established');
  for (const id of ctx.toN2) assert.is((await conn(c, id)).networkServiceEndpointName, 'ep-2r');
});
nd.after(async (ctx) => {
  await ctx.mesh?.stop();
});

nd('its agent goes silent: NodeLost; its endpoints expire and their connections move; its clients go down', async (ctx) => {
  const c = ctx.c!;
  const n2Dataplane = await ctx.mesh!.stopNode('n2');
  (ctx as unknown as { n2: typeof n2Dataplane }).n2 = n2Dataplane;
  const nodes = await eventually('n2 lost', async () => {
    const r = must(await c.query<{ name: string; status: string }[]>('nodes'));
    return r.find((n) => n.name === 'n2')?.status === 'lost' ? r : undefined;
  });
  assert.ok(nodes);
  for (const id of ctx.toN2) {
    const r = await eventually(`connection ${id} moved off n2`, async () => {
      const x = await conn(c, id);
      return x.state === 'established' && x.networkServiceEndpointName === 'ep-1r' ? x : undefined;
    });
    assert.ok(r);
  }
  for (const id of ctx.onN2) {
    const r = await eventually(`connection ${id} down`, async () => {
      const x = await conn(c, id);
      return x.state === 'down' ? x : undefined;
    });
    assert.ok(r);
  }
  const endpoints = must(await c.query<{ name: string }[]>('endpoints')).map((e) => e.name).sort();
  assert.equal(endpoints, ['ep-1', 'ep-1r'], "n2's endpoints expired with it");
});

nd('the node comes back: its clients\' connections are restored, on a new generation', async (ctx) => {
  const c = ctx.c!;
  const n2 = (ctx as unknown as { n2: Parameters<TestMesh['addNode']>[1] }).n2;
  await ctx.mesh!.addNode('n2', n2);
  await ctx.mesh!.agents.get('n2')!.agent.ready;
  for (const id of ctx.onN2) {
    const r = await eventually(`connection ${id} restored`, async () => {
      const x = await conn(c, id);
      return x.state === 'established' && x.generation >= 2 ? x : undefined;
    });
    // ep-2 expired with the node, so the connection is now served by ep-1 across nodes.
    assert.is(r.networkServiceEndpointName, 'ep-1');
    const types = (await history(c, id)).map((h) => h.event.type);
    for (const t of ['ConnectionDown', 'ConnectionHealing', 'ConnectionHealed']) assert.ok(types.includes(t), `${t} in ${types.join(',')}`);
  }
  const nodes = must(await c.query<{ name: string; status: string }[]>('nodes'));
  assert.is(nodes.find((n) => n.name === 'n2')!.status, 'ready');
});
nd.run();

// ---------------------------------------------------------------------------------------------
const gr = suite<{ mesh?: TestMesh; c?: MeshClient }>('healing: a lost client node past its grace period', {});
gr.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1', 'n2'], healing: { tickMs: 100, nodeTimeoutMs: 1000, downGraceMs: 1000 }, agent: { heartbeatMs: 200, livenessIntervalMs: 0 } });
  const c = (ctx.c = await ctx.mesh.client('admin'));
  must(await c.send('service.register', { name: 'svc' }));
  must(await c.send('endpoint.register', { name: 'ep-1', node: 'n1', prefix: '10.1.0.0/24', networkServiceNames: ['svc'] }));
});
gr.after(async (ctx) => {
  await ctx.mesh?.stop();
});
gr('its connections are closed with the reason, and their endpoint sides removed', async (ctx) => {
  const c = ctx.c!;
  const id = randomUUID();
  must(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n2' }));
  assert.is(must(await c.waitForConnection(id, 10_000)).state, 'established');
  await ctx.mesh!.stopNode('n2');
  const closed = await eventually('closed after the grace period', async () => {
    const x = await conn(c, id);
    return x.state === 'closed' ? x : undefined;
  });
  assert.match(closed.closeReason!, /client node n2 lost since .* longer than the 1 s grace period/);
  await eventually('endpoint side removed on n1', () => ctx.mesh!.agents.get('n1')!.dataplane.programmed.size === 0 || undefined);
});
gr.run();

// ---------------------------------------------------------------------------------------------
const off = suite<{ mesh?: TestMesh; c?: MeshClient }>('healing: an agent offline with commands pending', {});
off.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1', 'n2'], healing: { tickMs: 200, nodeTimeoutMs: 60_000 }, agent: { livenessIntervalMs: 0 } });
  const c = (ctx.c = await ctx.mesh.client('admin'));
  must(await c.send('service.register', { name: 'svc' }));
  must(await c.send('endpoint.register', { name: 'ep-1', node: 'n1', prefix: '10.1.0.0/24', networkServiceNames: ['svc'] }));
});
off.after(async (ctx) => {
  await ctx.mesh?.stop();
});
off('commands sent while the agent is down are carried out when it returns', async (ctx) => {
  const c = ctx.c!;
  const old = randomUUID();
  must(await c.send('connection.request', { connectionId: old, networkService: 'svc', clientNode: 'n2' }));
  assert.is(must(await c.waitForConnection(old, 10_000)).state, 'established');
  const n2 = await ctx.mesh!.stopNode('n2');
  assert.ok([...n2.programmed.keys()].some((k) => k.startsWith(old)), 'the old connection is programmed on n2');
  const fresh = randomUUID();
  must(await c.send('connection.request', { connectionId: fresh, networkService: 'svc', clientNode: 'n2' }));
  must(await c.send('connection.close', { connectionId: old }));
  await sleep(500);
  // Planning takes the process manager three steps after the request's reply (addresses, tunnel,
  // plan): wait for them, then the connection must stay there without n2's agent.
  const planned = await eventually('the fresh connection planned', async () => {
    const x = await conn(c, fresh);
    return x.state === 'path-planned' ? x : undefined;
  }, { timeoutMs: 10_000, describe: () => conn(c, fresh) });
  assert.is(planned.state, 'path-planned', 'waiting for the n2 agent');
  await ctx.mesh!.addNode('n2', n2);
  assert.is(must(await c.waitForConnection(fresh, 10_000)).state, 'established');
  await eventually('the closed connection is removed from n2', () => ![...n2.programmed.keys()].some((k) => k.startsWith(old)) || undefined);
  assert.ok([...n2.programmed.keys()].some((k) => k.startsWith(fresh)));
});
off.run();

// ---------------------------------------------------------------------------------------------
const ex = suite<{ mesh?: TestMesh; c?: MeshClient }>('healing: connection expiry', {});
ex.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1'], healing: { tickMs: 100, nodeTimeoutMs: 60_000 }, agent: { livenessIntervalMs: 0 } });
  const c = (ctx.c = await ctx.mesh.client('admin'));
  must(await c.send('service.register', { name: 'svc' }));
  must(await c.send('endpoint.register', { name: 'ep-1', node: 'n1', prefix: '10.1.0.0/24', networkServiceNames: ['svc'] }));
});
ex.after(async (ctx) => {
  await ctx.mesh?.stop();
});
ex('a client that vanished is torn down at expiry; one that refreshes keeps its connection', async (ctx) => {
  const c = ctx.c!;
  const gone = randomUUID();
  const kept = randomUUID();
  for (const id of [gone, kept]) must(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n1', expirationSeconds: 2 }));
  for (const id of [gone, kept]) assert.is(must(await c.waitForConnection(id, 10_000)).state, 'established');
  const refresher = setInterval(() => void c.send('connection.refresh', { connectionId: kept, expirationSeconds: 2 }), 500);
  try {
    const closed = await eventually('the vanished one closed', async () => {
      const x = await conn(c, gone);
      return x.state === 'closed' ? x : undefined;
    }, { timeoutMs: 10_000 });
    assert.match(closed.closeReason!, /^expired: the client did not refresh it before /);
    await sleep(1500);
    assert.is((await conn(c, kept)).state, 'established');
    const types = (await history(c, gone)).map((h) => h.event.type);
    assert.ok(types.includes('ConnectionExpired'));
  } finally {
    clearInterval(refresher);
  }
  await eventually('sides of the expired connection removed', () =>
    ![...ctx.mesh!.agents.get('n1')!.dataplane.programmed.keys()].some((k) => k.startsWith(gone)) || undefined,
  );
});
ex.run();

// ---------------------------------------------------------------------------------------------
const ls = suite<{ mesh?: TestMesh }>('healing: one leader among control-plane replicas', {});
ls.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: [], healing: { leaseTtlMs: 1200 } });
});
ls.after(async (ctx) => {
  await ctx.mesh?.stop();
});
ls('exactly one replica leads; when it stops, another takes over', async (ctx) => {
  const mesh = ctx.mesh!;
  const first = mesh.cp!;
  const second = await startControlPlane({ nc: await mesh.nats.connect(), domain: mesh.domain, log: createLogger('cp2'), healing: { leaseTtlMs: 1200 } });
  let running = [first, second];
  try {
    await sleep(1000);
    assert.is([first.isLeader(), second.isLeader()].filter(Boolean).length, 1, 'exactly one leader');
    const leader = first.isLeader() ? first : second;
    const standby = leader === first ? second : first;
    await leader.stop();
    running = [standby];
    await eventually('the standby takes over', () => standby.isLeader() || undefined, { timeoutMs: 5000 });
  } finally {
    // The mesh stops whichever replica is left as its own.
    mesh.cp = running[0];
    for (const cp of running.slice(1)) await cp.stop();
  }
});
ls.run();
