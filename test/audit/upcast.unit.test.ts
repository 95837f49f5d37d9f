// Event schema versions and upcasters: an old PathPlanned reads as the current shape wherever
// the log is folded, and nothing else is touched.
import * as E from 'fp-ts/lib/Either.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import * as assert from 'uvu/assert';
import { allocationOf, type AddressPoolState } from '../../aggregates/addressPool.ts';
import type { ConnectionState } from '../../aggregates/connection/index.ts';
import { applyCommits, emptyMesh } from '../../projections/mesh.ts';
import { asPosition, type EventEnvelope, type StoredCommit } from '../../src/contracts/envelope.ts';
import { CURRENT_SCHEMA, schemaOf, UPCASTERS, upcastCommit, upcastEvent } from '../../src/contracts/upcast.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { Repository } from '../../src/command/repository.ts';
import { suite } from '../lib/harness.ts';

const ipContext = { srcIpAddrs: ['10.1.0.3/32'], dstIpAddrs: ['10.1.0.2/32'], srcRoutes: [{ prefix: '10.1.0.2/32' }], dstRoutes: [{ prefix: '10.1.0.3/32' }], excludedPrefixes: [] };
const v1Data = {
  type: 'PathPlanned',
  generation: 1,
  mechanism: { local: 'kernel' },
  context: { ipContext, mtu: 1500 },
  path: { index: 0, pathSegments: [{ name: 'client@n1', id: 'c1' }, { name: 'ep', id: 'c1' }] },
  clientInterface: 'nsmc1',
  endpointInterface: 'nsec1',
};
const v2Data = { ...v1Data, context: { ipContext, dnsContext: { configs: [] }, ethernetContext: {}, mtu: 1500 } };

const envelope = (type: string, version: number, schema: number, data: Record<string, unknown>): EventEnvelope => ({
  id: `e${version}`,
  type,
  stream: 'connection.c1',
  version,
  time: '2030-01-01T00:00:00.000Z',
  correlationId: 'corr',
  causationId: 'cause',
  domain: 't',
  actor: 'alice',
  schema,
  data: data as { type: string },
});

const history = (planned: EventEnvelope): StoredCommit[] => [
  {
    commitId: 'k1',
    stream: 'connection.c1',
    events: [
      envelope('ConnectionRequested', 1, 1, { type: 'ConnectionRequested', connectionId: 'c1', networkService: 's', payload: 'IP', labels: {}, clientNode: 'n1', clientInterface: 'nsmc1', mechanismPreferences: [], requestId: 'r1' }),
      envelope('EndpointSelected', 2, 1, { type: 'EndpointSelected', endpoint: 'ep', endpointNode: 'n1', considered: 1, excluded: [] }),
    ],
    revision: 1,
    position: asPosition(1),
  },
  { commitId: 'k2', stream: 'connection.c1', events: [planned], revision: 2, position: asPosition(2) },
];

const s = suite('upcasters');

s('PathPlanned of schema 1 gains the dnsContext and ethernetContext defaults, nothing else changes', () => {
  const up = upcastEvent(envelope('PathPlanned', 3, 1, v1Data));
  assert.is(up.schema, 2);
  assert.equal(up.data, v2Data);
  assert.is(schemaOf('PathPlanned'), 2);
});

s('an event at its current schema, or of a type never changed, is returned as is', () => {
  const current = envelope('PathPlanned', 3, 2, v2Data);
  assert.is(upcastEvent(current), current);
  const other = envelope('ConnectionClosed', 4, 1, { type: 'ConnectionClosed', reason: 'done' });
  assert.is(upcastEvent(other), other);
  const commit = history(current)[1]!;
  assert.is(upcastCommit(commit), commit, 'no copy when nothing needed upcasting');
});

s('an event newer than this code passes through as stored (additive changes stay readable)', () => {
  const future = envelope('PathPlanned', 3, 9, { ...v2Data, somethingNew: 1 });
  assert.is(upcastEvent(future), future);
});

s('every event type has an upcaster for each step up to its current schema', () => {
  for (const [type, current] of Object.entries(CURRENT_SCHEMA)) {
    for (let n = 1; n < current; n++) assert.type(UPCASTERS[type]?.[n], 'function', `${type} ${n} -> ${n + 1}`);
  }
});

s('the read model folded from an old-shape log equals the one from the current shape', () => {
  const oldModel = applyCommits(emptyMesh, history(envelope('PathPlanned', 3, 1, v1Data)));
  const newModel = applyCommits(emptyMesh, history(envelope('PathPlanned', 3, 2, v2Data)));
  assert.equal(oldModel, newModel);
  assert.equal((oldModel.connections.byId.c1!.state as ConnectionState).plan?.context.dnsContext, { configs: [] });
});

s('the repository folds aggregate state through the upcasters too', async () => {
  const commits = history(envelope('PathPlanned', 3, 1, v1Data));
  const store = { readStream: () => TE.right({ commits, revision: 2 }) } as unknown as EventStore;
  const loaded = await new Repository(store).load('connection.c1');
  if (E.isLeft(loaded)) throw new Error(loaded.left.message);
  const state = loaded.right.state as ConnectionState;
  assert.is(state.phase, 'path-planned');
  assert.equal(state.plan?.context, v2Data.context);
  assert.is(loaded.right.count, 3);
});

// ---- IPv6 and dual stack: pools and endpoints of schema 1 (one IPv4 prefix, one pair) ----------

const poolLog = (allocatedSchema: number, allocated: Record<string, unknown>, releasedSchema: number, released: Record<string, unknown>): StoredCommit[] => [
  { commitId: 'p1', stream: 'pool.ep', events: [{ ...envelope('AddressesAllocated', 1, allocatedSchema, allocated), stream: 'pool.ep' }], revision: 1, position: asPosition(1) },
  { commitId: 'p2', stream: 'pool.ep', events: [{ ...envelope('AddressesAllocated', 2, allocatedSchema, second[allocatedSchema]!), stream: 'pool.ep' }], revision: 2, position: asPosition(2) },
  { commitId: 'p3', stream: 'pool.ep', events: [{ ...envelope('AddressesReleased', 3, releasedSchema, released), stream: 'pool.ep' }], revision: 3, position: asPosition(3) },
];
const second: Record<number, Record<string, unknown>> = {
  1: { type: 'AddressesAllocated', connectionId: 'c2', prefix: '10.1.0.0/24', index: 2, src: '10.1.0.5/32', dst: '10.1.0.4/32' },
  2: { type: 'AddressesAllocated', connectionId: 'c2', pairs: [{ prefix: '10.1.0.0/24', src: '10.1.0.5/32', dst: '10.1.0.4/32' }] },
};
const v1Allocated = { type: 'AddressesAllocated', connectionId: 'c1', prefix: '10.1.0.0/24', index: 1, src: '10.1.0.3/32', dst: '10.1.0.2/32' };
const v2Allocated = { type: 'AddressesAllocated', connectionId: 'c1', pairs: [{ prefix: '10.1.0.0/24', src: '10.1.0.3/32', dst: '10.1.0.2/32' }] };

s('AddressesAllocated and AddressesReleased of schema 1 read as one IPv4 pair and a release by connection', () => {
  assert.equal(upcastEvent(envelope('AddressesAllocated', 1, 1, v1Allocated)).data, v2Allocated);
  assert.equal(upcastEvent(envelope('AddressesReleased', 2, 1, { type: 'AddressesReleased', connectionId: 'c1', index: 1 })).data, { type: 'AddressesReleased', connectionId: 'c1' });
});

s('an old pool log folds, in the repository, to the state the current shape gives: pairs held, a released one free again', async () => {
  const load = async (commits: StoredCommit[]) => {
    const store = { readStream: () => TE.right({ commits, revision: 3 }) } as unknown as EventStore;
    const loaded = await new Repository(store).load('pool.ep');
    if (E.isLeft(loaded)) throw new Error(loaded.left.message);
    return loaded.right.state as AddressPoolState;
  };
  const old = await load(poolLog(1, v1Allocated, 1, { type: 'AddressesReleased', connectionId: 'c1', index: 1 }));
  const now = await load(poolLog(2, v2Allocated, 2, { type: 'AddressesReleased', connectionId: 'c1' }));
  assert.equal(old, now);
  assert.is(old.count, 1);
  assert.equal(allocationOf(old, 'c2')?.pairs, [{ prefix: '10.1.0.0/24', src: '10.1.0.5/32', dst: '10.1.0.4/32', family: 'IPv4', index: 2n }]);
  assert.is(old.families.IPv4?.lowestFree, 1n, 'the released pair is the next one handed out');
  // And the read model's pools from the old log are those of the new one.
  assert.equal(applyCommits(emptyMesh, poolLog(1, v1Allocated, 1, { type: 'AddressesReleased', connectionId: 'c1', index: 1 })).pools, applyCommits(emptyMesh, poolLog(2, v2Allocated, 2, { type: 'AddressesReleased', connectionId: 'c1' })).pools);
});

s('EndpointRegistered and EndpointUpdated of schema 1: the one prefix becomes the list of prefixes', () => {
  const spec1 = { name: 'ep', networkServiceNames: ['web'], networkServiceLabels: {}, node: 'n1', prefix: '10.1.0.0/24', excludedPrefixes: [] };
  const spec2 = { name: 'ep', networkServiceNames: ['web'], networkServiceLabels: {}, node: 'n1', excludedPrefixes: [], prefixes: ['10.1.0.0/24'] };
  for (const type of ['EndpointRegistered', 'EndpointUpdated']) {
    const up = upcastEvent(envelope(type, 1, 1, { type, spec: spec1, expirationTime: '2030-01-01T00:01:00.000Z' }));
    assert.equal(up.data, { type, spec: spec2, expirationTime: '2030-01-01T00:01:00.000Z' }, type);
  }
  const model = applyCommits(emptyMesh, [{ commitId: 'e1', stream: 'endpoint.ep', events: [{ ...envelope('EndpointRegistered', 1, 1, { type: 'EndpointRegistered', spec: spec1 }), stream: 'endpoint.ep' }], revision: 1, position: asPosition(1) }]);
  assert.equal(model.registry.endpoints.ep?.prefixes, ['10.1.0.0/24']);
});

s.run();
