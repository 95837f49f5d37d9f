// Registry read model: network services and endpoints as they are now.
import { castDraft, type Draft } from 'immer';
import type { Labels, Match, OfferedDns, Payload } from '../aggregates/domain.ts';
import type { Family } from '../aggregates/ip.ts';
import type { EndpointSpec } from '../aggregates/endpoint.ts';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface ServiceRow {
  readonly name: string;
  readonly payload: Payload;
  readonly matches: readonly Match[];
  /** Absent: whichever families its endpoints offer. */
  readonly ipFamilies?: readonly Family[];
  /** DNS its connections get (after their endpoint's). */
  readonly dns?: OfferedDns;
  readonly registeredAt: string;
  readonly updatedAt: string;
}

export interface EndpointRow extends EndpointSpec {
  /** Absent for a static registration. */
  readonly expirationTime?: string;
  /** Time of the last registration or refresh: expirationTime minus this is the endpoint's refresh period. */
  readonly refreshedAt: string;
  readonly registeredAt: string;
  readonly updatedAt: string;
}

export interface RegistryModel {
  readonly services: Readonly<Record<string, ServiceRow>>;
  readonly endpoints: Readonly<Record<string, EndpointRow>>;
  /** Bumped by every change of a service's rules or of the set of endpoints (not by refreshes):
   * what is derived from the registry (selection candidates) can be cached until it moves. */
  readonly revision: number;
}

export const emptyRegistry: RegistryModel = { services: {}, endpoints: {}, revision: 0 };

export const applyRegistry = (m: Draft<RegistryModel>, e: EventEnvelope<DomainEvent>): void => {
  const d = e.data;
  switch (d.type) {
    case 'NetworkServiceRegistered':
    case 'NetworkServiceUpdated': {
      const prev = m.services[d.spec.name];
      m.services[d.spec.name] = castDraft({ ...d.spec, registeredAt: prev?.registeredAt ?? e.time, updatedAt: e.time });
      m.revision += 1;
      break;
    }
    case 'NetworkServiceUnregistered':
      delete m.services[d.name];
      m.revision += 1;
      break;
    case 'EndpointRegistered':
    case 'EndpointUpdated': {
      const prev = m.endpoints[d.spec.name];
      m.endpoints[d.spec.name] = castDraft({
        ...d.spec,
        ...(d.expirationTime ? { expirationTime: d.expirationTime } : {}),
        refreshedAt: e.time,
        registeredAt: prev?.registeredAt ?? e.time,
        updatedAt: e.time,
      });
      m.revision += 1;
      break;
    }
    case 'EndpointRefreshed': {
      const row = m.endpoints[e.stream.slice('endpoint.'.length)];
      if (row) {
        if (d.expirationTime) row.expirationTime = d.expirationTime;
        else delete row.expirationTime;
        row.refreshedAt = e.time;
        row.updatedAt = e.time;
      }
      break;
    }
    case 'EndpointUnregistered':
    case 'EndpointExpired':
      delete m.endpoints[d.name];
      m.revision += 1;
  }
};

export const endpointsOfService = (m: RegistryModel, service: string): EndpointRow[] =>
  Object.values(m.endpoints).filter((ep) => ep.networkServiceNames.includes(service));

export const labelsFor = (ep: EndpointRow, service: string): Labels => ep.networkServiceLabels[service]?.labels ?? {};
