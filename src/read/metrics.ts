// What the metrics say about the mesh (docs/observability.md), as pure functions: counts read off
// the live model at scrape time, and the setup and heal durations found in commits as they are
// folded. Label values are bounded: states, services, nodes, causes; never a connection id.
// src/runtime/metrics.ts hands these to prom-client.
import { isTerminal, type HealCause } from '../../aggregates/connection/index.ts';
import type { DomainEvent } from '../../aggregates/index.ts';
import type { EventEnvelope, StoredCommit } from '../contracts/envelope.ts';
import { upcastEvent } from '../contracts/upcast.ts';
import type { MeshModel } from '../../projections/mesh.ts';

/** Rows counted per label set (the keys of `labels` are the metric's label names). */
export interface Counted<L extends string> {
  readonly labels: Readonly<Record<L, string>>;
  readonly value: number;
}

const countBy = <L extends string>(keys: Iterable<Readonly<Record<L, string>>>, names: readonly L[]): Counted<L>[] => {
  const out = new Map<string, Counted<L> & { value: number }>();
  for (const labels of keys) {
    const k = names.map((n) => labels[n]).join('\u0000');
    const row = out.get(k);
    if (row) row.value++;
    else out.set(k, { labels, value: 1 });
  }
  return [...out.values()];
};

/**
 * Connections by state (their phase), service and client node. Every row of the model counts,
 * closed and failed ones too, so the states add up to `nsm status`'s connection count. One pass
 * over the rows with no object made per row: a scrape walks the whole model.
 */
export const connectionCounts = (m: MeshModel): Counted<'state' | 'service' | 'node'>[] => {
  // Nested maps rather than a joined key: no string is built per row.
  const counts = new Map<string, Map<string, Map<string, number>>>();
  const byId = m.connections.byId;
  for (const id in byId) {
    const s = byId[id]!.state;
    let byService = counts.get(s.phase);
    if (!byService) counts.set(s.phase, (byService = new Map()));
    const service = s.request?.networkService ?? '';
    let byNode = byService.get(service);
    if (!byNode) byService.set(service, (byNode = new Map()));
    const node = s.request?.clientNode ?? '';
    byNode.set(node, (byNode.get(node) ?? 0) + 1);
  }
  const out: Counted<'state' | 'service' | 'node'>[] = [];
  for (const [state, byService] of counts) for (const [service, byNode] of byService) for (const [node, value] of byNode) out.push({ labels: { state, service, node }, value });
  return out;
};

/** Registered endpoints by service and node: an endpoint that offers two services counts once for each. */
export const endpointCounts = (m: MeshModel): Counted<'service' | 'node'>[] =>
  countBy(
    Object.values(m.registry.endpoints).flatMap((ep) => ep.networkServiceNames.map((service) => ({ service, node: ep.node }))),
    ['service', 'node'],
  );

/** Each joined node: 1 while ready, 0 while lost (no heartbeat within the node timeout). */
export const nodeReadiness = (m: MeshModel): Counted<'node'>[] =>
  Object.values(m.nodes.nodes).map((n) => ({ labels: { node: n.name }, value: n.status === 'ready' ? 1 : 0 }));

/** Joined nodes by status, both statuses always present (an alert on "lost > 0" needs the 0). */
export const nodeCounts = (m: MeshModel): Counted<'status'>[] => {
  const nodes = Object.values(m.nodes.nodes);
  return (['ready', 'lost'] as const).map((status) => ({ labels: { status }, value: nodes.filter((n) => n.status === status).length }));
};

export type Observation =
  /** From the request to the first establishment. */
  | { readonly kind: 'setup'; readonly seconds: number }
  /** From the first ConnectionHealing to the ConnectionHealed that ends it (the aggregate's durationMs). */
  | { readonly kind: 'heal'; readonly cause: HealCause; readonly seconds: number };

/** What a connection being set up for the first time needs for its setup duration. */
interface Pending {
  readonly requestedMs: number;
  /** Federation, endpoint side: a registry only redirects such a request, it is never established there. */
  readonly remoteClient: boolean;
}

const ENDS_SETUP: ReadonlySet<string> = new Set(['ConnectionFailed', 'ConnectionDenied', 'ConnectionLimited', 'ConnectionClosed']);

/**
 * The setup and heal durations in commits as the live view folds them, from the events' own times.
 * It starts from a model (the view once caught up): connections requested but never established by
 * then are followed, and their setup counts when it completes; commits at or before the model's
 * position are not looked at again, so history folded at start is not observed a second time (the
 * histograms cover what happened while this process ran). Remembers only connections in their
 * first setup.
 */
export class DurationObserver {
  private readonly pending = new Map<string, Pending>();
  private after: number;

  constructor(from: MeshModel) {
    this.after = from.position;
    const byId = from.connections.byId;
    for (const id in byId) {
      const r = byId[id]!;
      if (r.establishedAt === undefined && !isTerminal(r.state.phase) && r.state.phase !== 'none') {
        this.pending.set(id, { requestedMs: Date.parse(r.requestedAt), remoteClient: r.state.request?.remoteClient !== undefined });
      }
    }
  }

  /** Connections followed until their first establishment. */
  get settingUp(): number {
    return this.pending.size;
  }

  /** The durations this commit completes; nothing for a commit already seen. */
  observe(commit: StoredCommit): Observation[] {
    const position = Number(commit.position);
    if (position <= this.after) return [];
    this.after = position;
    if (!commit.stream.startsWith('connection.')) return [];
    const id = commit.stream.slice('connection.'.length);
    const out: Observation[] = [];
    for (const stored of commit.events as readonly EventEnvelope<DomainEvent>[]) {
      const env = upcastEvent(stored);
      const e = env.data;
      if (e.type === 'ConnectionRequested') this.pending.set(id, { requestedMs: Date.parse(env.time), remoteClient: e.remoteClient !== undefined });
      else if (e.type === 'ConnectionEstablished') {
        const p = this.pending.get(id);
        if (p) out.push({ kind: 'setup', seconds: Math.max(0, Date.parse(env.time) - p.requestedMs) / 1000 });
        this.pending.delete(id);
      } else if (e.type === 'ConnectionHealed') out.push({ kind: 'heal', cause: e.cause, seconds: e.durationMs / 1000 });
      else if (ENDS_SETUP.has(e.type) || (e.type === 'ConnectionRedirected' && this.pending.get(id)?.remoteClient)) this.pending.delete(id);
    }
    return out;
  }
}

