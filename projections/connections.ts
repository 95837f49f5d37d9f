// Connections read model: every connection's current state, by id, with indexes for the
// questions operators ask (by client node, endpoint, state) and the load per endpoint.
// Connections that ended (closed or failed) stay for a while, so that their last state can be
// asked for, then leave the model: only the most recent RETAINED_ENDED of them are kept, or a
// mesh that churns connections would hold every connection it ever had (the log keeps their
// whole history: `nsm history ID`).
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
  /**
   * Connections that ended, in the order they ended: ids from `endedFrom` on are still in byId
   * (the earlier ones were dropped; the array is compacted now and then).
   */
  readonly ended: readonly string[];
  readonly endedFrom: number;
}

export const emptyConnections: ConnectionsModel = { byId: {}, activeByEndpoint: {}, count: 0, byActor: {}, ended: [], endedFrom: 0 };

/** How many ended (closed or failed) connections the model keeps, the most recent ones. */
export const RETAINED_ENDED = 1000;
/** The dropped head of `ended` is cut off once it is this long (and at least half the array). */
const ENDED_COMPACT_AT = 1024;

/** Records that a connection ended; drops the oldest ended rows beyond RETAINED_ENDED. */
const retire = (m: Draft<ConnectionsModel>, id: string): void => {
  // Models folded before retention (older snapshots are refolded, but a model built by hand may lack them).
  m.ended ??= [];
  m.endedFrom ??= 0;
  m.ended.push(id);
  while (m.ended.length - m.endedFrom > RETAINED_ENDED) {
    const old = m.ended[m.endedFrom]!;
    m.endedFrom += 1;
    const row = m.byId[old];
    // Still ended (a failed connection may have come back and be held again: then it stays).
    if (row && isTerminal(row.state.phase)) {
      delete m.byId[old];
      m.count -= 1;
    }
  }
  if (m.endedFrom >= ENDED_COMPACT_AT && m.endedFrom * 2 >= m.ended.length) {
    m.ended.splice(0, m.endedFrom);
    m.endedFrom = 0;
  }
};

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
  // A later event of a connection whose row was dropped after it ended (a side removed late, by
  // an agent that was away): the row does not come back. Every stream starts at version 1.
  if (!row && e.version > 1) return;
  if (!row) {
    // A fresh copy: evolveDraft mutates the row's state in place, and the aggregate's
    // initialState is shared with every other row and with the command side.
    const state = copyPlain(connection.initialState);
    row = m.byId[id] = castDraft({ id, state, actor: e.actor, requestedAt: e.time, updatedAt: e.time, position });
    m.count += 1;
  }
  const before = holdsEndpoint(row.state as ConnectionState);
  const wasEnded = isTerminal(row.state.phase);
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
  if (!wasEnded && isTerminal(row.state.phase)) retire(m, id);
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
