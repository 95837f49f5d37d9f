// How much of the mesh one identity may take: connections held, connections being set up, and
// requests per second. Without limits one client can queue thousands of requests, exhaust every
// endpoint's address pool and make everyone else wait behind its backlog. Limits are set per role
// and per identity (one stream, limits.mesh, so every change is in the log); a connection request
// over a limit is decided like any other and recorded as refused, with the limit it hit.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { jsonEqual, reject, type Aggregate } from './domain.ts';

/** Absent fields: no limit. */
export interface Limits {
  /** Connections held at once (every state but closed and failed). */
  readonly connections?: number;
  /** Connections being set up at once (requested, endpoint selected, path planned). */
  readonly pending?: number;
  /** Connection requests accepted per second. */
  readonly ratePerSecond?: number;
}

/** Who limits apply to: a role's every identity, or one identity (which then ignores its role's). */
export type LimitScope = { readonly role: LimitedRole } | { readonly identity: string };
export type LimitedRole = 'client' | 'operator' | 'peer';
export const LIMITED_ROLES: readonly LimitedRole[] = ['client', 'operator', 'peer'];

export interface LimitsConfig {
  readonly roles: Readonly<Partial<Record<LimitedRole, Limits>>>;
  readonly identities: Readonly<Record<string, Limits>>;
}

/**
 * What applies until an operator says otherwise. A client is a workload: a hundred connections
 * and a steady trickle of requests is plenty, and stops one from drowning the others or taking a
 * whole /24 pool. Operators are trusted (benchmarks and bulk changes run as one). A peer domain
 * asks on behalf of all its clients.
 */
export const DEFAULT_LIMITS: Readonly<Record<LimitedRole, Limits>> = {
  client: { connections: 100, pending: 32, ratePerSecond: 20 },
  operator: {},
  peer: { pending: 512, ratePerSecond: 500 },
};

export const LIMITS_STREAM_ID = 'mesh';

export type LimitsCommand = { readonly type: 'SetLimits'; readonly scope: LimitScope; readonly limits?: Limits };
/** limits absent: the scope's own limits are removed (a role falls back to the defaults, an identity to its role's). */
export type LimitsEvent = { readonly type: 'LimitsSet'; readonly scope: LimitScope; readonly limits?: Limits };

export const emptyLimitsConfig: LimitsConfig = { roles: {}, identities: {} };

export const limitsFor = (config: LimitsConfig, identity: string, role: LimitedRole): Limits =>
  config.identities[identity] ?? config.roles[role] ?? DEFAULT_LIMITS[role];

/** What an identity holds now, as the control plane counts it when a request is decided. */
export interface Usage {
  readonly held: number;
  readonly pending: number;
  /** Requests accepted in the current second. */
  readonly thisSecond: number;
}

export type LimitHit = { readonly limit: 'connections' | 'pending' | 'rate'; readonly max: number; readonly current: number; readonly reason: string };

export const quotaProblem = (identity: string, limits: Limits, usage: Usage): LimitHit | undefined => {
  if (limits.connections !== undefined && usage.held >= limits.connections) {
    return { limit: 'connections', max: limits.connections, current: usage.held, reason: `${identity} holds ${usage.held} connections, its limit is ${limits.connections}; close some first` };
  }
  if (limits.pending !== undefined && usage.pending >= limits.pending) {
    return { limit: 'pending', max: limits.pending, current: usage.pending, reason: `${identity} has ${usage.pending} connections being set up, its limit is ${limits.pending}; wait for them` };
  }
  if (limits.ratePerSecond !== undefined && usage.thisSecond >= limits.ratePerSecond) {
    return { limit: 'rate', max: limits.ratePerSecond, current: usage.thisSecond, reason: `${identity} asked for ${usage.thisSecond} connections this second, its limit is ${limits.ratePerSecond} per second; slow down` };
  }
  return undefined;
};

const current = (s: LimitsConfig, scope: LimitScope): Limits | undefined => ('role' in scope ? s.roles[scope.role] : s.identities[scope.identity]);

export const limits: Aggregate<LimitsConfig, LimitsCommand, LimitsEvent> = {
  name: 'limits',
  initialState: emptyLimitsConfig,
  decide(command, state) {
    const l = command.limits;
    for (const [k, v] of Object.entries(l ?? {})) {
      if (!Number.isInteger(v) || (v as number) < 0) return reject('invalid', `limit ${k} must be a whole number, 0 or more`);
    }
    if (jsonEqual(current(state, command.scope), l)) return E.right([]);
    return E.right([{ type: 'LimitsSet', scope: command.scope, ...(l ? { limits: l } : {}) }]);
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      const { scope, limits: l } = event;
      if ('role' in scope) {
        if (l) s.roles[scope.role] = castDraft(l);
        else delete s.roles[scope.role];
      } else if (l) s.identities[scope.identity] = castDraft(l);
      else delete s.identities[scope.identity];
    }),
};
