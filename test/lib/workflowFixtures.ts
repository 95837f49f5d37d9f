// A small mesh for the workflow specs: nodes n1 and n2, endpoint ep-1 on n2 (and ep-2 on n1)
// providing "web", and connections in whatever state a spec needs, folded by the real aggregates
// and projections from events.
import { addressPool, type AddressPoolState } from '../../aggregates/addressPool.ts';
import { schemaOf } from '../../src/contracts/upcast.ts';
import { connection, type ConnectionEvent, type ConnectionState } from '../../aggregates/connection/index.ts';
import { tunnelPool, type TunnelPoolState } from '../../aggregates/tunnelPool.ts';
import type { DomainEvent } from '../../aggregates/index.ts';
import { applyCommits, emptyMesh, type MeshModel } from '../../projections/mesh.ts';
import { asPosition, type EventEnvelope, type StoredCommit } from '../../src/contracts/envelope.ts';
import type { WorkflowContext } from '../../src/workflows/steps.ts';

export const NOW = new Date('2030-01-01T00:10:00.000Z');
let seq = 0;

export const envelope = <E extends { readonly type: string }>(stream: string, data: E, over: Partial<Omit<EventEnvelope<E>, 'data'>> = {}): EventEnvelope<E> => ({
  id: `evt-${++seq}`,
  type: data.type,
  stream,
  version: 1,
  time: NOW.toISOString(),
  correlationId: 'corr-1',
  causationId: 'cause-1',
  domain: 'a',
  actor: 'alice',
  schema: schemaOf(data.type),
  data,
  ...over,
});

export const commitOf = (stream: string, events: readonly DomainEvent[], position: number, actor = 'operator'): StoredCommit => ({
  commitId: `c-${position}`,
  stream,
  events: events.map((e, i) => ({ ...envelope(stream, e, { actor }), version: i + 1 })),
  revision: position,
  position: asPosition(position),
});

const nodeSpec = (name: string, underlay: string) => ({ name, mechanisms: ['kernel', 'vxlan', 'wireguard'] as const, dataplane: 'simulated' as const, underlayAddress: underlay, mtu: 1500, publicKeys: {}, localPrefixes: [`${underlay.split('.').slice(0, 3).join('.')}.0/24`] });
export const ep1 = { name: 'ep-1', networkServiceNames: ['web'], networkServiceLabels: {}, node: 'n2', prefixes: ['10.60.0.0/24'], excludedPrefixes: ['10.60.0.0/30'], netns: 'ep-ns' };
export const ep2 = { name: 'ep-2', networkServiceNames: ['web'], networkServiceLabels: {}, node: 'n1', prefixes: ['10.70.0.0/24'], excludedPrefixes: [] };

export const request = (id: string, over: Record<string, unknown> = {}) => ({
  type: 'ConnectionRequested' as const,
  connectionId: id,
  networkService: 'web',
  payload: 'IP' as const,
  labels: {},
  clientNode: 'n1',
  clientNetns: 'client-ns',
  clientInterface: 'nsm0',
  mechanismPreferences: [],
  requestId: `req-${id}`,
  ...over,
});
export const selected = (endpoint = 'ep-1', endpointNode = 'n2', over: Record<string, unknown> = {}): ConnectionEvent => ({ type: 'EndpointSelected', endpoint, endpointNode, considered: 2, excluded: [], ...over });
export const planned = (id: string, generation = 1, over: Record<string, unknown> = {}): ConnectionEvent => ({
  type: 'PathPlanned',
  generation,
  mechanism: { local: 'kernel', remote: 'vxlan' },
  context: { ipContext: { srcIpAddrs: ['10.60.0.5/32'], dstIpAddrs: ['10.60.0.4/32'], srcRoutes: [{ prefix: '10.60.0.4/32' }], dstRoutes: [{ prefix: '10.60.0.5/32' }], excludedPrefixes: [] }, dnsContext: { configs: [] }, ethernetContext: {}, mtu: 1450 },
  path: { index: 0, pathSegments: [{ name: 'client@n1', id }, { name: 'ep-1', id }] },
  clientInterface: 'nsm0',
  endpointInterface: `nse${id}`,
  endpointNetns: 'ep-ns',
  tunnel: { id: 3, vni: 10003, vxlanPort: 4789, wireguardPort: 40003 },
  ...over,
});

/** The connection's state after these events, by the aggregate's own evolve. */
export const stateOf = (events: readonly ConnectionEvent[]): ConnectionState => events.reduce((s, e) => connection.evolve(s, e), connection.initialState);

/** The registry (n1, n2, ep-1, ep-2, service web) plus the given connections' events. */
export const modelWith = (connections: Readonly<Record<string, readonly ConnectionEvent[]>> = {}, actor = 'alice'): MeshModel => {
  let p = 0;
  const commits: StoredCommit[] = [
    commitOf('service.web', [{ type: 'NetworkServiceRegistered', spec: { name: 'web', payload: 'IP', matches: [] } }], ++p),
    commitOf('node.n1', [{ type: 'NodeJoined', spec: nodeSpec('n1', '172.16.0.1') }], ++p),
    commitOf('node.n2', [{ type: 'NodeJoined', spec: nodeSpec('n2', '172.16.1.1') }], ++p),
    commitOf('endpoint.ep-1', [{ type: 'EndpointRegistered', spec: ep1 }], ++p),
    commitOf('endpoint.ep-2', [{ type: 'EndpointRegistered', spec: ep2 }], ++p),
    ...Object.entries(connections).map(([id, events]) => commitOf(`connection.${id}`, events, ++p, actor)),
  ];
  return applyCommits(emptyMesh, commits);
};

export const contextOf = (model: MeshModel, over: Partial<WorkflowContext> = {}): WorkflowContext => ({
  domain: 'a',
  model,
  now: NOW,
  escalateWithinMs: 60_000,
  healConcurrency: 8,
  federated: false,
  ...over,
});

/** An address pool with these connections' allocations, as the aggregate folds them. */
export const poolWith = (prefix: string, allocations: Readonly<Record<string, { src: string; dst: string }>>): AddressPoolState =>
  Object.entries(allocations).reduce((st, [connectionId, a]) => addressPool.evolve(st, { type: 'AddressesAllocated', connectionId, pairs: [{ prefix, ...a }] }), addressPool.initialState);

/** The domain's tunnel ids with these connections' ids. */
export const tunnelsWith = (ids: Readonly<Record<string, number>>): TunnelPoolState =>
  Object.entries(ids).reduce((st, [connectionId, id]) => tunnelPool.evolve(st, { type: 'TunnelAllocated', connectionId, id }), tunnelPool.initialState);
