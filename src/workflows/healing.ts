// Death detection: what has lapsed at a given moment, from the read model and the heartbeats
// this replica heard. Pure, so the rules are tested without clocks; the leader's timer loop
// (./timers.ts) turns findings into commands.
import { isTerminal } from '../../aggregates/connection/index.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import { silence } from '../../aggregates/membership.ts';
import type { AnyAggregateCommand, CommandOfStream } from '../../aggregates/index.ts';
import { streamName } from '../contracts/envelope.ts';

export interface HealingConfig {
  /** A node with no heartbeat for this long is lost. */
  readonly nodeTimeoutMs: number;
  /** A connection whose client node is lost is closed after this long. */
  readonly downGraceMs: number;
  /** How often the leader looks. */
  readonly tickMs: number;
  /** Leadership lease; a dead leader is replaced after at most this long. */
  readonly leaseTtlMs: number;
  /** A second datapath failure within this long of an in-place repair moves the connection. */
  readonly escalateWithinMs: number;
}

export const DEFAULT_HEALING: HealingConfig = {
  nodeTimeoutMs: 15_000,
  downGraceMs: 5 * 60_000,
  tickMs: 1_000,
  leaseTtlMs: 10_000,
  escalateWithinMs: 60_000,
};

export interface Findings {
  readonly expiredEndpoints: readonly { readonly name: string; readonly expirationTime: string }[];
  readonly lostNodes: readonly { readonly name: string; readonly lastSeen: string }[];
  readonly recoveredNodes: readonly { readonly name: string; readonly heardAt: string }[];
  readonly expiredConnections: readonly { readonly id: string; readonly expirationTime: string }[];
  readonly downPastGrace: readonly { readonly id: string; readonly node: string; readonly since: string }[];
  /** Open connections of an identity that was revoked (nsm revoke): the mesh closes them. */
  readonly revokedOwners: readonly { readonly id: string; readonly actor: string; readonly revokedAt: string }[];
}

export const noFindings: Findings = { expiredEndpoints: [], lostNodes: [], recoveredNodes: [], expiredConnections: [], downPastGrace: [], revokedOwners: [] };

const ms = (iso: string | undefined): number => (iso ? Date.parse(iso) : NaN);

/**
 * `leaderSince` is when this replica became the one that declares deaths. Until a full period
 * has passed since then, nothing is declared dead on the strength of this replica's own silence
 * (it may simply not have heard the heartbeats or refreshes yet).
 */
export const findDeaths = (
  model: MeshModel,
  heartbeats: ReadonlyMap<string, { readonly at: string }>,
  now: number,
  leaderSince: number,
  cfg: Pick<HealingConfig, 'nodeTimeoutMs' | 'downGraceMs'>,
  /** Revoked identities: actor to when (from the identity registry). */
  revoked: ReadonlyMap<string, string> = new Map(),
): Findings => {
  const expiredEndpoints = Object.values(model.registry.endpoints).flatMap((ep) => {
    if (!ep.expirationTime) return [];
    const expires = ms(ep.expirationTime);
    const period = Math.max(0, expires - ms(ep.refreshedAt));
    return now > expires && now > leaderSince + period ? [{ name: ep.name, expirationTime: ep.expirationTime }] : [];
  });

  const lostNodes: { name: string; lastSeen: string }[] = [];
  const recoveredNodes: { name: string; heardAt: string }[] = [];
  for (const node of Object.values(model.nodes.nodes)) {
    const s = silence(node, heartbeats.get(node.name)?.at, now, leaderSince, cfg.nodeTimeoutMs);
    if (s.back) recoveredNodes.push({ name: node.name, heardAt: s.back });
    if (s.lost) lostNodes.push({ name: node.name, lastSeen: s.lost });
  }

  const expiredConnections: { id: string; expirationTime: string }[] = [];
  const downPastGrace: { id: string; node: string; since: string }[] = [];
  const revokedOwners: { id: string; actor: string; revokedAt: string }[] = [];
  for (const row of Object.values(model.connections.byId)) {
    const s = row.state;
    if (isTerminal(s.phase)) continue;
    const revokedAt = row.actor !== undefined ? revoked.get(row.actor) : undefined;
    if (revokedAt) revokedOwners.push({ id: row.id, actor: row.actor!, revokedAt });
    if (s.expirationTime) {
      const expires = ms(s.expirationTime);
      const period = Math.max(0, expires - ms(row.refreshedAt ?? row.requestedAt));
      if (now > expires && now > leaderSince + period) expiredConnections.push({ id: row.id, expirationTime: s.expirationTime });
    }
    if (s.phase === 'down' && s.down && now - ms(s.down.since) > cfg.downGraceMs) {
      downPastGrace.push({ id: row.id, node: s.down.node, since: s.down.since });
    }
  }
  return { expiredEndpoints, lostNodes, recoveredNodes, expiredConnections, downPastGrace, revokedOwners };
};

/** What a leader decides on a finding: one command under an id derived from the finding. */
export interface FindingAction {
  /** Derived from the finding: the same finding gives the same id. */
  readonly id: string;
  readonly stream: string;
  readonly command: AnyAggregateCommand;
  /** For the log: `finding` names it, the rest says what it is about. */
  readonly what: Record<string, unknown>;
}

/** A finding's action, its command checked against the stream's aggregate. */
export const findingAction = <S extends string>(id: string, stream: S, command: CommandOfStream<S>, what: Readonly<Record<string, unknown>>): FindingAction => ({ id, stream, command, what });

/** The decision for each finding, under an id derived from it (the same finding, the same id). */
export const healingActions = (f: Findings, at: string, cfg: HealingConfig): FindingAction[] => [
  ...f.expiredEndpoints.map((e) =>
    findingAction(`expire-endpoint:${e.name}:${e.expirationTime}`, streamName('endpoint', e.name), { type: 'ExpireEndpoint', name: e.name, cause: 'expired', at }, {
      finding: 'endpoint expired',
      endpoint: e.name,
      expirationTime: e.expirationTime,
    }),
  ),
  ...f.lostNodes.map((n) =>
    findingAction(`lose-node:${n.name}:${n.lastSeen}`, streamName('node', n.name), { type: 'LoseNode', name: n.name, lastSeen: n.lastSeen, timeoutMs: cfg.nodeTimeoutMs }, {
      finding: 'node lost',
      node: n.name,
      lastSeen: n.lastSeen,
    }),
  ),
  ...f.recoveredNodes.map((n) =>
    findingAction(`recover-node:${n.name}:${n.heardAt}`, streamName('node', n.name), { type: 'RecoverNode', name: n.name }, { finding: 'node heard again', node: n.name, heardAt: n.heardAt }),
  ),
  ...f.expiredConnections.map((c) =>
    findingAction(`expire-connection:${c.id}:${c.expirationTime}`, streamName('connection', c.id), { type: 'ExpireConnection', connectionId: c.id, at }, {
      finding: 'connection expired',
      connectionId: c.id,
      expirationTime: c.expirationTime,
    }),
  ),
  ...f.downPastGrace.map((c) =>
    findingAction(
      `close-down:${c.id}:${c.since}`,
      streamName('connection', c.id),
      { type: 'CloseConnection', connectionId: c.id, reason: `client node ${c.node} lost since ${c.since}, longer than the ${Math.round(cfg.downGraceMs / 1000)} s grace period` },
      { finding: 'down past grace', connectionId: c.id, node: c.node },
    ),
  ),
  ...f.revokedOwners.map((c) =>
    findingAction(
      `close-revoked:${c.id}:${c.revokedAt}`,
      streamName('connection', c.id),
      { type: 'CloseConnection', connectionId: c.id, reason: `its owner ${c.actor} was revoked at ${c.revokedAt}` },
      { finding: 'owner revoked', connectionId: c.id, actor: c.actor },
    ),
  ),
];

