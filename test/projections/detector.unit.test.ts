// The death detector's rules, at chosen moments.
import * as assert from 'uvu/assert';
import { asPosition, type StoredCommit } from '../../src/contracts/envelope.ts';
import { findDeaths } from '../../src/workflows/healing.ts';
import { applyCommits, emptyMesh } from '../../projections/mesh.ts';
import { suite } from '../lib/harness.ts';

const t = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const ms = (s: number) => Date.UTC(2026, 0, 1, 0, 0, s);
let pos = 0;
const commit = (stream: string, time: string, data: { type: string } & Record<string, unknown>): StoredCommit => {
  pos++;
  return {
    commitId: `c${pos}`,
    stream,
    revision: pos,
    position: asPosition(pos),
    events: [{ id: `e${pos}`, type: data.type, stream, version: 1, time, correlationId: 'x', causationId: 'x', domain: 'd', actor: 'a', schema: 1, data }],
  };
};
const spec = { name: 'ep', networkServiceNames: ['svc'], networkServiceLabels: {}, node: 'n1', prefix: '10.0.0.0/24', excludedPrefixes: [] };
const model = applyCommits(emptyMesh, [
  commit('node.n1', t(0), { type: 'NodeJoined', spec: { name: 'n1', mechanisms: ['kernel'], dataplane: 'simulated', mtu: 1500, publicKeys: {} } }),
  // Registered at 10 s with a 30 s expiry (refresh period 30 s).
  commit('endpoint.ep', t(10), { type: 'EndpointRegistered', spec, expirationTime: t(40) }),
  commit('endpoint.static', t(10), { type: 'EndpointRegistered', spec: { ...spec, name: 'static' } }),
  commit('connection.c1', t(10), { type: 'ConnectionRequested', connectionId: 'c1', networkService: 'svc', payload: 'IP', labels: {}, clientNode: 'n1', clientInterface: 'nsm0', mechanismPreferences: [], requestId: 'r', expirationTime: t(20) }),
]);
const cfg = { nodeTimeoutMs: 15_000, downGraceMs: 60_000 };

const s = suite('death detector');
s('an endpoint lapses after its expiration; a static one never does', () => {
  assert.equal(findDeaths(model, new Map([['n1', { at: t(39) }]]), ms(39), 0, cfg).expiredEndpoints, []);
  assert.equal(findDeaths(model, new Map([['n1', { at: t(41) }]]), ms(41), 0, cfg).expiredEndpoints, [{ name: 'ep', expirationTime: t(40) }]);
});
s('a leader that just took over waits one full refresh period before expiring anything', () => {
  const leaderSince = ms(35);
  assert.equal(findDeaths(model, new Map([['n1', { at: t(50) }]]), ms(50), leaderSince, cfg).expiredEndpoints, [], '35 + 30 > 50');
  assert.is(findDeaths(model, new Map([['n1', { at: t(66) }]]), ms(66), leaderSince, cfg).expiredEndpoints.length, 1);
});
s('a node is lost after the timeout without heartbeat, counted from the leader taking over at the earliest', () => {
  assert.equal(findDeaths(model, new Map([['n1', { at: t(20) }]]), ms(34), 0, cfg).lostNodes, []);
  assert.equal(findDeaths(model, new Map([['n1', { at: t(20) }]]), ms(36), 0, cfg).lostNodes, [{ name: 'n1', lastSeen: t(20) }]);
  assert.equal(findDeaths(model, new Map(), ms(36), ms(30), cfg).lostNodes, [], 'no heartbeat heard yet, but the leader is new');
});
s('a connection expires after its expiration unless refreshed', () => {
  assert.equal(findDeaths(model, new Map([['n1', { at: t(25) }]]), ms(25), 0, cfg).expiredConnections, [{ id: 'c1', expirationTime: t(20) }]);
  const refreshed = applyCommits(model, [commit('connection.c1', t(19), { type: 'ConnectionRefreshed', expirationTime: t(29) })]);
  assert.equal(findDeaths(refreshed, new Map([['n1', { at: t(25) }]]), ms(25), 0, cfg).expiredConnections, []);
});
s('a lost node heard again is found recovered; a down connection past its grace is found', () => {
  const lost = applyCommits(model, [
    commit('node.n1', t(50), { type: 'NodeLost', name: 'n1', lastSeen: t(30), timeoutMs: 15000 }),
    commit('connection.c1', t(50), { type: 'ConnectionDown', node: 'n1', since: t(50) }),
  ]);
  assert.equal(findDeaths(lost, new Map([['n1', { at: t(49) }]]), ms(51), 0, cfg).recoveredNodes, []);
  assert.equal(findDeaths(lost, new Map([['n1', { at: t(52) }]]), ms(52), 0, cfg).recoveredNodes, [{ name: 'n1', heardAt: t(52) }]);
  assert.equal(findDeaths(lost, new Map(), ms(100), 0, cfg).downPastGrace, []);
  // Down since 50 s; the request happened before the expiry moved, so it is also expired: both findings stand.
  assert.equal(findDeaths(lost, new Map(), ms(111), 0, cfg).downPastGrace, [{ id: 'c1', node: 'n1', since: t(50) }]);
});
s('the open connections of a revoked identity are found, to be closed', () => {
  const owned = applyCommits(emptyMesh, [
    { ...commit('connection.c2', t(10), { type: 'ConnectionRequested', connectionId: 'c2', networkService: 'svc', payload: 'IP', labels: {}, clientNode: 'n1', clientInterface: 'nsm0', mechanismPreferences: [], requestId: 'r' }) },
  ]);
  assert.equal(findDeaths(owned, new Map(), ms(20), 0, cfg).revokedOwners, [], 'nobody revoked');
  assert.equal(findDeaths(owned, new Map(), ms(20), 0, cfg, new Map([['a', t(15)]])).revokedOwners, [{ id: 'c2', actor: 'a', revokedAt: t(15) }]);
  assert.equal(findDeaths(owned, new Map(), ms(20), 0, cfg, new Map([['bob', t(15)]])).revokedOwners, [], "someone else's revocation");
  const closed = applyCommits(owned, [commit('connection.c2', t(16), { type: 'ConnectionClosed', reason: 'done' })]);
  assert.equal(findDeaths(closed, new Map(), ms(20), 0, cfg, new Map([['a', t(15)]])).revokedOwners, [], 'closed already');
});

s.run();
