// The dashboard's picture of the mesh (src/read/topology.ts), from a model folded by the real
// projections: what the topology query answers in each scope, and the live deltas of a batch.
import * as assert from 'uvu/assert';
import type { ConnectionEvent } from '../../aggregates/connection/index.ts';
import { applyCommits } from '../../projections/mesh.ts';
import { topologyDelta, topologyOf } from '../../src/read/topology.ts';
import { suite } from '../lib/harness.ts';
import { commitOf, modelWith, NOW, planned, request, selected } from '../lib/workflowFixtures.ts';

const s = suite('the dashboard\'s topology: answers and deltas', {});

const established: ConnectionEvent = { type: 'ConnectionEstablished', generation: 1 };
const setUp: readonly ConnectionEvent[] = [request('x'), selected(), planned('x'), established];

s('the whole picture for operators: nodes, services, endpoints, and connections without the closed ones', () => {
  const m = modelWith({ a: setUp, b: [request('b', { clientNode: 'n2' })], c: [...setUp, { type: 'ConnectionClosed', reason: 'done' }] });
  const t = topologyOf(m);
  assert.is(t.scope, 'all');
  assert.is(t.position, m.position);
  assert.equal(t.nodes, [
    { name: 'n1', status: 'ready' },
    { name: 'n2', status: 'ready' },
  ]);
  assert.equal(t.services, ['web']);
  assert.equal(t.endpoints, [
    { name: 'ep-1', node: 'n2', services: ['web'] },
    { name: 'ep-2', node: 'n1', services: ['web'] },
  ]);
  assert.equal(t.connections, [
    { id: 'a', service: 'web', state: 'established', actor: 'alice', clientNode: 'n1', endpoint: 'ep-1', endpointNode: 'n2' },
    { id: 'b', service: 'web', state: 'requested', actor: 'alice', clientNode: 'n2' },
  ]);
  assert.equal(topologyOf(m, { includeClosed: true }).connections.map((c) => [c.id, c.state]), [
    ['a', 'established'],
    ['b', 'requested'],
    ['c', 'closed'],
  ]);
});

s("a client's picture: its own connections, and nothing of the registry or the nodes", () => {
  const m = applyCommits(modelWith({ a: setUp }), [commitOf('connection.z', [request('z')], 100, 'bob')]);
  const alice = topologyOf(m, { actor: 'alice' });
  assert.equal({ ...alice, connections: alice.connections.map((c) => c.id) }, { scope: 'own', position: 100, nodes: [], services: [], endpoints: [], connections: ['a'] });
  assert.equal(topologyOf(m, { actor: 'bob' }).connections.map((c) => c.id), ['z']);
  assert.equal(topologyOf(m, { actor: 'carol' }).connections, []);
});

s('a heal in progress is flagged; a connection asked across domains names its domain', () => {
  const healing: ConnectionEvent = { type: 'ConnectionHealing', cause: 'endpoint-expired', causeId: 'e', inPlace: false, startedAt: NOW.toISOString() };
  const m = modelWith({ h: [...setUp, healing], f: [request('f', { networkService: 'db', domain: 'b' })] });
  const byId = Object.fromEntries(topologyOf(m).connections.map((c) => [c.id, c]));
  assert.is(byId.h!.healing, true);
  assert.is(byId.f!.service, 'db@b');
});

s('a delta holds the rows of the streams a batch touched, as they are after the fold', () => {
  const m0 = modelWith({ a: setUp });
  const batch = [
    commitOf('connection.n', [request('n')], m0.position + 1, 'alice'),
    commitOf('connection.n', [selected('ep-2', 'n1')], m0.position + 2, 'alice'),
    commitOf('connection.a', [{ type: 'ConnectionClosed', reason: 'done' }], m0.position + 3, 'alice'),
    commitOf('pool.ep-1', [], m0.position + 4),
  ];
  const m = applyCommits(m0, batch);
  const d = topologyDelta(m, batch)!;
  assert.is(d.position, m.position);
  assert.is(d.time, NOW.toISOString());
  assert.equal(d.connections.map((c) => [c.id, c.state, c.endpoint ?? null]), [
    ['n', 'endpoint-selected', 'ep-2'],
    ['a', 'closed', 'ep-1'],
  ]);
  assert.equal([d.nodes, d.endpoints, d.services, d.removedNodes, d.removedEndpoints, d.removedServices], [undefined, undefined, undefined, undefined, undefined, undefined]);
  assert.is(topologyDelta(m, [batch[3]!]), undefined, 'a batch of nothing drawn (an address pool) is no delta');
});

s('registry and node changes come as upserts and removals by name', () => {
  const m0 = modelWith();
  const batch = [
    commitOf('node.n2', [{ type: 'NodeLost', name: 'n2', lastSeen: NOW.toISOString(), timeoutMs: 15000 }], m0.position + 1),
    commitOf('endpoint.ep-1', [{ type: 'EndpointExpired', name: 'ep-1', cause: 'node-lost' }], m0.position + 2),
    commitOf('service.db', [{ type: 'NetworkServiceRegistered', spec: { name: 'db', payload: 'IP', matches: [] } }], m0.position + 3),
    commitOf('service.web', [{ type: 'NetworkServiceUnregistered', name: 'web' }], m0.position + 4),
  ];
  const d = topologyDelta(applyCommits(m0, batch), batch)!;
  assert.equal(d.nodes, [{ name: 'n2', status: 'lost' }]);
  assert.equal(d.removedEndpoints, ['ep-1']);
  assert.equal(d.services, ['db']);
  assert.equal(d.removedServices, ['web']);
  assert.equal(d.connections, []);
});

s("a client's delta: only its own connections; a batch of others' is no delta at all", () => {
  const m0 = modelWith();
  const batch = [commitOf('connection.mine', [request('mine')], m0.position + 1, 'alice'), commitOf('connection.theirs', [request('theirs')], m0.position + 2, 'bob'), commitOf('node.n2', [{ type: 'NodeLost', name: 'n2', lastSeen: NOW.toISOString(), timeoutMs: 15000 }], m0.position + 3)];
  const m = applyCommits(m0, batch);
  const d = topologyDelta(m, batch, { actor: 'alice' })!;
  assert.equal(Object.keys(d).sort(), ['connections', 'position', 'time']);
  assert.equal(d.connections.map((c) => c.id), ['mine']);
  assert.is(topologyDelta(m, batch.slice(1), { actor: 'alice' }), undefined);
});

s.run();
