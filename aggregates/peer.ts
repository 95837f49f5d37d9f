// Peer: another domain of the federation, as this domain's control plane hears it (its
// heartbeat crosses the leafnode link). Lost when silent for the peer timeout: the connections
// whose endpoint is there go down; recovered when heard again.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import type { Aggregate } from './domain.ts';
import { hearing, losing } from './membership.ts';
import type { TunnelIdRange } from './tunnelPool.ts';

export interface PeerFacts {
  readonly domain: string;
  /** Its tunnel ids: must not overlap this domain's. */
  readonly tunnelIds?: TunnelIdRange;
  /** A registry-only domain (a floating registry): no nodes, it redirects requests. */
  readonly registryOnly?: boolean;
}

export type PeerCommand =
  | { readonly type: 'SeePeer'; readonly facts: PeerFacts }
  | { readonly type: 'LosePeer'; readonly domain: string; readonly lastSeen: string; readonly timeoutMs: number };

export type PeerEvent =
  | { readonly type: 'PeerSeen'; readonly facts: PeerFacts }
  | { readonly type: 'PeerUpdated'; readonly facts: PeerFacts }
  | { readonly type: 'PeerLost'; readonly domain: string; readonly lastSeen: string; readonly timeoutMs: number }
  | { readonly type: 'PeerRecovered'; readonly domain: string };

export interface PeerState {
  readonly known: boolean;
  readonly lost: boolean;
  readonly facts?: PeerFacts;
}

export const peer: Aggregate<PeerState, PeerCommand, PeerEvent> = {
  name: 'peer',
  initialState: { known: false, lost: false },
  decide(command, state) {
    switch (command.type) {
      case 'SeePeer': {
        const h = hearing(state, command.facts);
        if (h.first) return E.right([{ type: 'PeerSeen', facts: command.facts }]);
        return E.right([...(h.back ? [{ type: 'PeerRecovered', domain: command.facts.domain } as const] : []), ...(h.changed ? [{ type: 'PeerUpdated', facts: command.facts } as const] : [])]);
      }
      case 'LosePeer':
        if (!losing(state)) return E.right([]);
        return E.right([{ type: 'PeerLost', domain: command.domain, lastSeen: command.lastSeen, timeoutMs: command.timeoutMs }]);
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'PeerSeen':
        case 'PeerUpdated':
          s.known = true;
          s.facts = castDraft(event.facts);
          break;
        case 'PeerLost':
          s.lost = true;
          break;
        case 'PeerRecovered':
          s.lost = false;
      }
    }),
};
