import * as assert from 'uvu/assert';
import { networkService, type NetworkServiceEvent, type NetworkServiceSpec } from '../../aggregates/networkService.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const spec: NetworkServiceSpec = {
  name: 'secure-net',
  payload: 'IP',
  matches: [{ sourceSelector: { app: 'web' }, routes: [{ destinationSelector: { tier: 'gold' } }], fallthrough: true }],
};
const registered: NetworkServiceEvent = { type: 'NetworkServiceRegistered', spec };
const register = (s: NetworkServiceSpec) => ({ type: 'RegisterNetworkService', spec: s }) as const;
const unregister = (name: string) => ({ type: 'UnregisterNetworkService', name }) as const;

const s = suite('networkService');

s('registering a new service emits NetworkServiceRegistered and marks it registered', () => {
  const next = given(networkService).when(register(spec)).thenEvents([registered]);
  assert.equal(next.state, { registered: true, spec });
});

s('re-registering the identical spec is a no-op', () => {
  given(networkService, [registered]).when(register(spec)).thenEvents([]);
});

s('re-registering with the same content in a different key order is still a no-op', () => {
  const reordered = {
    matches: [{ fallthrough: true, routes: [{ destinationSelector: { tier: 'gold' } }], sourceSelector: { app: 'web' } }],
    payload: 'IP',
    name: 'secure-net',
  } as NetworkServiceSpec;
  given(networkService, [registered]).when(register(reordered)).thenEvents([]);
});

s('a changed payload emits NetworkServiceUpdated and the state takes the new spec', () => {
  const changed: NetworkServiceSpec = { ...spec, payload: 'ETHERNET' };
  const next = given(networkService, [registered]).when(register(changed)).thenEvents([{ type: 'NetworkServiceUpdated', spec: changed }]);
  assert.is(next.state.spec?.payload, 'ETHERNET');
  assert.is(next.state.registered, true);
});

s('changed matches emit NetworkServiceUpdated', () => {
  const changed: NetworkServiceSpec = { ...spec, matches: [] };
  given(networkService, [registered]).when(register(changed)).thenEvents([{ type: 'NetworkServiceUpdated', spec: changed }]);
});

s('an update followed by the same update is a no-op', () => {
  const changed: NetworkServiceSpec = { ...spec, matches: [] };
  given(networkService, [registered, { type: 'NetworkServiceUpdated', spec: changed }]).when(register(changed)).thenEvents([]);
});

s('unregistering a registered service emits NetworkServiceUnregistered and clears the spec', () => {
  const next = given(networkService, [registered])
    .when(unregister('secure-net'))
    .thenEvents([{ type: 'NetworkServiceUnregistered', name: 'secure-net' }]);
  assert.equal(next.state, { registered: false });
});

s('unregistering an unknown service is rejected as not-found', () => {
  given(networkService).when(unregister('ghost')).thenRejected('not-found', 'network service "ghost" is not registered');
});

s('unregistering twice: the second is not-found', () => {
  given(networkService, [registered])
    .when(unregister('secure-net'))
    .thenEvents([{ type: 'NetworkServiceUnregistered', name: 'secure-net' }])
    .when(unregister('secure-net'))
    .thenRejected('not-found', '"secure-net" is not registered');
});

s('registering again after unregistering is a fresh registration, not an update', () => {
  given(networkService, [registered, { type: 'NetworkServiceUnregistered', name: 'secure-net' }])
    .when(register(spec))
    .thenEvents([registered]);
});

s.run();
