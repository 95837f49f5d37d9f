import * as assert from 'uvu/assert';
import { endpoint, type EndpointCommand, type EndpointEvent, type EndpointSpec } from '../../aggregates/endpoint.ts';
import type { Family } from '../../aggregates/ip.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const spec: EndpointSpec = {
  name: 'nse-b',
  networkServiceNames: ['secure-net', 'l2-net'],
  networkServiceLabels: { 'secure-net': { labels: { tier: 'gold' } } },
  node: 'node-b',
  prefixes: ['10.60.0.0/24'],
  excludedPrefixes: ['10.60.0.0/28'],
};
const T1 = '2030-01-01T00:00:00.000Z';
const T2 = '2030-01-01T00:01:00.000Z';
const registered: EndpointEvent = { type: 'EndpointRegistered', spec, expirationTime: T1 };
const register = (s: EndpointSpec, expirationTime = T1, registeredServices: readonly string[] = ['secure-net', 'l2-net']): EndpointCommand => ({
  type: 'RegisterEndpoint',
  spec: s,
  expirationTime,
  registeredServices,
});

const s = suite('endpoint');

s('registering a new endpoint emits EndpointRegistered with its expiration', () => {
  const next = given(endpoint).when(register(spec)).thenEvents([registered]);
  assert.equal(next.state, { registered: true, spec, expirationTime: T1 });
});

s('an endpoint for an unregistered service is rejected as not-found, naming it and the fix', () => {
  const err = given(endpoint).when(register(spec, T1, ['secure-net'])).thenRejected('not-found', 'network service "l2-net" is not registered');
  assert.ok(err.message.includes('nsm service register l2-net'), err.message);
});

s('every missing service is named', () => {
  given(endpoint).when(register(spec, T1, [])).thenRejected('not-found', '"secure-net", "l2-net"');
});

s('a registered endpoint whose service has since gone is rejected too', () => {
  given(endpoint, [registered]).when(register(spec, T2, ['l2-net'])).thenRejected('not-found', '"secure-net"');
});

s('labels for a service the endpoint does not provide are invalid', () => {
  const stray: EndpointSpec = { ...spec, networkServiceLabels: { ...spec.networkServiceLabels, other: { labels: {} } } };
  given(endpoint).when(register(stray)).thenRejected('invalid', 'labels given for service "other"');
});

s('re-registering the same spec with the same expiration is a no-op', () => {
  given(endpoint, [registered]).when(register(spec, T1)).thenEvents([]);
});

s('re-registering the same spec with a later expiration is a refresh', () => {
  const next = given(endpoint, [registered]).when(register(spec, T2)).thenEvents([{ type: 'EndpointRefreshed', expirationTime: T2 }]);
  assert.is(next.state.expirationTime, T2);
  assert.equal(next.state.spec, spec);
});

s('changed labels emit EndpointUpdated with the new expiration', () => {
  const changed: EndpointSpec = { ...spec, networkServiceLabels: { 'secure-net': { labels: { tier: 'silver' } } } };
  const next = given(endpoint, [registered]).when(register(changed, T2)).thenEvents([{ type: 'EndpointUpdated', spec: changed, expirationTime: T2 }]);
  assert.equal(next.state.spec?.networkServiceLabels, { 'secure-net': { labels: { tier: 'silver' } } });
  assert.is(next.state.expirationTime, T2);
});

s('changed excluded prefixes emit EndpointUpdated even at the same expiration', () => {
  const changed: EndpointSpec = { ...spec, excludedPrefixes: [] };
  given(endpoint, [registered]).when(register(changed, T1)).thenEvents([{ type: 'EndpointUpdated', spec: changed, expirationTime: T1 }]);
});

s('moving a registered endpoint to another node is a conflict', () => {
  given(endpoint, [registered])
    .when(register({ ...spec, node: 'node-c' }))
    .thenRejected('conflict', 'endpoint "nse-b" is registered on node node-b, not node-c; unregister it first');
});

s('changing a registered endpoint\'s prefix is a conflict', () => {
  given(endpoint, [registered])
    .when(register({ ...spec, prefixes: ['10.61.0.0/24'] }))
    .thenRejected('conflict', 'allocates from 10.60.0.0/24');
});

s('unregistering emits EndpointUnregistered and the endpoint is no longer registered', () => {
  const next = given(endpoint, [registered])
    .when({ type: 'UnregisterEndpoint', name: 'nse-b' })
    .thenEvents([{ type: 'EndpointUnregistered', name: 'nse-b' }]);
  assert.is(next.state.registered, false);
});

s('unregistering an unknown endpoint is not-found', () => {
  given(endpoint).when({ type: 'UnregisterEndpoint', name: 'ghost' }).thenRejected('not-found', 'endpoint "ghost" is not registered');
});

s('unregistering twice: the second is not-found', () => {
  given(endpoint, [registered, { type: 'EndpointUnregistered', name: 'nse-b' }])
    .when({ type: 'UnregisterEndpoint', name: 'nse-b' })
    .thenRejected('not-found', '"nse-b" is not registered');
});

s('after unregistering, the endpoint may register again on another node and prefix', () => {
  const moved: EndpointSpec = { ...spec, node: 'node-c', prefixes: ['10.61.0.0/24'] };
  const next = given(endpoint, [registered, { type: 'EndpointUnregistered', name: 'nse-b' }])
    .when(register(moved, T2))
    .thenEvents([{ type: 'EndpointRegistered', spec: moved, expirationTime: T2 }]);
  assert.is(next.state.spec?.node, 'node-c');
});

// ---- IPv6 and dual stack ---------------------------------------------------------------------

const dual: EndpointSpec = { ...spec, prefixes: ['fd00:10::/64', '10.60.0.0/24'], excludedPrefixes: ['fd00:10::/120'] };

s('a dual-stack endpoint registers with a prefix per family', () => {
  given(endpoint).when(register(dual)).thenEvents([{ type: 'EndpointRegistered', spec: dual, expirationTime: T1 }]);
});

s('the same prefixes in another order are accepted (an update); another set of prefixes is a conflict', () => {
  const sc = given(endpoint, [{ type: 'EndpointRegistered', spec: dual, expirationTime: T1 }]);
  sc.when(register({ ...dual, prefixes: ['10.60.0.0/24', 'fd00:10::/64'] })).thenEvents([{ type: 'EndpointUpdated', spec: { ...dual, prefixes: ['10.60.0.0/24', 'fd00:10::/64'] }, expirationTime: T1 }]);
  sc.when(register({ ...dual, prefixes: ['fd00:11::/64', '10.60.0.0/24'] })).thenRejected('conflict', 'allocates from fd00:10::/64 and 10.60.0.0/24; changing its prefixes needs unregister first');
});

s('a prefix of a family its service does not carry is refused, naming the field, the service and its families', () => {
  const v6only: Record<string, readonly Family[]> = { 'secure-net': ['IPv6'] };
  given(endpoint)
    .when({ ...register(dual), serviceFamilies: v6only } as EndpointCommand)
    .thenRejected('invalid', 'prefixes[1]: "10.60.0.0/24" is IPv4; network service "secure-net" carries IPv6 only');
  given(endpoint).when({ ...register({ ...dual, prefixes: ['fd00:10::/64'] }), serviceFamilies: v6only } as EndpointCommand).events();
});

s('an exclusion that covers a whole prefix is refused: nothing could be handed out', () => {
  given(endpoint)
    .when(register({ ...dual, excludedPrefixes: ['10.60.0.0/28', 'fd00::/16'] }))
    .thenRejected('invalid', 'excludedPrefixes[1]: "fd00::/16" covers the whole prefix fd00:10::/64: no address of it could be handed out');
});

s('two prefixes of one family, or none, are refused', () => {
  given(endpoint).when(register({ ...dual, prefixes: ['fd00:10::/64', 'fd00:11::/64'] })).thenRejected('invalid', 'prefixes[1]: "fd00:11::/64" is a second IPv6 prefix; give one per family');
  given(endpoint).when(register({ ...dual, prefixes: [] })).thenRejected('invalid', 'an endpoint needs at least one prefix');
});

s.run();
