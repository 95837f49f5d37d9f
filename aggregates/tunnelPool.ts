// TunnelPool: one id per cross-node connection, unique across the domain, from which the
// tunnel's wire parameters are derived (VXLAN VNI, WireGuard listen port). Unique ids mean two
// connections between the same nodes never share a VNI or a port, whatever their addresses.
// One stream for the domain: allocations are rare next to other appends, and a single stream
// makes uniqueness a matter of the expected version.
import * as E from 'fp-ts/lib/Either.js';
import { produce } from 'immer';
import { deleteIn, getIn, setIn, type Buckets } from './buckets.ts';
import { reject, type Aggregate } from './domain.ts';

/** Concurrent cross-node connections per domain; each id maps to one VNI and one UDP port. */
export const TUNNEL_IDS = 20000;
export const VXLAN_VNI_BASE = 10000;
/** VXLAN's IANA port; every tunnel uses it, told apart by VNI. */
export const VXLAN_PORT = 4789;
/** WireGuard listen port of tunnel id i is WIREGUARD_PORT_BASE + i, on both nodes. */
export const WIREGUARD_PORT_BASE = 40000;

export const TUNNEL_STREAM_ID = 'ids';

/**
 * Tunnel ids a domain hands out, [from, to] inclusive. Federated domains each take a disjoint
 * range (nsm up --tunnel-ids FROM-TO): a cross-domain tunnel gets its id from the endpoint's
 * domain, so on a node that holds tunnels of several domains no two share a VNI or a port.
 */
export interface TunnelIdRange {
  readonly from: number;
  readonly to: number;
}
export const DEFAULT_TUNNEL_RANGE: TunnelIdRange = { from: 0, to: TUNNEL_IDS - 1 };

const rangeSize = (r: TunnelIdRange): number => r.to - r.from + 1;
export const rangesOverlap = (a: TunnelIdRange, b: TunnelIdRange): boolean => a.from <= b.to && b.from <= a.to;
export const formatRange = (r: TunnelIdRange): string => `${r.from}-${r.to}`;

/** "FROM-TO" within the ids whose VNI and WireGuard port are valid; Left: why not. */
export const parseTunnelRange = (text: string): E.Either<string, TunnelIdRange> => {
  const m = /^(\d{1,5})-(\d{1,5})$/.exec(text.trim());
  if (!m) return E.left(`"${text}" is not a range like 1000-1999`);
  const from = Number(m[1]);
  const to = Number(m[2]);
  if (from > to) return E.left(`"${text}": the range is empty (${from} > ${to})`);
  if (to >= TUNNEL_IDS) return E.left(`"${text}": tunnel ids go up to ${TUNNEL_IDS - 1} (WireGuard port ${WIREGUARD_PORT_BASE + TUNNEL_IDS - 1})`);
  return E.right({ from, to });
};

export interface TunnelParameters {
  readonly id: number;
  readonly vni: number;
  readonly vxlanPort: number;
  readonly wireguardPort: number;
}

export const tunnelParameters = (id: number): TunnelParameters => ({
  id,
  vni: VXLAN_VNI_BASE + id,
  vxlanPort: VXLAN_PORT,
  wireguardPort: WIREGUARD_PORT_BASE + id,
});

export type TunnelPoolCommand =
  /** range: the domain's ids (default: all of them). */
  | { readonly type: 'AllocateTunnel'; readonly connectionId: string; readonly range?: TunnelIdRange }
  | { readonly type: 'ReleaseTunnel'; readonly connectionId: string };

export type TunnelPoolEvent =
  | { readonly type: 'TunnelAllocated'; readonly connectionId: string; readonly id: number }
  | { readonly type: 'TunnelReleased'; readonly connectionId: string; readonly id: number };

export interface TunnelPoolState {
  /** connection id -> tunnel id (bucketed: see ./buckets.ts) */
  readonly byConnection: Buckets<number>;
  /** tunnel id -> connection id (bucketed) */
  readonly used: Buckets<string>;
  /** Where the search for a free id starts: ids are reused only after the range wraps, so a
   * late packet for a closed tunnel does not land in a new connection straight away. */
  readonly cursor: number;
}

export const tunnelOf = (s: TunnelPoolState, connectionId: string): number | undefined => getIn(s.byConnection, connectionId);

export const tunnelPool: Aggregate<TunnelPoolState, TunnelPoolCommand, TunnelPoolEvent> = {
  name: 'tunnel',
  initialState: { byConnection: {}, used: {}, cursor: 0 },
  decide(command, state) {
    switch (command.type) {
      case 'AllocateTunnel': {
        if (tunnelOf(state, command.connectionId) !== undefined) return E.right([]);
        const range = command.range ?? DEFAULT_TUNNEL_RANGE;
        const size = rangeSize(range);
        // The cursor is where the last allocation left off; outside the range (the range changed) start at its beginning.
        const start = state.cursor >= range.from && state.cursor <= range.to ? state.cursor - range.from : 0;
        for (let k = 0; k < size; k++) {
          const id = range.from + ((start + k) % size);
          if (getIn(state.used, id) === undefined) return E.right([{ type: 'TunnelAllocated', connectionId: command.connectionId, id }]);
        }
        return reject('pool-exhausted', `all ${size} tunnel ids of the domain (${formatRange(range)}) are in use by cross-node connections`);
      }
      case 'ReleaseTunnel': {
        const id = tunnelOf(state, command.connectionId);
        if (id === undefined) return E.right([]);
        return E.right([{ type: 'TunnelReleased', connectionId: command.connectionId, id }]);
      }
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'TunnelAllocated':
          setIn(s.byConnection, event.connectionId, event.id);
          setIn(s.used, event.id, event.connectionId);
          // Past the range's end the next allocation starts over at the range's beginning.
          s.cursor = event.id + 1;
          break;
        case 'TunnelReleased':
          deleteIn(s.byConnection, event.connectionId);
          deleteIn(s.used, event.id);
      }
    }),
};
