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
  | { readonly type: 'AllocateTunnel'; readonly connectionId: string }
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
        for (let k = 0; k < TUNNEL_IDS; k++) {
          const id = (state.cursor + k) % TUNNEL_IDS;
          if (getIn(state.used, id) === undefined) return E.right([{ type: 'TunnelAllocated', connectionId: command.connectionId, id }]);
        }
        return reject('pool-exhausted', `all ${TUNNEL_IDS} tunnel ids of the domain are in use by cross-node connections`);
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
          s.cursor = (event.id + 1) % TUNNEL_IDS;
          break;
        case 'TunnelReleased':
          deleteIn(s.byConnection, event.connectionId);
          deleteIn(s.used, event.id);
      }
    }),
};
