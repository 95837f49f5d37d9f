// Address pools read model: which address pairs (one per family) each connection holds, per endpoint.
import type { Draft } from 'immer';
import type { AllocatedPair } from '../aggregates/addressPool.ts';
import type { DomainEvent } from '../aggregates/index.ts';
import { familyOf, type Family } from '../aggregates/ip.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface PoolsModel {
  /** endpoint -> connection id -> its pairs */
  readonly pools: Readonly<Record<string, Readonly<Record<string, readonly AllocatedPair[]>>>>;
}

export const emptyPools: PoolsModel = { pools: {} };

export const applyPools = (m: Draft<PoolsModel>, e: EventEnvelope<DomainEvent>): void => {
  const d = e.data;
  switch (d.type) {
    case 'AddressesAllocated':
      (m.pools[e.stream.slice('pool.'.length)] ??= {})[d.connectionId] = d.pairs.map((p) => ({ ...p }));
      break;
    case 'AddressesReleased': {
      const pool = m.pools[e.stream.slice('pool.'.length)];
      if (pool) delete pool[d.connectionId];
    }
  }
};

/** One row per pair: a dual-stack connection has an IPv4 and an IPv6 row. */
export const allocatedAddresses = (m: PoolsModel): { endpoint: string; connectionId: string; family: Family | undefined; src: string; dst: string }[] =>
  Object.entries(m.pools).flatMap(([endpoint, byConn]) =>
    Object.entries(byConn).flatMap(([connectionId, pairs]) => pairs.map((p) => ({ endpoint, connectionId, family: familyOf(p.dst), src: p.src, dst: p.dst }))),
  );
