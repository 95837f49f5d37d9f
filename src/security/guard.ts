// The control plane's side of authentication: the role of each actor, what each role may send
// and ask, whose connection is whose, and the path tokens it checks and issues. Without a
// registry (an insecure mesh) every actor is an operator and no tokens are issued: the mesh
// behaves as it did before authentication existed.
import * as E from 'fp-ts/lib/Either.js';
import type { ConnectionState } from '../../aggregates/connection/index.ts';
import type { RemoteEndpointPlan } from '../../aggregates/connection/index.ts';
import { domainOfPeerActor } from '../contracts/subjects.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import type { CommandMessage } from '../contracts/commands.ts';
import { queryError, type QueryError } from '../contracts/replies.ts';
import type { Routed } from '../command/routes.ts';
import type { IdentityRegistry, Role } from './identities.ts';
import type { Signer } from './keys.ts';
import { boundAddresses, clientSegment, planSegments, readClaims, segmentOf, verifyAgentToken, verifyClientToken, type PathSegment, type PlanBinding } from './pathToken.ts';
import { mayAsk, ROLE_COMMANDS, RUNTIME_GC_ROLES } from './permissions.ts';
import { remoteName } from '../../aggregates/connection/index.ts';

export interface ControlPlaneSecurity {
  readonly registry: IdentityRegistry;
  /** The control plane's own key: it signs segment 1 of every path. */
  readonly signer: Signer;
  /** Token lifetime of a connection without an expiration time. */
  readonly tokenLifetimeMs?: number;
  /** Federation: peer domains whose control planes ("peer:<domain>") may send interdomain commands. */
  readonly peers?: readonly string[];
  /** Calls back after each change of the registry (./live.ts): the control plane records it in the log. */
  readonly watchRegistry?: (listener: (registry: IdentityRegistry) => void) => void;
}

export const DEFAULT_TOKEN_LIFETIME_MS = 24 * 3600 * 1000;

export type Verdict = { readonly ok: true } | { readonly ok: false; readonly code: 'forbidden' | 'retry'; readonly message: string };
const ok: Verdict = { ok: true };
const forbidden = (message: string): Verdict => ({ ok: false, code: 'forbidden', message });

export interface QueryScope {
  /** Parameters to run the query with (a client's listing is narrowed to its own connections). */
  readonly params: unknown;
  /**
   * Applied to the answer before it leaves the control plane. Fails closed: an answer it cannot
   * narrow is withheld (Left), never passed on as it is.
   */
  readonly filter?: (result: unknown) => E.Either<QueryError, unknown>;
}

export interface Guard {
  readonly secure: boolean;
  roleOf(actor: string): Role | undefined;
  /** Whether the sender may send this command now; checked after decoding, before routing. */
  checkCommand(msg: CommandMessage, model: MeshModel, now: Date): Promise<Verdict>;
  /** Adds what the checks established (verified tokens, renewed path) to the routed command. */
  decorate(msg: CommandMessage, routed: Routed, model: MeshModel, now: Date): Routed;
  /** Signed segments for a plan; undefined on an insecure mesh. */
  planSegments(o: { state: ConnectionState; endpoint: { name: string; node: string }; src: readonly string[]; dst: readonly string[]; now: Date }): PathSegment[] | undefined;
  /** Federation, client side: signed segments for this side's plan made from the endpoint domain's plan. */
  remotePlanSegments(o: { state: ConnectionState; from: string; plan: RemoteEndpointPlan; now: Date }): PathSegment[] | undefined;
  /** Whether the actor may run the query, and how its answer is narrowed. */
  scopeQuery(actor: string, name: string, params: unknown, model: MeshModel): E.Either<QueryError, QueryScope>;
}

/** The service as the client asked for it, and signed it: "svc", or "svc@domain" across domains. */
const askedService = (r: { networkService: string; domain?: string }): string => (r.domain ? `${r.networkService}@${r.domain}` : r.networkService);

const rowOf = (model: MeshModel, id: string) => model.connections.byId[id];

const segmentFromToken = (token: string): PathSegment => {
  const c = readClaims(token);
  return E.isRight(c) ? segmentOf(token, c.right) : { name: 'client', id: '', token };
};

export const createGuard = (security: ControlPlaneSecurity | undefined): Guard => {
  if (!security) {
    return {
      secure: false,
      roleOf: () => 'operator',
      checkCommand: async () => ok,
      decorate: (_m, routed) => routed,
      planSegments: () => undefined,
      remotePlanSegments: () => undefined,
      scopeQuery: (_a, _n, params) => E.right({ params }),
    };
  }
  const { registry, signer } = security;
  const lifetimeMs = security.tokenLifetimeMs ?? DEFAULT_TOKEN_LIFETIME_MS;
  const roleOf = (actor: string) => registry.byActor(actor)?.role;
  const expiryOf = (expirationTime: string | undefined, now: Date) => (expirationTime ? new Date(expirationTime) : new Date(now.getTime() + lifetimeMs));

  const checkCommand = async (msg: CommandMessage, model: MeshModel, now: Date): Promise<Verdict> => {
    const role = roleOf(msg.actor);
    if (!role) {
      // A peer domain's control plane: its commands arrive on nsm.<domain>.fed.<peer>.cmd.<verb>,
      // which only that peer's leafnode link may publish (src/security/leaf.ts).
      const peer = domainOfPeerActor(msg.actor);
      if (peer && security.peers?.includes(peer)) return msg.kind.startsWith('interdomain.') ? ok : forbidden(`${msg.actor} (a peer domain) may send interdomain commands only`);
      return forbidden(`"${msg.actor}" is not an identity of this mesh`);
    }
    const revokedAt = registry.byActor(msg.actor)?.revokedAt;
    if (revokedAt) return forbidden(`${msg.actor} was revoked at ${revokedAt} (nsm revoke)`);
    if (!ROLE_COMMANDS[role].includes(msg.kind)) return forbidden(`${msg.actor} (${role}) may not send ${msg.kind}`);
    switch (msg.kind) {
      case 'connection.request': {
        const b = msg.body;
        if (!b.token) return forbidden('a connection request must carry the client\'s signed path token (the SDK signs it with the client\'s key)');
        const v = await verifyClientToken(b.token, { registry, actor: msg.actor, connectionId: b.connectionId, service: b.networkService, now });
        return E.isLeft(v) ? forbidden(v.left) : ok;
      }
      case 'connection.close':
      case 'connection.refresh': {
        const b = msg.body;
        const row = rowOf(model, b.connectionId);
        // Operators manage every connection; a client only its own (and learns nothing of others').
        if (role === 'client' && row?.actor !== msg.actor) return forbidden(`connection "${b.connectionId}" is not one of ${msg.actor}'s connections`);
        const token = msg.kind === 'connection.refresh' ? msg.body.token : undefined;
        // The client renews its own segment; an operator refreshing someone else's connection
        // cannot sign for that client, and its token is not used.
        if (token && row?.actor === msg.actor) {
          const v = await verifyClientToken(token, { registry, actor: msg.actor, connectionId: b.connectionId, now });
          if (E.isLeft(v)) return forbidden(v.left);
        }
        return ok;
      }
      case 'connection.report': {
        const b = msg.body;
        if (b.result !== 'programmed') return ok;
        if (!b.token) return forbidden('a programmed report must carry the agent\'s signed path token');
        const state = rowOf(model, b.connectionId)?.state;
        // This replica's view has not folded the plan yet: the report is early, not wrong.
        if (!state || state.generation < b.generation) return { ok: false, code: 'retry', message: `the plan of generation ${b.generation} is not in this replica's view yet` };
        if (state.generation > b.generation || !state.plan) return ok;
        const v = await verifyAgentToken(b.token, { registry, node: b.node, side: b.side, connectionId: b.connectionId, generation: b.generation, segments: state.plan.path.pathSegments, now });
        return E.isLeft(v) ? forbidden(v.left) : ok;
      }
      default:
        return ok;
    }
  };

  /** The control plane's segment for the connection's next generation, bound to this plan (addresses as CIDRs). */
  const nextPlanSegments = (state: ConnectionState, plan: Omit<PlanBinding, 'clientNode' | 'src' | 'dst'> & { src: readonly string[]; dst: readonly string[] }, now: Date) => {
    const r = state.request;
    if (!r?.clientSegment) return undefined;
    return planSegments({
      signer,
      client: r.clientSegment,
      connectionId: r.connectionId,
      generation: state.generation + 1,
      service: askedService(r),
      plan: { clientNode: r.clientNode, endpoint: plan.endpoint, endpointNode: plan.endpointNode, src: boundAddresses(plan.src), dst: boundAddresses(plan.dst) },
      now,
      expires: expiryOf(state.expirationTime, now),
    });
  };

  const remotePlanSegments = ({ state, from, plan, now }: { state: ConnectionState; from: string; plan: RemoteEndpointPlan; now: Date }) => {
    const src = plan.context.ipContext.srcIpAddrs;
    const dst = plan.context.ipContext.dstIpAddrs;
    if (src.length === 0 || dst.length === 0) return undefined;
    return nextPlanSegments(state, { endpoint: remoteName(plan.endpoint, from), endpointNode: remoteName(plan.node.name, from), src, dst }, now);
  };

  const decorate = (msg: CommandMessage, routed: Routed, model: MeshModel, now: Date): Routed => {
    const c = routed.command;
    if (c.type === 'RequestConnection' && msg.kind === 'interdomain.request') {
      // The client is another domain's: this control plane opens the path on its behalf (segment 0).
      const segment = clientSegment({ signer, actor: 'control-plane', connectionId: c.request.connectionId, service: c.request.networkService, now, lifetimeSeconds: Math.ceil(lifetimeMs / 1000) });
      return { ...routed, command: { ...c, request: { ...c.request, clientSegment: segment } } };
    }
    if (c.type === 'ApplyRemoteState') {
      const state = rowOf(model, c.connectionId)?.state;
      const segments = state && c.state.plan ? remotePlanSegments({ state, from: c.from, plan: c.state.plan, now }) : undefined;
      return segments ? { ...routed, command: { ...c, pathSegments: segments } } : routed;
    }
    if (c.type === 'RequestConnection' && msg.kind === 'connection.request') {
      const token = msg.body.token;
      return token ? { ...routed, command: { ...c, request: { ...c.request, clientSegment: segmentFromToken(token) } } } : routed;
    }
    if (c.type === 'ReportDataplane' && msg.kind === 'connection.report') {
      const token = msg.body.token;
      return token && c.result === 'programmed' ? { ...routed, command: { ...c, token } } : routed;
    }
    if (c.type === 'RefreshConnection' && msg.kind === 'connection.refresh') {
      const token = msg.body.token;
      const s = rowOf(model, c.connectionId)?.state;
      const plan = s?.plan;
      const cpClaims = plan?.path.pathSegments[1]?.token ? readClaims(plan.path.pathSegments[1].token) : undefined;
      if (!s || !plan || !s.request || !s.endpoint || !cpClaims || E.isLeft(cpClaims) || !cpClaims.right.plan) return routed;
      const client = token && rowOf(model, c.connectionId)?.actor === msg.actor ? segmentFromToken(token) : plan.path.pathSegments[0]!;
      const pathSegments = planSegments({
        signer,
        client,
        connectionId: c.connectionId,
        generation: s.generation,
        service: askedService(s.request),
        plan: cpClaims.right.plan,
        now,
        expires: expiryOf(c.expirationTime, now),
      });
      return { ...routed, command: { ...c, path: { generation: s.generation, pathSegments } } };
    }
    return routed;
  };

  const scopeQuery = (actor: string, name: string, params: unknown, model: MeshModel): E.Either<QueryError, QueryScope> => {
    const forbid = (message: string) => E.left(queryError('forbidden', message));
    const role = roleOf(actor);
    if (!role) return forbid(`forbidden: "${actor}" is not an identity of this mesh`);
    const revokedAt = registry.byActor(actor)?.revokedAt;
    if (revokedAt) return forbid(`forbidden: ${actor} was revoked at ${revokedAt} (nsm revoke)`);
    if (!mayAsk(role, name)) return forbid(`forbidden: ${actor} (${role}) may not ask the "${name}" query`);
    if (name === 'runtime' && (params as { gc?: unknown } | null)?.gc === true && !RUNTIME_GC_ROLES.includes(role)) {
      return forbid(`forbidden: ${actor} (${role}) may not ask "runtime" with gc (a full garbage collection on the control plane is for operators)`);
    }
    if (role === 'client') {
      const p = (params ?? {}) as Record<string, unknown>;
      const own = (id: unknown) => typeof id === 'string' && rowOf(model, id)?.actor === actor;
      switch (name) {
        case 'connections':
          if (p.actor !== undefined && p.actor !== actor) return forbid(`forbidden: ${actor} may list only its own connections`);
          return E.right({ params: { ...p, actor } });
        case 'connection':
          // Someone else's connection looks like no connection at all.
          return own(p.id) ? E.right({ params }) : E.left(queryError('not-found', `connection "${String(p.id)}" does not exist`));
        case 'history':
          if (!own(p.id)) return forbid(`forbidden: ${actor} may read the history of its own connections only`);
          return E.right({ params, filter: clientHistoryFilter(p.id as string) });
        case 'topology':
          if (p.actor !== undefined && p.actor !== actor) return forbid(`forbidden: ${actor} may see only its own connections`);
          return E.right({ params: { ...p, actor }, filter: clientTopologyFilter(actor) });
        default:
          return E.right({ params });
      }
    }
    if (role === 'agent') {
      const node = registry.byActor(actor)!.name;
      const p = (params ?? {}) as Record<string, unknown>;
      if (p.node !== node) return forbid(`forbidden: agent:${node} may read only its own node's desired state`);
    }
    return E.right({ params });
  };

  return {
    secure: true,
    roleOf,
    checkCommand,
    decorate,
    planSegments: ({ state, endpoint, src, dst, now }) => nextPlanSegments(state, { endpoint: endpoint.name, endpointNode: endpoint.node, src, dst }, now),
    remotePlanSegments,
    scopeQuery,
  };
};

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * What a client sees of the history of its own connection: the rows of that connection's own
 * stream, nothing else. Other streams can share the id (a service, an endpoint or a node named
 * like the connection; its address pool), in this domain and, with allDomains, in its peers. Both
 * answer shapes are narrowed: the list of rows of one domain, and `{ events, domains }` across
 * domains. Any other shape is withheld (fails closed): a new shape must be taught here first.
 */
export const clientHistoryFilter =
  (connectionId: string) =>
  (result: unknown): E.Either<QueryError, unknown> => {
    const stream = `connection.${connectionId}`;
    const own = (rows: readonly unknown[]) => rows.filter((r) => isRecord(r) && r.stream === stream);
    if (Array.isArray(result)) return E.right(own(result));
    if (isRecord(result) && Object.keys(result).sort().join(',') === 'domains,events' && Array.isArray(result.events) && isRecord(result.domains) && Object.values(result.domains).every((d) => typeof d === 'string')) {
      const events = own(result.events);
      const domains = Object.fromEntries(
        Object.entries(result.domains as Record<string, string>).map(([d, status]) => [d, status === 'ok' && !events.some((e) => (e as { domain?: unknown }).domain === d) ? 'no events' : status]),
      );
      return E.right({ events, domains });
    }
    return E.left(queryError('forbidden', `the history of "${connectionId}" came in a shape the client filter does not know; it is withheld rather than shown unfiltered`));
  };

/**
 * What a client sees of the dashboard's picture (src/read/topology.ts), an answer or a live
 * delta: its own connections and nothing of the mesh besides. Checked on the answer itself, after
 * the query was narrowed to the client: a row of someone else's, a node, endpoint or service
 * list, or a field the check does not know withholds the whole answer (fails closed).
 */
export const clientTopologyFilter =
  (actor: string) =>
  (result: unknown): E.Either<QueryError, unknown> => {
    const KNOWN = ['scope', 'position', 'time', 'nodes', 'services', 'endpoints', 'connections'];
    const empty = (v: unknown) => v === undefined || (Array.isArray(v) && v.length === 0);
    const ok =
      isRecord(result) &&
      Object.keys(result).every((k) => KNOWN.includes(k)) &&
      Array.isArray(result.connections) &&
      result.connections.every((c) => isRecord(c) && c.actor === actor) &&
      empty(result.nodes) &&
      empty(result.services) &&
      empty(result.endpoints);
    return ok ? E.right(result) : E.left(queryError('forbidden', `the dashboard's picture for ${actor} held more than its own connections; it is withheld`));
  };
