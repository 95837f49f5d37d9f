import * as assert from 'uvu/assert';
import type { MechanismType } from '../../aggregates/domain.ts';
import { connection, type ConnectionCommand, type ConnectionEvent, type ConnectionRequest, type NodeFacts } from '../../aggregates/connection/index.ts';
import { interfaceNameFor } from '../../src/contracts/interfaceNames.ts';
import type { Match } from '../../aggregates/domain.ts';
import type { Candidate } from '../../aggregates/selection.ts';
import { tunnelParameters } from '../../aggregates/tunnelPool.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const request: ConnectionRequest = {
  connectionId: 'conn-1',
  networkService: 'secure-net',
  payload: 'IP',
  labels: { app: 'web' },
  clientNode: 'node-a',
  clientNetns: '/var/run/netns/web',
  clientInterface: 'nsm0',
  mechanismPreferences: [],
  requestId: 'req-1',
};
const nseB: Candidate = { name: 'nse-b', node: 'node-b', labels: { tier: 'gold' }, load: 0 };
const service = { payload: 'IP' as const, matches: [] as Match[] };

/** `svc: null` stands for a service the registry does not know. */
const requestCmd = (over: Partial<ConnectionRequest> = {}, endpoints: readonly Candidate[] = [nseB], svc: typeof service | null = service): ConnectionCommand => ({
  type: 'RequestConnection',
  request: { ...request, ...over },
  registry: svc ? { service: svc, endpoints } : { endpoints },
});

const allFacts: NodeFacts = { mechanisms: ['kernel', 'vxlan', 'wireguard'], mtu: 1500 };
const planCmd = (over: Partial<Extract<ConnectionCommand, { type: 'PlanPath' }>> = {}): ConnectionCommand => ({
  type: 'PlanPath',
  connectionId: 'conn-1',
  endpointInterface: interfaceNameFor('nse', 'conn-1'),
  endpoint: 'nse-b',
  allocation: { pairs: [{ src: '10.60.0.3/32', dst: '10.60.0.2/32', prefix: '10.60.0.0/24' }], excludedPrefixes: ['10.0.0.0/8'] },
  tunnel: tunnelParameters(7),
  clientNodeFacts: allFacts,
  endpointNodeFacts: { mechanisms: ['kernel', 'vxlan', 'wireguard'], mtu: 1420 },
  ...over,
});
const report = (
  side: 'client' | 'endpoint',
  result: 'programmed' | 'removed' | 'failed',
  over: { node?: string; generation?: number; error?: string } = {},
): ConnectionCommand => ({
  type: 'ReportDataplane',
  connectionId: 'conn-1',
  node: over.node ?? (side === 'client' ? 'node-a' : 'node-b'),
  side,
  generation: over.generation ?? 1,
  result,
  ...(over.error !== undefined ? { error: over.error } : {}),
  at: '2026-01-01T00:00:10.000Z',
});
const close: ConnectionCommand = { type: 'CloseConnection', connectionId: 'conn-1', reason: 'client closed' };

// Histories, each one step further along.
const requested: ConnectionEvent = { type: 'ConnectionRequested', ...request };
const selected: ConnectionEvent = { type: 'EndpointSelected', endpoint: 'nse-b', endpointNode: 'node-b', considered: 1, excluded: [] };
const planned: ConnectionEvent = {
  type: 'PathPlanned',
  generation: 1,
  mechanism: { local: 'kernel', remote: 'wireguard' },
  context: {
    ipContext: {
      srcIpAddrs: ['10.60.0.3/32'],
      dstIpAddrs: ['10.60.0.2/32'],
      srcRoutes: [{ prefix: '10.60.0.2/32' }],
      dstRoutes: [{ prefix: '10.60.0.3/32' }],
      excludedPrefixes: ['10.0.0.0/8'],
    },
    dnsContext: { configs: [] },
    ethernetContext: {},
    mtu: 1420 - 80,
  },
  path: {
    index: 0,
    pathSegments: [
      { name: 'client@node-a', id: 'conn-1' },
      { name: 'nse-b', id: 'conn-1' },
    ],
  },
  clientInterface: 'nsm0',
  endpointInterface: interfaceNameFor('nse', 'conn-1'),
  tunnel: tunnelParameters(7),
};
const clientProgrammed: ConnectionEvent = { type: 'DataplaneProgrammed', generation: 1, node: 'node-a', side: 'client' };
const endpointProgrammed: ConnectionEvent = { type: 'DataplaneProgrammed', generation: 1, node: 'node-b', side: 'endpoint' };
const established: ConnectionEvent = { type: 'ConnectionEstablished', generation: 1 };
const closed: ConnectionEvent = { type: 'ConnectionClosed', reason: 'client closed' };
const atSelected = [requested, selected];
const atPlanned = [...atSelected, planned];
const atEstablished = [...atPlanned, clientProgrammed, endpointProgrammed, established];
const atClosed = [...atEstablished, closed];

const lifecycle = suite('connection: lifecycle');

lifecycle('request -> select -> plan -> programmed on both sides -> established -> closed -> removed', () => {
  const afterRequest = given(connection).when(requestCmd()).thenEvents([requested, selected]);
  assert.is(afterRequest.state.phase, 'endpoint-selected');
  assert.equal(afterRequest.state.endpoint, { name: 'nse-b', node: 'node-b' });
  assert.equal(afterRequest.state.request, request);

  const afterPlan = afterRequest.when(planCmd()).thenEvents([planned]);
  assert.is(afterPlan.state.phase, 'path-planned');
  assert.is(afterPlan.state.generation, 1);
  assert.equal(afterPlan.state.programmed, []);

  const half = afterPlan.when(report('client', 'programmed')).thenEvents([clientProgrammed]);
  assert.is(half.state.phase, 'path-planned');
  assert.equal(half.state.programmed, ['client']);

  const up = half.when(report('endpoint', 'programmed')).thenEvents([endpointProgrammed, established]);
  assert.is(up.state.phase, 'established');
  assert.equal(up.state.programmed, ['client', 'endpoint']);

  const down = up.when(close).thenEvents([closed]);
  assert.is(down.state.phase, 'closed');
  assert.is(down.state.closeReason, 'client closed');

  const gone = down
    .when(report('endpoint', 'removed'))
    .thenEvents([{ type: 'DataplaneRemoved', generation: 1, node: 'node-b', side: 'endpoint' }])
    .when(report('client', 'removed'))
    .thenEvents([{ type: 'DataplaneRemoved', generation: 1, node: 'node-a', side: 'client' }]);
  assert.equal(gone.state.removed, ['endpoint', 'client']);
  assert.equal(
    gone.history.map((e) => e.type),
    ['ConnectionRequested', 'EndpointSelected', 'PathPlanned', 'DataplaneProgrammed', 'DataplaneProgrammed', 'ConnectionEstablished', 'ConnectionClosed', 'DataplaneRemoved', 'DataplaneRemoved'],
  );
});

lifecycle('sides may be programmed in either order: the second one establishes', () => {
  given(connection, [...atPlanned, endpointProgrammed])
    .when(report('client', 'programmed'))
    .thenEvents([clientProgrammed, established]);
});

lifecycle('the requested event carries the service\'s payload, not the client\'s guess', () => {
  const evs = given(connection).when(requestCmd({ payload: 'ETHERNET' })).events();
  assert.equal(evs[0], { ...requested, payload: 'IP' });
});

lifecycle('selection prefers an endpoint on the client\'s node and records how many matched', () => {
  const local: Candidate = { name: 'nse-local', node: 'node-a', labels: {}, load: 5 };
  given(connection)
    .when(requestCmd({}, [nseB, local]))
    .thenEvents([requested, { type: 'EndpointSelected', endpoint: 'nse-local', endpointNode: 'node-a', considered: 2, excluded: [] }]);
});

lifecycle('same-node path: kernel only, no tunnel overhead on the MTU', () => {
  const sameNode: ConnectionEvent = { type: 'EndpointSelected', endpoint: 'nse-b', endpointNode: 'node-a', considered: 1, excluded: [] };
  const evs = given(connection, [requested, sameNode]).when(planCmd()).events();
  assert.is(evs.length, 1);
  const ev = evs[0]!;
  assert.is(ev.type, 'PathPlanned');
  if (ev.type !== 'PathPlanned') return;
  assert.equal(ev.mechanism, { local: 'kernel' });
  assert.is(ev.context.mtu, 1420);
});

lifecycle('a vxlan path takes 50 bytes off the smaller MTU', () => {
  const evs = given(connection, [{ ...requested, mechanismPreferences: ['kernel', 'vxlan'] }, selected]).when(planCmd()).events();
  const ev = evs[0]!;
  if (ev.type !== 'PathPlanned') return assert.unreachable(`expected PathPlanned, got ${ev.type}`);
  assert.equal(ev.mechanism, { local: 'kernel', remote: 'vxlan' });
  assert.is(ev.context.mtu, 1370);
});

lifecycle('planning is idempotent: a second PlanPath after planning emits nothing', () => {
  given(connection, atPlanned).when(planCmd()).thenEvents([]);
  given(connection, atEstablished).when(planCmd()).thenEvents([]);
});

lifecycle('a PlanPath for an endpoint other than the selected one is ignored', () => {
  given(connection, atSelected).when(planCmd({ endpoint: 'nse-other' })).thenEvents([]);
});

lifecycle('programmed reported twice for one side: the second emits nothing', () => {
  given(connection, [...atPlanned, clientProgrammed]).when(report('client', 'programmed')).thenEvents([]);
});

lifecycle('interface names: role + 4 characters of the id + 8 hex digits of its hash, at most 15 bytes', () => {
  assert.match(interfaceNameFor('nse', 'conn-1'), /^nseconn[0-9a-f]{8}$/);
  assert.match(interfaceNameFor('nsm', 'ABC-def-123-456-789'), /^nsmabcd[0-9a-f]{8}$/);
  assert.is(interfaceNameFor('nse', 'ABC-def-123-456-789').length, 15);
  assert.is(interfaceNameFor('nse', 'x').length, 12);
  assert.is.not(interfaceNameFor('nsm', 'web-client-1'), interfaceNameFor('nsm', 'web-client-2'), 'ids sharing a prefix get distinct names');
});

lifecycle.run();

const failures = suite('connection: failures and idempotency');

failures('an unknown network service is rejected and nothing is recorded', () => {
  given(connection).when(requestCmd({}, [nseB], null)).thenRejected('not-found', 'network service "secure-net" is not registered');
});

failures('no endpoint registered: ConnectionRequested + ConnectionFailed(no-endpoint)', () => {
  const next = given(connection)
    .when(requestCmd({}, []))
    .thenEvents([
      requested,
      { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'no endpoint is registered for network service "secure-net"' },
    ]);
  assert.is(next.state.phase, 'failed');
  assert.equal(next.state.failure?.code, 'no-endpoint');
});

failures('no endpoint matching the client labels: failed with no-endpoint and the labels in the reason', () => {
  const svc = { payload: 'IP' as const, matches: [{ sourceSelector: { app: 'web' }, routes: [{ destinationSelector: { tier: 'platinum' } }], fallthrough: false }] };
  const evs = given(connection).when(requestCmd({}, [nseB], svc)).events();
  assert.equal(evs[1], {
    type: 'ConnectionFailed',
    code: 'no-endpoint',
    reason: 'no endpoint of "secure-net" matches the client\'s labels {"app":"web"}',
  });
});

failures('client node unknown at planning: ConnectionFailed(node-unknown) naming the client node', () => {
  const { clientNodeFacts: _c, ...cmd } = planCmd() as Extract<ConnectionCommand, { type: 'PlanPath' }>;
  const next = given(connection, atSelected)
    .when(cmd)
    .thenEvents([{ type: 'ConnectionFailed', code: 'node-unknown', reason: 'node "node-a" has not joined the mesh' }]);
  assert.is(next.state.phase, 'failed');
});

failures('endpoint node unknown at planning: ConnectionFailed(node-unknown) naming the endpoint node', () => {
  const { endpointNodeFacts: _e, ...cmd } = planCmd() as Extract<ConnectionCommand, { type: 'PlanPath' }>;
  given(connection, atSelected)
    .when(cmd)
    .thenEvents([{ type: 'ConnectionFailed', code: 'node-unknown', reason: 'node "node-b" has not joined the mesh' }]);
});

failures('no common mechanism: ConnectionFailed(no-mechanism) with the negotiation\'s reason', () => {
  const evs = given(connection, atSelected)
    .when(planCmd({ clientNodeFacts: { mechanisms: ['kernel', 'vxlan'], mtu: 1500 }, endpointNodeFacts: { mechanisms: ['kernel', 'wireguard'], mtu: 1500 } }))
    .events();
  assert.is(evs.length, 1);
  const ev = evs[0]!;
  if (ev.type !== 'ConnectionFailed') return assert.unreachable(`expected ConnectionFailed, got ${ev.type}`);
  assert.is(ev.code, 'no-mechanism');
  assert.ok(ev.reason.includes('no mechanism joins node node-a (kernel, vxlan) and node node-b (kernel, wireguard)'), ev.reason);
});

failures('PlanPath for a connection that does not exist is not-found', () => {
  given(connection).when(planCmd()).thenRejected('not-found', 'connection "conn-1" does not exist');
});

failures('a dataplane failure on the client side fails the connection with code dataplane', () => {
  const next = given(connection, atPlanned)
    .when(report('client', 'failed', { error: 'RTNETLINK answers: File exists' }))
    .thenEvents([
      { type: 'DataplaneFailed', generation: 1, node: 'node-a', side: 'client', error: 'RTNETLINK answers: File exists' },
      { type: 'ConnectionFailed', code: 'dataplane', reason: 'dataplane on node node-a (client side): RTNETLINK answers: File exists' },
    ]);
  assert.is(next.state.phase, 'failed');
  assert.equal(next.state.failure, { code: 'dataplane', reason: 'dataplane on node node-a (client side): RTNETLINK answers: File exists' });
});

failures("a dataplane failure on the endpoint's side leaves the connection to be moved elsewhere (a heal), not failed", () => {
  const next = given(connection, atPlanned)
    .when(report('endpoint', 'failed', { error: 'network namespace ep-3 does not exist' }))
    .thenEvents([{ type: 'DataplaneFailed', generation: 1, node: 'node-b', side: 'endpoint', error: 'network namespace ep-3 does not exist' }]);
  assert.is(next.state.phase, 'path-planned');
  assert.is(next.state.failure, undefined);
  // A side the agent refused (its path tokens do not check out) fails it: another endpoint would not help.
  given(connection, atPlanned)
    .when({ ...report('endpoint', 'failed', { error: 'refused: path segment 1 (control-plane): signed by an unknown key' }), refused: true } as ConnectionCommand)
    .thenEvents([
      { type: 'DataplaneFailed', generation: 1, node: 'node-b', side: 'endpoint', error: 'refused: path segment 1 (control-plane): signed by an unknown key' },
      { type: 'ConnectionFailed', code: 'dataplane', reason: 'dataplane on node node-b (endpoint side): refused: path segment 1 (control-plane): signed by an unknown key' },
    ]);
});

failures('a failure report without an error says "unknown error", and also fails an established connection', () => {
  given(connection, atEstablished)
    .when(report('client', 'failed'))
    .thenEvents([
      { type: 'DataplaneFailed', generation: 1, node: 'node-a', side: 'client', error: 'unknown error' },
      { type: 'ConnectionFailed', code: 'dataplane', reason: 'dataplane on node node-a (client side): unknown error' },
    ]);
});

failures('a second failure report after the connection failed emits nothing', () => {
  const failedHistory = given(connection, atPlanned).when(report('client', 'failed', { error: 'x' })).accepted().history;
  given(connection, failedHistory).when(report('endpoint', 'failed', { error: 'y' })).thenEvents([]);
});

failures('a report for a stale generation is ignored, whatever it says', () => {
  const replanned: ConnectionEvent = { ...planned, generation: 2 } as ConnectionEvent;
  const history = [...atPlanned, replanned];
  given(connection, history).when(report('client', 'programmed', { generation: 1 })).thenEvents([]);
  given(connection, history).when(report('client', 'failed', { generation: 1, error: 'old' })).thenEvents([]);
  // and even from a node that has nothing to do with it
  given(connection, history).when(report('client', 'programmed', { generation: 1, node: 'node-z' })).thenEvents([]);
  // the current generation is accepted
  given(connection, history)
    .when(report('client', 'programmed', { generation: 2 }))
    .thenEvents([{ type: 'DataplaneProgrammed', generation: 2, node: 'node-a', side: 'client' }]);
});

failures('a report from the wrong node is rejected as invalid', () => {
  given(connection, atPlanned)
    .when(report('client', 'programmed', { node: 'node-b' }))
    .thenRejected('invalid', 'node "node-b" reported the client side, which belongs to node "node-a"');
  given(connection, atPlanned)
    .when(report('endpoint', 'failed', { node: 'node-a', error: 'x' }))
    .thenRejected('invalid', 'which belongs to node "node-b"');
});

failures('a report for an unknown connection is not-found', () => {
  given(connection).when(report('client', 'programmed')).thenRejected('not-found', 'connection "conn-1" does not exist');
});

failures('a programmed report before the path is planned emits nothing', () => {
  given(connection, atSelected).when(report('client', 'programmed', { generation: 0 })).thenEvents([]);
});

failures('a programmed report after close emits nothing', () => {
  given(connection, [...atPlanned, closed]).when(report('client', 'programmed')).thenEvents([]);
});

failures('a removed report while the connection is still live emits nothing', () => {
  given(connection, atEstablished).when(report('client', 'removed')).thenEvents([]);
});

failures('removed reported twice after close: the second emits nothing', () => {
  given(connection, [...atClosed, { type: 'DataplaneRemoved', generation: 1, node: 'node-a', side: 'client' }])
    .when(report('client', 'removed'))
    .thenEvents([]);
});

failures('a removed report after a dataplane failure is recorded', () => {
  const failedHistory = given(connection, atPlanned).when(report('client', 'failed', { error: 'x' })).accepted().history;
  given(connection, failedHistory)
    .when(report('endpoint', 'removed'))
    .thenEvents([{ type: 'DataplaneRemoved', generation: 1, node: 'node-b', side: 'endpoint' }]);
});

failures('a duplicate request with the same requestId emits nothing, even with a different registry', () => {
  given(connection, atSelected).when(requestCmd()).thenEvents([]);
  given(connection, atSelected).when(requestCmd({}, [])).thenEvents([]);
  given(connection, atEstablished).when(requestCmd()).thenEvents([]);
});

failures('a duplicate of a request that failed for lack of an endpoint still emits nothing', () => {
  const history = given(connection).when(requestCmd({}, [])).accepted().history;
  given(connection, history).when(requestCmd()).thenEvents([]);
});

failures('the same connection id with a different requestId is a conflict', () => {
  given(connection, atSelected).when(requestCmd({ requestId: 'req-2' })).thenRejected('conflict', 'connection id "conn-1" is already in use');
  given(connection, atClosed).when(requestCmd({ requestId: 'req-2' })).thenRejected('conflict', 'already in use');
});

failures('FailConnection fails a live connection with the given code', () => {
  const next = given(connection, atEstablished)
    .when({ type: 'FailConnection', connectionId: 'conn-1', code: 'address', reason: 'pool exhausted' })
    .thenEvents([{ type: 'ConnectionFailed', code: 'address', reason: 'pool exhausted' }]);
  assert.is(next.state.phase, 'failed');
});

failures('FailConnection on a closed or failed connection emits nothing; on an unknown one is not-found', () => {
  given(connection, atClosed).when({ type: 'FailConnection', connectionId: 'conn-1', code: 'address', reason: 'x' }).thenEvents([]);
  given(connection, [requested, { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'none' }])
    .when({ type: 'FailConnection', connectionId: 'conn-1', code: 'address', reason: 'x' })
    .thenEvents([]);
  given(connection)
    .when({ type: 'FailConnection', connectionId: 'conn-1', code: 'address', reason: 'x' })
    .thenRejected('not-found', 'connection "conn-1" does not exist');
});

failures('closing twice: the second close emits nothing', () => {
  given(connection, atEstablished).when(close).thenEvents([closed]).when(close).thenEvents([]);
});

failures('a failed connection can still be closed', () => {
  const next = given(connection, [requested, { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'none' }]).when(close).thenEvents([closed]);
  assert.is(next.state.phase, 'closed');
  assert.equal(next.state.failure, { code: 'no-endpoint', reason: 'none' });
});

failures('a connection can be closed before its path is planned', () => {
  given(connection, atSelected).when(close).thenEvents([closed]);
});

failures('closing an unknown connection is not-found', () => {
  given(connection).when(close).thenRejected('not-found', 'connection "conn-1" does not exist');
});

failures.run();

const dataplaneFacts = suite('connection: what the plan carries for the dataplane');

dataplaneFacts('an ETHERNET payload puts both sides in the pool subnet with no routes (one L2 segment, ARP)', () => {
  const evs = given(connection, [{ ...requested, payload: 'ETHERNET', mechanismPreferences: ['kernel', 'vxlan'] }, selected]).when(planCmd()).events();
  const ev = evs[0]!;
  if (ev.type !== 'PathPlanned') return assert.unreachable(`expected PathPlanned, got ${ev.type}`);
  assert.equal(ev.context.ipContext.srcIpAddrs, ['10.60.0.3/24']);
  assert.equal(ev.context.ipContext.dstIpAddrs, ['10.60.0.2/24']);
  assert.equal(ev.context.ipContext.srcRoutes, []);
  assert.equal(ev.context.ipContext.dstRoutes, []);
  assert.equal(ev.mechanism, { local: 'kernel', remote: 'vxlan' });
});

dataplaneFacts('a cross-node plan without a tunnel id is refused (a process-manager bug, not a user error)', () => {
  const { tunnel: _t, ...cmd } = planCmd() as Extract<ConnectionCommand, { type: 'PlanPath' }>;
  given(connection, atSelected).when(cmd).thenRejected('invalid', 'needs a tunnel id');
});

dataplaneFacts('a same-node plan carries no tunnel even when one is offered', () => {
  const sameNode: ConnectionEvent = { type: 'EndpointSelected', endpoint: 'nse-b', endpointNode: 'node-a', considered: 1, excluded: [] };
  const ev = given(connection, [requested, sameNode]).when(planCmd()).events()[0]!;
  if (ev.type !== 'PathPlanned') return assert.unreachable(`expected PathPlanned, got ${ev.type}`);
  assert.is(ev.tunnel, undefined);
});

dataplaneFacts("the endpoint's namespace is recorded in the plan", () => {
  const ev = given(connection, atSelected).when(planCmd({ endpointNetns: 'nse-ns' })).events()[0]!;
  if (ev.type !== 'PathPlanned') return assert.unreachable(`expected PathPlanned, got ${ev.type}`);
  assert.is(ev.endpointNetns, 'nse-ns');
  assert.equal(ev.tunnel, { id: 7, vni: 10007, vxlanPort: 4789, wireguardPort: 40007 });
});
dataplaneFacts.run();

// ---- IPv6 and dual stack ---------------------------------------------------------------------

const s = suite('connection: IPv6 and dual stack');

const dualPairs = [
  { prefix: 'fd00:10::/64', src: 'fd00:10::3/128', dst: 'fd00:10::2/128' },
  { prefix: '10.60.0.0/24', src: '10.60.0.3/32', dst: '10.60.0.2/32' },
];

s('dual stack, IP payload: an address and a route to the peer per family, on both sides', () => {
  const ev = given(connection, atSelected).when(planCmd({ allocation: { pairs: dualPairs, excludedPrefixes: [] } })).events()[0]!;
  if (ev.type !== 'PathPlanned') throw new Error(ev.type);
  assert.equal(ev.context.ipContext, {
    srcIpAddrs: ['fd00:10::3/128', '10.60.0.3/32'],
    dstIpAddrs: ['fd00:10::2/128', '10.60.0.2/32'],
    srcRoutes: [{ prefix: 'fd00:10::2/128' }, { prefix: '10.60.0.2/32' }],
    dstRoutes: [{ prefix: 'fd00:10::3/128' }, { prefix: '10.60.0.3/32' }],
    excludedPrefixes: [],
  });
});

s('dual stack, ETHERNET payload: each address with its prefix length, no routes', () => {
  const ev = given(connection, [{ ...requested, payload: 'ETHERNET', mechanismPreferences: ['kernel', 'vxlan'] }, selected])
    .when(planCmd({ allocation: { pairs: dualPairs, excludedPrefixes: [] } }))
    .events()[0]!;
  if (ev.type !== 'PathPlanned') throw new Error(ev.type);
  assert.equal([ev.context.ipContext.srcIpAddrs, ev.context.ipContext.dstIpAddrs, ev.context.ipContext.srcRoutes], [['fd00:10::3/64', '10.60.0.3/24'], ['fd00:10::2/64', '10.60.0.2/24'], []]);
});

s('VXLAN over an IPv6 underlay leaves 70 bytes for its headers (50 over IPv4); WireGuard always 80', () => {
  const v6 = (mtu: number, underlayAddress: string) => ({ mechanisms: ['kernel', 'vxlan', 'wireguard'] as MechanismType[], mtu, underlayAddress });
  const mtuOf = (pref: MechanismType, a: string, b: string) => {
    const ev = given(connection, [{ ...requested, mechanismPreferences: [pref] }, selected]).when(planCmd({ clientNodeFacts: v6(1500, a), endpointNodeFacts: v6(1500, b) })).events()[0]!;
    if (ev.type !== 'PathPlanned') throw new Error(`${ev.type}: ${JSON.stringify(ev)}`);
    return ev.context.mtu;
  };
  assert.is(mtuOf('vxlan', 'fd31::11', 'fd31::12'), 1430);
  assert.is(mtuOf('vxlan', '172.31.0.11', '172.31.0.12'), 1450);
  assert.is(mtuOf('wireguard', 'fd31::11', 'fd31::12'), 1420);
  assert.is(mtuOf('wireguard', '172.31.0.11', '172.31.0.12'), 1420);
});

s('nodes reached over different families cannot be joined by a tunnel: the connection fails saying so', () => {
  given(connection, atSelected)
    .when(planCmd({ clientNodeFacts: { ...allFacts, underlayAddress: '172.31.0.11' }, endpointNodeFacts: { ...allFacts, underlayAddress: 'fd31::12' } }))
    .thenEvents([
      {
        type: 'ConnectionFailed',
        code: 'no-mechanism',
        reason: 'node node-a is reached over IPv4 (172.31.0.11) and node node-b over IPv6 (fd31::12): a wireguard tunnel needs one family on both',
      },
    ]);
});

s.run();

// ---- DNS context ------------------------------------------------------------------------------

const dnsSuite = suite('connection: DNS context');

dnsSuite('the endpoint\'s DNS goes into the plan, "endpoint" standing for its own address of each family', () => {
  const ev = given(connection, atSelected)
    .when(planCmd({ allocation: { pairs: dualPairs, excludedPrefixes: [] }, dns: [{ servers: ['endpoint', '192.0.2.53'], searchDomains: ['svc.test', 'example.org'] }] }))
    .events()[0]!;
  if (ev.type !== 'PathPlanned') throw new Error(ev.type);
  assert.equal(ev.context.dnsContext, { configs: [{ dnsServerIps: ['fd00:10::2', '10.60.0.2', '192.0.2.53'], searchDomains: ['svc.test', 'example.org'] }] });
});

dnsSuite('an endpoint without DNS gives none; an IPv4-only connection names only its IPv4 address', () => {
  const none = given(connection, atSelected).when(planCmd()).events()[0]!;
  if (none.type !== 'PathPlanned') throw new Error(none.type);
  assert.equal(none.context.dnsContext, { configs: [] });
  const v4 = given(connection, atSelected).when(planCmd({ dns: [{ servers: ['endpoint'], searchDomains: [] }] })).events()[0]!;
  if (v4.type !== 'PathPlanned') throw new Error(v4.type);
  assert.equal(v4.context.dnsContext, { configs: [{ dnsServerIps: ['10.60.0.2'], searchDomains: [] }] });
});

dnsSuite('the endpoint\'s DNS and the service\'s: a config each, the endpoint\'s first', () => {
  const ev = given(connection, atSelected)
    .when(planCmd({ dns: [{ servers: ['endpoint'], searchDomains: ['svc.test'] }, { servers: ['192.0.2.53', 'endpoint'], searchDomains: ['cluster.test'] }] }))
    .events()[0]!;
  if (ev.type !== 'PathPlanned') throw new Error(ev.type);
  assert.equal(ev.context.dnsContext.configs, [
    { dnsServerIps: ['10.60.0.2'], searchDomains: ['svc.test'] },
    { dnsServerIps: ['192.0.2.53', '10.60.0.2'], searchDomains: ['cluster.test'] },
  ]);
});

dnsSuite.run();
