// Connections read model: every connection's current state, by id, with indexes for the
// questions operators ask (by client node, endpoint, state) and the load per endpoint.
import { castDraft, type Draft } from 'immer';
import { connection, evolveDraft, isTerminal, type ConnectionEvent, type ConnectionPhase, type ConnectionState } from '../aggregates/connection/index.ts';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface ConnectionRow {
  readonly id: string;
  readonly state: ConnectionState;
  /** Who asked for it (the actor of the request command). */
  readonly actor: string;
  readonly requestedAt: string;
  readonly updatedAt: string;
  readonly establishedAt?: string;
  readonly closedAt?: string;
  /** Time of the last refresh by the client (connections with an expiry). */
  readonly refreshedAt?: string;
  /** Stream position of the last event applied, for read-your-writes checks. */
  readonly position: number;
}

/** What one requester holds, for its limits (aggregates/limits.ts). */
export interface ActorUsage {
  /** Connections not closed or failed. */
  readonly held: number;
  /** Connections being set up for the first time (requested, endpoint selected, path planned; heals not counted). */
  readonly pending: number;
  /** The second (Unix time) of its last accepted request, and how many it made in that second. */
  readonly second: number;
  readonly inSecond: number;
}

export interface ConnectionsModel {
  readonly byId: Readonly<Record<string, ConnectionRow>>;
  /** Connections not closed or failed, per endpoint: the load used for selection. */
  readonly activeByEndpoint: Readonly<Record<string, number>>;
  /** How many rows byId holds (counting the keys of a large object costs O(n) each time). */
  readonly count: number;
  /** By requester (the actor of the request). */
  readonly byActor: Readonly<Record<string, ActorUsage>>;
}

export const emptyConnections: ConnectionsModel = { byId: {}, activeByEndpoint: {}, count: 0, byActor: {} };

const SETTING_UP: readonly string[] = ['requested', 'endpoint-selected', 'path-planned'];
const isHeld = (s: ConnectionState) => s.phase !== 'none' && !isTerminal(s.phase);
const isPending = (s: ConnectionState) => SETTING_UP.includes(s.phase) && !s.healing;
const secondOf = (time: string) => Math.floor(Date.parse(time) / 1000);

const usageOf = (m: Draft<ConnectionsModel>, actor: string): Draft<ActorUsage> => (m.byActor[actor] ??= { held: 0, pending: 0, second: 0, inSecond: 0 });

/** Requests a limit or the policy refused do not count against the requester's rate. */
const countRequest = (u: Draft<ActorUsage>, e: EventEnvelope<ConnectionEvent>) => {
  const sec = secondOf(e.time);
  if (e.data.type === 'ConnectionRequested') {
    if (u.second !== sec) {
      u.second = sec;
      u.inSecond = 0;
    }
    u.inSecond += 1;
  } else if ((e.data.type === 'ConnectionLimited' || e.data.type === 'ConnectionDenied') && u.second === sec && u.inSecond > 0) u.inSecond -= 1;
};

const isConnectionEvent = (e: EventEnvelope<DomainEvent>): e is EventEnvelope<ConnectionEvent> => e.stream.startsWith('connection.');

/** A deep copy of plain JSON data; far cheaper than structuredClone for the small objects copied per connection. */
const copyPlain = <T>(v: T): T =>
  Array.isArray(v)
    ? (v.map(copyPlain) as T)
    : v !== null && typeof v === 'object'
      ? (Object.fromEntries(Object.entries(v).map(([k, x]) => [k, copyPlain(x)])) as T)
      : v;

const holdsEndpoint = (s: ConnectionState): string | undefined => (s.endpoint && !isTerminal(s.phase) ? s.endpoint.name : undefined);

export const applyConnections = (m: Draft<ConnectionsModel>, e: EventEnvelope<DomainEvent>, position: number): void => {
  if (!isConnectionEvent(e)) return;
  const id = e.stream.slice('connection.'.length);
  let row = m.byId[id];
  if (!row) {
    // A fresh copy: evolveDraft mutates the row's state in place, and the aggregate's
    // initialState is shared with every other row and with the command side.
    const state = copyPlain(connection.initialState);
    row = m.byId[id] = castDraft({ id, state, actor: e.actor, requestedAt: e.time, updatedAt: e.time, position });
    m.count += 1;
  }
  const before = holdsEndpoint(row.state as ConnectionState);
  const wasHeld = isHeld(row.state as ConnectionState);
  const wasPending = isPending(row.state as ConnectionState);
  evolveDraft(row.state, e.data);
  const after = holdsEndpoint(row.state as ConnectionState);
  if (before !== after) {
    if (before) m.activeByEndpoint[before] = (m.activeByEndpoint[before] ?? 1) - 1;
    if (after) m.activeByEndpoint[after] = (m.activeByEndpoint[after] ?? 0) + 1;
  }
  const held = isHeld(row.state as ConnectionState);
  const pending = isPending(row.state as ConnectionState);
  if (held !== wasHeld || pending !== wasPending || e.data.type === 'ConnectionRequested' || e.data.type === 'ConnectionLimited' || e.data.type === 'ConnectionDenied') {
    const u = usageOf(m, row.actor);
    u.held += Number(held) - Number(wasHeld);
    u.pending += Number(pending) - Number(wasPending);
    countRequest(u, e);
  }
  row.updatedAt = e.time;
  row.position = position;
  if (e.data.type === 'ConnectionEstablished') row.establishedAt = e.time;
  if (e.data.type === 'ConnectionClosed') row.closedAt = e.time;
  if (e.data.type === 'ConnectionRefreshed') row.refreshedAt = e.time;
};

export interface ConnectionFilter {
  readonly state?: ConnectionPhase;
  readonly node?: string;
  readonly endpoint?: string;
  readonly service?: string;
  readonly actor?: string;
  /** Include closed connections (default: only those not closed). */
  readonly includeClosed?: boolean;
}

const matchesFilter = (r: ConnectionRow, f: ConnectionFilter): boolean => {
  const s = r.state;
  if (f.state ? s.phase !== f.state : !f.includeClosed && s.phase === 'closed') return false;
  if (f.node && s.request?.clientNode !== f.node && s.endpoint?.node !== f.node) return false;
  if (f.endpoint && s.endpoint?.name !== f.endpoint) return false;
  if (f.service && s.request?.networkService !== f.service) return false;
  if (f.actor && r.actor !== f.actor) return false;
  return true;
};

/** The rows that pass the filter, in insertion order; with a page, scanning stops once it is full. */
export const listConnections = (m: ConnectionsModel, f: ConnectionFilter = {}, page?: { offset: number; limit: number }): ConnectionRow[] => {
  const out: ConnectionRow[] = [];
  let skip = page?.offset ?? 0;
  const limit = page?.limit ?? Infinity;
  for (const id in m.byId) {
    const r = m.byId[id]!;
    if (!matchesFilter(r, f)) continue;
    if (skip > 0) {
      skip--;
      continue;
    }
    out.push(r);
    if (out.length >= limit) break;
  }
  return out;
};
