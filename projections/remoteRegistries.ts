// Other domains' registries, folded from this domain's read-only copy of their endpoint events
// (stream NSM_<DOMAIN>_REMOTE, kept by JetStream sourcing across the leafnode link). Not part of
// this domain's log: it answers `nsm ls endpoints --domain D` and `--all-domains`.
import type { Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope, StoredCommit } from '../src/contracts/envelope.ts';
import { applyRegistry, emptyRegistry, type EndpointRow, type RegistryModel } from './registry.ts';

export interface RemoteRegistries {
  readonly byDomain: Readonly<Record<string, RegistryModel>>;
  /** Messages folded from the copy, for "caught up" checks. */
  readonly folded: number;
}

export const emptyRemoteRegistries = (): Draft<RemoteRegistries> => ({ byDomain: {}, folded: 0 });

/** "nsm.<domain>.evt.endpoint.<name>" -> domain */
export const domainOfEventSubject = (subject: string): string | undefined => {
  const m = /^nsm\.([a-z0-9-]+)\.evt\./.exec(subject);
  return m ? m[1] : undefined;
};

/** Folds one sourced commit in place (the copy's one reader owns the model). */
export const applyRemoteCommit = (m: Draft<RemoteRegistries>, domain: string, commit: Pick<StoredCommit, 'events'>): void => {
  const reg = (m.byDomain[domain] ??= structuredClone(emptyRegistry) as Draft<RegistryModel>);
  for (const e of commit.events as readonly EventEnvelope<DomainEvent>[]) applyRegistry(reg, e);
  m.folded += 1;
};

export interface RemoteEndpointRow extends EndpointRow {
  /** The domain whose registry holds it. */
  readonly registry: string;
  /** Its home domain: the registry's own, or for a floating registry's entry, where it runs. */
  readonly domain: string;
  /** Its registration lapsed by the copy's account (its domain may be unreachable). */
  readonly stale: boolean;
}

export const remoteEndpoints = (m: RemoteRegistries, now: number, domain?: string): RemoteEndpointRow[] =>
  Object.entries(m.byDomain)
    .filter(([d]) => domain === undefined || d === domain)
    .flatMap(([d, reg]) =>
      Object.values(reg.endpoints).map((ep) => ({ ...ep, registry: d, domain: ep.domain ?? d, stale: ep.expirationTime !== undefined && Date.parse(ep.expirationTime) < now })),
    );
