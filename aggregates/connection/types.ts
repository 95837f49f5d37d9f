// The connection aggregate's vocabulary: its commands, events and state, and the small facts
// about a state that every part of it (and its readers) use.
import { reject, type ConnectionContext, type Labels, type Match, type MechanismType, type OfferedDns, type Payload } from '../domain.ts';
import type { AllocatedPair } from '../addressPool.ts';
import type { NegotiatedMechanism } from '../mechanism.ts';
import type { Policy } from '../policy.ts';
import type { LimitHit, Limits, Usage } from '../limits.ts';
import type { Candidate } from '../selection.ts';
import type { TunnelIdRange, TunnelParameters } from '../tunnelPool.ts';

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
  /** ISO time the token expires. */
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
  /** Where other nodes reach it: its family is the tunnels' (both ends must share one). */
  readonly underlayAddress?: string;
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
      /** One pair per family the connection carries. */
      readonly allocation: { readonly pairs: readonly AllocatedPair[]; readonly excludedPrefixes: readonly string[] };
      /** Allocated for every connection whose client and endpoint are on different nodes. */
      readonly tunnel?: TunnelParameters;
      readonly endpointNetns?: string;
      /** Absent when the node has not joined (or has left). */
      readonly clientNodeFacts?: NodeFacts;
      readonly endpointNodeFacts?: NodeFacts;
      /** Signed path segments for this plan (authenticated meshes); absent: unsigned segments. */
      readonly pathSegments?: readonly PathSegment[];
      /** The endpoint side's interface, as named by the control plane (src/contracts/interfaceNames.ts). */
      readonly endpointInterface: string;
      /** The DNS offered to the client: the endpoint's registration's, then the service's; absent: none. */
      readonly dns?: readonly OfferedDns[];
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
      /** failed because the agent refused the side (its path tokens), not because programming it failed. */
      readonly refused?: boolean;
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

/** The plan of the endpoint's domain, as the client's domain needs it for its side. */
export interface RemoteEndpointPlan {
  /** The endpoint's name in its own domain. */
  readonly endpoint: string;
  readonly node: RemoteNode;
  readonly mechanism: NegotiatedMechanism;
  readonly context: ConnectionContext;
  readonly endpointInterface: string;
  readonly tunnel?: TunnelParameters;
}

/** Where a connection stands in the endpoint's domain: what that domain tells the client's. */
export interface RemoteState {
  /** The plan's generation in the endpoint's domain (0 before any plan). */
  readonly generation: number;
  readonly phase: 'planned' | 'waiting' | 'failed' | 'closed';
  readonly plan?: RemoteEndpointPlan;
  /** The endpoint side of this generation is programmed on its node. */
  readonly endpointProgrammed: boolean;
  readonly reason?: string;
  readonly code?: FailureCode;
}

export const isTerminal = (phase: ConnectionPhase): boolean => phase === 'closed' || phase === 'failed';

export const nodeOfSide = (s: ConnectionState, side: Side): string | undefined =>
  side === 'client' ? s.request?.clientNode : s.endpoint?.node;

export const unknownConnection = (id: string) => reject('not-found', `connection "${id}" does not exist`);

/** What a move leaves behind: the sides of the current plan, to be torn down. */
export const retire = (s: ConnectionState, sides: readonly Side[]): RetiredPath | undefined =>
  s.plan && s.endpoint ? { generation: s.generation, endpoint: s.endpoint, plan: s.plan, sides } : undefined;
