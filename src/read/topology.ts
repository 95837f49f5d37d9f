// The dashboard's picture of the mesh: the `topology` query's answer and the deltas the live
// stream sends after each fold. Compact on purpose: a connection is a handful of names (its
// detail, with path tokens and routes, is the `connection` query), so that 10,000 of them load
// in one answer of about 2 MB. Pure: the model in, plain data out.
import type { ConnectionPhase } from '../../aggregates/connection/index.ts';
import type { ConnectionRow } from '../../projections/connections.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import type { StoredCommit } from '../contracts/envelope.ts';

export interface TopologyConnection {
  readonly id: string;
  readonly service: string;
  readonly state: ConnectionPhase;
  /** Who asked for it. */
  readonly actor: string;
  readonly clientNode: string;
  readonly endpoint?: string;
  readonly endpointNode?: string;
  /** Being healed (its state may still read established or waiting). */
  readonly healing?: boolean;
}

export interface TopologyNode {
  readonly name: string;
  readonly status: 'ready' | 'lost';
}

export interface TopologyEndpoint {
  readonly name: string;
  readonly node: string;
  readonly services: readonly string[];
}

/**
 * `all`: the operator's and auditor's picture. `own`: a client's, its own connections and
 * nothing else; nodes, endpoints and services of the mesh are left out (a client may not list
 * them), the page draws the nodes and endpoints its connections name.
 */
export type TopologyScope = 'all' | 'own';

export interface Topology {
  readonly scope: TopologyScope;
  /** The log position this picture is of. */
  readonly position: number;
  readonly nodes: readonly TopologyNode[];
  readonly services: readonly string[];
  readonly endpoints: readonly TopologyEndpoint[];
  readonly connections: readonly TopologyConnection[];
}

export interface TopologyOptions {
  /** Only this requester's connections, and no registry or node (a client's scope). */
  readonly actor?: string;
  /** Closed connections too (default: not; they are never pruned from the model). */
  readonly includeClosed?: boolean;
}

export const topologyConnection = (r: ConnectionRow): TopologyConnection => {
  const s = r.state;
  return {
    id: r.id,
    service: s.request?.domain ? `${s.request.networkService}@${s.request.domain}` : (s.request?.networkService ?? ''),
    state: s.phase,
    actor: r.actor,
    clientNode: s.request?.clientNode ?? '',
    ...(s.endpoint ? { endpoint: s.endpoint.name, endpointNode: s.endpoint.node } : {}),
    ...(s.healing ? { healing: true } : {}),
  };
};

const shown = (r: ConnectionRow, o: TopologyOptions): boolean =>
  r.state.phase !== 'none' && (o.includeClosed || r.state.phase !== 'closed') && (o.actor === undefined || r.actor === o.actor);

const nodeOf = (m: MeshModel, name: string): TopologyNode | undefined => {
  const n = m.nodes.nodes[name];
  return n ? { name: n.name, status: n.status } : undefined;
};

const endpointOf = (m: MeshModel, name: string): TopologyEndpoint | undefined => {
  const ep = m.registry.endpoints[name];
  return ep ? { name: ep.name, node: ep.node, services: [...ep.networkServiceNames] } : undefined;
};

export const topologyOf = (m: MeshModel, o: TopologyOptions = {}): Topology => {
  const connections: TopologyConnection[] = [];
  for (const id in m.connections.byId) {
    const r = m.connections.byId[id]!;
    if (shown(r, o)) connections.push(topologyConnection(r));
  }
  if (o.actor !== undefined) return { scope: 'own', position: m.position, nodes: [], services: [], endpoints: [], connections };
  return {
    scope: 'all',
    position: m.position,
    nodes: Object.keys(m.nodes.nodes).map((n) => nodeOf(m, n)!),
    services: Object.keys(m.registry.services),
    endpoints: Object.keys(m.registry.endpoints).map((e) => endpointOf(m, e)!),
    connections,
  };
};

/**
 * What changed in a batch of commits, as the live stream sends it: the rows as they are after the
 * fold (an upsert), and the names of what is gone. A closed connection comes as a row in state
 * `closed` (the page drops it unless it shows closed ones).
 */
export interface TopologyDelta {
  readonly position: number;
  /** Time of the last event in the batch. */
  readonly time?: string;
  readonly connections: readonly TopologyConnection[];
  readonly nodes?: readonly TopologyNode[];
  readonly removedNodes?: readonly string[];
  readonly endpoints?: readonly TopologyEndpoint[];
  readonly removedEndpoints?: readonly string[];
  readonly services?: readonly string[];
  readonly removedServices?: readonly string[];
}

/** Aggregates whose streams change the picture; the rest (pools, workflow, identities...) do not. */
const DRAWN = ['connection', 'node', 'endpoint', 'service'] as const;
type Drawn = (typeof DRAWN)[number];

const drawnStream = (stream: string): { aggregate: Drawn; id: string } | undefined => {
  const dot = stream.indexOf('.');
  const aggregate = stream.slice(0, dot) as Drawn;
  return dot > 0 && DRAWN.includes(aggregate) ? { aggregate, id: stream.slice(dot + 1) } : undefined;
};

/**
 * The delta of a batch of commits already folded into `m`, within the scope; undefined when
 * nothing in scope changed. Each stream is looked up once, however many commits it had.
 */
export const topologyDelta = (m: MeshModel, commits: readonly StoredCommit[], o: TopologyOptions = {}): TopologyDelta | undefined => {
  const touched: Record<Drawn, Set<string>> = { connection: new Set(), node: new Set(), endpoint: new Set(), service: new Set() };
  let time: string | undefined;
  for (const c of commits) {
    const d = drawnStream(c.stream);
    if (!d) continue;
    touched[d.aggregate].add(d.id);
    time = c.events[c.events.length - 1]?.time ?? time;
  }
  const connections: TopologyConnection[] = [];
  for (const id of touched.connection) {
    const r = m.connections.byId[id];
    if (r && r.state.phase !== 'none' && (o.actor === undefined || r.actor === o.actor)) connections.push(topologyConnection(r));
  }
  if (o.actor !== undefined) return connections.length > 0 ? { position: m.position, ...(time ? { time } : {}), connections } : undefined;
  const split = <T>(ids: Set<string>, get: (id: string) => T | undefined) => {
    const present: T[] = [];
    const removed: string[] = [];
    for (const id of ids) {
      const v = get(id);
      if (v) present.push(v);
      else removed.push(id);
    }
    return { present, removed };
  };
  const nodes = split(touched.node, (n) => nodeOf(m, n));
  const endpoints = split(touched.endpoint, (e) => endpointOf(m, e));
  const services = split(touched.service, (s) => (m.registry.services[s] ? s : undefined));
  if (connections.length + touched.node.size + touched.endpoint.size + touched.service.size === 0) return undefined;
  return {
    position: m.position,
    ...(time ? { time } : {}),
    connections,
    ...(nodes.present.length ? { nodes: nodes.present } : {}),
    ...(nodes.removed.length ? { removedNodes: nodes.removed } : {}),
    ...(endpoints.present.length ? { endpoints: endpoints.present } : {}),
    ...(endpoints.removed.length ? { removedEndpoints: endpoints.removed } : {}),
    ...(services.present.length ? { services: services.present } : {}),
    ...(services.removed.length ? { removedServices: services.removed } : {}),
  };
};
