// 3 endpoints on 2 simulated nodes, 4 clients asking for 200 connections at once.
import { randomUUID } from 'node:crypto';
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';

type Row = { id: string; state: string; networkServiceEndpointName: string; clientNode: string; mechanism: { local: string; remote?: string }; context: { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] } }; labels: Record<string, string> };

const s = suite<{ mesh?: TestMesh; admin?: MeshClient; ids: Map<string, string> }>('200 concurrent connections over labelled endpoints', { ids: new Map() });

s.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1', 'n2'] });
  const c = (ctx.admin = await ctx.mesh.client('admin'));
  must(
    await c.send('service.register', {
      name: 'secure',
      matches: [
        { sourceSelector: { tier: 'gold' }, routes: [{ destinationSelector: { class: 'premium' } }], fallthrough: false },
        { sourceSelector: { tier: 'silver' }, routes: [{ destinationSelector: { class: 'standard' } }], fallthrough: false },
        // Applies to everyone else, finds nothing, falls through: every endpoint is a candidate.
        { sourceSelector: {}, routes: [{ destinationSelector: { class: 'none-such' } }], fallthrough: true },
      ],
    }),
  );
  const ep = (name: string, node: string, cls: string, prefix: string) =>
    c.send('endpoint.register', { name, node, prefix, networkServiceNames: ['secure'], networkServiceLabels: { secure: { labels: { class: cls } } } });
  must(await ep('ep-a', 'n1', 'premium', '10.1.0.0/24'));
  must(await ep('ep-b', 'n2', 'standard', '10.2.0.0/24'));
  must(await ep('ep-c', 'n2', 'premium', '10.3.0.0/24'));
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

const clients = [
  { actor: 'client-1', node: 'n1', labels: { tier: 'gold' } },
  { actor: 'client-2', node: 'n2', labels: { tier: 'gold' } },
  { actor: 'client-3', node: 'n1', labels: { tier: 'silver' } },
  { actor: 'client-4', node: 'n2', labels: { tier: 'bronze' } },
];

s('all 200 are established, by label and placement rules, with unique addresses', async (ctx) => {
  const mesh = ctx.mesh!;
  const requests = await Promise.all(
    clients.map(async (cl) => {
      const c = await mesh.client(cl.actor);
      return Promise.all(
        Array.from({ length: 50 }, async () => {
          const id = randomUUID();
          ctx.ids.set(id, cl.actor);
          must(await c.send('connection.request', { connectionId: id, networkService: 'secure', clientNode: cl.node, labels: cl.labels }), 'request');
          return must(await c.waitForConnection(id, 60000), 'settle');
        }),
      );
    }),
  );
  const settled = requests.flat();
  assert.is(settled.length, 200);
  assert.equal(settled.filter((x) => x.state !== 'established'), []);

  const rows = must(await ctx.admin!.query<Row[]>('connections', {}));
  assert.is(rows.length, 200);
  const byActor = (a: string) => rows.filter((r) => ctx.ids.get(r.id) === a);
  assert.equal(new Set(byActor('client-1').map((r) => r.networkServiceEndpointName)), new Set(['ep-a']), 'gold on n1 -> local premium');
  assert.equal(new Set(byActor('client-2').map((r) => r.networkServiceEndpointName)), new Set(['ep-c']), 'gold on n2 -> local premium');
  assert.equal(new Set(byActor('client-3').map((r) => r.networkServiceEndpointName)), new Set(['ep-b']), 'silver -> the only standard endpoint');
  const fourth = byActor('client-4');
  assert.ok(fourth.every((r) => r.networkServiceEndpointName === 'ep-b' || r.networkServiceEndpointName === 'ep-c'), 'fallthrough -> any endpoint, local node first');
  assert.ok(byActor('client-3').every((r) => r.mechanism.remote === 'wireguard'), 'cross-node connections get a tunnel');
  assert.ok(byActor('client-1').every((r) => r.mechanism.remote === undefined), 'same-node connections need none');

  const addresses = rows.flatMap((r) => [...r.context.ipContext.srcIpAddrs, ...r.context.ipContext.dstIpAddrs]);
  assert.is(addresses.length, 400);
  assert.is(new Set(addresses).size, 400, 'no address handed out twice');

  const programmed = [...mesh.agents.values()].reduce((n, a) => n + a.dataplane.programmed.size, 0);
  assert.is(programmed, 400, 'two sides per connection on the simulated dataplanes');
});

s('lists page with limit and offset (an answer must fit one NATS message)', async (ctx) => {
  const all = must(await ctx.admin!.query<Row[]>('connections', {}));
  const paged = must(await ctx.admin!.queryAll<Row>('connections', {}, 7));
  assert.equal(paged.map((r) => r.id), all.map((r) => r.id));
  const page = must(await ctx.admin!.query<Row[]>('connections', { limit: 5, offset: 10 }));
  assert.equal(page.map((r) => r.id), all.slice(10, 15).map((r) => r.id));
  const nodes = must(await ctx.admin!.query<{ name: string }[]>('nodes', {}));
  assert.equal(must(await ctx.admin!.query<{ name: string }[]>('nodes', { limit: 5, offset: 1 })).map((n) => n.name), nodes.slice(1).map((n) => n.name), 'lists that do not page themselves are cut too');
  const bad = await ctx.admin!.query('connections', { limit: 0 });
  assert.ok(bad._tag === 'Left' && /params\.limit/.test(bad.left.message), JSON.stringify(bad));
});

s('one at a time, each fallthrough request goes to the least loaded local endpoint', async (ctx) => {
  // Under concurrency the loads seen by each decision depend on timing; sequentially they do not.
  const c = await ctx.mesh!.client('client-5');
  for (let i = 0; i < 12; i++) {
    const loads = Object.fromEntries(must(await ctx.admin!.query<{ name: string; connections: number }[]>('endpoints')).map((e) => [e.name, e.connections]));
    const id = randomUUID();
    ctx.ids.set(id, 'client-5');
    must(await c.send('connection.request', { connectionId: id, networkService: 'secure', clientNode: 'n2', labels: { tier: 'bronze' } }));
    assert.is(must(await c.waitForConnection(id, 10_000)).state, 'established');
    const chosen = must(await c.query<Row>('connection', { id })).networkServiceEndpointName;
    const other = chosen === 'ep-b' ? 'ep-c' : 'ep-b';
    assert.ok(chosen === 'ep-b' || chosen === 'ep-c', `local endpoint, got ${chosen}`);
    assert.ok(loads[chosen]! <= loads[other]!, `request ${i}: chose ${chosen} with ${loads[chosen]} connections over ${other} with ${loads[other]}`);
  }
});

s('closing all of them frees every address and empties the dataplanes', async (ctx) => {
  const mesh = ctx.mesh!;
  await Promise.all([...ctx.ids.keys()].map(async (id) => must(await ctx.admin!.send('connection.close', { connectionId: id }), 'close')));
  const deadline = Date.now() + 30000;
  let addresses: unknown[] = [];
  let programmed = -1;
  while (Date.now() < deadline) {
    addresses = must(await ctx.admin!.query<unknown[]>('addresses'));
    programmed = [...mesh.agents.values()].reduce((n, a) => n + a.dataplane.programmed.size, 0);
    if (addresses.length === 0 && programmed === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.is(addresses.length, 0, 'every address released');
  assert.is(programmed, 0, 'every side removed');
  const open = must(await ctx.admin!.query<Row[]>('connections', {}));
  assert.is(open.length, 0);
  const closed = must(await ctx.admin!.query<Row[]>('connections', { state: 'closed' }));
  assert.is(closed.length, ctx.ids.size);
});
s.run();
