// Given/when/then for connections that span two domains: the endpoint domain's half (selection,
// a registry's redirect, refusals recorded as failures), the client domain's half (mirroring
// the remote plan, establishment from both sides' progress, heals from there, the link going
// down and coming back), and which sides each domain programs.
import * as assert from 'uvu/assert';
import { connection, type ConnectionCommand, type ConnectionEvent, type ConnectionRequest, type RemoteNode } from '../../aggregates/connection/index.ts';
import { localSides, tunnelRangeConflict, type RemoteEndpointPlan, type RemoteState } from '../../aggregates/connection/index.ts';
import type { Candidate } from '../../aggregates/selection.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:02.000Z';

const clientNode: RemoteNode = { name: 'n1', domain: 'a', address: '172.31.0.11', publicKeys: { wireguard: 'k1' }, mechanisms: ['kernel', 'vxlan', 'wireguard'], mtu: 1500, tunnelIds: { from: 0, to: 999 } };

/** The endpoint domain b receives a's request. */
const remoteRequest: ConnectionRequest = {
  connectionId: 'x1',
  networkService: 'icmp',
  payload: 'IP',
  labels: {},
  clientNode: 'n1@a',
  clientInterface: 'nsm0',
  mechanismPreferences: ['wireguard'],
  requestId: 'r1',
  remoteClient: clientNode,
};
const epLocal: Candidate = { name: 'ep1', node: 'nb1', labels: {}, load: 0 };
const epOther: Candidate = { name: 'ep2', node: 'nb2', labels: {}, load: 0 };
const registry = (...endpoints: Candidate[]) => ({ service: { payload: 'IP' as const, matches: [] }, endpoints });

const s = suite('connection across domains');

s('endpoint domain: a remote request selects here; its client node is "<node>@<domain>"', () => {
  const next = given(connection)
    .when({ type: 'RequestConnection', request: remoteRequest, registry: registry(epOther, epLocal) })
    .thenEvents([
      { type: 'ConnectionRequested', ...remoteRequest },
      { type: 'EndpointSelected', endpoint: 'ep1', endpointNode: 'nb1', considered: 2, excluded: [] },
    ]);
  assert.equal(localSides(next.state), ['endpoint'], 'only the endpoint side is programmed here');
  // The same request again (redelivered, or re-sent after the link came back) changes nothing.
  next.when({ type: 'RequestConnection', request: remoteRequest, registry: registry(epLocal) }).thenEvents([]);
});

s('endpoint domain: what cannot be served is a failure in the log, not a silent rejection', () => {
  given(connection)
    .when({ type: 'RequestConnection', request: remoteRequest, registry: { endpoints: [] } })
    .thenEvents([
      { type: 'ConnectionRequested', ...remoteRequest },
      { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'network service "icmp" is not registered in this domain' },
    ]);
  given(connection)
    .when({ type: 'RequestConnection', request: remoteRequest, registry: registry(), refuse: { code: 'address', reason: 'tunnel ids overlap' } })
    .thenEvents([
      { type: 'ConnectionRequested', ...remoteRequest },
      { type: 'ConnectionFailed', code: 'address', reason: 'tunnel ids overlap' },
    ]);
});

s('endpoint domain: a hinted endpoint (a floating registry chose it) is preferred when it matches', () => {
  given(connection)
    .when({ type: 'RequestConnection', request: { ...remoteRequest, endpointHint: 'ep2' }, registry: registry(epLocal, epOther) })
    .thenEvents([
      { type: 'ConnectionRequested', ...remoteRequest, endpointHint: 'ep2' },
      { type: 'EndpointSelected', endpoint: 'ep2', endpointNode: 'nb2', considered: 1, excluded: [] },
    ]);
});

s('endpoint domain and local redirects: the least loaded endpoint, with loads asked of the control plane', () => {
  // As the control plane passes them: candidates without loads, and loadOf.
  const shared = (...names: string[]) => names.map((name): Candidate => ({ name, node: `n-${name}`, labels: {} }));
  const loads: Record<string, number> = { ep1: 7, ep2: 1 };
  const withLoads = { ...registry(...shared('ep1', 'ep2')), loadOf: (ep: string) => loads[ep] ?? 0 };
  given(connection)
    .when({ type: 'RequestConnection', request: remoteRequest, registry: withLoads })
    .thenEvents([
      { type: 'ConnectionRequested', ...remoteRequest },
      { type: 'EndpointSelected', endpoint: 'ep2', endpointNode: 'n-ep2', considered: 2, excluded: [] },
    ]);
  given(connection)
    .when({ type: 'RequestConnection', request: { ...clientRequest, domain: 'floating' }, registry: { endpoints: [] } })
    .accepted()
    .when({ type: 'RedirectConnection', connectionId: 'x1', from: 'floating', domain: 'a', at: T0, self: 'a', registry: withLoads })
    .thenEvents([
      { type: 'ConnectionRedirected', domain: 'a', via: 'floating', local: true },
      { type: 'EndpointSelected', endpoint: 'ep2', endpointNode: 'n-ep2', considered: 2, excluded: [] },
    ]);
});

s('registry-only domain: the request is redirected to the endpoint\'s home domain and is done here', () => {
  const floatingEp: Candidate = { name: 'ep1', node: 'nb1@b', labels: {}, load: 0, domain: 'b' };
  const next = given(connection)
    .when({ type: 'RequestConnection', request: remoteRequest, registry: registry(floatingEp), registryOnly: 'floating' })
    .thenEvents([
      { type: 'ConnectionRequested', ...remoteRequest },
      { type: 'ConnectionRedirected', domain: 'b', endpoint: 'ep1', via: 'floating' },
    ]);
  assert.is(next.state.phase, 'closed');
  assert.is(next.state.closeReason, 'redirected to domain b (endpoint ep1)');
});

s('tunnel id ranges of two domains must not overlap', () => {
  assert.match(tunnelRangeConflict({ domain: 'b', range: { from: 500, to: 1500 } }, clientNode) ?? '', /domain a \(0-999\) and domain b \(500-1500\) overlap/);
  assert.is(tunnelRangeConflict({ domain: 'b', range: { from: 1000, to: 1999 } }, clientNode), undefined);
});

// ---- the client domain a -------------------------------------------------------------------

const clientRequest: ConnectionRequest = {
  connectionId: 'x1',
  networkService: 'icmp',
  payload: 'IP',
  labels: {},
  clientNode: 'n1',
  clientInterface: 'nsm0',
  mechanismPreferences: [],
  requestId: 'r1',
  domain: 'b',
};
const endpointNode: RemoteNode = { name: 'nb1', domain: 'b', address: '172.31.0.12', publicKeys: { wireguard: 'k2' }, mechanisms: ['kernel', 'wireguard'], mtu: 1500 };
const remotePlan = (dst: string): RemoteEndpointPlan => ({
  endpoint: 'ep1',
  node: endpointNode,
  mechanism: { local: 'kernel', remote: 'wireguard' },
  context: {
    ipContext: { srcIpAddrs: ['10.80.0.3/32'], dstIpAddrs: [dst], srcRoutes: [{ prefix: dst }], dstRoutes: [{ prefix: '10.80.0.3/32' }], excludedPrefixes: [] },
    dnsContext: { configs: [] },
    ethernetContext: {},
    mtu: 1420,
  },
  endpointInterface: 'nsex1aaaaaaaa',
  tunnel: { id: 1000, vni: 11000, vxlanPort: 4789, wireguardPort: 41000 },
});
const remote = (state: Partial<RemoteState> & Pick<RemoteState, 'generation' | 'phase'>, from = 'b', at = T0): ConnectionCommand => ({
  type: 'ApplyRemoteState',
  connectionId: 'x1',
  from,
  state: { endpointProgrammed: false, ...state },
  at,
});
const report = (generation: number, at = T1): ConnectionCommand => ({ type: 'ReportDataplane', connectionId: 'x1', node: 'n1', side: 'client', generation, result: 'programmed', at });

const planned = (generation: number, remoteGeneration: number, dst: string): Extract<ConnectionEvent, { type: 'PathPlanned' }> => {
  const p = remotePlan(dst);
  return {
    type: 'PathPlanned',
    generation,
    mechanism: p.mechanism,
    context: p.context,
    path: { index: 0, pathSegments: [{ name: 'client@n1', id: 'x1' }, { name: 'ep1@b', id: 'x1' }] },
    clientInterface: 'nsm0',
    endpointInterface: p.endpointInterface,
    tunnel: p.tunnel!,
    remote: { domain: 'b', generation: remoteGeneration, peer: endpointNode },
  };
};

const requestedInA = () =>
  given(connection).when({ type: 'RequestConnection', request: clientRequest, registry: { endpoints: [] } }).thenEvents([{ type: 'ConnectionRequested', ...clientRequest }]);

const establishedInA = () =>
  requestedInA()
    .when(remote({ generation: 1, phase: 'planned', plan: remotePlan('10.80.0.2/32') }))
    .thenEvents([
      { type: 'EndpointSelected', endpoint: 'ep1@b', endpointNode: 'nb1@b', considered: 1, excluded: [] },
      planned(1, 1, '10.80.0.2/32'),
    ])
    .when(report(1))
    .thenEvents([{ type: 'DataplaneProgrammed', generation: 1, node: 'n1', side: 'client' }])
    .when(remote({ generation: 1, phase: 'planned', plan: remotePlan('10.80.0.2/32'), endpointProgrammed: true }, 'b', T1))
    .thenEvents([
      { type: 'DataplaneProgrammed', generation: 1, node: 'nb1@b', side: 'endpoint' },
      { type: 'ConnectionEstablished', generation: 1 },
    ]);

s('client domain: the request names the other domain; nothing is selected here', () => {
  const next = requestedInA();
  assert.is(next.state.remoteDomain, 'b');
  assert.equal(localSides(next.state), ['client'], 'only the client side is programmed here');
});

s('client domain: the remote plan becomes this side\'s plan; established once both sides are programmed', () => {
  const next = establishedInA();
  assert.is(next.state.phase, 'established');
  assert.equal(next.state.plan?.remote, { domain: 'b', generation: 1, peer: endpointNode });
  // The same state again, or an older one, changes nothing.
  next.when(remote({ generation: 1, phase: 'planned', plan: remotePlan('10.80.0.2/32'), endpointProgrammed: true })).thenEvents([]);
});

s('client domain: a state from another domain than the endpoint\'s is refused', () => {
  requestedInA().when(remote({ generation: 1, phase: 'planned', plan: remotePlan('10.80.0.2/32') }, 'c')).thenRejected('invalid', 'has no endpoint in domain c');
});

s('client domain: a heal in the endpoint domain re-plans this side, ending in ConnectionHealed', () => {
  const moved = { ...remotePlan('10.80.1.2/32'), endpoint: 'ep2', node: { ...endpointNode, name: 'nb2' } };
  const next = establishedInA()
    .when(remote({ generation: 2, phase: 'planned', plan: moved }, 'b', T0))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'remote', causeId: 'b:2:2', oldEndpoint: 'ep1@b', inPlace: false, startedAt: T0 },
      { type: 'EndpointSelected', endpoint: 'ep2@b', endpointNode: 'nb2@b', considered: 1, excluded: [] },
      { ...planned(2, 2, '10.80.1.2/32'), remote: { domain: 'b', generation: 2, peer: moved.node }, path: { index: 0, pathSegments: [{ name: 'client@n1', id: 'x1' }, { name: 'ep2@b', id: 'x1' }] } },
    ])
    .when(remote({ generation: 2, phase: 'planned', plan: moved, endpointProgrammed: true }))
    .thenEvents([{ type: 'DataplaneProgrammed', generation: 2, node: 'nb2@b', side: 'endpoint' }])
    .when(report(2, T1))
    .thenEvents([
      { type: 'DataplaneProgrammed', generation: 2, node: 'n1', side: 'client' },
      { type: 'ConnectionEstablished', generation: 2 },
      { type: 'ConnectionHealed', generation: 2, cause: 'remote', oldEndpoint: 'ep1@b', newEndpoint: 'ep2@b', startedAt: T0, durationMs: 2000 },
    ]);
  assert.is(next.state.heals, 1);
});

s('client domain: the link goes down, then the same plan comes back: re-planned on a new generation', () => {
  const down = establishedInA()
    .when({ type: 'MarkConnectionDown', connectionId: 'x1', node: '', domain: 'b', at: T0 })
    .thenEvents([{ type: 'ConnectionDown', node: 'nb1@b', since: T0, domain: 'b' }]);
  assert.is(down.state.phase, 'down');
  // Marking down for another domain, or again, does nothing.
  down.when({ type: 'MarkConnectionDown', connectionId: 'x1', node: '', domain: 'c', at: T0 }).thenEvents([]);
  const back = down
    .when(remote({ generation: 1, phase: 'planned', plan: remotePlan('10.80.0.2/32'), endpointProgrammed: true }, 'b', T0))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'peer-recovered', causeId: 'b:1:2', oldEndpoint: 'ep1@b', inPlace: true, startedAt: T0 },
      { type: 'EndpointSelected', endpoint: 'ep1@b', endpointNode: 'nb1@b', considered: 1, excluded: [] },
      planned(2, 1, '10.80.0.2/32'),
      { type: 'DataplaneProgrammed', generation: 2, node: 'nb1@b', side: 'endpoint' },
    ])
    .when(report(2, T1))
    .thenEvents([
      { type: 'DataplaneProgrammed', generation: 2, node: 'n1', side: 'client' },
      { type: 'ConnectionEstablished', generation: 2 },
      { type: 'ConnectionHealed', generation: 2, cause: 'peer-recovered', oldEndpoint: 'ep1@b', newEndpoint: 'ep1@b', startedAt: T0, durationMs: 2000 },
    ]);
  assert.is(back.state.phase, 'established');
  assert.is(back.state.down, undefined);
});

s("client domain: its own node recovering re-plans its side from the endpoint domain's state; no heal reselects here", () => {
  const down = establishedInA()
    .when({ type: 'MarkConnectionDown', connectionId: 'x1', node: 'n1', at: T0 })
    .thenEvents([{ type: 'ConnectionDown', node: 'n1', since: T0 }]);
  // A heal asked for on this side changes nothing: the endpoint's domain selects and plans.
  down.when({ type: 'HealConnection', connectionId: 'x1', cause: 'node-recovered', causeId: 'ev-9', at: T0, exclude: [], escalateWithinMs: 60_000, registry: { endpoints: [] } }).thenEvents([]);
  establishedInA()
    .when({ type: 'HealConnection', connectionId: 'x1', cause: 'datapath', causeId: 'ev-10', at: T0, exclude: [], escalateWithinMs: 60_000, registry: { endpoints: [] } })
    .thenEvents([]);
  // The state asked from the endpoint's domain re-plans it.
  down
    .when(remote({ generation: 1, phase: 'planned', plan: remotePlan('10.80.0.2/32'), endpointProgrammed: true }, 'b', T0))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'node-recovered', causeId: 'b:1:2', oldEndpoint: 'ep1@b', inPlace: true, startedAt: T0 },
      { type: 'EndpointSelected', endpoint: 'ep1@b', endpointNode: 'nb1@b', considered: 1, excluded: [] },
      planned(2, 1, '10.80.0.2/32'),
      { type: 'DataplaneProgrammed', generation: 2, node: 'nb1@b', side: 'endpoint' },
    ]);
});

s('client domain: waiting, failed and closed over there end or suspend it here', () => {
  const waiting = establishedInA()
    .when(remote({ generation: 1, phase: 'waiting', reason: 'no endpoint of "icmp" left' }))
    .events();
  assert.equal(waiting.map((e) => e.type), ['ConnectionHealing', 'ConnectionWaiting']);
  assert.equal((waiting[1] as { replaces?: { sides: string[] } }).replaces?.sides, ['client', 'endpoint']);
  establishedInA()
    .when(remote({ generation: 1, phase: 'closed', reason: 'closed by operator' }))
    .thenEvents([{ type: 'ConnectionClosed', reason: 'closed in domain b: closed by operator', by: 'b' }])
    .when(remote({ generation: 1, phase: 'failed', reason: 'late' }))
    .thenEvents([]);
  requestedInA()
    .when(remote({ generation: 0, phase: 'failed', code: 'no-endpoint', reason: 'network service "icmp" is not registered in this domain' }))
    .thenEvents([{ type: 'ConnectionFailed', code: 'no-endpoint', reason: 'domain b: network service "icmp" is not registered in this domain', by: 'b' }]);
});

s('client domain: a floating registry redirects to the home domain, or back here', () => {
  const viaFloating = { ...clientRequest, domain: 'floating' };
  const requested = given(connection).when({ type: 'RequestConnection', request: viaFloating, registry: { endpoints: [] } }).accepted();
  const redirected = requested
    .when({ type: 'RedirectConnection', connectionId: 'x1', from: 'floating', domain: 'c', endpoint: 'ep9', at: T0, self: 'a', registry: { endpoints: [] } })
    .thenEvents([{ type: 'ConnectionRedirected', domain: 'c', via: 'floating', endpoint: 'ep9' }]);
  assert.is(redirected.state.remoteDomain, 'c');
  // Now the state comes from c, not from the registry.
  redirected.when(remote({ generation: 1, phase: 'planned', plan: remotePlan('10.80.0.2/32') }, 'floating')).thenRejected('invalid', 'no endpoint in domain floating');
  const local = requested
    .when({ type: 'RedirectConnection', connectionId: 'x1', from: 'floating', domain: 'a', endpoint: 'ep9', at: T0, self: 'a', registry: registry({ name: 'ep9', node: 'n2', labels: {}, load: 0 }, { name: 'ep0', node: 'n1', labels: {}, load: 0 }) })
    .thenEvents([
      { type: 'ConnectionRedirected', domain: 'a', via: 'floating', local: true, endpoint: 'ep9' },
      { type: 'EndpointSelected', endpoint: 'ep9', endpointNode: 'n2', considered: 1, excluded: [] },
    ]);
  assert.is(local.state.remoteDomain, undefined, 'a local connection from here on');
  requested
    .when({ type: 'RedirectConnection', connectionId: 'x1', from: 'floating', reason: 'no endpoint of "icmp"', at: T0, self: 'a', registry: { endpoints: [] } })
    .thenEvents([{ type: 'ConnectionFailed', code: 'no-endpoint', reason: 'registry floating: no endpoint of "icmp"', by: 'floating' }]);
});

s.run();
