// Reactions to endpoints, nodes and peer domains coming and going (src/workflows/membership.ts),
// given/when/then: which connections are healed, marked down or brought up to date, and how.
import * as assert from 'uvu/assert';
import type { ConnectionEvent } from '../../aggregates/connection/index.ts';
import type { EndpointEvent } from '../../aggregates/endpoint.ts';
import type { NodeEvent } from '../../aggregates/node.ts';
import type { PeerEvent } from '../../aggregates/peer.ts';
import { reactToEndpoint, reactToNode, reactToPeer } from '../../src/workflows/membership.ts';
import { suite } from '../lib/harness.ts';
import { contextOf, envelope, ep1, modelWith, planned, request, selected } from '../lib/workflowFixtures.ts';
import { commandOf, trace } from '../lib/workflowTrace.ts';

const s = suite('workflow: endpoints, nodes, peers');

const established = (id: string, endpoint = 'ep-1', node = 'n2'): ConnectionEvent[] => [request(id), selected(endpoint, node), planned(id), { type: 'ConnectionEstablished', generation: 1 }];
const mesh = modelWith({
  a: established('a'),
  b: established('b'),
  c: established('c', 'ep-2', 'n1'),
  closed: [...established('closed'), { type: 'ConnectionClosed', reason: 'done' }],
  waiting: [request('waiting'), selected(), { type: 'ConnectionWaiting', reason: 'no endpoint', since: '2030-01-01T00:00:00.000Z' }],
});

s('an endpoint expires or leaves: its open connections are healed elsewhere, without it', () => {
  const ev: EndpointEvent = { type: 'EndpointExpired', name: 'ep-1', cause: 'expired', expirationTime: '2030-01-01T00:00:00.000Z' } as EndpointEvent;
  const steps = reactToEndpoint(envelope('endpoint.ep-1', ev), contextOf(mesh));
  // Not the closed one, nor the one waiting (a waiting connection holds no endpoint).
  assert.equal(trace(steps, { model: mesh }), [
    'log info healing connections',
    'together (at most 8)',
    '  execute connection.a HealConnection (heal-a) selection',
    '  execute connection.b HealConnection (heal-b) selection',
  ]);
  const heal = commandOf(steps, 'HealConnection', { model: mesh })!;
  assert.equal([heal.cause, heal.exclude], ['endpoint-expired', ['ep-1']]);
  const left = reactToEndpoint(envelope('endpoint.ep-1', { type: 'EndpointUnregistered', name: 'ep-1' } as EndpointEvent), contextOf(mesh));
  assert.equal(commandOf(left, 'HealConnection', { model: mesh })!.cause, 'endpoint-unregistered');
});

s('an endpoint arrives: connections waiting for its service try again', () => {
  const steps = reactToEndpoint(envelope('endpoint.ep-3', { type: 'EndpointRegistered', spec: { ...ep1, name: 'ep-3' } }), contextOf(mesh));
  assert.equal(trace(steps, { model: mesh }), ['log info healing connections', 'together (at most 8)', '  execute connection.waiting HealConnection (heal-waiting) selection']);
  assert.equal(commandOf(steps, 'HealConnection', { model: mesh })!.cause, 'endpoint-available');
  const other = reactToEndpoint(envelope('endpoint.ep-3', { type: 'EndpointRegistered', spec: { ...ep1, name: 'ep-3', networkServiceNames: ['db'] } }), contextOf(mesh));
  assert.equal(trace(other), []);
});

s('an endpoint of a floating registry: its registration, and its end, follow it there', () => {
  const floating = { ...ep1, floating: ['f'] };
  const registered = reactToEndpoint(envelope('endpoint.ep-1', { type: 'EndpointRegistered', spec: floating }), contextOf(modelWith(), { federated: true }));
  assert.equal(trace(registered), ['federate forward-endpoint f']);
  const gone = reactToEndpoint(envelope('endpoint.ep-1', { type: 'EndpointUnregistered', name: 'ep-1' } as EndpointEvent), contextOf(modelWith(), { federated: true }));
  assert.equal(trace(gone, { load: () => ({ registered: false, spec: floating }) }), ['load endpoint.ep-1', '  federate forward-endpoint f']);
  assert.equal(trace(reactToEndpoint(envelope('endpoint.ep-1', { type: 'EndpointRegistered', spec: floating }), contextOf(modelWith()))), [], 'not federated: nothing crosses');
});

s("a node is lost: its clients' connections go down, its endpoints expire", () => {
  const steps = reactToNode(envelope('node.n1', { type: 'NodeLost', name: 'n1', lastSeen: '2030-01-01T00:00:00.000Z', timeoutMs: 15000 } as NodeEvent), contextOf(mesh));
  assert.equal(trace(steps), [
    'log warn node lost',
    'together (at most 8)',
    '  execute connection.a MarkConnectionDown (down-a)',
    '  execute connection.b MarkConnectionDown (down-b)',
    '  execute connection.c MarkConnectionDown (down-c)',
    '  execute connection.waiting MarkConnectionDown (down-waiting)',
    'execute endpoint.ep-2 ExpireEndpoint (expire-ep-2)',
  ]);
  assert.equal(commandOf(steps, 'ExpireEndpoint'), { type: 'ExpireEndpoint', name: 'ep-2', cause: 'node-lost', at: '2030-01-01T00:10:00.000Z' });
});

s('a node is back: its down connections heal in place; across domains they are asked for again', () => {
  const down = (id: string, extra: ConnectionEvent[] = []): ConnectionEvent[] => [...established(id), ...extra, { type: 'ConnectionDown', node: 'n1', since: '2030-01-01T00:00:00.000Z' }];
  const m = modelWith({ d: down('d'), x: [request('x', { domain: 'b' }), { type: 'ConnectionDown', node: 'n1', since: '2030-01-01T00:00:00.000Z' }] });
  const steps = reactToNode(envelope('node.n1', { type: 'NodeRecovered', name: 'n1' } as NodeEvent), contextOf(m, { federated: true }));
  assert.equal(trace(steps, { model: m }), ['log info healing connections', 'together (at most 8)', '  execute connection.d HealConnection (heal-d) selection', 'together (at most 8)', '  federate resync x']);
  assert.equal(commandOf(steps, 'HealConnection', { model: m })!.cause, 'node-recovered');
});

s('a peer domain is lost: connections to its endpoints go down; back: they are brought up to date; heard: its registry is copied', () => {
  const m = modelWith({ r: [request('r', { domain: 'b' }), selected('ep@b', 'nb@b'), planned('r', 1, { remote: {} }), { type: 'ConnectionEstablished', generation: 1 }], l: established('l') });
  const lost = reactToPeer(envelope('peer.b', { type: 'PeerLost', domain: 'b', lastSeen: '2030-01-01T00:00:00.000Z', timeoutMs: 5000 } as PeerEvent), contextOf(m, { federated: true }));
  assert.equal(trace(lost), ['log warn peer domain lost', 'together (at most 8)', '  execute connection.r MarkConnectionDown (down-r)']);
  assert.equal(commandOf(lost, 'MarkConnectionDown'), { type: 'MarkConnectionDown', connectionId: 'r', node: '', domain: 'b', at: '2030-01-01T00:10:00.000Z' });
  const downThere = modelWith({ r: [request('r', { domain: 'b' }), { type: 'ConnectionDown', node: 'nb@b', since: '2030-01-01T00:00:00.000Z', domain: 'b' }] });
  assert.equal(trace(reactToPeer(envelope('peer.b', { type: 'PeerRecovered', domain: 'b' } as PeerEvent), contextOf(downThere, { federated: true }))), ['log info peer domain back', 'together (at most 8)', '  federate resync r']);
  assert.equal(trace(reactToPeer(envelope('peer.b', { type: 'PeerSeen', facts: { domain: 'b', tunnelIds: { from: 0, to: 99 } } } as PeerEvent), contextOf(m, { federated: true }))), ['federate peer-seen']);
});

s.run();
