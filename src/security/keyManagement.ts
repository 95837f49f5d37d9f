// Key rotation and revocation (docs/security.md, "Rotating and revoking keys"), on the deployment
// directory `nsm init` made:
//
//   rotate   a new key in the identity's credentials file; the old key moves to its retiredKeys:
//            nats-server accepts logins with it until the grace period ends (so the holder can
//            switch), and the mesh accepts the tokens it signed before it was retired for as long
//            as each lives, and nothing it signs after.
//   revoke   no key of the identity is accepted any more, by nats-server (its connections are
//            closed at the reload) or by the mesh (its commands, queries and tokens are refused);
//            its credentials file is removed. Rotating a revoked identity gives it a new key and
//            reinstates it; its old keys stay refused.
//
// Both rewrite identities.json and nats-auth.conf; the caller reloads nats-server
// (infra/natsServer.ts reloadServerOn). Running control planes and agents follow identities.json
// and their own credentials file (./live.ts).
import { existsSync, readFileSync, renameSync, rmSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import { writeCredentials, readCredentials } from './credentials.ts';
import { loadRegistry, MAX_RETIRED_KEYS, registryOf, serializeRegistry, type Identity, type RetiredKey } from './identities.ts';
import { deploymentPaths, writeFileAtomically, writeNatsConfig } from './init.ts';
import { createUserKey } from './keys.ts';

/** Default grace period of a rotated-out key: long enough to restart the process that holds it. */
export const DEFAULT_ROTATION_GRACE_MS = 24 * 3600 * 1000;

export interface Rotated {
  readonly identity: Identity;
  readonly previousKey: string;
  readonly credsFile: string;
  /** Until when nats-server accepts logins with the previous key. */
  readonly loginUntil: string;
  /** The identity had been revoked: the new key reinstates it. */
  readonly reinstated: boolean;
}

export interface Revoked {
  readonly identity: Identity;
  /** The credentials file that was removed, if there was one. */
  readonly removedCreds?: string;
}

const findIdentity = (identities: readonly Identity[], actor: string, file: string): E.Either<string, Identity> => {
  const id = identities.find((i) => i.actor === actor);
  if (id) return E.right(id);
  const byName = identities.filter((i) => i.name === actor);
  const hint = byName.length > 0 ? ` (did you mean ${byName.map((i) => i.actor).join(' or ')}?)` : `; its identities are: ${identities.map((i) => i.actor).join(', ')}`;
  return E.left(`${file} has no identity "${actor}"${hint}`);
};

const saveRegistry = (dir: string, domain: string, identities: readonly Identity[]): E.Either<string, void> => {
  const reg = registryOf(domain, identities);
  if (E.isLeft(reg)) return reg;
  writeFileAtomically(deploymentPaths(dir).identities, serializeRegistry(domain, identities));
  return writeNatsConfig(dir);
};

/** The deployment's paths, its identity registry and the identity named `actor` in it. */
const loadIdentity = (dir: string, actor: string) => {
  const p = deploymentPaths(dir);
  return pipe(
    loadRegistry(p.identities),
    E.chain((reg) => pipe(findIdentity(reg.identities, actor, p.identities), E.map((id) => ({ p, reg, id })))),
  );
};

/** Gives `actor` a new key (see the top of this file). `graceMs` 0: the old key may not log in at all from now. */
export const rotateKey = (o: { dir: string; actor: string; graceMs: number; now: Date }): E.Either<string, Rotated> => {
  if (!Number.isFinite(o.graceMs) || o.graceMs < 0) return E.left('the grace period must be 0 or more');
  const loaded = loadIdentity(o.dir, o.actor);
  if (E.isLeft(loaded)) return loaded;
  const { p, reg, id } = loaded.right;
  const credsFile = p.creds(id.name, id.role);
  // The credentials file carries the deployment's CA along with the seed (a revoked identity's file is gone).
  const old = existsSync(credsFile) ? readCredentials(credsFile) : undefined;
  if (old && E.isLeft(old)) return old;
  const ca = existsSync(p.caFile) ? readFileSync(p.caFile, 'utf8') : old?.right.ca;
  const at = o.now.toISOString();
  const reinstated = id.revokedAt !== undefined;
  const loginUntil = reinstated ? id.revokedAt! : new Date(o.now.getTime() + o.graceMs).toISOString();
  const previous: RetiredKey = reinstated
    ? { publicKey: id.publicKey, retiredAt: id.revokedAt!, loginUntil, revokedAt: id.revokedAt! }
    : { publicKey: id.publicKey, retiredAt: at, loginUntil };
  // Keys that were the identity's while it was revoked stay refused after it is reinstated.
  const earlier = (id.retiredKeys ?? []).map((k) => (reinstated && !k.revokedAt ? { ...k, revokedAt: id.revokedAt! } : k));
  const key = createUserKey();
  const { revokedAt: _dropped, ...rest } = id;
  const next: Identity = { ...rest, publicKey: key.publicKey, retiredKeys: [previous, ...earlier].slice(0, MAX_RETIRED_KEYS) };
  const identities = reg.identities.map((i) => (i.actor === id.actor ? next : i));
  // The new credentials are made first, the registry that names their key next, and only then do
  // they replace the old file: a crash in between leaves the old key working (in its grace period).
  const tmp = `${credsFile}.new-${process.pid}`;
  rmSync(tmp, { force: true });
  writeCredentials(tmp, { domain: reg.domain, name: id.name, role: id.role, actor: id.actor, seed: key.seed, ...(ca ? { ca } : {}) });
  const saved = saveRegistry(o.dir, reg.domain, identities);
  if (E.isLeft(saved)) {
    rmSync(tmp, { force: true });
    return saved;
  }
  renameSync(tmp, credsFile);
  return E.right({ identity: next, previousKey: id.publicKey, credsFile, loginUntil, reinstated });
};

/** Revokes `actor` (see the top of this file). The control plane's own identity is rotated, not revoked: the mesh cannot run without it. */
export const revokeIdentity = (o: { dir: string; actor: string; now: Date }): E.Either<string, Revoked> => {
  const loaded = loadIdentity(o.dir, o.actor);
  if (E.isLeft(loaded)) return loaded;
  const { p, reg, id } = loaded.right;
  if (id.role === 'control-plane') return E.left('the control plane cannot be revoked (the mesh does not run without it); give it a new key instead: nsm init --rotate control-plane');
  if (id.revokedAt) return E.left(`${id.actor} was already revoked at ${id.revokedAt}`);
  const next: Identity = { ...id, revokedAt: o.now.toISOString() };
  const saved = saveRegistry(o.dir, reg.domain, reg.identities.map((i) => (i.actor === id.actor ? next : i)));
  if (E.isLeft(saved)) return saved;
  const credsFile = p.creds(id.name, id.role);
  const had = existsSync(credsFile);
  rmSync(credsFile, { force: true });
  return E.right({ identity: next, ...(had ? { removedCreds: credsFile } : {}) });
};
