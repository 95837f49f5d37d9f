// Connection: one client's connection to a network service, from request to close.
// requested -> endpoint-selected -> path-planned -> (dataplane programmed on each side) ->
// established; failed (with a reason) and closed are terminal for this lifecycle.
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce, type Draft } from 'immer';
import { reject, type Aggregate, type ConnectionContext, type DomainError, type IpContext, type Labels, type Match, type MechanismType, type Payload } from './domain.ts';
import { negotiateMechanism, TUNNEL_OVERHEAD, type NegotiatedMechanism } from './mechanism.ts';
import { evaluatePolicy, type Policy } from './policy.ts';
import { quotaProblem, type LimitHit, type Limits, type Usage } from './limits.ts';
import { matchEndpoints, selectEndpoint, type Candidate } from './selection.ts';
import type { TunnelIdRange, TunnelParameters } from './tunnelPool.ts';
import { decideRedirect, decideRemoteRequest, decideRemoteState, type RemoteState } from './crossDomain.ts';

export type Side = 'client' | 'endpoint';
export const SIDES: readonly Side[] = ['client', 'endpoint'];

/**
 * waiting: its endpoint is gone and no other matches; it recovers when one registers.
 * down: the client's node is lost; it is restored when the node returns, or closed after a grace period.
 */
export type ConnectionPhase =
  | 'none'
  | 'requested'
  | 'endpoint-selected'
  | 'path-planned'
  | 'established'
  | 'waiting'
  | 'down'
  | 'failed'
  | 'closed';

export interface ConnectionRequest {
  readonly connectionId: string;
  readonly networkService: string;
  readonly payload: Payload;
  readonly labels: Labels;
  readonly clientNode: string;
  /** Network namespace of the workload (path or name); absent for a simulated client. */
  readonly clientNetns?: string;
  readonly clientInterface: string;
  readonly mechanismPreferences: readonly MechanismType[];
  /** Id of the command that asked for it: a retry of the same command is a no-op. */
  readonly requestId: string;
  /** When set, the client must refresh the connection before this time or it is torn down. */
  readonly expirationTime?: string;
  /** The client's signed path segment (src/security/pathToken.ts), when the mesh runs authenticated. */
  readonly clientSegment?: PathSegment;
  /** Federation, client side: the domain asked for ("svc@domain"); the endpoint is chosen there. */
  readonly domain?: string;
  /**
   * Federation, endpoint side: the client's node is in another domain. clientNode is then
   * "<node>@<domain>", a name no local node has, so nothing local is planned or programmed for it.
   */
  readonly remoteClient?: RemoteNode;
  /** An endpoint to prefer when it matches (a floating registry's choice). */
  readonly endpointHint?: string;
}

/** A node of another domain, as its domain describes it (docs/federation.md). */
export interface RemoteNode {
  readonly name: string;
  readonly domain: string;
  /** Where other nodes reach it: its external address when configured (NAT), else its underlay address. */
  readonly address?: string;
  readonly publicKeys: Readonly<Record<string, string>>;
  readonly mechanisms: readonly MechanismType[];
  readonly mtu: number;
  readonly localPrefixes?: readonly string[];
  /** Its domain's tunnel ids, for the check that federated ranges do not overlap. */
  readonly tunnelIds?: TunnelIdRange;
}

/** A plan made by the endpoint's domain, mirrored on the client's side. */
export interface RemotePlan {
  readonly domain: string;
  /** The plan's generation in the endpoint's domain: reports across domains name it. */
  readonly generation: number;
  /** The endpoint's node, the peer of the client side's tunnel. */
  readonly peer: RemoteNode;
}

/** A hop of the path; with authentication each carries its issuer's signed token. */
export interface PathSegment {
  readonly name: string;
  readonly id: string;
  readonly token?: string;
  readonly expires?: string;
}

export interface ConnectionPlan {
  readonly mechanism: NegotiatedMechanism;
  readonly context: ConnectionContext;
  readonly path: { readonly index: number; readonly pathSegments: readonly PathSegment[] };
  readonly clientInterface: string;
  readonly endpointInterface: string;
  /** Namespace the endpoint side lives in (the endpoint's own); absent for a simulated endpoint. */
  readonly endpointNetns?: string;
  /** Wire parameters of the tunnel between the nodes; present exactly when mechanism.remote is. */
  readonly tunnel?: TunnelParameters;
  /** Federation, client side: the endpoint domain's plan this one mirrors. */
  readonly remote?: RemotePlan;
}

/** What a heal leaves behind: the sides of the previous plan, so they can be torn down. */
export interface RetiredPath {
  readonly generation: number;
  readonly endpoint: { readonly name: string; readonly node: string };
  readonly plan: ConnectionPlan;
  /** Which sides must be removed: the endpoint side when the endpoint changes, both when nothing replaces them. */
  readonly sides: readonly Side[];
}

export interface NodeFacts {
  readonly mechanisms: readonly MechanismType[];
  readonly mtu: number;
}

/** denied: the authorization policy refused the request (ConnectionDenied); limited: the requester was over a limit (ConnectionLimited). */
export type FailureCode = 'no-endpoint' | 'no-mechanism' | 'node-unknown' | 'address' | 'dataplane' | 'denied' | 'limited';

export type HealCause =
  | 'endpoint-expired'
  | 'endpoint-unregistered'
  | 'endpoint-available'
  | 'node-recovered'
  | 'datapath'
  | 'dataplane'
  /** Federation: the endpoint's domain moved or repaired the connection. */
  | 'remote'
  /** Federation: the endpoint's domain is reachable again. */
  | 'peer-recovered';

export interface RegistryContext {
  /** Absent means the service is not (or no longer) registered. */
  readonly service?: { readonly payload: Payload; readonly matches: readonly Match[] };
  readonly endpoints: readonly Candidate[];
  /** Endpoint loads, when the candidates do not carry them (a large registry's candidates are
   * shared between decisions; their loads change with every one). */
  readonly loadOf?: (endpoint: string) => number;
}

export type ConnectionCommand =
  | {
      readonly type: 'RequestConnection';
      readonly request: ConnectionRequest;
      /** Registry context read by the command handler; `service` absent means unknown service. */
      readonly registry: RegistryContext;
      /** The authorization policy and the requesting client's identity; absent: allowed. */
      readonly policy?: { readonly policy: Policy; readonly client: string };
      /** The requester's limits and what it holds now (aggregates/limits.ts); absent: unlimited. */
      readonly quota?: { readonly identity: string; readonly limits: Limits; readonly usage: Usage };
      /** Federation, endpoint side: this domain (named) is a registry only; it names the endpoint's home domain instead. */
      readonly registryOnly?: string;
      /** Federation, endpoint side: a reason found by the handler to refuse (overlapping tunnel ids). */
      readonly refuse?: { readonly code: FailureCode; readonly reason: string };
    }
  /** Federation, client side: the endpoint's domain tells where the connection stands there. */
  | {
      readonly type: 'ApplyRemoteState';
      readonly connectionId: string;
      readonly from: string;
      readonly state: RemoteState;
      readonly at: string;
      /** Signed path segments for a new plan (authenticated meshes). */
      readonly pathSegments?: readonly PathSegment[];
    }
  /** Federation, client side: a registry-only domain names the endpoint's home domain (or cannot). */
  | {
      readonly type: 'RedirectConnection';
      readonly connectionId: string;
      readonly from: string;
      readonly domain?: string;
      readonly endpoint?: string;
      readonly reason?: string;
      readonly at: string;
      /** This domain's name and registry: a redirect back here becomes a local selection. */
      readonly self: string;
      readonly registry: RegistryContext;
    }
  | {
      readonly type: 'PlanPath';
      readonly connectionId: string;
      readonly endpoint: string;
      readonly allocation: { readonly src: string; readonly dst: string; readonly prefix: string; readonly excludedPrefixes: readonly string[] };
      /** Allocated for every connection whose client and endpoint are on different nodes. */
      readonly tunnel?: TunnelParameters;
      readonly endpointNetns?: string;
      /** Absent when the node has not joined (or has left). */
      readonly clientNodeFacts?: NodeFacts;
      readonly endpointNodeFacts?: NodeFacts;
      /** Signed path segments for this plan (authenticated meshes); absent: unsigned segments. */
      readonly pathSegments?: readonly PathSegment[];
    }
  | {
      readonly type: 'ReportDataplane';
      readonly connectionId: string;
      readonly node: string;
      readonly side: Side;
      readonly generation: number;
      /** broken: the datapath was programmed but its liveness probe fails. */
      readonly result: 'programmed' | 'removed' | 'failed' | 'broken';
      readonly error?: string;
      /** When the control plane received the report (ISO); heal durations are measured with it. */
      readonly at: string;
      /** The agent's signed path segment for a programmed side (authenticated meshes). */
      readonly token?: string;
    }
  | {
      readonly type: 'HealConnection';
      readonly connectionId: string;
      readonly cause: HealCause;
      /** Id of the event that caused the heal: the same cause heals a connection once. */
      readonly causeId: string;
      readonly at: string;
      /** Endpoints that must not be chosen (the one that died). */
      readonly exclude: readonly string[];
      /** A second datapath failure within this long of an in-place repair reselects instead. */
      readonly escalateWithinMs: number;
      readonly registry: RegistryContext;
    }
  /** domain: the endpoint's domain is unreachable (federation); node: the client's node is lost. */
  | { readonly type: 'MarkConnectionDown'; readonly connectionId: string; readonly node: string; readonly at: string; readonly domain?: string }
  | {
      readonly type: 'RefreshConnection';
      readonly connectionId: string;
      readonly expirationTime: string;
      /** Renewed path tokens for the plan of this generation (authenticated meshes). */
      readonly path?: RenewedPath;
    }
  | { readonly type: 'ExpireConnection'; readonly connectionId: string; readonly at: string }
  | { readonly type: 'FailConnection'; readonly connectionId: string; readonly code: FailureCode; readonly reason: string }
  /** by: the domain that closed it, when another domain of a federated connection did. */
  | { readonly type: 'CloseConnection'; readonly connectionId: string; readonly reason: string; readonly by?: string };

export type ConnectionEvent =
  | ({ readonly type: 'ConnectionRequested' } & ConnectionRequest)
  | {
      readonly type: 'EndpointSelected';
      readonly endpoint: string;
      readonly endpointNode: string;
      readonly considered: number;
      readonly excluded: readonly string[];
      /** Set when a heal moves the connection off a path that was planned before. */
      readonly replaces?: RetiredPath;
    }
  | ({ readonly type: 'PathPlanned'; readonly generation: number } & ConnectionPlan)
  | { readonly type: 'DataplaneProgrammed'; readonly generation: number; readonly node: string; readonly side: Side; readonly token?: string }
  | { readonly type: 'DataplaneFailed'; readonly generation: number; readonly node: string; readonly side: Side; readonly error: string }
  | { readonly type: 'ConnectionEstablished'; readonly generation: number }
  | { readonly type: 'ConnectionFailed'; readonly code: FailureCode; readonly reason: string; readonly by?: string }
  /** The authorization policy refused the request: terminal, like a failure with code "denied". */
  | { readonly type: 'ConnectionDenied'; readonly rule: string; readonly reason: string }
  /** The requester was over one of its limits: terminal, like a failure with code "limited". */
  | { readonly type: 'ConnectionLimited'; readonly limit: LimitHit['limit']; readonly max: number; readonly current: number; readonly reason: string }
  | { readonly type: 'ConnectionClosed'; readonly reason: string; readonly by?: string }
  /**
   * Federation: a registry-only domain chose an endpoint in `domain`. On the client's side the
   * connection now goes there (local: it is this domain); in the registry's log it is done.
   */
  | { readonly type: 'ConnectionRedirected'; readonly domain: string; readonly endpoint?: string; readonly via: string; readonly local?: boolean }
  | { readonly type: 'DataplaneRemoved'; readonly generation: number; readonly node: string; readonly side: Side }
  | { readonly type: 'DatapathDown'; readonly generation: number; readonly node: string; readonly side: Side; readonly error: string }
  | {
      readonly type: 'ConnectionHealing';
      readonly cause: HealCause;
      readonly causeId: string;
      readonly oldEndpoint?: string;
      /** Repair on the same endpoint (re-plan and re-program) rather than a new selection. */
      readonly inPlace: boolean;
      readonly startedAt: string;
    }
  | { readonly type: 'ConnectionWaiting'; readonly reason: string; readonly since: string; readonly replaces?: RetiredPath }
  | {
      readonly type: 'ConnectionHealed';
      readonly generation: number;
      readonly cause: HealCause;
      readonly oldEndpoint?: string;
      readonly newEndpoint: string;
      readonly startedAt: string;
      readonly durationMs: number;
    }
  | { readonly type: 'ConnectionDown'; readonly node: string; readonly since: string; readonly domain?: string }
  | { readonly type: 'ConnectionRefreshed'; readonly expirationTime: string; readonly path?: RenewedPath }
  | { readonly type: 'ConnectionExpired'; readonly expirationTime: string };

export interface RenewedPath {
  readonly generation: number;
  readonly pathSegments: readonly PathSegment[];
}

export interface ConnectionState {
  readonly phase: ConnectionPhase;
  readonly request?: ConnectionRequest;
  readonly endpoint?: { readonly name: string; readonly node: string };
  readonly excluded: readonly string[];
  /** Bumped by every PathPlanned; dataplane reports for older generations are stale. */
  readonly generation: number;
  readonly plan?: ConnectionPlan;
  readonly programmed: readonly Side[];
  readonly removed: readonly Side[];
  readonly failure?: { readonly code: FailureCode; readonly reason: string };
  readonly closeReason?: string;
  /** Set from the first ConnectionHealing until the connection is established again. */
  readonly healing?: { readonly cause: HealCause; readonly oldEndpoint?: string; readonly inPlace: boolean; readonly startedAt: string };
  /** The last completed heal, for escalating a datapath that keeps failing. */
  readonly lastHeal?: { readonly cause: HealCause; readonly inPlace: boolean; readonly at: string };
  /** Ids of the events whose heal this connection already started (bounded). */
  readonly healCauses: readonly string[];
  readonly heals: number;
  readonly waitingSince?: string;
  readonly down?: { readonly node: string; readonly since: string; readonly domain?: string };
  readonly expirationTime?: string;
  /** Federation, client side: the domain the endpoint is in (asked for, or named by a registry). */
  readonly remoteDomain?: string;
  /** Federation, client side: the endpoint a floating registry chose (asked for in its home domain). */
  readonly redirectEndpoint?: string;
}

export const isTerminal = (phase: ConnectionPhase): boolean => phase === 'closed' || phase === 'failed';

/**
 * Linux interface names are at most 15 bytes and, for userspace WireGuard, unique host-wide:
 * a 3-letter role, the id's first 4 letters or digits (to recognise it) and 8 hex digits of
 * its hash (so ids sharing a prefix, like "web-client-1" and "web-client-2", never collide).
 */
export const interfaceNameFor = (role: 'nsm' | 'nse', connectionId: string): string =>
  role + connectionId.replace(/[^A-Za-z0-9]/g, '').slice(0, 4).toLowerCase() + createHash('sha256').update(connectionId).digest('hex').slice(0, 8);

export const nodeOfSide = (s: ConnectionState, side: Side): string | undefined =>
  side === 'client' ? s.request?.clientNode : s.endpoint?.node;

/**
 * IP payload: each side gets a /32 and a route to the other's /32 (routed point to point).
 * ETHERNET payload: both addresses carry the pool's prefix length, so the two sides share a
 * subnet on one L2 segment and find each other by ARP.
 */
const ipContextFor = (
  payload: Payload,
  a: { readonly src: string; readonly dst: string; readonly prefix: string },
  excludedPrefixes: readonly string[],
): IpContext => {
  if (payload === 'ETHERNET') {
    const len = a.prefix.split('/')[1];
    const withLen = (cidr: string) => `${cidr.split('/')[0]}/${len}`;
    return { srcIpAddrs: [withLen(a.src)], dstIpAddrs: [withLen(a.dst)], srcRoutes: [], dstRoutes: [], excludedPrefixes };
  }
  return { srcIpAddrs: [a.src], dstIpAddrs: [a.dst], srcRoutes: [{ prefix: a.dst }], dstRoutes: [{ prefix: a.src }], excludedPrefixes };
};

const unknownConnection = (id: string) => reject('not-found', `connection "${id}" does not exist`);

/** How many heal cause ids a connection remembers (redelivered causes arrive soon after the first). */
const REMEMBERED_CAUSES = 32;

const retire = (s: ConnectionState, sides: readonly Side[]): RetiredPath | undefined =>
  s.plan && s.endpoint ? { generation: s.generation, endpoint: s.endpoint, plan: s.plan, sides } : undefined;

/** The state transition as an immer recipe, shared with the connections projection. */
export const evolveDraft = (s: Draft<ConnectionState>, event: ConnectionEvent): void => {
  switch (event.type) {
    case 'ConnectionRequested': {
      const { type: _t, ...request } = event;
      s.phase = 'requested';
      s.request = castDraft(request);
      if (request.expirationTime) s.expirationTime = request.expirationTime;
      if (request.domain) s.remoteDomain = request.domain;
      break;
    }
    case 'ConnectionRedirected':
      // In the registry that answered, the request is done: it went to the endpoint's home domain.
      if (s.request?.remoteClient) {
        s.phase = 'closed';
        s.closeReason = `redirected to domain ${event.domain}${event.endpoint ? ` (endpoint ${event.endpoint})` : ''}`;
      } else if (event.local) delete s.remoteDomain;
      else {
        s.remoteDomain = event.domain;
        if (event.endpoint) s.redirectEndpoint = event.endpoint;
      }
      break;
    case 'EndpointSelected':
      s.phase = 'endpoint-selected';
      s.endpoint = { name: event.endpoint, node: event.endpointNode };
      s.excluded = [...event.excluded];
      // The old plan stops being desired: its sides are replaced by the next plan or removed.
      if (event.replaces) delete s.plan;
      delete s.waitingSince;
      delete s.down;
      break;
    case 'PathPlanned': {
      const { type: _t, generation, ...plan } = event;
      s.phase = 'path-planned';
      s.generation = generation;
      s.plan = castDraft(plan);
      s.programmed = [];
      s.removed = [];
      break;
    }
    case 'DataplaneProgrammed': {
      s.programmed.push(event.side);
      // Agent segments follow the client's and the control plane's: client side 2, endpoint side 3.
      // The path came from an event, which must not be mutated: it is replaced.
      const at = event.side === 'client' ? 2 : 3;
      const token = event.token;
      if (token && s.plan && s.plan.path.pathSegments[at]) {
        s.plan.path = { ...s.plan.path, pathSegments: s.plan.path.pathSegments.map((p, i) => (i === at ? { ...p, token } : p)) };
      }
      break;
    }
    case 'ConnectionEstablished':
      s.phase = 'established';
      break;
    case 'DataplaneFailed':
    case 'DatapathDown':
      break;
    case 'ConnectionFailed':
      s.phase = 'failed';
      s.failure = { code: event.code, reason: event.reason };
      break;
    case 'ConnectionDenied':
      s.phase = 'failed';
      s.failure = { code: 'denied', reason: event.reason };
      break;
    case 'ConnectionLimited':
      s.phase = 'failed';
      s.failure = { code: 'limited', reason: event.reason };
      break;
    case 'ConnectionClosed':
      s.phase = 'closed';
      s.closeReason = event.reason;
      break;
    case 'DataplaneRemoved':
      s.removed.push(event.side);
      break;
    case 'ConnectionHealing':
      s.healing ??= { cause: event.cause, inPlace: event.inPlace, startedAt: event.startedAt, ...(event.oldEndpoint ? { oldEndpoint: event.oldEndpoint } : {}) };
      s.healing.cause = event.cause;
      s.healing.inPlace = event.inPlace;
      s.healCauses.push(event.causeId);
      if (s.healCauses.length > REMEMBERED_CAUSES) s.healCauses.splice(0, s.healCauses.length - REMEMBERED_CAUSES);
      break;
    case 'ConnectionWaiting':
      s.phase = 'waiting';
      s.waitingSince = event.since;
      delete s.endpoint;
      delete s.plan;
      break;
    case 'ConnectionHealed':
      s.lastHeal = { cause: event.cause, inPlace: s.healing?.inPlace ?? false, at: new Date(Date.parse(event.startedAt) + event.durationMs).toISOString() };
      s.heals += 1;
      delete s.healing;
      break;
    case 'ConnectionDown':
      s.phase = 'down';
      s.down = { node: event.node, since: event.since, ...(event.domain ? { domain: event.domain } : {}) };
      break;
    case 'ConnectionRefreshed':
      s.expirationTime = event.expirationTime;
      if (event.path && s.plan && s.generation === event.path.generation) s.plan.path = { ...s.plan.path, pathSegments: castDraft(event.path.pathSegments) };
      break;
    case 'ConnectionExpired':
      break;
  }
};

/** Candidates for a (re)selection: the connection's own rules, minus the excluded endpoints. */
const select = (request: ConnectionRequest, registry: RegistryContext, exclude: readonly string[]) =>
  registry.service
    ? selectEndpoint({
        service: request.networkService,
        matches: registry.service.matches,
        clientLabels: request.labels,
        clientNode: request.clientNode,
        endpoints: registry.endpoints,
        exclude,
        ...(registry.loadOf ? { loadOf: registry.loadOf } : {}),
      })
    : ({ kind: 'none', reason: `network service "${request.networkService}" is no longer registered` } as const);

const decideHeal = (command: Extract<ConnectionCommand, { type: 'HealConnection' }>, state: ConnectionState): E.Either<DomainError, readonly ConnectionEvent[]> => {
  if (state.phase === 'none') return unknownConnection(command.connectionId);
  if (isTerminal(state.phase) || state.healCauses.includes(command.causeId)) return E.right([]);
  // Federation, client side: the endpoint's domain does every reselection and every plan; a heal
  // asked for here changes nothing. (When the client's own node comes back, the process manager
  // asks the endpoint's domain where the connection stands, and its answer re-plans this side:
  // decideRemoteState from 'down'.)
  if (state.remoteDomain) return E.right([]);
  // A lost client node cannot take a new path; the node's return heals it.
  if (state.phase === 'down' && command.cause !== 'node-recovered') return E.right([]);
  if (state.phase !== 'down' && command.cause === 'node-recovered') return E.right([]);
  // Only a waiting connection has anything to gain from a newly registered endpoint.
  if (command.cause === 'endpoint-available' && state.phase !== 'waiting') return E.right([]);
  const request = state.request!;
  const current = state.endpoint;
  // A datapath that fails again soon after an in-place repair is not going to be fixed in place.
  const escalate =
    (command.cause === 'datapath' &&
      state.lastHeal?.cause === 'datapath' &&
      state.lastHeal.inPlace &&
      Date.parse(command.at) - Date.parse(state.lastHeal.at) < command.escalateWithinMs) ||
    command.cause === 'dataplane';
  const exclude = [...new Set([...command.exclude, ...(escalate && current ? [current.name] : [])])];
  // A repair (datapath, the client's node back) keeps the endpoint when the rules still allow it.
  const keepCurrent =
    current !== undefined &&
    (command.cause === 'datapath' || command.cause === 'node-recovered') &&
    allows(request, command.registry, exclude, current.name);
  const selection = keepCurrent
    ? ({ kind: 'selected', endpoint: current!, considered: 1 } as const)
    : select(request, command.registry, exclude);
  const healing: ConnectionEvent = {
    type: 'ConnectionHealing',
    cause: command.cause,
    causeId: command.causeId,
    ...(current ? { oldEndpoint: current.name } : {}),
    inPlace: selection.kind === 'selected' && current !== undefined && selection.endpoint.name === current.name,
    startedAt: state.healing?.startedAt ?? command.at,
  };
  if (selection.kind === 'none') {
    if (state.phase === 'waiting') return E.right([]);
    const replaces = retire(state, SIDES);
    return E.right([healing, { type: 'ConnectionWaiting', reason: selection.reason, since: command.at, ...(replaces ? { replaces } : {}) }]);
  }
  const moved = current === undefined || selection.endpoint.name !== current.name;
  const replaces = retire(state, moved ? ['endpoint'] : []);
  return E.right([
    healing,
    {
      type: 'EndpointSelected',
      endpoint: selection.endpoint.name,
      endpointNode: selection.endpoint.node,
      considered: selection.considered,
      excluded: exclude,
      ...(replaces ? { replaces } : {}),
    },
  ]);
};

/** True when `name` is registered for the service and allowed by the connection's matching rules. */
const allows = (request: ConnectionRequest, reg: RegistryContext, exclude: readonly string[], name: string): boolean => {
  if (!reg.service || exclude.includes(name)) return false;
  return matchEndpoints(reg.service.matches, request.labels, reg.endpoints).some((ep) => ep.name === name);
};

export const connection: Aggregate<ConnectionState, ConnectionCommand, ConnectionEvent> = {
  name: 'connection',
  initialState: { phase: 'none', excluded: [], generation: 0, programmed: [], removed: [], healCauses: [], heals: 0 },
  decide(command, state) {
    switch (command.type) {
      case 'RequestConnection': {
        const { request, registry } = command;
        if (request.remoteClient) return decideRemoteRequest(command, state);
        if (state.phase !== 'none') {
          if (state.request?.requestId === request.requestId) return E.right([]);
          return reject('conflict', `connection id "${request.connectionId}" is already in use`);
        }
        if (request.domain) return decideRemoteRequest(command, state);
        if (!registry.service) {
          return reject('not-found', `network service "${request.networkService}" is not registered`);
        }
        const requested: ConnectionEvent = { type: 'ConnectionRequested', ...request, payload: registry.service.payload };
        if (command.policy) {
          const decision = evaluatePolicy(command.policy.policy, { client: command.policy.client, labels: request.labels, service: request.networkService });
          if (!decision.allowed) return E.right([requested, { type: 'ConnectionDenied', rule: decision.rule, reason: decision.reason }]);
        }
        if (command.quota) {
          const hit = quotaProblem(command.quota.identity, command.quota.limits, command.quota.usage);
          if (hit) return E.right([requested, { type: 'ConnectionLimited', ...hit }]);
        }
        const selection = select(request, registry, state.excluded);
        if (selection.kind === 'none') {
          return E.right([requested, { type: 'ConnectionFailed', code: 'no-endpoint', reason: selection.reason }]);
        }
        return E.right([
          requested,
          {
            type: 'EndpointSelected',
            endpoint: selection.endpoint.name,
            endpointNode: selection.endpoint.node,
            considered: selection.considered,
            excluded: [...state.excluded],
          },
        ]);
      }
      case 'PlanPath': {
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (state.phase !== 'endpoint-selected' || state.endpoint?.name !== command.endpoint) return E.right([]);
        const request = state.request!;
        const endpointNode = state.endpoint.node;
        if (!command.clientNodeFacts || !command.endpointNodeFacts) {
          const missing = !command.clientNodeFacts ? request.clientNode : endpointNode;
          return E.right([{ type: 'ConnectionFailed', code: 'node-unknown', reason: `node "${missing}" has not joined the mesh` }]);
        }
        const mechanism = negotiateMechanism({
          preferences: request.mechanismPreferences,
          payload: request.payload,
          clientNode: request.clientNode,
          clientCapabilities: command.clientNodeFacts.mechanisms,
          endpointNode,
          endpointCapabilities: command.endpointNodeFacts.mechanisms,
        });
        if (E.isLeft(mechanism)) {
          return E.right([{ type: 'ConnectionFailed', code: 'no-mechanism', reason: mechanism.left }]);
        }
        if (mechanism.right.remote && !command.tunnel) {
          return reject('invalid', `connection "${command.connectionId}" crosses nodes and needs a tunnel id`);
        }
        const overhead = mechanism.right.remote ? TUNNEL_OVERHEAD[mechanism.right.remote] : 0;
        const { excludedPrefixes } = command.allocation;
        return E.right([
          {
            type: 'PathPlanned',
            generation: state.generation + 1,
            mechanism: mechanism.right,
            context: {
              ipContext: ipContextFor(request.payload, command.allocation, excludedPrefixes),
              dnsContext: { configs: [] },
              ethernetContext: {},
              mtu: Math.min(command.clientNodeFacts.mtu, command.endpointNodeFacts.mtu) - overhead,
            },
            path: {
              index: 0,
              pathSegments: command.pathSegments ?? [
                { name: `client@${request.clientNode}`, id: request.connectionId },
                { name: command.endpoint, id: request.connectionId },
              ],
            },
            clientInterface: request.clientInterface,
            endpointInterface: interfaceNameFor('nse', request.connectionId),
            ...(command.endpointNetns ? { endpointNetns: command.endpointNetns } : {}),
            ...(mechanism.right.remote && command.tunnel ? { tunnel: command.tunnel } : {}),
          },
        ]);
      }
      case 'ReportDataplane': {
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (command.generation !== state.generation) return E.right([]);
        const expectedNode = nodeOfSide(state, command.side);
        if (expectedNode !== command.node) {
          // A report about a path the connection has since left (a heal moved it): stale, not an attack.
          if (state.plan === undefined) return E.right([]);
          return reject('invalid', `node "${command.node}" reported the ${command.side} side, which belongs to node "${expectedNode}"`);
        }
        const { generation, node, side } = command;
        switch (command.result) {
          case 'programmed': {
            if (state.phase !== 'path-planned' || state.programmed.includes(side)) return E.right([]);
            const events: ConnectionEvent[] = [{ type: 'DataplaneProgrammed', generation, node, side, ...(command.token ? { token: command.token } : {}) }];
            if (SIDES.every((s) => s === side || state.programmed.includes(s))) {
              events.push({ type: 'ConnectionEstablished', generation });
              if (state.healing) {
                events.push({
                  type: 'ConnectionHealed',
                  generation,
                  cause: state.healing.cause,
                  ...(state.healing.oldEndpoint ? { oldEndpoint: state.healing.oldEndpoint } : {}),
                  newEndpoint: state.endpoint!.name,
                  startedAt: state.healing.startedAt,
                  durationMs: Math.max(0, Date.parse(command.at) - Date.parse(state.healing.startedAt)),
                });
              }
            }
            return E.right(events);
          }
          case 'failed': {
            if (state.phase !== 'path-planned' && state.phase !== 'established') return E.right([]);
            const error = command.error ?? 'unknown error';
            const failed: ConnectionEvent = { type: 'DataplaneFailed', generation, node, side, error };
            // While healing, the process manager moves the connection to another endpoint instead.
            if (state.healing) return E.right([failed]);
            return E.right([failed, { type: 'ConnectionFailed', code: 'dataplane', reason: `dataplane on node ${node} (${side} side): ${error}` }]);
          }
          case 'broken':
            if (state.phase !== 'established') return E.right([]);
            return E.right([{ type: 'DatapathDown', generation, node, side, error: command.error ?? 'liveness probe failed' }]);
          case 'removed':
            if (!isTerminal(state.phase) || state.removed.includes(side)) return E.right([]);
            return E.right([{ type: 'DataplaneRemoved', generation, node, side }]);
        }
      }
      // falls through: unreachable, every result returns
      case 'HealConnection':
        return decideHeal(command, state);
      case 'ApplyRemoteState':
        return decideRemoteState(command, state);
      case 'RedirectConnection':
        return decideRedirect(command, state);
      case 'MarkConnectionDown':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase) || state.phase === 'down') return E.right([]);
        // Client side across domains: the endpoint's domain is unreachable.
        if (command.domain) {
          if (state.remoteDomain !== command.domain) return E.right([]);
          return E.right([{ type: 'ConnectionDown', node: state.endpoint?.node ?? `@${command.domain}`, since: command.at, domain: command.domain }]);
        }
        if (state.request?.clientNode !== command.node) return E.right([]);
        return E.right([{ type: 'ConnectionDown', node: command.node, since: command.at }]);
      case 'RefreshConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase)) return reject('wrong-state', `connection "${command.connectionId}" is ${state.phase}; request a new one`);
        {
          // Tokens renewed for a plan that has since been replaced are dropped: the new plan has its own.
          const path = command.path && state.plan && command.path.generation === state.generation ? command.path : undefined;
          if (state.expirationTime === command.expirationTime && !path) return E.right([]);
          return E.right([{ type: 'ConnectionRefreshed', expirationTime: command.expirationTime, ...(path ? { path } : {}) }]);
        }
      case 'ExpireConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase) || !state.expirationTime || Date.parse(state.expirationTime) > Date.parse(command.at)) return E.right([]);
        return E.right([
          { type: 'ConnectionExpired', expirationTime: state.expirationTime },
          { type: 'ConnectionClosed', reason: `expired: the client did not refresh it before ${state.expirationTime}` },
        ]);
      case 'FailConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase)) return E.right([]);
        return E.right([{ type: 'ConnectionFailed', code: command.code, reason: command.reason }]);
      case 'CloseConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (state.phase === 'closed') return E.right([]);
        return E.right([{ type: 'ConnectionClosed', reason: command.reason, ...(command.by ? { by: command.by } : {}) }]);
    }
  },
  evolve: (state, event) => produce(state, (draft) => evolveDraft(draft, event)),
};
