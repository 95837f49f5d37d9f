// Given/when/then for how a connection heals: reselection, in-place repair, escalation,
// waiting, a lost client node, expiry, and idempotence of every step.
import * as assert from 'uvu/assert';
import { connection, type ConnectionCommand, type ConnectionEvent, type ConnectionRequest, type RegistryContext } from '../../aggregates/connection/index.ts';
import { interfaceNameFor } from '../../src/contracts/interfaceNames.ts';
import type { Candidate } from '../../aggregates/selection.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const request: ConnectionRequest = {
  connectionId: 'c1',
  networkService: 'svc',
  payload: 'IP',
  labels: { app: 'web' },
  clientNode: 'n1',
  clientInterface: 'nsm0',
  mechanismPreferences: [],
  requestId: 'r1',
};
const epA: Candidate = { name: 'ep-a', node: 'n1', labels: {}, load: 0 };
const epB: Candidate = { name: 'ep-b', node: 'n2', labels: {}, load: 0 };
const registry = (...endpoints: Candidate[]): RegistryContext => ({ service: { payload: 'IP', matches: [] }, endpoints });

const plan = (generation: number, dst: string): ConnectionEvent => ({
  type: 'PathPlanned',
  generation,
  mechanism: { local: 'kernel' },
  context: {
    ipContext: { srcIpAddrs: ['10.0.0.3/32'], dstIpAddrs: [dst], srcRoutes: [{ prefix: dst }], dstRoutes: [{ prefix: '10.0.0.3/32' }], excludedPrefixes: [] },
    dnsContext: { configs: [] },
    ethernetContext: {},
    mtu: 1500,
  },
  path: { index: 0, pathSegments: [] },
  clientInterface: 'nsm0',
  endpointInterface: interfaceNameFor('nse', 'c1'),
});
const established: ConnectionEvent[] = [
  { type: 'ConnectionRequested', ...request },
  { type: 'EndpointSelected', endpoint: 'ep-a', endpointNode: 'n1', considered: 2, excluded: [] },
  plan(1, '10.0.0.2/32'),
  { type: 'DataplaneProgrammed', generation: 1, node: 'n1', side: 'client' },
  { type: 'DataplaneProgrammed', generation: 1, node: 'n1', side: 'endpoint' },
  { type: 'ConnectionEstablished', generation: 1 },
];
const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:00:01.500Z';
const heal = (over: Partial<Extract<ConnectionCommand, { type: 'HealConnection' }>> = {}): ConnectionCommand => ({
  type: 'HealConnection',
  connectionId: 'c1',
  cause: 'endpoint-expired',
  causeId: 'ev-1',
  at: T0,
  exclude: ['ep-a'],
  escalateWithinMs: 60_000,
  registry: registry(epB),
  ...over,
});
const report = (side: 'client' | 'endpoint', node: string, generation: number, result: 'programmed' | 'broken' | 'failed' = 'programmed', at = T1): ConnectionCommand => ({
  type: 'ReportDataplane',
  connectionId: 'c1',
  node,
  side,
  generation,
  result,
  at,
});
const retiredA = { generation: 1, endpoint: { name: 'ep-a', node: 'n1' }, plan: (() => { const { type: _t, generation: _g, ...p } = plan(1, '10.0.0.2/32') as Extract<ConnectionEvent, { type: 'PathPlanned' }>; return p; })() };

const s = suite('connection: healing');

s('endpoint expired: reselects among the others, retiring the old endpoint side', () => {
  const next = given(connection, established)
    .when(heal())
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'endpoint-expired', causeId: 'ev-1', oldEndpoint: 'ep-a', inPlace: false, startedAt: T0 },
      { type: 'EndpointSelected', endpoint: 'ep-b', endpointNode: 'n2', considered: 1, excluded: ['ep-a'], replaces: { ...retiredA, sides: ['endpoint'] } },
    ]);
  assert.is(next.state.phase, 'endpoint-selected');
  assert.is(next.state.plan, undefined, 'the old plan is no longer desired');
  assert.equal(next.state.healing, { cause: 'endpoint-expired', oldEndpoint: 'ep-a', inPlace: false, startedAt: T0 });
});

s('the heal completes when both sides of the new plan are programmed: established + healed with its duration', () => {
  const healed = given(connection, established)
    .when(heal())
    .accepted()
    .when({ type: 'PlanPath', connectionId: 'c1', endpoint: 'ep-b', allocation: { pairs: [{ src: '10.2.0.3/32', dst: '10.2.0.2/32', prefix: '10.2.0.0/24' }], excludedPrefixes: [] }, tunnel: { id: 1, vni: 10001, vxlanPort: 4789, wireguardPort: 40001 }, clientNodeFacts: { mechanisms: ['kernel', 'vxlan'], mtu: 1500 }, endpointNodeFacts: { mechanisms: ['kernel', 'vxlan'], mtu: 1500 }, endpointInterface: interfaceNameFor('nse', 'c1') })
    .accepted()
    .when(report('client', 'n1', 2))
    .accepted()
    .when(report('endpoint', 'n2', 2))
    .thenEvents([
      { type: 'DataplaneProgrammed', generation: 2, node: 'n2', side: 'endpoint' },
      { type: 'ConnectionEstablished', generation: 2 },
      { type: 'ConnectionHealed', generation: 2, cause: 'endpoint-expired', oldEndpoint: 'ep-a', newEndpoint: 'ep-b', startedAt: T0, durationMs: 1500 },
    ]);
  assert.is(healed.state.phase, 'established');
  assert.is(healed.state.healing, undefined);
  assert.is(healed.state.heals, 1);
  assert.is(healed.state.generation, 2);
});

s('the same cause heals once: a redelivered heal emits nothing', () => {
  given(connection, established).when(heal()).accepted().when(heal()).thenEvents([]);
});

s('no other endpoint: the connection waits, visibly, and both old sides are retired', () => {
  const next = given(connection, established)
    .when(heal({ registry: registry() }))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'endpoint-expired', causeId: 'ev-1', oldEndpoint: 'ep-a', inPlace: false, startedAt: T0 },
      { type: 'ConnectionWaiting', reason: 'no endpoint is registered for network service "svc"', since: T0, replaces: { ...retiredA, sides: ['client', 'endpoint'] } },
    ]);
  assert.is(next.state.phase, 'waiting');
  assert.is(next.state.endpoint, undefined);
  // Still waiting when another unrelated heal finds nothing: no new events.
  next.when(heal({ causeId: 'ev-2', cause: 'endpoint-available', registry: registry() })).thenEvents([]);
  // An endpoint registers: selected, the heal goes on, measured from its first step.
  next
    .when(heal({ causeId: 'ev-3', cause: 'endpoint-available', at: T1, exclude: [], registry: registry(epB) }))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'endpoint-available', causeId: 'ev-3', inPlace: false, startedAt: T0 },
      { type: 'EndpointSelected', endpoint: 'ep-b', endpointNode: 'n2', considered: 1, excluded: [] },
    ]);
});

s('the endpoint leaves before the first plan: chosen again without it, established as a heal; none left: it waits', () => {
  const selectedOnly = established.slice(0, 2);
  const next = given(connection, selectedOnly)
    .when(heal({ cause: 'endpoint-unregistered' }))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'endpoint-unregistered', causeId: 'ev-1', oldEndpoint: 'ep-a', inPlace: false, startedAt: T0 },
      // Nothing was planned yet: nothing to retire.
      { type: 'EndpointSelected', endpoint: 'ep-b', endpointNode: 'n2', considered: 1, excluded: ['ep-a'] },
    ]);
  assert.is(next.state.phase, 'endpoint-selected');
  given(connection, selectedOnly)
    .when(heal({ cause: 'endpoint-unregistered', registry: registry() }))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'endpoint-unregistered', causeId: 'ev-1', oldEndpoint: 'ep-a', inPlace: false, startedAt: T0 },
      { type: 'ConnectionWaiting', reason: 'no endpoint is registered for network service "svc"', since: T0 },
    ]);
});

s('endpoint-available does nothing for a connection that is not waiting', () => {
  given(connection, established).when(heal({ cause: 'endpoint-available', exclude: [], registry: registry(epA, epB) })).thenEvents([]);
});

s('a broken datapath is reported as DatapathDown, once per established generation', () => {
  const down = given(connection, established).when(report('client', 'n1', 1, 'broken')).events();
  assert.equal(down.map((e) => e.type), ['DatapathDown']);
  given(connection, established).when(report('client', 'n1', 0, 'broken')).thenEvents([]);
});

s('datapath: first repaired in place on the same endpoint', () => {
  given(connection, established)
    .when(heal({ cause: 'datapath', exclude: [], registry: registry(epA, epB) }))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'datapath', causeId: 'ev-1', oldEndpoint: 'ep-a', inPlace: true, startedAt: T0 },
      { type: 'EndpointSelected', endpoint: 'ep-a', endpointNode: 'n1', considered: 1, excluded: [], replaces: { ...retiredA, sides: [] } },
    ]);
});

s('datapath: failing again soon after an in-place repair moves the connection to another endpoint', () => {
  const afterInPlace: ConnectionEvent[] = [
    ...established,
    { type: 'ConnectionHealing', cause: 'datapath', causeId: 'ev-1', oldEndpoint: 'ep-a', inPlace: true, startedAt: T0 },
    { type: 'EndpointSelected', endpoint: 'ep-a', endpointNode: 'n1', considered: 1, excluded: [], replaces: { ...retiredA, sides: [] } },
    plan(2, '10.0.0.2/32'),
    { type: 'DataplaneProgrammed', generation: 2, node: 'n1', side: 'client' },
    { type: 'DataplaneProgrammed', generation: 2, node: 'n1', side: 'endpoint' },
    { type: 'ConnectionEstablished', generation: 2 },
    { type: 'ConnectionHealed', generation: 2, cause: 'datapath', oldEndpoint: 'ep-a', newEndpoint: 'ep-a', startedAt: T0, durationMs: 1000 },
  ];
  const evs = given(connection, afterInPlace).when(heal({ cause: 'datapath', causeId: 'ev-2', at: '2026-01-01T00:00:30.000Z', exclude: [], registry: registry(epA, epB) })).events();
  assert.equal(evs[0], { type: 'ConnectionHealing', cause: 'datapath', causeId: 'ev-2', oldEndpoint: 'ep-a', inPlace: false, startedAt: '2026-01-01T00:00:30.000Z' });
  assert.is((evs[1] as { endpoint: string }).endpoint, 'ep-b');
  // Long after the repair, a new failure is again tried in place first.
  const later = given(connection, afterInPlace).when(heal({ cause: 'datapath', causeId: 'ev-3', at: '2026-01-01T01:00:00.000Z', exclude: [], registry: registry(epA, epB) })).events();
  assert.is((later[1] as { endpoint: string }).endpoint, 'ep-a');
});

s('programming fails during a heal: no terminal failure; the next heal excludes that endpoint', () => {
  const healing = given(connection, established)
    .when(heal({ cause: 'datapath', exclude: [], registry: registry(epA, epB) }))
    .accepted()
    .when({ type: 'PlanPath', connectionId: 'c1', endpoint: 'ep-a', allocation: { pairs: [{ src: '10.0.0.3/32', dst: '10.0.0.2/32', prefix: '10.0.0.0/24' }], excludedPrefixes: [] }, clientNodeFacts: { mechanisms: ['kernel'], mtu: 1500 }, endpointNodeFacts: { mechanisms: ['kernel'], mtu: 1500 }, endpointInterface: interfaceNameFor('nse', 'c1') })
    .accepted();
  const failed = healing.when({ ...report('endpoint', 'n1', 2, 'failed'), error: 'no such namespace' } as ConnectionCommand).events();
  assert.equal(failed.map((e) => e.type), ['DataplaneFailed']);
  const next = healing.when({ ...report('endpoint', 'n1', 2, 'failed'), error: 'x' } as ConnectionCommand).accepted();
  const evs = next.when(heal({ cause: 'dataplane', causeId: 'ev-9', exclude: [], registry: registry(epA, epB) })).events();
  assert.is((evs[1] as { endpoint: string }).endpoint, 'ep-b');
  assert.equal((evs[1] as unknown as { excluded: string[] }).excluded, ['ep-a']);
});

s('client node lost: down; heals other than node-recovered wait; recovery keeps the endpoint when still allowed', () => {
  const down = given(connection, established)
    .when({ type: 'MarkConnectionDown', connectionId: 'c1', node: 'n1', at: T0 })
    .thenEvents([{ type: 'ConnectionDown', node: 'n1', since: T0 }]);
  assert.is(down.state.phase, 'down');
  down.when({ type: 'MarkConnectionDown', connectionId: 'c1', node: 'n1', at: T1 }).thenEvents([]);
  down.when(heal()).thenEvents([]);
  down
    .when(heal({ cause: 'node-recovered', causeId: 'ev-r', exclude: [], registry: registry(epA, epB) }))
    .thenEvents([
      { type: 'ConnectionHealing', cause: 'node-recovered', causeId: 'ev-r', oldEndpoint: 'ep-a', inPlace: true, startedAt: T0 },
      { type: 'EndpointSelected', endpoint: 'ep-a', endpointNode: 'n1', considered: 1, excluded: [], replaces: { ...retiredA, sides: [] } },
    ]);
  // Its endpoint expired meanwhile: recovery picks another.
  const evs = down.when(heal({ cause: 'node-recovered', causeId: 'ev-r', exclude: [], registry: registry(epB) })).events();
  assert.is((evs[1] as { endpoint: string }).endpoint, 'ep-b');
  // A connection whose client is on another node is not marked down.
  given(connection, established).when({ type: 'MarkConnectionDown', connectionId: 'c1', node: 'n2', at: T0 }).thenEvents([]);
});

s('expiry: a connection not refreshed by its expiration is expired and closed; a refreshed one is not', () => {
  const withExpiry: ConnectionEvent[] = [{ type: 'ConnectionRequested', ...request, expirationTime: '2026-01-01T00:01:00.000Z' }, ...established.slice(1)];
  given(connection, withExpiry).when({ type: 'ExpireConnection', connectionId: 'c1', at: '2026-01-01T00:00:59.000Z' }).thenEvents([]);
  given(connection, withExpiry)
    .when({ type: 'ExpireConnection', connectionId: 'c1', at: '2026-01-01T00:01:01.000Z' })
    .thenEvents([
      { type: 'ConnectionExpired', expirationTime: '2026-01-01T00:01:00.000Z' },
      { type: 'ConnectionClosed', reason: 'expired: the client did not refresh it before 2026-01-01T00:01:00.000Z' },
    ]);
  const refreshed = given(connection, withExpiry)
    .when({ type: 'RefreshConnection', connectionId: 'c1', expirationTime: '2026-01-01T00:02:00.000Z' })
    .thenEvents([{ type: 'ConnectionRefreshed', expirationTime: '2026-01-01T00:02:00.000Z' }]);
  refreshed.when({ type: 'ExpireConnection', connectionId: 'c1', at: '2026-01-01T00:01:01.000Z' }).thenEvents([]);
  // A connection without an expiry never expires.
  given(connection, established).when({ type: 'ExpireConnection', connectionId: 'c1', at: '2099-01-01T00:00:00.000Z' }).thenEvents([]);
  given(connection, [...established, { type: 'ConnectionClosed', reason: 'x' }])
    .when({ type: 'RefreshConnection', connectionId: 'c1', expirationTime: T1 })
    .thenRejected('wrong-state', 'is closed');
});

s('a stale report about a retired path is ignored, not refused', () => {
  const moved = given(connection, established).when(heal()).accepted();
  moved.when(report('endpoint', 'n1', 1, 'programmed')).thenEvents([]);
});
s.run();
