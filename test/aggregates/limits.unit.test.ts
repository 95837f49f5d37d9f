// Limits per role and identity (aggregates/limits.ts), and how a connection request is decided
// against them: over a limit, the request is recorded as refused with the limit it hit.
import * as assert from 'uvu/assert';
import { connection, type ConnectionCommand, type ConnectionRequest } from '../../aggregates/connection/index.ts';
import { decideRemoteRequest } from '../../aggregates/connection/index.ts';
import { DEFAULT_LIMITS, limits, limitsFor, quotaProblem, type LimitsEvent } from '../../aggregates/limits.ts';
import * as E from 'fp-ts/lib/Either.js';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const s = suite('limits');

s('limits are set per role and per identity; setting the same again is a no-op; unset falls back', () => {
  const clientSet: LimitsEvent = { type: 'LimitsSet', scope: { role: 'client' }, limits: { pending: 8 } };
  const aliceSet: LimitsEvent = { type: 'LimitsSet', scope: { identity: 'alice' }, limits: { connections: 3 } };
  const next = given(limits)
    .when({ type: 'SetLimits', scope: { role: 'client' }, limits: { pending: 8 } })
    .thenEvents([clientSet])
    .when({ type: 'SetLimits', scope: { role: 'client' }, limits: { pending: 8 } })
    .thenEvents([])
    .when({ type: 'SetLimits', scope: { identity: 'alice' }, limits: { connections: 3 } })
    .thenEvents([aliceSet]);
  assert.equal(limitsFor(next.state, 'alice', 'client'), { connections: 3 }, "an identity's own limits replace its role's");
  assert.equal(limitsFor(next.state, 'bob', 'client'), { pending: 8 });
  assert.equal(limitsFor(next.state, 'operator', 'operator'), DEFAULT_LIMITS.operator);
  const unset = next.when({ type: 'SetLimits', scope: { identity: 'alice' } }).thenEvents([{ type: 'LimitsSet', scope: { identity: 'alice' } }]);
  assert.equal(limitsFor(unset.state, 'alice', 'client'), { pending: 8 });
  given(limits).when({ type: 'SetLimits', scope: { role: 'peer' }, limits: { ratePerSecond: -1 } }).thenRejected('invalid', 'whole number');
});

s('each limit, and the order they are checked in', () => {
  const l = { connections: 10, pending: 4, ratePerSecond: 5 };
  assert.is(quotaProblem('alice', l, { held: 3, pending: 3, thisSecond: 4 }), undefined);
  assert.equal(quotaProblem('alice', l, { held: 10, pending: 4, thisSecond: 5 })?.limit, 'connections');
  assert.equal(quotaProblem('alice', l, { held: 9, pending: 4, thisSecond: 5 }), { limit: 'pending', max: 4, current: 4, reason: 'alice has 4 connections being set up, its limit is 4; wait for them' });
  assert.equal(quotaProblem('alice', l, { held: 9, pending: 3, thisSecond: 5 })?.reason, 'alice asked for 5 connections this second, its limit is 5 per second; slow down');
  assert.is(quotaProblem('op', {}, { held: 1e6, pending: 1e6, thisSecond: 1e6 }), undefined, 'no limits, nothing refused');
});

const request: ConnectionRequest = { connectionId: 'c1', networkService: 'web', payload: 'IP', labels: {}, clientNode: 'n1', clientInterface: 'nsm0', mechanismPreferences: [], requestId: 'r1' };
const ask = (usage: { held: number; pending: number; thisSecond: number }): ConnectionCommand => ({
  type: 'RequestConnection',
  request,
  registry: { service: { payload: 'IP', matches: [] }, endpoints: [{ name: 'ep', node: 'n1', labels: {}, load: 0 }] },
  quota: { identity: 'alice', limits: { connections: 2, pending: 1, ratePerSecond: 10 }, usage },
});

s('a request over a limit is recorded, then refused with the limit it hit; under it, it goes on', () => {
  const refused = given(connection).when(ask({ held: 2, pending: 0, thisSecond: 0 })).events();
  assert.equal(refused.map((e) => e.type), ['ConnectionRequested', 'ConnectionLimited']);
  assert.equal(refused[1], { type: 'ConnectionLimited', limit: 'connections', max: 2, current: 2, reason: 'alice holds 2 connections, its limit is 2; close some first' });
  const after = given(connection, refused).state;
  assert.equal([after.phase, after.failure], ['failed', { code: 'limited', reason: 'alice holds 2 connections, its limit is 2; close some first' }]);
  assert.equal(given(connection).when(ask({ held: 1, pending: 0, thisSecond: 3 })).events().map((e) => e.type), ['ConnectionRequested', 'EndpointSelected']);
});

s('the endpoint domain of a federated request limits the peer that asks', () => {
  const cmd = ask({ held: 0, pending: 1, thisSecond: 0 }) as Extract<ConnectionCommand, { type: 'RequestConnection' }>;
  const r = decideRemoteRequest({ ...cmd, request: { ...request, remoteClient: { domain: 'a', name: 'n1@a', mechanisms: ['kernel', 'vxlan'], mtu: 1500, publicKeys: {} } } }, connection.initialState);
  assert.ok(E.isRight(r));
  if (E.isRight(r)) assert.equal(r.right.map((e) => e.type), ['ConnectionRequested', 'ConnectionLimited']);
});

s.run();
