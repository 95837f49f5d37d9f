// Queries over the read model, shared by the NATS query service and the HTTP API.
import * as E from 'fp-ts/lib/Either.js';
import { AGGREGATE_NAMES } from '../../aggregates/index.ts';
import { DEFAULT_LIMITS } from '../../aggregates/limits.ts';
import type { ConnectionPhase } from '../../aggregates/connection/index.ts';
import { listConnections, type ConnectionRow } from '../../projections/connections.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import { desiredForNode } from '../../projections/nodeDesired.ts';
import { allocatedAddresses } from '../../projections/pools.ts';
import * as D from '../contracts/decode.ts';
import { domainName, id, name } from '../contracts/commands.ts';
import { streamName, type EventEnvelope } from '../contracts/envelope.ts';
import type { EventStore } from '../ports/eventStore.ts';
import { queryError, type QueryError } from '../contracts/replies.ts';
import { parseBound, replayAt, type Bound, type MeshAt } from './replay.ts';
import type { RebuildStart } from './snapshots.ts';
import type { RemoteEndpointRow } from '../../projections/remoteRegistries.ts';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import { topologyOf } from './topology.ts';

export interface QueryContext {
  readonly model: MeshModel;
  readonly store: EventStore;
  /** Last heartbeat per node (ISO time), from the heartbeat subject. */
  readonly heartbeats: ReadonlyMap<string, { at: string; connections?: number }>;
  /** The model as of a moment (cached by a server); default: folded from the store each time. */
  readonly replay?: (bound: Bound) => Promise<E.Either<string, MeshAt>>;
  /** Starts a rebuild of the read model beside the live one (control plane only). */
  readonly rebuild?: (id: string) => RebuildStart;
  /** Resolves once the live model holds everything up to the position (read-your-writes). */
  readonly waitFor?: (position: number) => Promise<void>;
  /** The serving process: memory, uptime, what it did (control plane only). */
  readonly runtime?: (o: { gc: boolean }) => unknown;
  /** The NATS cluster as JetStream reports it: servers, stream leaders and replicas' lag, the lease holder (control plane only). */
  readonly cluster?: () => Promise<unknown>;
  /** Other domains of the federation (docs/federation.md); absent when this domain is not federated. */
  readonly federation?: FederationQueries;
}

const PHASES: readonly ConnectionPhase[] = ['requested', 'endpoint-selected', 'path-planned', 'established', 'waiting', 'down', 'failed', 'closed'];

export const connectionView = (r: ConnectionRow) => {
  const s = r.state;
  return {
    id: r.id,
    networkService: s.request?.networkService,
    state: s.phase,
    networkServiceEndpointName: s.endpoint?.name,
    endpointNode: s.endpoint?.node,
    clientNode: s.request?.clientNode,
    clientNetns: s.request?.clientNetns,
    labels: s.request?.labels ?? {},
    payload: s.request?.payload,
    mechanism: s.plan?.mechanism,
    context: s.plan?.context,
    path: s.plan?.path,
    interfaces: s.plan ? { client: s.plan.clientInterface, endpoint: s.plan.endpointInterface } : undefined,
    generation: s.generation,
    programmed: s.programmed,
    failure: s.failure,
    closeReason: s.closeReason,
    healing: s.healing,
    heals: s.heals,
    lastHeal: s.lastHeal,
    waitingSince: s.waitingSince,
    down: s.down,
    expirationTime: s.expirationTime,
    actor: r.actor,
    requestedAt: r.requestedAt,
    establishedAt: r.establishedAt,
    closedAt: r.closedAt,
    updatedAt: r.updatedAt,
  };
};

const connectionFilter = D.object(
  {},
  { state: D.literal(...PHASES), node: name, endpoint: name, service: name, actor: D.string({ min: 1, max: 128 }), includeClosed: D.boolean },
);

export type QueryName = 'services' | 'endpoints' | 'connections' | 'connection' | 'nodes' | 'node-desired' | 'addresses' | 'history' | 'status' | 'replay' | 'projections-rebuild' | 'policy' | 'runtime' | 'peers' | 'remote-endpoints' | 'failed-steps' | 'limits' | 'cluster' | 'topology';
export const QUERY_NAMES: readonly QueryName[] = ['services', 'endpoints', 'connections', 'connection', 'nodes', 'node-desired', 'addresses', 'history', 'status', 'replay', 'projections-rebuild', 'policy', 'runtime', 'peers', 'remote-endpoints', 'failed-steps', 'limits', 'cluster', 'topology'];
/** Queries over the model that also answer for a past moment, with an `at` parameter. */
export const TIME_TRAVEL_QUERIES: readonly QueryName[] = ['services', 'endpoints', 'connections', 'connection', 'nodes', 'addresses', 'status', 'topology'];

const boundText = D.string({ min: 1, max: 64 });

/** The whole mesh as of a replayed moment: what `nsm replay` prints and the `replay` query answers. */
export const meshAtView = (at: MeshAt, o: { includeClosed?: boolean } = {}) => {
  const m = at.model;
  return {
    position: m.position,
    until: at.until.toString(),
    ...(at.time ? { time: at.time } : {}),
    services: Object.values(m.registry.services),
    endpoints: Object.values(m.registry.endpoints).map((ep) => ({ ...ep, connections: m.connections.activeByEndpoint[ep.name] ?? 0 })),
    connections: listConnections(m.connections, { includeClosed: o.includeClosed ?? true }).map(connectionView),
    nodes: Object.values(m.nodes.nodes),
    addresses: allocatedAddresses(m.pools),
  };
};

const invalid = (message: string) => E.left(queryError('invalid', `invalid query parameters: ${message}`));
const badParams = (e: D.DecodeError) => invalid(D.formatDecodeError(e));
const notFound = (message: string) => E.left(queryError('not-found', message));
const unavailable = (message: string) => E.left(queryError('unavailable', message));

/**
 * `limit` and `offset` page any list answer (an answer must fit one NATS message; a large mesh's
 * lists do not). Without them the whole list is answered. Left: why not, with its kind (the HTTP
 * status and the NATS reply's `code` follow the kind, never the words).
 */
export const runQuery = async (ctx: QueryContext, q: string, params: unknown): Promise<E.Either<QueryError, unknown>> => {
  if (typeof params === 'object' && params !== null && ('limit' in params || 'offset' in params)) {
    const { limit, offset, ...rest } = params as { limit?: unknown; offset?: unknown };
    const lim = D.integer({ min: 1, max: 1_000_000 })(limit ?? 1_000_000, 'params.limit');
    if (E.isLeft(lim)) return badParams(lim.left);
    const off = D.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })(offset ?? 0, 'params.offset');
    if (E.isLeft(off)) return badParams(off.left);
    const page = { offset: off.right, limit: lim.right };
    const r = await answerQuery(ctx, q, rest, page);
    // Lists that do not page themselves are cut here.
    if (E.isLeft(r) || !Array.isArray(r.right) || SELF_PAGING.includes(q)) return r;
    return E.right(r.right.slice(page.offset, page.offset + page.limit));
  }
  return answerQuery(ctx, q, params);
};

type Page = { readonly offset: number; readonly limit: number };
/** Lists that page while they are built (a page of a large model costs the page, not the model). */
const SELF_PAGING: readonly string[] = ['connections', 'endpoints', 'node-desired'];
const pageOf = <T>(items: readonly T[], page?: Page): readonly T[] => (page ? items.slice(page.offset, page.offset + page.limit) : items);

const answerQuery = async (ctx: QueryContext, q: string, params: unknown, page?: Page): Promise<E.Either<QueryError, unknown>> => {
  const bad = badParams;
  // A replay fails only when the store does (the bound was parsed before): unavailable.
  const replay = async (b: Bound): Promise<E.Either<QueryError, MeshAt>> => E.mapLeft((m: string) => queryError('unavailable', m))(await (ctx.replay ? ctx.replay(b) : replayAt(ctx.store, b)));
  let p = params ?? {};
  // `minPosition`: answer only once the model holds that log position (a client that saw its
  // commit stored asks with it, and reads its own write).
  if (typeof p === 'object' && p !== null && 'minPosition' in p) {
    const { minPosition, ...rest } = p as { minPosition: unknown };
    const min = D.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })(minPosition, 'params.minPosition');
    if (E.isLeft(min)) return bad(min.left);
    if (ctx.waitFor) {
      const waited = await ctx.waitFor(min.right).then(() => undefined, (e: Error) => e.message);
      if (waited) return unavailable(`the read model has not reached position ${min.right} yet: ${waited}`);
    }
    p = rest;
  }
  let m = ctx.model;
  let past = false;
  // `at`: answer from the model as of that moment, replayed from the log.
  if (typeof p === 'object' && p !== null && 'at' in p && (TIME_TRAVEL_QUERIES as readonly string[]).includes(q)) {
    const { at, ...rest } = p as { at: unknown };
    const text = boundText(at, 'params.at');
    if (E.isLeft(text)) return bad(text.left);
    const bound = parseBound(text.right, 'params.at');
    if (E.isLeft(bound)) return invalid(bound.left);
    const r = await replay(bound.right);
    if (E.isLeft(r)) return r;
    m = r.right.model;
    p = rest;
    past = true;
  }
  switch (q as QueryName) {
    case 'services':
      return E.right(Object.values(m.registry.services));
    case 'endpoints':
      return E.right(
        pageOf(Object.values(m.registry.endpoints), page).map((ep) => ({ ...ep, connections: m.connections.activeByEndpoint[ep.name] ?? 0 })),
      );
    case 'connections': {
      const f = connectionFilter(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      return E.right(listConnections(m.connections, f.right, page).map(connectionView));
    }
    case 'connection': {
      const f = D.object({ id })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      const row = m.connections.byId[f.right.id];
      return row ? E.right(connectionView(row)) : notFound(`connection "${f.right.id}" does not exist`);
    }
    case 'nodes':
      return E.right(
        // Heartbeats are not in the log: a past moment has none to show.
        Object.values(m.nodes.nodes).map((n) => (past ? n : { ...n, lastHeartbeat: ctx.heartbeats.get(n.name)?.at })),
      );
    case 'node-desired': {
      const f = D.object({ node: name }, { after: D.string({ min: 1, max: 256 }) })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      const sides = desiredForNode(m.connections, m.nodes.nodes, f.right.node);
      if (!page && f.right.after === undefined) return E.right({ position: m.position, sides });
      // Paged by a cursor (the key of the last side read), not an offset: a side that stays
      // desired while an agent reads page after page is on exactly one page, whatever comes and
      // goes meanwhile (an agent reconciling would otherwise remove a live side it skipped).
      const key = (x: { connectionId: string; side: string }) => `${x.connectionId}/${x.side}`;
      const after = f.right.after;
      const rest = sides.filter((x) => after === undefined || key(x) > after).sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
      const limit = page?.limit ?? rest.length;
      const taken = rest.slice(0, limit);
      return E.right({ position: m.position, sides: taken, ...(rest.length > taken.length ? { next: key(taken[taken.length - 1]!) } : {}) });
    }
    case 'addresses':
      return E.right(allocatedAddresses(m.pools));
    case 'status':
      return E.right({
        position: m.position,
        services: Object.keys(m.registry.services).length,
        endpoints: Object.keys(m.registry.endpoints).length,
        nodes: Object.keys(m.nodes.nodes).length,
        connections: m.connections.count,
        // Workflow steps the process manager gave up on (nsm workflow ls; nsm workflow retry POSITION).
        failedSteps: Object.keys(m.workflow.failed).length,
      });
    case 'failed-steps':
      return E.right(Object.values(m.workflow.failed));
    case 'topology': {
      // The dashboard's picture (src/read/topology.ts); with `at`, as replayed to that moment.
      const f = D.object({}, { actor: D.string({ min: 1, max: 128 }), includeClosed: D.boolean })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      return E.right(topologyOf(m, f.right));
    }
    case 'limits':
      return E.right({ defaults: DEFAULT_LIMITS, ...m.limits, usage: m.connections.byActor });
    case 'cluster':
      if (!ctx.cluster) return E.left(queryError('invalid', 'cluster: only a control plane answers this query'));
      return E.right(await ctx.cluster());
    case 'runtime': {
      const f = D.object({}, { gc: D.boolean })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      if (!ctx.runtime) return E.left(queryError('invalid', 'runtime: only a control plane answers this query'));
      return E.right(ctx.runtime({ gc: f.right.gc ?? false }));
    }
    case 'replay': {
      const f = D.object({ until: boundText }, { includeClosed: D.boolean })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      const bound = parseBound(f.right.until, 'params.until');
      if (E.isLeft(bound)) return invalid(bound.left);
      const r = await replay(bound.right);
      return E.isLeft(r) ? r : E.right(meshAtView(r.right, { includeClosed: f.right.includeClosed ?? true }));
    }
    case 'projections-rebuild': {
      const f = D.object({ id })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      if (!ctx.rebuild) return E.left(queryError('invalid', 'only a control plane rebuilds projections'));
      return E.right(ctx.rebuild(f.right.id));
    }
    case 'history': {
      const f = D.object({ id: D.string({ min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/, patternHint: 'an id or name' }) }, { allDomains: D.boolean })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      if (f.right.allDomains) return historyAllDomains(ctx, f.right.id);
      const found: { stream: string; position: string; commitId: string; hash?: string; event: EventEnvelope }[] = [];
      const seen = new Set<string>();
      const collect = async (stream: string, keep: (e: EventEnvelope) => boolean = () => true) => {
        const read = await ctx.store.readStream(stream)();
        if (E.isLeft(read)) return unavailable(`event store: ${read.left.message}`);
        for (const c of read.right.commits) {
          for (const ev of c.events) {
            if (!keep(ev) || seen.has(ev.id)) continue;
            seen.add(ev.id);
            found.push({ stream: c.stream, position: c.position.toString(), commitId: c.commitId, ...(c.hash ? { hash: c.hash } : {}), event: ev });
          }
        }
        return E.right(read.right.commits);
      };
      for (const agg of AGGREGATE_NAMES) {
        const r = await collect(streamName(agg, f.right.id));
        if (E.isLeft(r)) return r;
        // A connection's addresses live in its endpoint's pool stream: show those events too.
        if (agg === 'connection') {
          const endpoints = new Set(r.right.flatMap((c) => c.events.flatMap((e) => ((e.data as unknown as { type: string; endpoint: string }).type === 'EndpointSelected' ? [(e.data as unknown as { endpoint: string }).endpoint] : []))));
          for (const ep of endpoints) {
            const pr = await collect(streamName('pool', ep), (e) => (e.data as unknown as { connectionId?: string }).connectionId === f.right.id);
            if (E.isLeft(pr)) return pr;
          }
        }
      }
      if (found.length === 0) return notFound(`nothing has happened to "${f.right.id}": no service, endpoint, node, connection, pool or failed workflow step has that id`);
      found.sort((a, b) => (BigInt(a.position) < BigInt(b.position) ? -1 : BigInt(a.position) > BigInt(b.position) ? 1 : 0));
      return E.right(found);
    }
    case 'policy':
      return E.right(m.policy);
    case 'peers':
      return ctx.federation ? E.right(ctx.federation.peers()) : notFound('this domain is not federated (docs/federation.md)');
    case 'remote-endpoints': {
      const f = D.object({}, { domain: domainName })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      if (!ctx.federation) return notFound('this domain is not federated (docs/federation.md)');
      if (f.right.domain !== undefined && !ctx.federation.peers().some((x) => x.domain === f.right.domain)) {
        return notFound(`domain ${f.right.domain} is not a peer of domain ${ctx.federation.self}; peers: ${ctx.federation.peers().map((x) => x.domain).join(', ') || 'none yet'}`);
      }
      return E.right(ctx.federation.remoteEndpoints(f.right.domain));
    }
    default:
      return E.left(queryError('invalid', `unknown query "${q}"; known: ${QUERY_NAMES.join(', ')}`));
  }
};

/**
 * A connection's history in every domain it spans, joined by its id: this domain's events and
 * each peer's (asked over the bus), each row naming its domain, in time order. Domains that do
 * not answer are listed with the reason.
 */
const historyAllDomains = async (ctx: QueryContext, id: string): Promise<E.Either<QueryError, unknown>> => {
  if (!ctx.federation) return E.left(queryError('invalid', 'this domain is not federated (docs/federation.md): --all-domains has no other domain to ask'));
  const self = ctx.federation.self;
  const local = await runQuery({ ...ctx, federation: undefined }, 'history', { id });
  const mine = E.isRight(local) ? (local.right as { event: EventEnvelope }[]).map((r) => ({ domain: self, ...r })) : [];
  const peers = await ctx.federation.peerHistories(id);
  const theirs = peers.flatMap((p) => (p.rows ?? []).map((r) => ({ domain: p.domain, ...(r as { event: EventEnvelope }) })));
  const events = [...mine, ...theirs].sort((a, b) => a.event.time.localeCompare(b.event.time) || a.domain.localeCompare(b.domain) || a.event.version - b.event.version);
  if (events.length === 0) return notFound(`nothing has happened to "${id}" in domain ${self} or its peers`);
  const domains: Record<string, string> = { [self]: E.isRight(local) ? 'ok' : local.left.message };
  for (const p of peers) domains[p.domain] = p.error ?? ((p.rows ?? []).length > 0 ? 'ok' : 'no events');
  return E.right({ events, domains });
};

/** What the queries ask of the federation (src/runtime/federation.ts answers). */
export interface FederationQueries {
  readonly self: string;
  remoteEndpoints(domain?: string): RemoteEndpointRow[];
  /** The domains this one knows, with what it heard of them. */
  /** `conflict`: why connections with that domain are refused (overlapping tunnel ids). */
  peers(): { domain: string; status: string; lastHeard?: string; tunnelIds?: TunnelIdRange; registryOnly?: boolean; conflict?: string }[];
  /** Asks each known peer for the history of `id` (their answers are filtered to what concerns this domain). */
  peerHistories(id: string): Promise<{ domain: string; rows?: unknown[]; error?: string }[]>;
}
