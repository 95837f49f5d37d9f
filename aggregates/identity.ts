// Who may act in the mesh, as the log remembers it. The registry of identities is a file the
// operator edits with `nsm init`, `nsm init --rotate` and `nsm revoke` (src/security/); the
// control plane reads it at start and whenever it changes, and records here what changed: an
// identity added, its key rotated, it revoked, reinstated or removed. One stream (identities.identities: `nsm history identities`), so an
// auditor reads every change of who may act, with when and by which key, next to everything else.
import * as E from 'fp-ts/lib/Either.js';
import { produce } from 'immer';
import type { Aggregate } from './domain.ts';

export const IDENTITIES_STREAM_ID = 'identities';

/** An identity as the registry file says it is now (public data only). */
export interface ObservedIdentity {
  readonly actor: string;
  readonly role: string;
  readonly publicKey: string;
  /** When the key it replaced was retired, and until when that key may still log in (from the file). */
  readonly retiredKeys?: readonly { readonly publicKey: string; readonly retiredAt: string; readonly loginUntil: string }[];
  readonly revokedAt?: string;
}

export interface KnownIdentity {
  readonly role: string;
  readonly publicKey: string;
  readonly revokedAt?: string;
}

export interface IdentitiesState {
  readonly identities: Readonly<Record<string, KnownIdentity>>;
}

/** The registry file as the control plane read it: every identity in it. */
export type IdentitiesCommand = { readonly type: 'ObserveRegistry'; readonly identities: readonly ObservedIdentity[] };

export type IdentitiesEvent =
  | { readonly type: 'IdentityAdded'; readonly actor: string; readonly role: string; readonly publicKey: string; readonly revokedAt?: string }
  | { readonly type: 'IdentityKeyRotated'; readonly actor: string; readonly publicKey: string; readonly previousKey: string; readonly retiredAt?: string; readonly loginUntil?: string }
  | { readonly type: 'IdentityRevoked'; readonly actor: string; readonly revokedAt: string }
  /** Given a new key after a revocation (`nsm init --rotate` of a revoked identity). */
  | { readonly type: 'IdentityReinstated'; readonly actor: string }
  | { readonly type: 'IdentityRemoved'; readonly actor: string };

export const emptyIdentities: IdentitiesState = { identities: {} };

/** The events that bring the log's view of the registry to what the file says. */
const changes = (state: IdentitiesState, observed: readonly ObservedIdentity[]): IdentitiesEvent[] => {
  const out: IdentitiesEvent[] = [];
  const seen = new Set<string>();
  for (const id of observed) {
    seen.add(id.actor);
    const known = state.identities[id.actor];
    if (!known || known.role !== id.role) {
      if (known) out.push({ type: 'IdentityRemoved', actor: id.actor });
      out.push({ type: 'IdentityAdded', actor: id.actor, role: id.role, publicKey: id.publicKey, ...(id.revokedAt ? { revokedAt: id.revokedAt } : {}) });
      continue;
    }
    if (known.publicKey !== id.publicKey) {
      const retired = id.retiredKeys?.find((k) => k.publicKey === known.publicKey);
      out.push({ type: 'IdentityKeyRotated', actor: id.actor, publicKey: id.publicKey, previousKey: known.publicKey, ...(retired ? { retiredAt: retired.retiredAt, loginUntil: retired.loginUntil } : {}) });
    }
    if (id.revokedAt && !known.revokedAt) out.push({ type: 'IdentityRevoked', actor: id.actor, revokedAt: id.revokedAt });
    if (!id.revokedAt && known.revokedAt) out.push({ type: 'IdentityReinstated', actor: id.actor });
  }
  for (const actor of Object.keys(state.identities).sort()) if (!seen.has(actor)) out.push({ type: 'IdentityRemoved', actor });
  return out;
};

export const identities: Aggregate<IdentitiesState, IdentitiesCommand, IdentitiesEvent> = {
  name: 'identities',
  initialState: emptyIdentities,
  decide: (command, state) => E.right(changes(state, command.identities)),
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'IdentityAdded':
          s.identities[event.actor] = { role: event.role, publicKey: event.publicKey, ...(event.revokedAt ? { revokedAt: event.revokedAt } : {}) };
          return;
        case 'IdentityKeyRotated': {
          const known = s.identities[event.actor];
          if (known) known.publicKey = event.publicKey;
          return;
        }
        case 'IdentityRevoked': {
          const known = s.identities[event.actor];
          if (known) known.revokedAt = event.revokedAt;
          return;
        }
        case 'IdentityReinstated': {
          const known = s.identities[event.actor];
          if (known) delete known.revokedAt;
          return;
        }
        case 'IdentityRemoved':
          delete s.identities[event.actor];
      }
    }),
};
