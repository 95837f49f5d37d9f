// Which peer domains have appeared, changed, gone silent or come back, from the heartbeats this
// replica heard (nsm.<peer>.fed.hb) and the peers read model. Pure, like healing/detector.ts;
// the leader's loop in ./runtime.ts turns findings into SeePeer and LosePeer commands.
import type { PeerFacts } from '../../aggregates/peer.ts';
import { jsonEqual } from '../../aggregates/domain.ts';
import { silence } from '../../aggregates/membership.ts';
import type { PeersModel } from '../../projections/peers.ts';
import { streamName } from '../contracts/envelope.ts';
import { findingAction, type FindingAction } from './healing.ts';

export interface Heard {
  readonly at: string;
  readonly facts: PeerFacts;
}

export interface PeerFindings {
  /** New, changed, or heard again after being lost. */
  readonly seen: readonly { readonly facts: PeerFacts; readonly reason: 'new' | 'changed' | 'back'; readonly at: string }[];
  readonly lost: readonly { readonly domain: string; readonly lastSeen: string }[];
}

export const findPeerChanges = (
  model: PeersModel,
  heard: ReadonlyMap<string, Heard>,
  now: number,
  /** When this replica began to lead: silence is only judged after a full timeout of listening. */
  leaderSince: number,
  peerTimeoutMs: number,
): PeerFindings => {
  const seen: { facts: PeerFacts; reason: 'new' | 'changed' | 'back'; at: string }[] = [];
  const lost: { domain: string; lastSeen: string }[] = [];
  for (const [domain, h] of heard) {
    const row = model.peers[domain];
    if (!row) seen.push({ facts: h.facts, reason: 'new', at: h.at });
    else if (row.status === 'reachable' && !jsonEqual(factsOf(row), h.facts)) seen.push({ facts: h.facts, reason: 'changed', at: h.at });
  }
  for (const row of Object.values(model.peers)) {
    const s = silence(row, heard.get(row.domain)?.at, now, leaderSince, peerTimeoutMs);
    if (s.back) seen.push({ facts: heard.get(row.domain)!.facts, reason: 'back', at: s.back });
    if (s.lost) lost.push({ domain: row.domain, lastSeen: s.lost });
  }
  return { seen, lost };
};

const factsOf = (row: PeerFacts): PeerFacts => ({
  domain: row.domain,
  ...(row.tunnelIds ? { tunnelIds: row.tunnelIds } : {}),
  ...(row.registryOnly ? { registryOnly: row.registryOnly } : {}),
});

/** The decision for each finding, under an id derived from it (the same finding, the same id). */
export const peerActions = (f: PeerFindings, peerTimeoutMs: number): FindingAction[] => [
  ...f.seen.map((s) => findingAction(`see-peer:${s.facts.domain}:${s.reason}:${s.at}`, streamName('peer', s.facts.domain), { type: 'SeePeer', facts: s.facts }, { finding: `peer ${s.reason}`, peer: s.facts.domain })),
  ...f.lost.map((l) =>
    findingAction(`lose-peer:${l.domain}:${l.lastSeen}`, streamName('peer', l.domain), { type: 'LosePeer', domain: l.domain, lastSeen: l.lastSeen, timeoutMs: peerTimeoutMs }, { finding: 'peer silent', peer: l.domain, lastSeen: l.lastSeen }),
  ),
];
