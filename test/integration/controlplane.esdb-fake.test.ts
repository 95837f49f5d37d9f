// The control plane on the EventStoreDB adapter, with the adapter over the in-memory FAKE
// EventStoreDB client (test/lib/fakeEsdb.ts): real nats-server, real control plane, process
// manager and simulated node agent. Shows the adapter is wired right (positions that are log
// offsets, read-your-writes, restart from the store); says nothing about a real ESDB server.
import { randomUUID } from 'node:crypto';
import * as assert from 'uvu/assert';
import { esdbEventStore } from '../../infra/eventstore/esdb.ts';
import { createLogger } from '../../infra/log.ts';
import { startControlPlane } from '../../src/runtime/controlPlane.ts';
import { FakeEsdb } from '../lib/fakeEsdb.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';

interface Ctx {
  mesh?: TestMesh;
  fake: FakeEsdb;
}
const s = suite<Ctx>('control plane on the esdb adapter over the FAKE client (simulated dataplane)', { fake: new FakeEsdb() });
const log = createLogger('test', {}, () => undefined);

const startOnEsdb = async (ctx: Ctx) => {
  const mesh = ctx.mesh!;
  const store = esdbEventStore(ctx.fake, mesh.domain, { log });
  mesh.cp = await startControlPlane({ nc: await mesh.nats.connect(), domain: mesh.domain, log, store });
  return mesh.cp;
};

s.before(async (ctx) => {
  ctx.fake.systemNoiseEvery = 2;
  ctx.mesh = await startTestMesh({ controlPlane: false, domain: 'esdbfake' });
  await startOnEsdb(ctx);
  await ctx.mesh.addNode('node-a');
  await ctx.mesh.agents.get('node-a')!.agent.ready;
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s('register, connect, establish, close: every event lands in ESDB streams of the domain', async (ctx) => {
  const c = await ctx.mesh!.client('alice');
  const reply = must(await c.send('service.register', { name: 'icmp' }), 'register service');
  assert.ok('position' in reply && BigInt(reply.position!) > 1000n, 'the reply carries an ESDB log position');
  must(await c.send('endpoint.register', { name: 'ep1', networkServiceNames: ['icmp'], node: 'node-a', prefix: '10.10.0.0/24' }), 'register endpoint');
  const id = randomUUID();
  must(await c.send('connection.request', { connectionId: id, networkService: 'icmp', clientNode: 'node-a' }), 'request');
  assert.is(must(await c.waitForConnection(id, 10000), 'wait').state, 'established');
  must(await c.send('connection.close', { connectionId: id }), 'close');
  const history = must(await c.query<{ event: { type: string } }[]>('history', { id }));
  assert.ok(history.some((h) => h.event.type === 'ConnectionClosed'), 'history is read back from the ESDB streams');
  const streams = new Set(ctx.fake.log.map((r) => r.streamId).filter((n) => !n.startsWith('$')));
  assert.ok([...streams].every((n) => n.startsWith('nsm.esdbfake.')), [...streams].join(', '));
  assert.ok(streams.has(`nsm.esdbfake.connection.${id}`));
});

s('a restarted control plane rebuilds its view from the ESDB store', async (ctx) => {
  // The live model changes in place: keep the position as it is now.
  const before = structuredClone(ctx.mesh!.cp!.view.current);
  await ctx.mesh!.cp!.stop();
  // The process manager may still have appended while stopping (address release after the close).
  const last = Number(must(await esdbEventStore(ctx.fake, ctx.mesh!.domain, { log }).lastPosition()(), 'lastPosition'));
  // Positions belong to one store: the process manager's checkpoint has a key of its own.
  const kv = await (await ctx.mesh!.nats.connect()).jetstream().views.kv('nsm_esdbfake_checkpoints');
  const checkpoint = Number((await kv.get('process-manager-esdb'))?.string());
  assert.ok(checkpoint >= before.position && checkpoint <= last, `checkpoint ${checkpoint} between ${before.position} and ${last}`);
  assert.is(await kv.get('process-manager'), null, "the JetStream store's key is untouched");

  const cp = await startOnEsdb(ctx);
  assert.is(cp.view.current.position, last, 'caught up to the last commit in the store');
  assert.equal(Object.keys(cp.view.current.connections.byId), Object.keys(before.connections.byId));
  assert.is(Object.keys(before.connections.byId).length, 1);
  const c = await ctx.mesh!.client('bob');
  const services = must(await c.query<{ name: string }[]>('services'));
  assert.equal(services.map((x) => x.name), ['icmp']);
});

s.run();
