// The pure parts of federation: peer detection, what crosses between domains (built, then
// decoded as the receiver does), subjects and service references, the leafnode configuration
// and the link's permissions.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { connection, type ConnectionEvent, type ConnectionState } from '../../aggregates/connection/index.ts';
import type { NodeRow } from '../../projections/nodes.ts';
import { checkLeafUrl, leafnodesConfig } from '../../infra/nats/leafnodes.ts';
import { parseCommandSubject, subjectsFor } from '../../src/contracts/subjects.ts';
import { decodeCommand, splitServiceRef } from '../../src/contracts/commands.ts';
import { findPeerChanges } from '../../src/workflows/peerDetector.ts';
import { nodeFactsOf, remoteStateFrom, remoteStateOf } from '../../src/command/remoteState.ts';
import { joinerDenyImports, leafPermissions, leafUrlWith, parseLeafCredentials } from '../../src/security/leaf.ts';
import { suite } from '../lib/harness.ts';

const s = suite('federation: pure parts');

const T = (sec: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, sec)).toISOString();
const ms = (sec: number) => Date.parse(T(sec));

s('peers: new when first heard, lost after the timeout of silence, back when heard again, changed facts', () => {
  const heard = new Map([['b', { at: T(10), facts: { domain: 'b', tunnelIds: { from: 1000, to: 1999 } } }]]);
  assert.equal(findPeerChanges({ peers: {} }, heard, ms(10), ms(0), 5000).seen.map((x) => x.reason), ['new']);
  const known = { peers: { b: { domain: 'b', tunnelIds: { from: 1000, to: 1999 }, status: 'reachable' as const, firstSeen: T(1), updatedAt: T(1) } } };
  assert.equal(findPeerChanges(known, heard, ms(14), ms(0), 5000), { seen: [], lost: [] });
  assert.equal(findPeerChanges(known, heard, ms(16), ms(0), 5000).lost, [{ domain: 'b', lastSeen: T(10) }]);
  // A new leader does not judge silence it has not listened to for a whole timeout.
  assert.equal(findPeerChanges(known, new Map(), ms(16), ms(14), 5000).lost, []);
  const lost = { peers: { b: { ...known.peers.b, status: 'lost' as const, lostAt: T(16) } } };
  assert.equal(findPeerChanges(lost, heard, ms(20), ms(0), 5000).seen, [], 'a heartbeat older than the loss does not bring it back');
  const again = new Map([['b', { at: T(21), facts: heard.get('b')!.facts }]]);
  assert.equal(findPeerChanges(lost, again, ms(21), ms(0), 5000).seen.map((x) => x.reason), ['back']);
  const changed = new Map([['b', { at: T(12), facts: { domain: 'b', tunnelIds: { from: 2000, to: 2999 } } }]]);
  assert.equal(findPeerChanges(known, changed, ms(12), ms(0), 5000).seen.map((x) => x.reason), ['changed']);
});

const node = (name: string, extra: Partial<NodeRow> = {}): NodeRow => ({
  name,
  mechanisms: ['kernel', 'wireguard'],
  dataplane: 'linux',
  underlayAddress: '172.31.0.12',
  mtu: 1500,
  publicKeys: { wireguard: 'AAAA' },
  joinedAt: T(0),
  updatedAt: T(0),
  status: 'ready',
  ...extra,
});

s("a node's facts for another domain: its external address (NAT) over its underlay address", () => {
  assert.is(nodeFactsOf(node('n2'), 'n2').address, '172.31.0.12');
  assert.is(nodeFactsOf(node('n2', { externalAddress: '198.51.100.7' }), 'n2').address, '198.51.100.7');
  assert.equal(nodeFactsOf(undefined, 'gone'), { name: 'gone', mechanisms: ['kernel'], mtu: 1500, publicKeys: {} });
});

s('the endpoint side\'s state passes the receiver\'s decoder and reads back into the same plan', () => {
  const request = { connectionId: 'x1', networkService: 'icmp', payload: 'IP' as const, labels: {}, clientNode: 'n1@a', clientInterface: 'nsm0', mechanismPreferences: [], requestId: 'r', remoteClient: { name: 'n1', domain: 'a', publicKeys: {}, mechanisms: ['kernel' as const, 'wireguard' as const], mtu: 1500 } };
  const events: ConnectionEvent[] = [
    { type: 'ConnectionRequested', ...request },
    { type: 'EndpointSelected', endpoint: 'ep1', endpointNode: 'n2', considered: 1, excluded: [] },
    {
      type: 'PathPlanned',
      generation: 1,
      mechanism: { local: 'kernel', remote: 'wireguard' },
      context: { ipContext: { srcIpAddrs: ['10.80.0.3/32'], dstIpAddrs: ['10.80.0.2/32'], srcRoutes: [{ prefix: '10.80.0.2/32' }], dstRoutes: [{ prefix: '10.80.0.3/32' }], excludedPrefixes: [] }, dnsContext: { configs: [] }, ethernetContext: {}, mtu: 1420 },
      path: { index: 0, pathSegments: [] },
      clientInterface: 'nsm0',
      endpointInterface: 'nsex1abcdef12',
      tunnel: { id: 1000, vni: 11000, vxlanPort: 4789, wireguardPort: 41000 },
    },
    { type: 'DataplaneProgrammed', generation: 1, node: 'n2', side: 'endpoint' },
  ];
  const state = events.reduce(connection.evolve, connection.initialState) as ConnectionState;
  const body = remoteStateOf(state, { n2: node('n2') })!;
  assert.is(body.phase, 'planned');
  assert.ok(body.endpointProgrammed);
  const decoded = decodeCommand('interdomain.state', 'peer:b', { id: 'i1', body: { connectionId: 'x1', ...body } });
  assert.ok(E.isRight(decoded), JSON.stringify(decoded));
  const { connectionId: _c, ...wire } = (decoded as E.Right<{ body: { connectionId: string } & typeof body }>).right.body;
  const back = remoteStateFrom(wire, 'b');
  assert.equal(back.plan?.node.domain, 'b');
  assert.equal(back.plan?.tunnel, { id: 1000, vni: 11000, vxlanPort: 4789, wireguardPort: 41000 });
  assert.equal(back.plan?.context.ipContext.dstIpAddrs, ['10.80.0.2/32']);
  // Nothing to tell before a plan; terminal states carry their reason.
  assert.is(remoteStateOf(events.slice(0, 2).reduce(connection.evolve, connection.initialState), {}), undefined);
  const failed = [...events.slice(0, 1), { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'none' } as ConnectionEvent].reduce(connection.evolve, connection.initialState);
  assert.equal(remoteStateOf(failed, {}), { generation: 0, phase: 'failed', endpointProgrammed: false, reason: 'none', code: 'no-endpoint' });
});

s('a malformed interdomain command is refused naming the field', () => {
  const r = decodeCommand('interdomain.request', 'peer:a', { id: 'i1', body: { connectionId: 'x', networkService: 'icmp', clientInterface: 'nsm0', client: { name: 'n1', mechanisms: ['teleport'], mtu: 1500 } } });
  assert.ok(E.isLeft(r) && r.left.path === 'body.client.mechanisms[0]', JSON.stringify(r));
});

s('subjects: commands from peers parse as interdomain.<verb> from peer:<domain>; service references', () => {
  const sa = subjectsFor('a');
  assert.equal(parseCommandSubject(sa, sa.fedCommand('b', 'request')), { kind: 'interdomain.request', actor: 'peer:b' });
  assert.is(parseCommandSubject(sa, 'nsm.a.fed.b.query.history'), undefined);
  assert.is(parseCommandSubject(sa, 'nsm.a.fed.B!.cmd.request'), undefined);
  assert.equal(sa.fedCommands(['b', 'c']), ['nsm.a.fed.b.cmd.*', 'nsm.a.fed.c.cmd.*']);
  assert.equal(splitServiceRef('icmp@floating'), { service: 'icmp', domain: 'floating' });
  assert.equal(splitServiceRef('icmp'), { service: 'icmp' });
});

s('leafnode configuration and URLs', () => {
  assert.match(leafnodesConfig({ hub: { port: 7422 } }), /listen: "0\.0\.0\.0:7422"/);
  assert.match(leafnodesConfig({ remotes: [{ url: 'nats-leaf://h:7422', denyImports: ['nsm.b.cmd.>'] }] }), /url: "nats-leaf:\/\/h:7422", deny_imports: \["nsm\.b\.cmd\.>"\]/);
  assert.is(leafnodesConfig({}), '');
  for (const ok of ['nats-leaf://hub:7422', 'tls://hub:7422', 'nats://hub:7422']) assert.is(checkLeafUrl(ok), undefined, ok);
  assert.is(checkLeafUrl('http://hub:80'), '"http://hub:80": the scheme must be nats-leaf:// (or tls:// or nats://)', 'names every scheme it takes');
  assert.match(checkLeafUrl('nats-leaf://hub') ?? '', /leafnode port/);
  assert.is(leafUrlWith('nats-leaf://hub:7422', { user: 'peer-b', password: 'p/w' }), 'nats-leaf://peer-b:p%2Fw@hub:7422');
});

s("the link's permissions: a peer speaks only for itself; a joining domain keeps its internals", () => {
  const p = leafPermissions('b');
  assert.ok(p.publish.allow.every((x) => !x.startsWith('nsm.') || x.includes('.fed.b.') || x === 'nsm.b.fed.hb'), JSON.stringify(p.publish.allow));
  assert.not.ok(p.publish.allow.some((x) => x.includes('$JS.*.API.>') || x === '>'), 'no JetStream API beyond registry consumers');
  const deny = joinerDenyImports('b');
  for (const x of ['nsm.b.cmd.>', 'nsm.b.evt.>', '$JS.b.API.STREAM.>', '$JS.b.API.CONSUMER.CREATE.*.*.nsm.b.evt.connection.>']) assert.ok(deny.includes(x), x);
  assert.not.ok(deny.some((x) => x.includes('evt.endpoint')), 'the registry events stay sourceable');
  assert.ok(E.isLeft(parseLeafCredentials('{"nsm":"credentials"}', 'f')));
});

s.run();
