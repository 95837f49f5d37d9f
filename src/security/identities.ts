// Who may act in the mesh: every identity's public key and role, as `nsm init` writes them to
// identities.json. Public data only: the control plane loads it to know each actor's role, the
// agents to check path token signatures. The NATS permissions pin each identity to its own actor
// token in the subjects, so the actor named by a subject is the identity that sent it.
import { readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { NAME_HINT, NAME_PATTERN } from '../../aggregates/domain.ts';
import { DOMAIN_HINT, DOMAIN_PATTERN } from '../contracts/subjects.ts';
import * as D from '../contracts/decode.ts';
import { isUserPublicKey } from './keys.ts';

export const ROLES = ['control-plane', 'operator', 'agent', 'client', 'auditor'] as const;
export type Role = (typeof ROLES)[number];

export interface Identity {
  /** The identity's name: a node name for an agent, else a user or workload name. */
  readonly name: string;
  readonly role: Role;
  /** Its token in subjects: "agent:<node>" for agents, the name otherwise. */
  readonly actor: string;
  /** nkey user public key ("U..."): the current key. */
  readonly publicKey: string;
  /** Keys replaced by `nsm init --rotate` (./keyManagement.ts), newest first. */
  readonly retiredKeys?: readonly RetiredKey[];
  /** Set by `nsm revoke`: from then on no key of this identity is accepted, by nats-server or by the mesh. */
  readonly revokedAt?: string;
}

/**
 * A key that was rotated out. nats-server accepts logins with it until `loginUntil` (the grace
 * period, so its holder can switch to the new key); the mesh accepts tokens it signed before
 * `retiredAt` for as long as each token lives (a path the old control-plane key signed stays
 * valid until it expires), and nothing it signs after.
 */
export interface RetiredKey {
  readonly publicKey: string;
  readonly retiredAt: string;
  readonly loginUntil: string;
  /** The identity was revoked while this key was its own: nothing it signed counts any more, even after the identity is given a new key. */
  readonly revokedAt?: string;
}

/** What the registry knows of a key: whose it is, and whether it is retired (and since when). */
export interface KeyOwner {
  readonly identity: Identity;
  readonly retired?: RetiredKey;
}

export interface IdentityRegistry {
  readonly domain: string;
  readonly identities: readonly Identity[];
  byActor(actor: string): Identity | undefined;
  /** The identity of a key, current or retired (revoked identities included: the caller refuses them with the reason). */
  byKey(publicKey: string): Identity | undefined;
  keyOwner(publicKey: string): KeyOwner | undefined;
}

/**
 * Why a token signed by `publicKey` and issued at `iatSeconds` is not to be accepted, or
 * undefined: the identity is revoked, or the key was retired before the token was issued.
 */
export const keyProblem = (registry: IdentityRegistry, publicKey: string, iatSeconds: number): string | undefined => {
  const owner = registry.keyOwner(publicKey);
  if (!owner) return `signed by an unknown key ${publicKey.slice(0, 12)}...`;
  if (owner.identity.revokedAt) return `signed by ${owner.identity.actor}, revoked at ${owner.identity.revokedAt}`;
  if (owner.retired?.revokedAt) return `signed with a key of ${owner.identity.actor} that was revoked at ${owner.retired.revokedAt}`;
  if (owner.retired && iatSeconds * 1000 > Date.parse(owner.retired.retiredAt)) return `signed with a key of ${owner.identity.actor} retired at ${owner.retired.retiredAt}, after it was retired`;
  return undefined;
};

/** The keys nats-server should accept for an identity at `now`: none when revoked; the current one and retired ones in their grace period. */
export const loginKeys = (id: Identity, now: Date): string[] =>
  id.revokedAt ? [] : [id.publicKey, ...(id.retiredKeys ?? []).filter((k) => !k.revokedAt && Date.parse(k.loginUntil) > now.getTime()).map((k) => k.publicKey)];

/** When the set of login keys next changes (a grace period ends), if ever. */
export const nextLoginChange = (identities: readonly Identity[], now: Date): Date | undefined => {
  const ends = identities.flatMap((id) => (id.revokedAt ? [] : (id.retiredKeys ?? []).filter((k) => !k.revokedAt).map((k) => Date.parse(k.loginUntil)))).filter((t) => t > now.getTime());
  return ends.length > 0 ? new Date(Math.min(...ends)) : undefined;
};

/** Retired keys kept per identity (the oldest are dropped): each is kept for the tokens it signed before it was retired. */
export const MAX_RETIRED_KEYS = 64;

export const CONTROL_PLANE_ACTOR = 'control-plane';
/** Each identity's private reply inboxes: nobody else may subscribe to them. */
export const inboxPrefixFor = (actor: string): string => `_INBOX.${actor}`;
export const actorFor = (role: Role, name: string): string => (role === 'agent' ? `agent:${name}` : role === 'control-plane' ? CONTROL_PLANE_ACTOR : name);

const publicKey = D.refine(D.string({ min: 56, max: 56 }), (k) => (isUserPublicKey(k) ? undefined : 'not an nkey user public key'));
const isoTime = D.refine(D.string({ min: 1, max: 40 }), (t) => (Number.isNaN(Date.parse(t)) ? 'not an ISO time' : undefined));
const identity = D.refine(
  D.object(
    {
      name: D.string({ min: 1, max: 63, pattern: NAME_PATTERN, patternHint: NAME_HINT }),
      role: D.literal(...ROLES),
      actor: D.string({ min: 1, max: 128 }),
      publicKey,
    },
    {
      retiredKeys: D.array(D.object({ publicKey, retiredAt: isoTime, loginUntil: isoTime }, { revokedAt: isoTime }), { max: MAX_RETIRED_KEYS }),
      revokedAt: isoTime,
    },
  ),
  (i) => (i.actor === actorFor(i.role, i.name) ? undefined : `actor must be "${actorFor(i.role, i.name)}" for a ${i.role} named "${i.name}"`),
);

const registryFile = D.object({
  version: D.integer({ min: 1, max: 1 }),
  domain: D.string({ min: 1, max: 32, pattern: DOMAIN_PATTERN, patternHint: DOMAIN_HINT }),
  identities: D.array(identity, { min: 1, max: 10000 }),
});

export const registryOf = (domain: string, identities: readonly Identity[]): E.Either<string, IdentityRegistry> => {
  const byActor = new Map<string, Identity>();
  const byKey = new Map<string, KeyOwner>();
  for (const i of identities) {
    if (byActor.has(i.actor)) return E.left(`two identities act as "${i.actor}"`);
    byActor.set(i.actor, i);
    for (const [key, retired] of [[i.publicKey, undefined] as const, ...(i.retiredKeys ?? []).map((k) => [k.publicKey, k] as const)]) {
      const other = byKey.get(key);
      if (other) return E.left(`identities "${other.identity.actor}" and "${i.actor}" share a public key`);
      byKey.set(key, { identity: i, ...(retired ? { retired } : {}) });
    }
  }
  return E.right({ domain, identities, byActor: (a) => byActor.get(a), byKey: (k) => byKey.get(k)?.identity, keyOwner: (k) => byKey.get(k) });
};

export const decodeRegistry = (input: unknown): E.Either<string, IdentityRegistry> => {
  const r = registryFile(input, '');
  if (E.isLeft(r)) return E.left(D.formatDecodeError(r.left));
  return registryOf(r.right.domain, r.right.identities);
};

export const serializeRegistry = (domain: string, identities: readonly Identity[]): string =>
  JSON.stringify({ version: 1, domain, identities }, null, 2) + '\n';

export const loadRegistry = (file: string): E.Either<string, IdentityRegistry> => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return E.left(`cannot read the identity registry ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  const parsed = D.parseJson(text, 16 * 1024 * 1024);
  if (E.isLeft(parsed)) return E.left(`${file}: ${parsed.left.message}`);
  const r = decodeRegistry(parsed.right);
  return E.isLeft(r) ? E.left(`${file}: ${r.left}`) : r;
};

/** What an identity may publish and subscribe to, as nats-server enforces it (./permissions.ts, ./leaf.ts). */
export interface Permissions {
  readonly publish: { readonly allow: readonly string[]; readonly deny?: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[]; readonly deny?: readonly string[] };
}
