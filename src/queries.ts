// Queries over the read model, shared by the NATS query service and the HTTP API.
import * as E from 'fp-ts/lib/Either.js';
import { AGGREGATE_NAMES } from '../aggregates/index.ts';
import type { ConnectionPhase } from '../aggregates/connection.ts';
import { listConnections, type ConnectionRow } from '../projections/connections.ts';
import type { MeshModel } from '../projections/mesh.ts';
import { desiredForNode } from '../projections/nodeDesired.ts';
import { allocatedAddresses } from '../projections/pools.ts';
import * as D from './contracts/decode.ts';
import { id, name } from './contracts/commands.ts';
import { streamName, type EventEnvelope } from './contracts/envelope.ts';
import type { EventStore } from './eventStore.ts';

export interface QueryContext {
  readonly model: MeshModel;
  readonly store: EventStore;
  /** Last heartbeat per node (ISO time), from the heartbeat subject. */
  readonly heartbeats: ReadonlyMap<string, { at: string; connections?: number }>;
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

export type QueryName = 'services' | 'endpoints' | 'connections' | 'connection' | 'nodes' | 'node-desired' | 'addresses' | 'history' | 'status' | 'policy';
export const QUERY_NAMES: readonly QueryName[] = ['services', 'endpoints', 'connections', 'connection', 'nodes', 'node-desired', 'addresses', 'history', 'status', 'policy'];

export const runQuery = async (ctx: QueryContext, q: string, params: unknown): Promise<E.Either<string, unknown>> => {
  const p = params ?? {};
  const bad = (e: D.DecodeError) => E.left(`invalid query parameters: ${D.formatDecodeError(e)}`);
  const m = ctx.model;
  switch (q as QueryName) {
    case 'services':
      return E.right(Object.values(m.registry.services));
    case 'endpoints':
      return E.right(
        Object.values(m.registry.endpoints).map((ep) => ({ ...ep, connections: m.connections.activeByEndpoint[ep.name] ?? 0 })),
      );
    case 'connections': {
      const f = connectionFilter(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      return E.right(listConnections(m.connections, f.right).map(connectionView));
    }
    case 'connection': {
      const f = D.object({ id })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      const row = m.connections.byId[f.right.id];
      return row ? E.right(connectionView(row)) : E.left(`connection "${f.right.id}" does not exist`);
    }
    case 'nodes':
      return E.right(
        Object.values(m.nodes.nodes).map((n) => ({ ...n, lastHeartbeat: ctx.heartbeats.get(n.name)?.at })),
      );
    case 'node-desired': {
      const f = D.object({ node: name })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      return E.right({ position: m.position, sides: desiredForNode(m.connections, m.nodes.nodes, f.right.node) });
    }
    case 'addresses':
      return E.right(allocatedAddresses(m.pools));
    case 'status':
      return E.right({
        position: m.position,
        services: Object.keys(m.registry.services).length,
        endpoints: Object.keys(m.registry.endpoints).length,
        nodes: Object.keys(m.nodes.nodes).length,
        connections: Object.keys(m.connections.byId).length,
      });
    case 'history': {
      const f = D.object({ id: D.string({ min: 1, max: 64, pattern: /^[A-Za-z0-9_-]+$/, patternHint: 'an id or name' }) })(p, 'params');
      if (E.isLeft(f)) return bad(f.left);
      const found: { stream: string; position: string; event: EventEnvelope }[] = [];
      for (const agg of AGGREGATE_NAMES) {
        const read = await ctx.store.readStream(streamName(agg, f.right.id))();
        if (E.isLeft(read)) return E.left(`event store: ${read.left.message}`);
        for (const c of read.right.commits) for (const ev of c.events) found.push({ stream: c.stream, position: c.position.toString(), event: ev });
      }
      if (found.length === 0) return E.left(`nothing has happened to "${f.right.id}": no service, endpoint, node, connection or pool has that id`);
      found.sort((a, b) => (BigInt(a.position) < BigInt(b.position) ? -1 : BigInt(a.position) > BigInt(b.position) ? 1 : 0));
      return E.right(found);
    }
    case 'policy':
      return E.right(m.policy);
    default:
      return E.left(`unknown query "${q}"; known: ${QUERY_NAMES.join(', ')}`);
  }
};
