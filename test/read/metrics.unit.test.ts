// The pure side of the metrics (src/read/metrics.ts): counts read off a model folded by the real
// projections, and the setup and heal durations found in commits, from the events' times.
import * as assert from 'uvu/assert';
import type { ConnectionEvent } from '../../aggregates/connection/index.ts';
import type { DomainEvent } from '../../aggregates/index.ts';
import { applyCommits } from '../../projections/mesh.ts';
import type { StoredCommit } from '../../src/contracts/envelope.ts';
import { connectionCounts, DurationObserver, endpointCounts, nodeCounts, nodeReadiness, type Counted } from '../../src/read/metrics.ts';
import { suite } from '../lib/harness.ts';
import { commitOf, modelWith, NOW, planned, request, selected } from '../lib/workflowFixtures.ts';

const s = suite('metrics from the read model and from folded commits', {});

/** A commit of a connection's events, every event at `atMs` after NOW. */
const at = (id: string, events: readonly DomainEvent[], position: number, atMs: number): StoredCommit => {
  const c = commitOf(`connection.${id}`, events, position, 'alice');
  const time = new Date(NOW.getTime() + atMs).toISOString();
  return { ...c, events: c.events.map((e) => ({ ...e, time })) };
};

const programmed = (side: 'client' | 'endpoint', generation = 1): ConnectionEvent => ({ type: 'DataplaneProgrammed', generation, node: side === 'client' ? 'n1' : 'n2', side });
const established = (generation = 1): ConnectionEvent => ({ type: 'ConnectionEstablished', generation });
const setUp: readonly ConnectionEvent[] = [request('c1'), selected(), planned('c1'), programmed('client'), programmed('endpoint'), established()];

const byLabels = <L extends string>(rows: readonly Counted<L>[]) => Object.fromEntries(rows.map((r) => [Object.values(r.labels).join('/'), r.value]));

s('connections are counted by state, service and client node; closed and failed ones too', () => {
  const m = modelWith({
    a: setUp,
    b: setUp,
    c: [request('c', { clientNode: 'n2' }), selected()],
    d: [request('d', { networkService: 'db' }), { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'none' }],
    e: [...setUp, { type: 'ConnectionClosed', reason: 'done' }],
  });
  assert.equal(byLabels(connectionCounts(m)), { 'established/web/n1': 2, 'endpoint-selected/web/n2': 1, 'failed/db/n1': 1, 'closed/web/n1': 1 });
  assert.is(connectionCounts(m).reduce((n, r) => n + r.value, 0), m.connections.count, 'the states add up to the model\'s count');
  // No label holds a connection id.
  for (const r of connectionCounts(m)) for (const v of Object.values(r.labels)) assert.not.ok(['a', 'b', 'c', 'd', 'e'].includes(v));
});

s('endpoints by service and node, once per service; nodes by readiness', () => {
  const m = modelWith();
  assert.equal(byLabels(endpointCounts(m)), { 'web/n2': 1, 'web/n1': 1 });
  const both = applyCommits(m, [
    commitOf('endpoint.ep-3', [{ type: 'EndpointRegistered', spec: { name: 'ep-3', networkServiceNames: ['web', 'db'], networkServiceLabels: {}, node: 'n2', prefixes: ['10.80.0.0/24'], excludedPrefixes: [] } }], m.position + 1),
    commitOf('node.n2', [{ type: 'NodeLost', name: 'n2', lastSeen: NOW.toISOString(), timeoutMs: 15000 }], m.position + 2),
  ]);
  assert.equal(byLabels(endpointCounts(both)), { 'web/n2': 2, 'web/n1': 1, 'db/n2': 1 });
  assert.equal(byLabels(nodeReadiness(both)), { n1: 1, n2: 0 });
  assert.equal(byLabels(nodeCounts(both)), { ready: 1, lost: 1 });
  assert.equal(byLabels(nodeCounts(modelWith())), { ready: 2, lost: 0 }, 'both statuses are there, at 0 too');
});

s('setup: from the request to the first establishment, by the events\' times', () => {
  const m = modelWith();
  const o = new DurationObserver(m);
  const p = m.position;
  assert.equal(o.observe(at('x', [request('x')], p + 1, 0)), []);
  assert.equal(o.observe(at('x', [selected()], p + 2, 5)), []);
  assert.equal(o.observe(at('x', [planned('x')], p + 3, 9)), []);
  assert.equal(o.observe(at('x', [programmed('client')], p + 4, 20)), []);
  assert.equal(o.observe(at('x', [programmed('endpoint'), established()], p + 5, 37)), [{ kind: 'setup', seconds: 0.037 }]);
  assert.is(o.settingUp, 0, 'nothing is remembered once it is set up');
});

s('a commit already seen (offered, then delivered again in a batch) is observed once', () => {
  const m = modelWith();
  const o = new DurationObserver(m);
  const p = m.position;
  o.observe(at('x', [request('x')], p + 1, 0));
  const done = at('x', [programmed('endpoint'), established()], p + 2, 50);
  assert.is(o.observe(done).length, 1);
  assert.equal(o.observe(done), []);
  assert.equal(o.observe(at('x', [request('x')], p + 1, 0)), [], 'an older position is not looked at');
});

s('history folded before the observer started is not observed; a setup under way then counts when it completes', () => {
  const model = modelWith({ old: setUp, midway: [request('midway'), selected()] });
  const o = new DurationObserver(model);
  assert.is(o.settingUp, 1, 'only the connection still being set up is followed');
  // The model's rows carry NOW as their request time.
  assert.equal(o.observe(at('midway', [planned('midway'), programmed('client'), programmed('endpoint'), established()], model.position + 1, 2500)), [{ kind: 'setup', seconds: 2.5 }]);
});

s('heal: the aggregate\'s own duration, by cause; a re-establishment after a heal is not a setup', () => {
  const model = modelWith({ c1: setUp });
  const o = new DurationObserver(model);
  const p = model.position;
  const healing: ConnectionEvent = { type: 'ConnectionHealing', cause: 'endpoint-expired', causeId: 'ev-1', oldEndpoint: 'ep-1', inPlace: false, startedAt: NOW.toISOString() };
  assert.equal(o.observe(at('c1', [healing, selected('ep-2', 'n1')], p + 1, 0)), []);
  const healed: ConnectionEvent = { type: 'ConnectionHealed', generation: 2, cause: 'endpoint-expired', oldEndpoint: 'ep-1', newEndpoint: 'ep-2', startedAt: NOW.toISOString(), durationMs: 1250 };
  assert.equal(o.observe(at('c1', [programmed('endpoint', 2), established(2), healed], p + 2, 1250)), [{ kind: 'heal', cause: 'endpoint-expired', seconds: 1.25 }]);
});

s('a request that fails, is closed or is redirected by a registry is forgotten', () => {
  const m = modelWith();
  const o = new DurationObserver(m);
  const p = m.position;
  o.observe(at('f', [request('f'), { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'none' }], p + 1, 0));
  o.observe(at('c', [request('c')], p + 2, 0));
  o.observe(at('c', [{ type: 'ConnectionClosed', reason: 'bye' }], p + 3, 0));
  o.observe(at('r', [request('r', { remoteClient: { name: 'n9', domain: 'b', publicKeys: {}, mechanisms: ['vxlan'], mtu: 1500 } })], p + 4, 0));
  assert.is(o.settingUp, 1);
  o.observe(at('r', [{ type: 'ConnectionRedirected', domain: 'c', via: 'floating' }], p + 5, 0));
  assert.is(o.settingUp, 0);
});

s.run();
