import * as assert from 'uvu/assert';
import { connection, type ConnectionEvent } from '../../aggregates/connection/index.ts';
import type { EndpointSpec } from '../../aggregates/endpoint.ts';
import type { DomainEvent } from '../../aggregates/index.ts';
import type { NetworkServiceSpec } from '../../aggregates/networkService.ts';
import type { NodeSpec } from '../../aggregates/node.ts';
import { listConnections } from '../../projections/connections.ts';
import { applyCommits, emptyMesh, type MeshModel } from '../../projections/mesh.ts';
import { desiredForNode } from '../../projections/nodeDesired.ts';
import { allocatedAddresses } from '../../projections/pools.ts';
import { endpointsOfService, labelsFor } from '../../projections/registry.ts';
import { asPosition, type StoredCommit } from '../../src/contracts/envelope.ts';
import { commitLog, timeAt } from '../lib/commitLog.ts';
import { suite } from '../lib/harness.ts';

// ---- a small mesh: two nodes, two endpoints of secure-net, an l2 service without endpoints ----

const secureNet: NetworkServiceSpec = { name: 'secure-net', payload: 'IP', matches: [] };
const l2Net: NetworkServiceSpec = { name: 'l2-net', payload: 'ETHERNET', matches: [] };
const nodeA: NodeSpec = { name: 'node-a', mechanisms: ['kernel', 'vxlan', 'wireguard'], dataplane: 'linux', underlayAddress: '192.168.1.10', mtu: 1500, publicKeys: { wireguard: 'pub-a=' } };
const nodeB: NodeSpec = { name: 'node-b', mechanisms: ['kernel', 'vxlan', 'wireguard'], dataplane: 'linux', underlayAddress: '192.168.1.11', mtu: 1420, publicKeys: { wireguard: 'pub-b=' } };
const endpointSpec = (name: string, node: string, prefix: string): EndpointSpec => ({
  name,
  networkServiceNames: ['secure-net'],
  networkServiceLabels: { 'secure-net': { labels: { tier: name === 'nse-b' ? 'gold' : 'silver' } } },
  node,
  prefixes: [prefix],
  excludedPrefixes: [],
});
const nseB = endpointSpec('nse-b', 'node-b', '10.60.0.0/24');
const nseA = endpointSpec('nse-a', 'node-a', '10.70.0.0/24');
const nseC = endpointSpec('nse-c', 'node-b', '10.80.0.0/24');
const EXP1 = '2030-01-01T01:00:00.000Z';
const EXP2 = '2030-01-01T02:00:00.000Z';

const requested = (id: string, service = 'secure-net', payload: 'IP' | 'ETHERNET' = 'IP'): ConnectionEvent => ({
  type: 'ConnectionRequested',
  connectionId: id,
  networkService: service,
  payload,
  labels: { app: 'web' },
  clientNode: 'node-a',
  ...(id === 'conn-1' ? { clientNetns: '/var/run/netns/web' } : {}),
  clientInterface: 'nsm0',
  mechanismPreferences: [],
  requestId: `req-${id}`,
});
const selected = (endpoint: string, endpointNode: string): ConnectionEvent => ({ type: 'EndpointSelected', endpoint, endpointNode, considered: 2, excluded: [] });
const planned = (id: string, endpoint: string, src: string, dst: string, remote: boolean): ConnectionEvent => ({
  type: 'PathPlanned',
  generation: 1,
  mechanism: remote ? { local: 'kernel', remote: 'wireguard' } : { local: 'kernel' },
  context: {
    ipContext: { srcIpAddrs: [src], dstIpAddrs: [dst], srcRoutes: [{ prefix: dst }], dstRoutes: [{ prefix: src }], excludedPrefixes: [] },
    dnsContext: { configs: [] },
    ethernetContext: {},
    mtu: remote ? 1340 : 1500,
  },
  path: { index: 0, pathSegments: [{ name: 'client@node-a', id }, { name: endpoint, id }] },
  clientInterface: 'nsm0',
  endpointInterface: `nse${id.replace(/-/g, '')}`,
});
const allocated = (id: string, prefix: string, _index: number, src: string, dst: string): DomainEvent => ({ type: 'AddressesAllocated', connectionId: id, pairs: [{ prefix, src, dst }] });

const commit = commitLog();
const setup = [
  commit('service.secure-net', [{ type: 'NetworkServiceRegistered', spec: secureNet }]), // 1
  commit('service.l2-net', [{ type: 'NetworkServiceRegistered', spec: l2Net }]), // 2
  commit('node.node-a', [{ type: 'NodeJoined', spec: nodeA }]), // 3
  commit('node.node-b', [{ type: 'NodeJoined', spec: nodeB }]), // 4
  commit('endpoint.nse-b', [{ type: 'EndpointRegistered', spec: nseB, expirationTime: EXP1 }]), // 5
  commit('endpoint.nse-a', [{ type: 'EndpointRegistered', spec: nseA, expirationTime: EXP1 }]), // 6
  commit('endpoint.nse-c', [{ type: 'EndpointRegistered', spec: nseC, expirationTime: EXP1 }]), // 7
];
// conn-1: node-a -> nse-b on node-b, established over wireguard (alice)
const conn1 = [
  commit('connection.conn-1', [requested('conn-1'), selected('nse-b', 'node-b')], 'alice'), // 8
  commit('pool.nse-b', [allocated('conn-1', '10.60.0.0/24', 1, '10.60.0.3/32', '10.60.0.2/32')]), // 9
  commit('connection.conn-1', [planned('conn-1', 'nse-b', '10.60.0.3/32', '10.60.0.2/32', true)]), // 10
  commit('connection.conn-1', [{ type: 'DataplaneProgrammed', generation: 1, node: 'node-a', side: 'client' }]), // 11
  commit('connection.conn-1', [
    { type: 'DataplaneProgrammed', generation: 1, node: 'node-b', side: 'endpoint' },
    { type: 'ConnectionEstablished', generation: 1 },
  ]), // 12
];
// conn-2: node-a -> nse-a on node-a (same node), planned (bob); conn-3: selected nse-b, then failed (bob)
const others = [
  commit('connection.conn-2', [requested('conn-2'), selected('nse-a', 'node-a')], 'bob'), // 13
  commit('pool.nse-a', [allocated('conn-2', '10.70.0.0/24', 1, '10.70.0.3/32', '10.70.0.2/32')]), // 14
  commit('connection.conn-2', [planned('conn-2', 'nse-a', '10.70.0.3/32', '10.70.0.2/32', false)]), // 15
  commit('connection.conn-3', [requested('conn-3'), selected('nse-b', 'node-b')], 'bob'), // 16
];
const later = [
  commit('connection.conn-3', [{ type: 'ConnectionFailed', code: 'node-unknown', reason: 'node "node-b" has not joined the mesh' }]), // 17
  commit('endpoint.nse-b', [{ type: 'EndpointRefreshed', expirationTime: EXP2 }]), // 18
  commit('connection.conn-1', [{ type: 'ConnectionClosed', reason: 'client closed' }], 'alice'), // 19
  commit('pool.nse-b', [{ type: 'AddressesReleased', connectionId: 'conn-1' }]), // 20
  commit('connection.conn-1', [{ type: 'DataplaneRemoved', generation: 1, node: 'node-b', side: 'endpoint' }]), // 21
  commit('connection.conn-1', [{ type: 'DataplaneRemoved', generation: 1, node: 'node-a', side: 'client' }]), // 22
  commit('connection.conn-4', [requested('conn-4', 'l2-net', 'ETHERNET'), { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'no endpoint is registered for network service "l2-net"' }], 'carol'), // 23
  commit('endpoint.nse-c', [{ type: 'EndpointUnregistered', name: 'nse-c' }]), // 24
  commit('service.l2-net', [{ type: 'NetworkServiceUnregistered', name: 'l2-net' }]), // 25
  commit('node.node-b', [{ type: 'NodeUpdated', spec: { ...nodeB, mtu: 9000 } }]), // 26
];
const all = [...setup, ...conn1, ...others, ...later];

const fold = (commits: readonly StoredCommit[], from: MeshModel = emptyMesh): MeshModel => applyCommits(from, commits);
const atPeak = () => fold([...setup, ...conn1, ...others]); // position 16: three connections hold endpoints
const atEnd = () => fold(all);
const ids = (rows: { id: string }[]) => rows.map((r) => r.id).sort();

// ---- registry ---------------------------------------------------------------------------------

const registry = suite('projections: registry');

registry('services and endpoints appear with their registration time', () => {
  const m = fold(setup);
  assert.equal(Object.keys(m.registry.services).sort(), ['l2-net', 'secure-net']);
  assert.equal(m.registry.services['secure-net'], { ...secureNet, registeredAt: timeAt(1), updatedAt: timeAt(1) });
  assert.equal(m.registry.endpoints['nse-b'], { ...nseB, expirationTime: EXP1, refreshedAt: timeAt(5), registeredAt: timeAt(5), updatedAt: timeAt(5) });
  assert.equal(endpointsOfService(m.registry, 'secure-net').map((e) => e.name).sort(), ['nse-a', 'nse-b', 'nse-c']);
  assert.equal(labelsFor(m.registry.endpoints['nse-b']!, 'secure-net'), { tier: 'gold' });
  assert.equal(labelsFor(m.registry.endpoints['nse-b']!, 'l2-net'), {});
});

registry('a refresh moves expirationTime and updatedAt, keeping the spec and registeredAt', () => {
  const row = atEnd().registry.endpoints['nse-b'];
  assert.equal(row, { ...nseB, expirationTime: EXP2, refreshedAt: timeAt(18), registeredAt: timeAt(5), updatedAt: timeAt(18) });
});

registry('unregistering removes the endpoint and the service', () => {
  const m = atEnd();
  assert.equal(Object.keys(m.registry.endpoints).sort(), ['nse-a', 'nse-b']);
  assert.equal(Object.keys(m.registry.services), ['secure-net']);
  assert.equal(endpointsOfService(m.registry, 'secure-net').map((e) => e.name).sort(), ['nse-a', 'nse-b']);
});

registry('an update replaces the service spec but keeps registeredAt', () => {
  const updated: NetworkServiceSpec = { ...secureNet, matches: [{ sourceSelector: {}, routes: [{ destinationSelector: { tier: 'gold' } }], fallthrough: false }] };
  const c = commitLog();
  const m = fold([
    c('service.secure-net', [{ type: 'NetworkServiceRegistered', spec: secureNet }]),
    c('service.secure-net', [{ type: 'NetworkServiceUpdated', spec: updated }]),
  ]);
  assert.equal(m.registry.services['secure-net'], { ...updated, registeredAt: timeAt(1), updatedAt: timeAt(2) });
});

registry.run();

// ---- connections ------------------------------------------------------------------------------

const conns = suite('projections: connections');

conns('state and phase per connection at the peak', () => {
  const m = atPeak();
  const c1 = m.connections.byId['conn-1']!;
  assert.is(c1.state.phase, 'established');
  assert.equal(c1.state.programmed, ['client', 'endpoint']);
  assert.equal(c1.state.endpoint, { name: 'nse-b', node: 'node-b' });
  assert.is(c1.actor, 'alice');
  assert.is(c1.requestedAt, timeAt(8));
  assert.is(c1.establishedAt, timeAt(12));
  assert.is(c1.updatedAt, timeAt(12));
  assert.is(c1.position, 12);
  assert.is(m.connections.byId['conn-2']!.state.phase, 'path-planned');
  assert.is(m.connections.byId['conn-2']!.state.generation, 1);
  assert.is(m.connections.byId['conn-3']!.state.phase, 'endpoint-selected');
  assert.is(m.position, 16);
});

conns('connections folded in one batch keep separate states and leave the aggregate\'s initialState alone', () => {
  // Regression: rows were seeded with connection.initialState itself and mutated in place, so
  // every row shared one state and the command side saw new connections as already requested.
  const m = atPeak();
  assert.is(m.connections.byId['conn-1']!.state.request?.connectionId, 'conn-1');
  assert.is(m.connections.byId['conn-2']!.state.request?.connectionId, 'conn-2');
  assert.is(m.connections.byId['conn-3']!.state.request?.connectionId, 'conn-3');
  assert.is.not(m.connections.byId['conn-1']!.state, m.connections.byId['conn-2']!.state);
  assert.equal(connection.initialState, { phase: 'none', excluded: [], generation: 0, programmed: [], removed: [], healCauses: [], heals: 0 });
});

conns('final states: closed, planned, failed with their reasons', () => {
  const m = atEnd();
  const c1 = m.connections.byId['conn-1']!;
  assert.is(c1.state.phase, 'closed');
  assert.is(c1.state.closeReason, 'client closed');
  assert.is(c1.closedAt, timeAt(19));
  assert.equal(c1.state.removed, ['endpoint', 'client']);
  assert.is(c1.position, 22);
  assert.equal(m.connections.byId['conn-3']!.state.failure, { code: 'node-unknown', reason: 'node "node-b" has not joined the mesh' });
  assert.is(m.connections.byId['conn-4']!.state.phase, 'failed');
  assert.is(m.connections.byId['conn-4']!.state.endpoint, undefined);
  assert.is(m.connections.byId['conn-4']!.state.request?.payload, 'ETHERNET');
});

conns('activeByEndpoint goes up on selection and down on failure and close', () => {
  const steps: [number, Record<string, number>][] = [
    [8, { 'nse-b': 1 }], // conn-1 selected nse-b
    [13, { 'nse-b': 1, 'nse-a': 1 }], // conn-2 selected nse-a
    [16, { 'nse-b': 2, 'nse-a': 1 }], // conn-3 selected nse-b
    [17, { 'nse-b': 1, 'nse-a': 1 }], // conn-3 failed
    [19, { 'nse-b': 0, 'nse-a': 1 }], // conn-1 closed
    [26, { 'nse-b': 0, 'nse-a': 1 }], // removals and conn-4 (never held an endpoint) change nothing
  ];
  for (const [position, expected] of steps) {
    assert.equal(fold(all.slice(0, position)).connections.activeByEndpoint, expected, `at position ${position}`);
  }
});

conns('folding commit by commit gives the same model as one batch', () => {
  const stepwise = all.reduce((m, c) => applyCommits(m, [c]), emptyMesh);
  assert.equal(stepwise, atEnd());
});

conns('listConnections filters by state, node, endpoint, service and actor', () => {
  const m = atEnd();
  assert.equal(ids(listConnections(m.connections)), ['conn-2', 'conn-3', 'conn-4']);
  assert.equal(ids(listConnections(m.connections, { includeClosed: true })), ['conn-1', 'conn-2', 'conn-3', 'conn-4']);
  assert.equal(ids(listConnections(m.connections, { state: 'closed' })), ['conn-1']);
  assert.equal(ids(listConnections(m.connections, { state: 'failed' })), ['conn-3', 'conn-4']);
  assert.equal(ids(listConnections(m.connections, { state: 'path-planned' })), ['conn-2']);
  assert.equal(ids(listConnections(m.connections, { node: 'node-b' })), ['conn-3']);
  assert.equal(ids(listConnections(m.connections, { node: 'node-b', includeClosed: true })), ['conn-1', 'conn-3']);
  assert.equal(ids(listConnections(m.connections, { endpoint: 'nse-a' })), ['conn-2']);
  assert.equal(ids(listConnections(m.connections, { service: 'l2-net' })), ['conn-4']);
  assert.equal(ids(listConnections(m.connections, { actor: 'bob' })), ['conn-2', 'conn-3']);
  assert.equal(ids(listConnections(m.connections, { actor: 'alice' })), []);
  assert.equal(ids(listConnections(m.connections, { actor: 'alice', includeClosed: true })), ['conn-1']);
  assert.equal(ids(listConnections(m.connections, { node: 'node-c' })), []);
});

conns('usage per requester: held, being set up, and requests this second (limits refused ones not counted)', () => {
  const sec = (position: number) => Math.floor(Date.parse(timeAt(position)) / 1000);
  assert.equal(atPeak().connections.byActor, {
    alice: { held: 1, pending: 0, second: sec(8), inSecond: 1 },
    bob: { held: 2, pending: 2, second: sec(16), inSecond: 1 },
  });
  const end = atEnd();
  assert.equal(end.connections.byActor.alice, { held: 0, pending: 0, second: sec(8), inSecond: 1 });
  assert.equal(end.connections.byActor.bob, { held: 1, pending: 1, second: sec(16), inSecond: 1 });
  assert.equal(end.connections.byActor.carol, { held: 0, pending: 0, second: sec(23), inSecond: 1 });
  const c = commitLog();
  for (let i = 0; i < 26; i++) c('filler', []);
  const limited = c('connection.conn-9', [requested('conn-9'), { type: 'ConnectionLimited', limit: 'pending', max: 1, current: 1, reason: 'dave has 1 connections being set up, its limit is 1; wait for them' }], 'dave');
  assert.equal(fold([limited], end).connections.byActor.dave, { held: 0, pending: 0, second: sec(27), inSecond: 0 });
});

conns.run();

// ---- pools and nodes --------------------------------------------------------------------------

const poolsNodes = suite('projections: pools and nodes');

poolsNodes('allocations appear per endpoint and disappear on release', () => {
  const peak = atPeak();
  assert.equal(peak.pools.pools, {
    'nse-b': { 'conn-1': [{ prefix: '10.60.0.0/24', src: '10.60.0.3/32', dst: '10.60.0.2/32' }] },
    'nse-a': { 'conn-2': [{ prefix: '10.70.0.0/24', src: '10.70.0.3/32', dst: '10.70.0.2/32' }] },
  });
  assert.equal(
    allocatedAddresses(peak.pools).sort((a, b) => a.connectionId.localeCompare(b.connectionId)),
    [
      { endpoint: 'nse-b', connectionId: 'conn-1', family: 'IPv4', src: '10.60.0.3/32', dst: '10.60.0.2/32' },
      { endpoint: 'nse-a', connectionId: 'conn-2', family: 'IPv4', src: '10.70.0.3/32', dst: '10.70.0.2/32' },
    ],
  );
  const end = atEnd();
  assert.equal(end.pools.pools['nse-b'], {});
  assert.equal(allocatedAddresses(end.pools), [{ endpoint: 'nse-a', connectionId: 'conn-2', family: 'IPv4', src: '10.70.0.3/32', dst: '10.70.0.2/32' }]);
});

poolsNodes('nodes: joined with their spec; an update keeps joinedAt; leaving removes', () => {
  const m = atEnd();
  assert.equal(m.nodes.nodes['node-a'], { ...nodeA, joinedAt: timeAt(3), updatedAt: timeAt(3), status: 'ready' });
  assert.equal(m.nodes.nodes['node-b'], { ...nodeB, mtu: 9000, joinedAt: timeAt(4), updatedAt: timeAt(26), status: 'ready' });
  const leave = commitLog()('node.node-a', [{ type: 'NodeLeft', name: 'node-a' }]);
  const left = applyCommits(m, [{ ...leave, position: asPosition(27) }]);
  assert.equal(Object.keys(left.nodes.nodes), ['node-b']);
  assert.ok(m.nodes.nodes['node-a'], 'the earlier model is untouched');
});

poolsNodes.run();

// ---- desired state per node ---------------------------------------------------------------------

const desired = suite('projections: desiredForNode');

desired('planned sides land on the right nodes with addresses, routes, interface names and peers', () => {
  const m = atPeak();
  const onB = desiredForNode(m.connections, m.nodes.nodes, 'node-b');
  assert.equal(onB, [
    {
      connectionId: 'conn-1',
      generation: 1,
      side: 'endpoint',
      node: 'node-b',
      desired: 'present',
      networkService: 'secure-net',
      payload: 'IP',
      interfaceName: 'nseconn1',
      mechanism: { local: 'kernel', remote: 'wireguard' },
      addresses: ['10.60.0.2/32'],
      remoteAddresses: ['10.60.0.3/32'],
      routes: ['10.60.0.3/32'],
      mtu: 1340,
      peer: { node: 'node-a', underlayAddress: '192.168.1.10', publicKeys: { wireguard: 'pub-a=' }, mechanisms: ['kernel', 'vxlan', 'wireguard'] },
    },
  ]);
  const onA = desiredForNode(m.connections, m.nodes.nodes, 'node-a');
  assert.equal(
    onA.map((s) => `${s.connectionId}/${s.side}`).sort(),
    ['conn-1/client', 'conn-2/client', 'conn-2/endpoint'],
  );
  const c1 = onA.find((s) => s.connectionId === 'conn-1')!;
  assert.equal(c1, {
    connectionId: 'conn-1',
    generation: 1,
    side: 'client',
    node: 'node-a',
    desired: 'present',
    networkService: 'secure-net',
    payload: 'IP',
    interfaceName: 'nsm0',
    mechanism: { local: 'kernel', remote: 'wireguard' },
    addresses: ['10.60.0.3/32'],
    remoteAddresses: ['10.60.0.2/32'],
    routes: ['10.60.0.2/32'],
    mtu: 1340,
    netns: '/var/run/netns/web',
    peer: { node: 'node-b', underlayAddress: '192.168.1.11', publicKeys: { wireguard: 'pub-b=' }, mechanisms: ['kernel', 'vxlan', 'wireguard'] },
  });
  // same-node connection: both sides on node-a, no peer, no tunnel
  const c2e = onA.find((s) => s.connectionId === 'conn-2' && s.side === 'endpoint')!;
  assert.is(c2e.interfaceName, 'nseconn2');
  assert.equal(c2e.addresses, ['10.70.0.2/32']);
  assert.equal(c2e.routes, ['10.70.0.3/32']);
  assert.equal(c2e.mechanism, { local: 'kernel' });
  assert.is('peer' in c2e, false);
  assert.is('netns' in c2e, false);
});

desired("the client side carries the connection's DNS (every config's servers and search domains), the endpoint side none", () => {
  const plan = planned('conn-9', 'nse-b', '10.60.0.9/32', '10.60.0.8/32', true) as Extract<ConnectionEvent, { type: 'PathPlanned' }>;
  const dnsContext = { configs: [{ dnsServerIps: ['10.60.0.8', 'fd00:53::1'], searchDomains: ['svc.test'] }, { dnsServerIps: ['10.60.0.8'], searchDomains: ['example.org'] }] };
  const m = fold([...setup, commit('connection.conn-9', [requested('conn-9'), selected('nse-b', 'node-b'), { ...plan, context: { ...plan.context, dnsContext } }])]);
  const client = desiredForNode(m.connections, m.nodes.nodes, 'node-a').find((x) => x.connectionId === 'conn-9')!;
  assert.equal(client.dns, { servers: ['10.60.0.8', 'fd00:53::1'], searchDomains: ['svc.test', 'example.org'] });
  const endpointSide = desiredForNode(m.connections, m.nodes.nodes, 'node-b').find((x) => x.connectionId === 'conn-9')!;
  assert.is('dns' in endpointSide, false);
});

desired('nothing for connections that are not planned, closed or failed, nor for idle nodes', () => {
  const m = atEnd();
  assert.equal(desiredForNode(m.connections, m.nodes.nodes, 'node-b'), []);
  assert.equal(desiredForNode(m.connections, m.nodes.nodes, 'node-a').map((s) => `${s.connectionId}/${s.side}`).sort(), ['conn-2/client', 'conn-2/endpoint']);
  assert.equal(desiredForNode(m.connections, m.nodes.nodes, 'node-z'), []);
  // conn-3 (selected, not planned) at the peak contributes nothing either
  const peak = atPeak();
  assert.not.ok(desiredForNode(peak.connections, peak.nodes.nodes, 'node-b').some((s) => s.connectionId === 'conn-3'));
});

desired('a peer that has left is still described by name, without underlay or keys', () => {
  const m = atPeak();
  const { 'node-b': _gone, ...withoutB } = m.nodes.nodes;
  const c1 = desiredForNode(m.connections, withoutB, 'node-a').find((s) => s.connectionId === 'conn-1')!;
  assert.equal(c1.peer, { node: 'node-b', publicKeys: {}, mechanisms: [] });
});

desired.run();

// ---- positions ----------------------------------------------------------------------------------

const positions = suite('projections: positions');

positions('re-applying commits at or below the folded position changes nothing', () => {
  const m = atEnd();
  assert.is(m.position, 26);
  const snapshot = structuredClone(m);
  const again = applyCommits(m, all);
  assert.is(again, m, 'same object: nothing was folded');
  assert.equal(again, snapshot);
  assert.is(applyCommits(m, [all[18]!]), m); // the close of conn-1, position 19
  assert.is(applyCommits(m, []), m);
});

positions('a batch mixing folded and new commits applies only the new ones, once', () => {
  const mid = fold(all.slice(0, 16));
  const m = applyCommits(mid, all.slice(10, 20)); // 11..16 already folded, 17..20 new
  assert.is(m.position, 20);
  assert.equal(m.connections.activeByEndpoint, { 'nse-b': 0, 'nse-a': 1 });
  assert.equal(m, fold(all.slice(0, 20)));
  // the model it started from is untouched
  assert.is(mid.position, 16);
  assert.is(mid.connections.byId['conn-1']!.state.phase, 'established');
  assert.equal(mid.connections.activeByEndpoint, { 'nse-b': 2, 'nse-a': 1 });
});

positions.run();
