// The dashboard's pure half, run in the browser (bundled into the page) and by the unit tests:
// the picture the page holds and how a live delta changes it, the filters, the graph elements
// (one edge per connection, or edges aggregated per client node, service and endpoint node once
// there are too many to draw), and a connection's history as a timeline. No DOM, no fetch.
import type { Topology, TopologyConnection, TopologyDelta, TopologyEndpoint, TopologyNode, TopologyScope } from '../read/topology.ts';

/** The picture the page holds, indexed for deltas: 10,000 connections are updated one by one. */
export interface LiveTopology {
  scope: TopologyScope;
  position: number;
  time?: string;
  readonly nodes: Map<string, TopologyNode>;
  readonly endpoints: Map<string, TopologyEndpoint>;
  readonly services: Set<string>;
  readonly connections: Map<string, TopologyConnection>;
}

export const liveTopology = (t: Topology): LiveTopology => ({
  scope: t.scope,
  position: t.position,
  nodes: new Map(t.nodes.map((n) => [n.name, n])),
  endpoints: new Map(t.endpoints.map((e) => [e.name, e])),
  services: new Set(t.services),
  connections: new Map(t.connections.map((c) => [c.id, c])),
});

/**
 * Folds a live delta into the picture. A closed connection leaves it unless closed ones are
 * shown. Returns false for a delta at or before the picture's position (already in it: the
 * stream may start before the first answer is read).
 */
export const applyDelta = (t: LiveTopology, d: TopologyDelta, o: { includeClosed?: boolean } = {}): boolean => {
  if (d.position <= t.position) return false;
  t.position = d.position;
  if (d.time) t.time = d.time;
  for (const c of d.connections) {
    if (c.state === 'closed' && !o.includeClosed) t.connections.delete(c.id);
    else t.connections.set(c.id, c);
  }
  for (const n of d.nodes ?? []) t.nodes.set(n.name, n);
  for (const n of d.removedNodes ?? []) t.nodes.delete(n);
  for (const e of d.endpoints ?? []) t.endpoints.set(e.name, e);
  for (const e of d.removedEndpoints ?? []) t.endpoints.delete(e);
  for (const s of d.services ?? []) t.services.add(s);
  for (const s of d.removedServices ?? []) t.services.delete(s);
  return true;
};

export interface Filters {
  readonly service?: string;
  /** The client's node or the endpoint's node. */
  readonly node?: string;
  /** A connection state, or `healing`. */
  readonly state?: string;
}

export const matches = (c: TopologyConnection, f: Filters): boolean =>
  (!f.service || c.service === f.service) &&
  (!f.node || c.clientNode === f.node || c.endpointNode === f.node) &&
  (!f.state || (f.state === 'healing' ? c.healing === true : c.state === f.state));

/**
 * Connections drawn one edge each up to this many (after the filters); above it, aggregated.
 * From two runs of bench/dashboard.ts on the 2-core VM (docs/observability.md, "Dashboard"): one
 * edge per connection, 1,000 were on screen 0.9-1.5 s after navigation with live updates of
 * 0.1 s, while 10,000 took 10-16 s and each live update 1.3-1.6 s; aggregated, 10,000 were on
 * screen in 0.4-1.0 s with live updates of 0.1 s.
 */
export const DRAW_LIMIT = 1000;

/** How bad a state is, for the colour of an aggregated edge (its worst connection's). */
const SEVERITY: Readonly<Record<string, number>> = {
  closed: 0,
  established: 1,
  requested: 2,
  'endpoint-selected': 2,
  'path-planned': 2,
  healing: 3,
  waiting: 4,
  down: 5,
  failed: 6,
};

/** The state an edge is coloured by: healing shows over the phase it heals in. */
export const shownState = (c: TopologyConnection): string => (c.healing && c.state !== 'closed' && c.state !== 'failed' ? 'healing' : c.state);

export const worse = (a: string, b: string): string => ((SEVERITY[b] ?? 0) > (SEVERITY[a] ?? 0) ? b : a);

export interface GraphElement {
  readonly group: 'nodes' | 'edges';
  readonly data: Readonly<Record<string, string | number>>;
  readonly classes: string;
}

export interface GraphPicture {
  readonly elements: readonly GraphElement[];
  readonly aggregated: boolean;
  /** Connections that pass the filters. */
  readonly matching: number;
  /** Connections in the picture. */
  readonly total: number;
}

export const nodeId = (name: string) => `node:${name}`;
export const endpointId = (name: string) => `ep:${name}`;
export const clientId = (node: string, actor: string) => `client:${node}:${actor}`;
export const serviceId = (name: string) => `svc:${name}`;
export const connectionEdgeId = (id: string) => `conn:${id}`;
/** An aggregated edge: the connections of one client node to one service on one endpoint node. */
export const groupKey = (c: TopologyConnection) => `${c.clientNode}|${c.service}|${c.endpointNode ?? ''}`;
export const groupEdgeId = (key: string) => `agg:${key}`;

/**
 * The graph for the picture and filters: mesh nodes as boxes, endpoints and clients inside them,
 * one edge per connection from its client to its endpoint (to its service while none is chosen).
 * Above `limit` matching connections: only the nodes, and one edge per (client node, service,
 * endpoint node) labelled with its count and coloured by its worst state.
 */
export const graphOf = (t: LiveTopology, f: Filters, limit = DRAW_LIMIT): GraphPicture => {
  const selected: TopologyConnection[] = [];
  for (const c of t.connections.values()) if (matches(c, f)) selected.push(c);
  const aggregated = selected.length > limit;
  const vertices = new Map<string, GraphElement>();
  const addNode = (name: string) => {
    const id = nodeId(name);
    if (vertices.has(id)) return id;
    const known = t.nodes.get(name);
    vertices.set(id, { group: 'nodes', data: { id, label: name, kind: 'node', status: known?.status ?? 'unknown' }, classes: `node ${known?.status ?? 'implied'}` });
    return id;
  };
  const addService = (name: string) => {
    const id = serviceId(name);
    if (!vertices.has(id)) vertices.set(id, { group: 'nodes', data: { id, label: name, kind: 'service' }, classes: 'service' });
    return id;
  };
  const addEndpoint = (name: string, node: string) => {
    const id = endpointId(name);
    if (!vertices.has(id)) vertices.set(id, { group: 'nodes', data: { id, label: name, kind: 'endpoint', parent: addNode(node) }, classes: t.endpoints.has(name) ? 'endpoint' : 'endpoint implied' });
    return id;
  };
  for (const n of t.nodes.values()) if (!f.node || n.name === f.node) addNode(n.name);
  const edges: GraphElement[] = [];
  if (!aggregated) {
    for (const e of t.endpoints.values()) {
      if ((!f.node || e.node === f.node) && (!f.service || e.services.includes(f.service))) addEndpoint(e.name, e.node);
    }
    for (const c of selected) {
      const client = clientId(c.clientNode, c.actor);
      if (!vertices.has(client)) vertices.set(client, { group: 'nodes', data: { id: client, label: c.actor, kind: 'client', parent: addNode(c.clientNode) }, classes: 'client' });
      const target = c.endpoint && c.endpointNode ? addEndpoint(c.endpoint, c.endpointNode) : addService(c.service);
      const state = shownState(c);
      edges.push({ group: 'edges', data: { id: connectionEdgeId(c.id), source: client, target, kind: 'connection', connection: c.id, service: c.service, state }, classes: `connection ${state}` });
    }
  } else {
    const groups = new Map<string, { c: TopologyConnection; count: number; state: string; byState: Record<string, number> }>();
    for (const c of selected) {
      const key = groupKey(c);
      const g = groups.get(key) ?? { c, count: 0, state: 'closed', byState: {} };
      const s = shownState(c);
      g.count += 1;
      g.state = worse(g.state, s);
      g.byState[s] = (g.byState[s] ?? 0) + 1;
      groups.set(key, g);
    }
    for (const [key, g] of groups) {
      const source = addNode(g.c.clientNode);
      const target = g.c.endpointNode ? addNode(g.c.endpointNode) : addService(g.c.service);
      const states = Object.entries(g.byState)
        .sort(([a], [b]) => (SEVERITY[b] ?? 0) - (SEVERITY[a] ?? 0))
        .map(([s, n]) => `${s} ${n}`)
        .join(', ');
      edges.push({
        group: 'edges',
        data: { id: groupEdgeId(key), source, target, kind: 'group', group: key, service: g.c.service, state: g.state, count: g.count, label: `${g.c.service} ×${g.count}`, states, width: Math.min(12, 1 + Math.log2(g.count)) },
        classes: `group ${g.state}`,
      });
    }
  }
  return { elements: [...vertices.values(), ...edges], aggregated, matching: selected.length, total: t.connections.size };
};

/** The connections behind an aggregated edge, at most `max` of them (ids for the page to list). */
export const groupMembers = (t: LiveTopology, f: Filters, key: string, max = 100): TopologyConnection[] => {
  const out: TopologyConnection[] = [];
  for (const c of t.connections.values()) {
    if (out.length >= max) break;
    if (matches(c, f) && groupKey(c) === key) out.push(c);
  }
  return out;
};

/** The values the filters offer: from the connections and the registry. */
export const filterChoices = (t: LiveTopology): { services: string[]; nodes: string[]; states: string[] } => {
  const services = new Set(t.services);
  const nodes = new Set(t.nodes.keys());
  const states = new Set<string>();
  for (const c of t.connections.values()) {
    services.add(c.service);
    nodes.add(c.clientNode);
    if (c.endpointNode) nodes.add(c.endpointNode);
    states.add(shownState(c));
  }
  const sorted = (s: Set<string>) => [...s].filter(Boolean).sort();
  return { services: sorted(services), nodes: sorted(nodes), states: sorted(states) };
};

/** One row of `/api/v1/history/ID` (src/read/queries.ts). */
export interface HistoryRow {
  readonly stream: string;
  readonly position: string;
  readonly event: {
    readonly id: string;
    readonly type: string;
    readonly time: string;
    readonly actor: string;
    readonly causationId: string;
    readonly correlationId: string;
    readonly data: Readonly<Record<string, unknown>>;
  };
}

export interface TimelineEntry {
  readonly position: string;
  readonly time: string;
  readonly type: string;
  readonly actor: string;
  /** What caused it: an earlier event of this history by its type, the client's request, or a command. */
  readonly cause: string;
  /** Since the previous entry, in ms. */
  readonly sincePreviousMs: number;
  /** Since the first entry, in ms. */
  readonly sinceStartMs: number;
  /** A duration the event itself carries (a heal's). */
  readonly durationMs?: number;
  /** The one fact worth a line: a reason, an endpoint, a heal's cause, a side. */
  readonly note?: string;
}

const text = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);

const noteOf = (type: string, d: Readonly<Record<string, unknown>>): string | undefined => {
  switch (type) {
    case 'ConnectionRequested':
      return text(d.networkService) && `${d.networkService as string} from ${String(d.clientNode)}`;
    case 'EndpointSelected':
      return `${String(d.endpoint)} on ${String(d.endpointNode)} (${String(d.considered)} considered)`;
    case 'PathPlanned':
      return `generation ${String(d.generation)}`;
    case 'DataplaneProgrammed':
    case 'DataplaneRemoved':
      return `${String(d.side)} side on ${String(d.node)}`;
    case 'DataplaneFailed':
    case 'DatapathDown':
      return `${String(d.side)} side on ${String(d.node)}: ${String(d.error)}`;
    case 'ConnectionHealing':
      return `${String(d.cause)}${d.inPlace ? ', in place' : ''}`;
    case 'ConnectionHealed':
      return `${String(d.cause)}: ${String(d.oldEndpoint ?? '?')} -> ${String(d.newEndpoint)}`;
    case 'ConnectionFailed':
    case 'ConnectionDenied':
    case 'ConnectionLimited':
    case 'ConnectionClosed':
    case 'ConnectionWaiting':
      return text(d.reason);
    case 'ConnectionDown':
      return `node ${String(d.node)}`;
    case 'AddressesAllocated':
    case 'AddressesReleased':
      return [text(d.src as string), text(d.dst as string)].filter(Boolean).join(' -> ') || undefined;
    default:
      return undefined;
  }
};

/** A connection's history, oldest first, as the page's timeline shows it. */
export const timeline = (rows: readonly HistoryRow[]): TimelineEntry[] => {
  const typeOfId = new Map<string, string>();
  const first = rows[0] ? Date.parse(rows[0].event.time) : 0;
  let previous = first;
  return rows.map((r) => {
    const e = r.event;
    const at = Date.parse(e.time);
    const cause = typeOfId.get(e.causationId) ?? (e.causationId === e.correlationId ? 'the request' : `command ${e.causationId.slice(0, 8)}`);
    typeOfId.set(e.id, e.type);
    const durationMs = typeof e.data.durationMs === 'number' ? e.data.durationMs : undefined;
    const note = noteOf(e.type, e.data);
    const entry: TimelineEntry = { position: r.position, time: e.time, type: e.type, actor: e.actor, cause, sincePreviousMs: at - previous, sinceStartMs: at - first, ...(durationMs !== undefined ? { durationMs } : {}), ...(note ? { note } : {}) };
    previous = at;
    return entry;
  });
};

/** What the page reads of `/api/v1/connections/ID` (src/read/queries.ts connectionView). */
export interface ConnectionDetail {
  readonly id: string;
  readonly state: string;
  readonly networkService?: string;
  readonly networkServiceEndpointName?: string;
  readonly endpointNode?: string;
  readonly clientNode?: string;
  readonly actor?: string;
  readonly mechanism?: { readonly local?: string; readonly remote?: string };
  readonly context?: { readonly ipContext?: { readonly srcIpAddrs?: readonly string[]; readonly dstIpAddrs?: readonly string[]; readonly srcRoutes?: readonly { prefix: string }[]; readonly dstRoutes?: readonly { prefix: string }[] }; readonly mtu?: number };
  readonly path?: { readonly pathSegments?: readonly { readonly name: string; readonly id?: string; readonly expires?: string }[] };
  readonly interfaces?: { readonly client?: string; readonly endpoint?: string };
  readonly generation?: number;
  readonly heals?: number;
  readonly healing?: { readonly cause?: string };
  readonly failure?: { readonly code?: string; readonly reason?: string };
  readonly closeReason?: string;
  readonly requestedAt?: string;
  readonly establishedAt?: string;
  readonly closedAt?: string;
}

/** The connection's facts as label and value, in the order the panel shows them; absent facts are left out. */
export const connectionFacts = (c: ConnectionDetail): [string, string][] => {
  const ip = c.context?.ipContext;
  const rows: [string, string | undefined][] = [
    ['state', c.healing ? `${c.state} (healing: ${c.healing.cause ?? '?'})` : c.state],
    ['service', c.networkService],
    ['client', c.actor && c.clientNode ? `${c.actor} on ${c.clientNode}` : c.clientNode],
    ['endpoint', c.networkServiceEndpointName ? `${c.networkServiceEndpointName} on ${c.endpointNode ?? '?'}` : undefined],
    ['path', c.path?.pathSegments?.length ? c.path.pathSegments.map((s) => s.name).join(' -> ') : undefined],
    ['addresses', ip?.srcIpAddrs?.length || ip?.dstIpAddrs?.length ? `${(ip.srcIpAddrs ?? []).join(', ')} -> ${(ip.dstIpAddrs ?? []).join(', ')}` : undefined],
    ['routes', ip?.srcRoutes?.length || ip?.dstRoutes?.length ? `client ${(ip.srcRoutes ?? []).map((r) => r.prefix).join(', ') || 'none'}; endpoint ${(ip.dstRoutes ?? []).map((r) => r.prefix).join(', ') || 'none'}` : undefined],
    ['mechanism', c.mechanism?.local ? (c.mechanism.remote ? `${c.mechanism.local} + ${c.mechanism.remote}` : c.mechanism.local) : undefined],
    ['interfaces', c.interfaces?.client || c.interfaces?.endpoint ? `${c.interfaces.client ?? '?'} / ${c.interfaces.endpoint ?? '?'}` : undefined],
    ['mtu', c.context?.mtu !== undefined ? String(c.context.mtu) : undefined],
    ['generation', c.generation !== undefined ? String(c.generation) : undefined],
    ['heals', c.heals ? String(c.heals) : undefined],
    ['failure', c.failure ? `${c.failure.code ?? ''}: ${c.failure.reason ?? ''}` : undefined],
    ['closed', c.closedAt ? `${c.closedAt}${c.closeReason ? ` (${c.closeReason})` : ''}` : undefined],
    ['requested', c.requestedAt],
    ['established', c.establishedAt],
  ];
  return rows.filter((r): r is [string, string] => r[1] !== undefined && r[1] !== '');
};
