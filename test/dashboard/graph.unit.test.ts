// The dashboard page's pure half (src/dashboard/graph.ts): deltas folded into the page's picture,
// filters, the graph's elements one by one and aggregated above the limit, a connection's facts,
// and its history as a timeline with causes and durations.
import * as assert from 'uvu/assert';
import * as E from 'fp-ts/lib/Either.js';
import { applyDelta, connectionFacts, filterChoices, graphOf, groupMembers, liveTopology, timeline, type GraphElement, type HistoryRow } from '../../src/dashboard/graph.ts';
import type { Topology, TopologyConnection } from '../../src/read/topology.ts';
import { clientTopologyFilter } from '../../src/security/guard.ts';
import { suite } from '../lib/harness.ts';

const s = suite("the dashboard page's picture, graph and timeline", {});

const conn = (id: string, over: Partial<TopologyConnection> = {}): TopologyConnection => ({ id, service: 'web', state: 'established', actor: 'alice', clientNode: 'n1', endpoint: 'ep-1', endpointNode: 'n2', ...over });
const topo = (connections: TopologyConnection[], over: Partial<Topology> = {}): Topology => ({
  scope: 'all',
  position: 10,
  nodes: [
    { name: 'n1', status: 'ready' },
    { name: 'n2', status: 'lost' },
  ],
  services: ['web', 'db'],
  endpoints: [
    { name: 'ep-1', node: 'n2', services: ['web'] },
    { name: 'ep-db', node: 'n1', services: ['db'] },
  ],
  connections,
  ...over,
});
const ids = (els: readonly GraphElement[], group: 'nodes' | 'edges') => els.filter((e) => e.group === group).map((e) => e.data.id).sort();

s('deltas: upserts, closed rows dropped unless shown, removals; old deltas ignored', () => {
  const t = liveTopology(topo([conn('a'), conn('b')]));
  assert.is(applyDelta(t, { position: 9, connections: [conn('x')] }), false, 'a delta the picture already holds');
  assert.not.ok(t.connections.has('x'));
  assert.ok(applyDelta(t, { position: 11, time: 'T', connections: [conn('a', { state: 'closed' }), conn('c', { state: 'requested' })], removedEndpoints: ['ep-db'], nodes: [{ name: 'n3', status: 'ready' }], services: ['dns'] }));
  assert.equal([...t.connections.keys()], ['b', 'c']);
  assert.equal([t.position, t.time], [11, 'T']);
  assert.equal([...t.endpoints.keys()], ['ep-1']);
  assert.equal([...t.nodes.keys()], ['n1', 'n2', 'n3']);
  assert.ok(t.services.has('dns'));
  applyDelta(t, { position: 12, connections: [conn('b', { state: 'closed' })] }, { includeClosed: true });
  assert.is(t.connections.get('b')!.state, 'closed', 'kept when closed ones are shown');
});

s('one edge per connection from its client to its endpoint, inside the nodes; a pending one goes to its service', () => {
  const t = liveTopology(topo([conn('a'), conn('b', { actor: 'bob' }), conn('p', { state: 'requested', endpoint: undefined, endpointNode: undefined }), conn('h', { healing: true })]));
  const g = graphOf(t, {});
  assert.not.ok(g.aggregated);
  assert.equal([g.matching, g.total], [4, 4]);
  assert.equal(ids(g.elements, 'edges'), ['conn:a', 'conn:b', 'conn:h', 'conn:p']);
  assert.equal(ids(g.elements, 'nodes'), ['client:n1:alice', 'client:n1:bob', 'ep:ep-1', 'ep:ep-db', 'node:n1', 'node:n2', 'svc:web']);
  const byId = Object.fromEntries(g.elements.map((e) => [e.data.id, e]));
  assert.equal(byId['conn:a']!.data, { id: 'conn:a', source: 'client:n1:alice', target: 'ep:ep-1', kind: 'connection', connection: 'a', service: 'web', state: 'established' });
  assert.is(byId['conn:p']!.data.target, 'svc:web');
  assert.is(byId['conn:h']!.data.state, 'healing', 'a heal shows over the phase');
  assert.is(byId['ep:ep-1']!.data.parent, 'node:n2');
  assert.is(byId['client:n1:bob']!.data.parent, 'node:n1');
  assert.is(byId['node:n2']!.classes, 'node lost');
});

s('filters by service, node and state; nodes and endpoints that a connection names are drawn even when unknown', () => {
  const t = liveTopology(topo([conn('a'), conn('d', { service: 'db', endpoint: 'ep-db', endpointNode: 'n1', state: 'waiting' }), conn('r', { clientNode: 'n9@b', endpoint: 'gone', endpointNode: 'n7' })]));
  assert.equal(ids(graphOf(t, { service: 'db' }).elements, 'edges'), ['conn:d']);
  assert.equal(ids(graphOf(t, { state: 'waiting' }).elements, 'edges'), ['conn:d']);
  assert.equal(ids(graphOf(t, { node: 'n2' }).elements, 'edges'), ['conn:a']);
  assert.equal(ids(graphOf(t, { node: 'n1', service: 'web' }).elements, 'edges'), ['conn:a']);
  const all = graphOf(t, {});
  const implied = all.elements.filter((e) => e.classes.includes('implied')).map((e) => e.data.id).sort();
  assert.equal(implied, ['ep:gone', 'node:n7', 'node:n9@b']);
  assert.equal(filterChoices(t), { services: ['db', 'web'], nodes: ['n1', 'n2', 'n7', 'n9@b'], states: ['established', 'waiting'] });
});

s('above the limit: one edge per (client node, service, endpoint node), its count, its worst state, its members', () => {
  const many = [...Array.from({ length: 6 }, (_, i) => conn(`a${i}`)), conn('w', { state: 'down' }), conn('d0', { service: 'db', endpoint: 'ep-db', endpointNode: 'n1' }), conn('q', { state: 'requested', endpoint: undefined, endpointNode: undefined })];
  const t = liveTopology(topo(many));
  const g = graphOf(t, {}, 5);
  assert.ok(g.aggregated);
  assert.equal(ids(g.elements, 'nodes'), ['node:n1', 'node:n2', 'svc:web'], 'no client or endpoint vertex: only nodes (and a service for the pending)');
  const edges = Object.fromEntries(g.elements.filter((e) => e.group === 'edges').map((e) => [e.data.id, e.data]));
  assert.equal(Object.keys(edges).sort(), ['agg:n1|db|n1', 'agg:n1|web|', 'agg:n1|web|n2']);
  const web = edges['agg:n1|web|n2']!;
  assert.equal([web.source, web.target, web.count, web.state, web.label, web.states], ['node:n1', 'node:n2', 7, 'down', 'web ×7', 'down 1, established 6']);
  assert.equal([edges['agg:n1|db|n1']!.source, edges['agg:n1|db|n1']!.target], ['node:n1', 'node:n1'], 'a local group is a loop on its node');
  assert.is(edges['agg:n1|web|']!.target, 'svc:web');
  assert.equal(groupMembers(t, {}, 'n1|web|n2', 3).map((c) => c.id), ['a0', 'a1', 'a2']);
  assert.not.ok(graphOf(t, { service: 'db' }, 5).aggregated, 'the limit counts what passes the filters');
});

s('10,000 connections: aggregated into a few edges per node pair, each connection counted once', () => {
  const nodes = Array.from({ length: 10 }, (_, i) => `n${i}`);
  const rows = Array.from({ length: 10_000 }, (_, i) => conn(`c${i}`, { clientNode: nodes[i % 10]!, endpointNode: nodes[(i * 7) % 10]!, endpoint: `ep${(i * 7) % 10}`, service: `svc${i % 4}` }));
  const t = liveTopology(topo(rows, { nodes: nodes.map((name) => ({ name, status: 'ready' as const })), endpoints: [] }));
  const g = graphOf(t, {});
  assert.ok(g.aggregated);
  assert.is(g.matching, 10_000);
  assert.ok(g.elements.length <= 10 + 10 * 4 * 10, `${g.elements.length} elements`);
  assert.is(g.elements.filter((e) => e.group === 'edges').reduce((n, e) => n + Number(e.data.count), 0), 10_000, 'every connection is counted in one edge');
});

s("a connection's facts: path, addresses, mechanism, interfaces; absent facts left out", () => {
  const facts = connectionFacts({
    id: 'a',
    state: 'established',
    networkService: 'web',
    actor: 'alice',
    clientNode: 'n1',
    networkServiceEndpointName: 'ep-1',
    endpointNode: 'n2',
    mechanism: { local: 'kernel', remote: 'vxlan' },
    context: { ipContext: { srcIpAddrs: ['10.60.0.5/32'], dstIpAddrs: ['10.60.0.4/32'], srcRoutes: [{ prefix: '10.60.0.4/32' }], dstRoutes: [] }, mtu: 1450 },
    path: { pathSegments: [{ name: 'alice' }, { name: 'control-plane' }, { name: 'agent:n1' }] },
    interfaces: { client: 'nsm0', endpoint: 'nse1' },
    generation: 1,
    heals: 0,
    requestedAt: 'T0',
  });
  assert.equal(facts, [
    ['state', 'established'],
    ['service', 'web'],
    ['client', 'alice on n1'],
    ['endpoint', 'ep-1 on n2'],
    ['path', 'alice -> control-plane -> agent:n1'],
    ['addresses', '10.60.0.5/32 -> 10.60.0.4/32'],
    ['routes', 'client 10.60.0.4/32; endpoint none'],
    ['mechanism', 'kernel + vxlan'],
    ['interfaces', 'nsm0 / nse1'],
    ['mtu', '1450'],
    ['generation', '1'],
    ['requested', 'T0'],
  ]);
  assert.equal(connectionFacts({ id: 'b', state: 'requested' }), [['state', 'requested']]);
});

const row = (position: number, id: string, type: string, time: string, causationId: string, data: Record<string, unknown> = {}, actor = 'control-plane'): HistoryRow => ({
  stream: 'connection.a',
  position: String(position),
  event: { id, type, time, actor, causationId, correlationId: 'cmd-1', data },
});

s('the timeline: each event with its actor, what caused it, the time since the one before, a heal\'s duration', () => {
  const t = timeline([
    row(5, 'e1', 'ConnectionRequested', '2030-01-01T00:00:00.000Z', 'cmd-1', { networkService: 'web', clientNode: 'n1' }, 'alice'),
    row(6, 'e2', 'EndpointSelected', '2030-01-01T00:00:00.004Z', 'e1', { endpoint: 'ep-1', endpointNode: 'n2', considered: 2 }),
    row(9, 'e3', 'ConnectionEstablished', '2030-01-01T00:00:00.030Z', 'rep-77aa1122', {}),
    row(20, 'e4', 'ConnectionHealed', '2030-01-01T00:00:02.530Z', 'e3', { cause: 'endpoint-expired', oldEndpoint: 'ep-1', newEndpoint: 'ep-2', durationMs: 1200 }),
  ]);
  assert.equal(
    t.map((e) => [e.position, e.type, e.actor, e.cause, e.sincePreviousMs, e.sinceStartMs, e.durationMs ?? null, e.note ?? null]),
    [
      ['5', 'ConnectionRequested', 'alice', 'the request', 0, 0, null, 'web from n1'],
      ['6', 'EndpointSelected', 'control-plane', 'ConnectionRequested', 4, 4, null, 'ep-1 on n2 (2 considered)'],
      ['9', 'ConnectionEstablished', 'control-plane', 'command rep-77aa', 26, 30, null, null],
      ['20', 'ConnectionHealed', 'control-plane', 'ConnectionEstablished', 2500, 2530, 1200, 'endpoint-expired: ep-1 -> ep-2'],
    ],
  );
  assert.equal(timeline([]), []);
});

s("the client's scope check: its own rows pass; another's row, or any registry or node list, withholds the answer", () => {
  const f = clientTopologyFilter('alice');
  const own = { scope: 'own', position: 3, nodes: [], services: [], endpoints: [], connections: [conn('a')] };
  assert.ok(E.isRight(f(own)));
  assert.ok(E.isRight(f({ position: 4, time: 'T', connections: [conn('a')] })), 'a delta');
  assert.ok(E.isLeft(f({ ...own, connections: [conn('a'), conn('b', { actor: 'bob' })] })));
  assert.ok(E.isLeft(f({ ...own, nodes: [{ name: 'n1', status: 'ready' }] })));
  assert.ok(E.isLeft(f({ position: 4, connections: [], endpoints: [{ name: 'ep-1', node: 'n1', services: [] }] })));
  assert.ok(E.isLeft(f({ ...own, extra: 1 })), 'an unknown field');
  assert.ok(E.isLeft(f([conn('a')])), 'another shape');
});

s.run();
