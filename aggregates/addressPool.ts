// AddressPool: point-to-point address pairs handed out from one endpoint's prefix. One stream
// per pool, so two concurrent allocations conflict on the expected version and one retries:
// no address can be handed out twice.
import * as E from 'fp-ts/lib/Either.js';
import { produce } from 'immer';
import { reject, type Aggregate } from './domain.ts';
import { contains, formatIpv4, parseCidr, prefixSize, type Ipv4Prefix } from './ip.ts';

export interface Allocation {
  readonly index: number;
  /** Client-side address, CIDR /32. */
  readonly src: string;
  /** Endpoint-side address, CIDR /32. */
  readonly dst: string;
}

export type AddressPoolCommand =
  | {
      readonly type: 'AllocateAddresses';
      readonly pool: string;
      readonly prefix: string;
      /** Configured exclusions plus the client's own prefixes: never handed out. */
      readonly excludedPrefixes: readonly string[];
      readonly connectionId: string;
    }
  | { readonly type: 'ReleaseAddresses'; readonly pool: string; readonly connectionId: string };

export type AddressPoolEvent =
  | { readonly type: 'AddressesAllocated'; readonly connectionId: string; readonly prefix: string } & Allocation
  | { readonly type: 'AddressesReleased'; readonly connectionId: string; readonly index: number };

export interface AddressPoolState {
  readonly prefix?: string;
  readonly allocations: Readonly<Record<string, Allocation>>;
  /** Pair index -> connection id. */
  readonly used: Readonly<Record<number, string>>;
}

/** Pair i is (base+2i, base+2i+1); for prefixes up to /30 the pairs holding the network and broadcast addresses are skipped. */
const pairRange = (p: Ipv4Prefix): { first: number; last: number } => {
  const pairs = prefixSize(p) / 2;
  if (pairs < 1) return { first: 0, last: -1 };
  return p.length <= 30 ? { first: 1, last: pairs - 2 } : { first: 0, last: pairs - 1 };
};

const findFreePair = (
  p: Ipv4Prefix,
  used: Readonly<Record<number, string>>,
  excluded: readonly Ipv4Prefix[],
): number | undefined => {
  const { first, last } = pairRange(p);
  for (let i = first; i <= last; i++) {
    if (used[i] !== undefined) continue;
    const a = p.base + 2 * i;
    if (excluded.some((x) => contains(x, a) || contains(x, a + 1))) continue;
    return i;
  }
  return undefined;
};

export const addressPool: Aggregate<AddressPoolState, AddressPoolCommand, AddressPoolEvent> = {
  name: 'pool',
  initialState: { allocations: {}, used: {} },
  decide(command, state) {
    switch (command.type) {
      case 'AllocateAddresses': {
        if (state.allocations[command.connectionId]) return E.right([]);
        if (state.prefix !== undefined && state.prefix !== command.prefix && Object.keys(state.used).length > 0) {
          return reject('conflict', `pool "${command.pool}" still has allocations from ${state.prefix}`);
        }
        const prefix = parseCidr(command.prefix);
        if (E.isLeft(prefix)) return reject('invalid', `pool "${command.pool}": ${prefix.left}`);
        const excluded: Ipv4Prefix[] = [];
        for (const x of command.excludedPrefixes) {
          const parsed = parseCidr(x);
          if (E.isLeft(parsed)) return reject('invalid', `excluded prefix: ${parsed.left}`);
          excluded.push(parsed.right);
        }
        const index = findFreePair(prefix.right, state.used, excluded);
        if (index === undefined) {
          return reject(
            'pool-exhausted',
            `no free address pair left in ${command.prefix} of endpoint "${command.pool}" (${Object.keys(state.used).length} in use)`,
          );
        }
        const dst = prefix.right.base + 2 * index;
        return E.right([
          {
            type: 'AddressesAllocated',
            connectionId: command.connectionId,
            prefix: command.prefix,
            index,
            src: `${formatIpv4(dst + 1)}/32`,
            dst: `${formatIpv4(dst)}/32`,
          },
        ]);
      }
      case 'ReleaseAddresses': {
        const allocation = state.allocations[command.connectionId];
        if (!allocation) return E.right([]);
        return E.right([{ type: 'AddressesReleased', connectionId: command.connectionId, index: allocation.index }]);
      }
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'AddressesAllocated':
          s.prefix = event.prefix;
          s.allocations[event.connectionId] = { index: event.index, src: event.src, dst: event.dst };
          s.used[event.index] = event.connectionId;
          break;
        case 'AddressesReleased':
          delete s.allocations[event.connectionId];
          delete s.used[event.index];
      }
    }),
};
