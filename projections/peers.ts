// Peers read model: the other domains this one has heard, and whether they are reachable now.
import { castDraft, type Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { PeerFacts } from '../aggregates/peer.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface PeerRow extends PeerFacts {
  readonly status: 'reachable' | 'lost';
  readonly firstSeen: string;
  readonly updatedAt: string;
  readonly lostAt?: string;
}

export interface PeersModel {
  readonly peers: Readonly<Record<string, PeerRow>>;
}

export const emptyPeers: PeersModel = { peers: {} };

export const applyPeers = (m: Draft<PeersModel>, e: EventEnvelope<DomainEvent>): void => {
  const d = e.data;
  switch (d.type) {
    case 'PeerSeen':
    case 'PeerUpdated': {
      const prev = m.peers[d.facts.domain];
      m.peers[d.facts.domain] = castDraft({
        ...d.facts,
        status: prev?.status ?? 'reachable',
        firstSeen: prev?.firstSeen ?? e.time,
        updatedAt: e.time,
        ...(prev?.lostAt ? { lostAt: prev.lostAt } : {}),
      });
      break;
    }
    case 'PeerLost': {
      const row = m.peers[d.domain];
      if (row) {
        row.status = 'lost';
        row.lostAt = e.time;
        row.updatedAt = e.time;
      }
      break;
    }
    case 'PeerRecovered': {
      const row = m.peers[d.domain];
      if (row) {
        row.status = 'reachable';
        delete row.lostAt;
        row.updatedAt = e.time;
      }
    }
  }
};
