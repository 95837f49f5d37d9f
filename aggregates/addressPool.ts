// AddressPool: point-to-point address pairs handed out from one endpoint's prefixes, one pair per
// family the connection gets (IPv4, IPv6 or both). One stream per pool, so two concurrent
// allocations conflict on the expected version and one retries: no address can be handed out
// twice. Every family is searched by arithmetic (the lowest free pair, jumping over exclusions),
// never by enumerating the prefix: an IPv6 /64 holds 2^63 pairs.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { deleteIn, getIn, setIn, type Buckets } from './buckets.ts';
import { reject, type Aggregate } from './domain.ts';
import { BITS, formatAddress, lastOf, parseAddress, parseCidr, prefixSize, type Family, type IpPrefix } from './ip.ts';

/** One family's pair of a connection, as events carry it. */
export interface AllocatedPair {
  /** The endpoint's prefix it comes from. */
  readonly prefix: string;
  /** Client-side address, a host prefix (/32 or /128). */
  readonly src: string;
  /** Endpoint-side address, a host prefix. */
  readonly dst: string;
}

/** A pair as the pool remembers it: pair `index` of its prefix is (base + 2 index, base + 2 index + 1). */
export interface HeldPair extends AllocatedPair {
  readonly family: Family;
  readonly index: bigint;
}

export interface Allocation {
  readonly pairs: readonly HeldPair[];
}

export type AddressPoolCommand =
  | {
      readonly type: 'AllocateAddresses';
      readonly pool: string;
      /** One prefix per family the connection gets a pair of. */
      readonly prefixes: readonly string[];
      /** Configured exclusions plus the nodes' own prefixes: never handed out. */
      readonly excludedPrefixes: readonly string[];
      readonly connectionId: string;
    }
  | { readonly type: 'ReleaseAddresses'; readonly pool: string; readonly connectionId: string };

/** Schema 2 (src/contracts/upcast.ts): schema 1 held one IPv4 pair and its index, and the release its index. */
export type AddressPoolEvent =
  | { readonly type: 'AddressesAllocated'; readonly connectionId: string; readonly pairs: readonly AllocatedPair[] }
  | { readonly type: 'AddressesReleased'; readonly connectionId: string };

export interface FamilyPool {
  readonly prefix: string;
  /** Pair index -> connection id (bucketed by runs of indexes: see ./buckets.ts). */
  readonly used: Buckets<string>;
  readonly count: number;
  /** No pair below this index is free: the search for a free pair starts here. */
  readonly lowestFree: bigint;
}

export interface AddressPoolState {
  readonly families: Readonly<Partial<Record<Family, FamilyPool>>>;
  /** Connection id -> its pairs (bucketed). */
  readonly allocations: Buckets<Allocation>;
  /** Connections holding pairs. */
  readonly count: number;
}

export const allocationOf = (s: AddressPoolState, connectionId: string): Allocation | undefined => getIn(s.allocations, connectionId);

/**
 * The pairs a prefix offers. IPv4 up to /30: the pairs holding the network and broadcast
 * addresses are skipped. IPv6 up to /126: pair 0 is skipped (the prefix's first address is the
 * subnet-router anycast address); there is no broadcast. A /31 or /127 is one point-to-point pair.
 */
const pairRange = (p: IpPrefix): { first: bigint; last: bigint } => {
  const pairs = prefixSize(p) / 2n;
  if (pairs < 1n) return { first: 0n, last: -1n };
  if (p.length >= BITS[p.family] - 1) return { first: 0n, last: pairs - 1n };
  return p.family === 'IPv4' ? { first: 1n, last: pairs - 2n } : { first: 1n, last: pairs - 1n };
};

const bigMax = (a: bigint, b: bigint): bigint => (a > b ? a : b);

/**
 * The lowest free pair at or above the hint: used pairs are stepped over one by one (the hint
 * keeps those few), an exclusion is jumped over whole.
 */
const findFreePair = (p: IpPrefix, pool: FamilyPool | undefined, excluded: readonly IpPrefix[]): bigint | undefined => {
  const { first, last } = pairRange(p);
  let i = bigMax(first, pool?.lowestFree ?? 0n);
  while (i <= last) {
    if (pool && getIn(pool.used, i) !== undefined) {
      i += 1n;
      continue;
    }
    const a = p.base + 2n * i;
    const hit = excluded.find((x) => x.base <= a + 1n && a <= lastOf(x));
    if (hit) {
      // The first pair wholly above the exclusion.
      i = (lastOf(hit) - p.base) / 2n + 1n;
      continue;
    }
    return i;
  }
  return undefined;
};

/** The pair's family and index, from the address it holds. */
const held = (pair: AllocatedPair): HeldPair | undefined => {
  const p = parseCidr(pair.prefix);
  const dst = parseAddress(pair.dst.split('/')[0]!);
  if (E.isLeft(p) || !dst || dst.family !== p.right.family) return undefined;
  return { ...pair, family: p.right.family, index: (dst.value - p.right.base) / 2n };
};

export const addressPool: Aggregate<AddressPoolState, AddressPoolCommand, AddressPoolEvent> = {
  name: 'pool',
  initialState: { families: {}, allocations: {}, count: 0 },
  decide(command, state) {
    switch (command.type) {
      case 'AllocateAddresses': {
        if (allocationOf(state, command.connectionId)) return E.right([]);
        if (command.prefixes.length === 0) return reject('invalid', `pool "${command.pool}": no prefix to allocate from`);
        const prefixes: IpPrefix[] = [];
        for (const text of command.prefixes) {
          const parsed = parseCidr(text);
          if (E.isLeft(parsed)) return reject('invalid', `pool "${command.pool}": ${parsed.left}`);
          if (prefixes.some((q) => q.family === parsed.right.family)) return reject('invalid', `pool "${command.pool}": two ${parsed.right.family} prefixes; one per family`);
          const pool = state.families[parsed.right.family];
          if (pool && pool.prefix !== text && pool.count > 0) return reject('conflict', `pool "${command.pool}" still has allocations from ${pool.prefix}`);
          prefixes.push(parsed.right);
        }
        const excluded: IpPrefix[] = [];
        for (const x of command.excludedPrefixes) {
          const parsed = parseCidr(x);
          if (E.isLeft(parsed)) return reject('invalid', `excluded prefix: ${parsed.left}`);
          excluded.push(parsed.right);
        }
        const pairs: AllocatedPair[] = [];
        for (const [k, p] of prefixes.entries()) {
          const text = command.prefixes[k]!;
          const pool = state.families[p.family];
          // A new prefix starts from its first pair.
          const index = findFreePair(p, pool?.prefix === text ? pool : undefined, excluded.filter((x) => x.family === p.family));
          if (index === undefined) {
            return reject('pool-exhausted', `no free address pair left in ${text} of endpoint "${command.pool}" (${pool?.prefix === text ? pool.count : 0} in use)`);
          }
          const dst = p.base + 2n * index;
          const host = (v: bigint) => `${formatAddress(p.family, v)}/${BITS[p.family]}`;
          pairs.push({ prefix: text, src: host(dst + 1n), dst: host(dst) });
        }
        return E.right([{ type: 'AddressesAllocated', connectionId: command.connectionId, pairs }]);
      }
      case 'ReleaseAddresses':
        if (!allocationOf(state, command.connectionId)) return E.right([]);
        return E.right([{ type: 'AddressesReleased', connectionId: command.connectionId }]);
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'AddressesAllocated': {
          const pairs = event.pairs.flatMap((pair) => {
            const h = held(pair);
            return h ? [h] : [];
          });
          for (const pair of pairs) {
            const prev = s.families[pair.family];
            const pool = prev && prev.prefix === pair.prefix ? prev : (s.families[pair.family] = { prefix: pair.prefix, used: {}, count: 0, lowestFree: 0n });
            setIn(pool.used, pair.index, event.connectionId);
            pool.count += 1;
            const parsed = parseCidr(pair.prefix);
            if (E.isRight(parsed)) pool.lowestFree = bigMax(pool.lowestFree, pairRange(parsed.right).first);
            // Amortised O(1): each used pair is stepped over once until it is released.
            while (getIn(pool.used, pool.lowestFree) !== undefined) pool.lowestFree += 1n;
          }
          setIn(s.allocations, event.connectionId, castDraft({ pairs }));
          s.count += 1;
          break;
        }
        case 'AddressesReleased': {
          const allocation = getIn(s.allocations, event.connectionId);
          if (!allocation) break;
          for (const pair of allocation.pairs) {
            const pool = s.families[pair.family];
            if (!pool || pool.prefix !== pair.prefix) continue;
            deleteIn(pool.used, pair.index);
            pool.count -= 1;
            if (pair.index < pool.lowestFree) pool.lowestFree = pair.index;
          }
          deleteIn(s.allocations, event.connectionId);
          s.count -= 1;
        }
      }
    }),
};
