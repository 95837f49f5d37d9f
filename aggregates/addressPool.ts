// AddressPool: point-to-point address pairs handed out from one endpoint's prefix. One stream
// per pool, so two concurrent allocations conflict on the expected version and one retries:
// no address can be handed out twice.
import * as E from 'fp-ts/lib/Either.js';
import { produce } from 'immer';
import { deleteIn, getIn, setIn, type Buckets } from './buckets.ts';
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
  /** Connection id -> its pair (bucketed: see ./buckets.ts). */
  readonly allocations: Buckets<Allocation>;
  /** Pair index -> connection id (bucketed). */
  readonly used: Buckets<string>;
  readonly count: number;
  /** No pair below this index is free: the search for a free pair starts here. */
  readonly lowestFree: number;
}

export const allocationOf = (s: AddressPoolState, connectionId: string): Allocation | undefined => getIn(s.allocations, connectionId);

/** Pair i is (base+2i, base+2i+1); for prefixes up to /30 the pairs holding the network and broadcast addresses are skipped. */
const pairRange = (p: Ipv4Prefix): { first: number; last: number } => {
  const pairs = prefixSize(p) / 2;
  if (pairs < 1) return { first: 0, last: -1 };
  return p.length <= 30 ? { first: 1, last: pairs - 2 } : { first: 0, last: pairs - 1 };
};

const findFreePair = (
  p: Ipv4Prefix,
  state: AddressPoolState,
  excluded: readonly Ipv4Prefix[],
): number | undefined => {
  const { first, last } = pairRange(p);
  for (let i = Math.max(first, state.lowestFree); i <= last; i++) {
    if (getIn(state.used, i) !== undefined) continue;
    const a = p.base + 2 * i;
    if (excluded.some((x) => contains(x, a) || contains(x, a + 1))) continue;
    return i;
  }
  return undefined;
};

const firstPair = (prefix: string): number => {
  const p = parseCidr(prefix);
  return E.isRight(p) ? pairRange(p.right).first : 0;
};

export const addressPool: Aggregate<AddressPoolState, AddressPoolCommand, AddressPoolEvent> = {
  name: 'pool',
  initialState: { allocations: {}, used: {}, count: 0, lowestFree: 0 },
  decide(command, state) {
    switch (command.type) {
      case 'AllocateAddresses': {
        if (allocationOf(state, command.connectionId)) return E.right([]);
        if (state.prefix !== undefined && state.prefix !== command.prefix && state.count > 0) {
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
        // A new prefix starts from its first pair.
        const index = findFreePair(prefix.right, state.prefix === command.prefix ? state : { ...state, lowestFree: 0 }, excluded);
        if (index === undefined) {
          return reject(
            'pool-exhausted',
            `no free address pair left in ${command.prefix} of endpoint "${command.pool}" (${state.count} in use)`,
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
        const allocation = allocationOf(state, command.connectionId);
        if (!allocation) return E.right([]);
        return E.right([{ type: 'AddressesReleased', connectionId: command.connectionId, index: allocation.index }]);
      }
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'AddressesAllocated':
          if (s.prefix !== event.prefix) s.lowestFree = 0;
          s.prefix = event.prefix;
          setIn(s.allocations, event.connectionId, { index: event.index, src: event.src, dst: event.dst });
          setIn(s.used, event.index, event.connectionId);
          s.count += 1;
          s.lowestFree = Math.max(s.lowestFree, firstPair(event.prefix));
          // Amortised O(1): each used pair is stepped over once until it is released.
          while (getIn(s.used, s.lowestFree) !== undefined) s.lowestFree += 1;
          break;
        case 'AddressesReleased':
          deleteIn(s.allocations, event.connectionId);
          deleteIn(s.used, event.index);
          s.count -= 1;
          if (event.index < s.lowestFree) s.lowestFree = event.index;
      }
    }),
};
