// Given/when/then for the endpoint and node side of healing: expiry and loss.
import * as assert from 'uvu/assert';
import { endpoint, type EndpointEvent, type EndpointSpec } from '../../aggregates/endpoint.ts';
import { node, type NodeEvent, type NodeSpec } from '../../aggregates/node.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const spec: EndpointSpec = { name: 'ep', networkServiceNames: ['svc'], networkServiceLabels: {}, node: 'n1', prefixes: ['10.0.0.0/24'], excludedPrefixes: [] };
const registered: EndpointEvent = { type: 'EndpointRegistered', spec, expirationTime: '2026-01-01T00:01:00.000Z' };

const ep = suite('endpoint: expiry');
ep('not yet lapsed (refreshed since the detector looked): nothing', () => {
  given(endpoint, [registered]).when({ type: 'ExpireEndpoint', name: 'ep', cause: 'expired', at: '2026-01-01T00:00:59.000Z' }).thenEvents([]);
});
ep('lapsed: EndpointExpired, and the endpoint is no longer registered', () => {
  const next = given(endpoint, [registered])
    .when({ type: 'ExpireEndpoint', name: 'ep', cause: 'expired', at: '2026-01-01T00:01:00.001Z' })
    .thenEvents([{ type: 'EndpointExpired', name: 'ep', cause: 'expired', expirationTime: '2026-01-01T00:01:00.000Z' }]);
  assert.is(next.state.registered, false);
  next.when({ type: 'ExpireEndpoint', name: 'ep', cause: 'expired', at: '2026-01-01T00:02:00.000Z' }).thenEvents([]);
  // It comes back: a fresh registration.
  next.when({ type: 'RegisterEndpoint', spec, expirationTime: '2026-01-01T00:03:00.000Z', registeredServices: ['svc'] }).thenEvents([
    { type: 'EndpointRegistered', spec, expirationTime: '2026-01-01T00:03:00.000Z' },
  ]);
});
ep('a static registration never lapses by time, but goes with its node', () => {
  const staticReg: EndpointEvent = { type: 'EndpointRegistered', spec };
  given(endpoint, [staticReg]).when({ type: 'ExpireEndpoint', name: 'ep', cause: 'expired', at: '2099-01-01T00:00:00.000Z' }).thenEvents([]);
  given(endpoint, [staticReg])
    .when({ type: 'ExpireEndpoint', name: 'ep', cause: 'node-lost', at: '2026-01-01T00:00:00.000Z' })
    .thenEvents([{ type: 'EndpointExpired', name: 'ep', cause: 'node-lost' }]);
});
ep('a refresh moves the expiration', () => {
  given(endpoint, [registered])
    .when({ type: 'RegisterEndpoint', spec, expirationTime: '2026-01-01T00:02:00.000Z', registeredServices: ['svc'] })
    .thenEvents([{ type: 'EndpointRefreshed', expirationTime: '2026-01-01T00:02:00.000Z' }]);
});
ep.run();

const nodeSpec: NodeSpec = { name: 'n1', mechanisms: ['kernel'], dataplane: 'simulated', mtu: 1500, publicKeys: {} };
const joined: NodeEvent = { type: 'NodeJoined', spec: nodeSpec };
const nd = suite('node: loss and recovery');
nd('a silent node is lost once', () => {
  const lost = given(node, [joined])
    .when({ type: 'LoseNode', name: 'n1', lastSeen: '2026-01-01T00:00:00.000Z', timeoutMs: 15000 })
    .thenEvents([{ type: 'NodeLost', name: 'n1', lastSeen: '2026-01-01T00:00:00.000Z', timeoutMs: 15000 }]);
  assert.is(lost.state.lost, true);
  lost.when({ type: 'LoseNode', name: 'n1', lastSeen: '2026-01-01T00:00:05.000Z', timeoutMs: 15000 }).thenEvents([]);
});
nd('heard again, or rejoining, recovers it; a changed spec is also recorded', () => {
  const lost = given(node, [joined, { type: 'NodeLost', name: 'n1', lastSeen: 'x', timeoutMs: 1 }]);
  lost.when({ type: 'RecoverNode', name: 'n1' }).thenEvents([{ type: 'NodeRecovered', name: 'n1' }]);
  lost.when({ type: 'JoinNode', spec: nodeSpec }).thenEvents([{ type: 'NodeRecovered', name: 'n1' }]);
  lost.when({ type: 'JoinNode', spec: { ...nodeSpec, mtu: 9000 } }).thenEvents([
    { type: 'NodeRecovered', name: 'n1' },
    { type: 'NodeUpdated', spec: { ...nodeSpec, mtu: 9000 } },
  ]);
  given(node, [joined]).when({ type: 'RecoverNode', name: 'n1' }).thenEvents([]);
});
nd('an unknown node is never lost', () => {
  given(node).when({ type: 'LoseNode', name: 'nx', lastSeen: 'x', timeoutMs: 1 }).thenEvents([]);
});
nd.run();
