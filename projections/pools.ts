// Address pools read model: which address pair each connection holds, per endpoint.
import type { Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface PoolsModel {
  /** endpoint -> connection id -> addresses */
  readonly pools: Readonly<Record<string, Readonly<Record<string, { readonly src: string; readonly dst: string }>>>>;
}

export const emptyPools: PoolsModel = { pools: {} };

export const applyPools = (m: Draft<PoolsModel>, e: EventEnvelope<DomainEvent>): void => {
  const d = e.data;
  switch (d.type) {
    case 'AddressesAllocated':
      (m.pools[e.stream.slice('pool.'.length)] ??= {})[d.connectionId] = { src: d.src, dst: d.dst };
      break;
    case 'AddressesReleased': {
      const pool = m.pools[e.stream.slice('pool.'.length)];
      if (pool) delete pool[d.connectionId];
    }
  }
};

export const allocatedAddresses = (m: PoolsModel): { endpoint: string; connectionId: string; src: string; dst: string }[] =>
  Object.entries(m.pools).flatMap(([endpoint, byConn]) =>
    Object.entries(byConn).map(([connectionId, a]) => ({ endpoint, connectionId, ...a })),
  );
