// The identity registry and a process's own credentials as they are on disk now. `nsm init
// --rotate` and `nsm revoke` (./keyManagement.ts) change both files under running processes; a
// control plane or agent must then know the new key of whoever was rotated (or it refuses their
// tokens as signed by an unknown key), refuse whoever was revoked, and, when its own key was
// rotated, sign with the new key and log in with it the next time it connects. Files are checked
// once a second, and at once when a token names a key the registry does not know yet (a path the
// control plane signed with its new key can reach an agent before the agent's next check).
import { statSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import type { Logger } from '../ports/logger.ts';
import { readCredentials, type Credentials } from './credentials.ts';
import { loadRegistry, type Identity, type IdentityRegistry, type KeyOwner } from './identities.ts';
import { signerFromSeed, type Signer } from './keys.ts';

const POLL_MS = 1000;

/** What a file is now, enough to tell that it changed. */
const versionOf = (file: string): string | undefined => {
  try {
    const st = statSync(file);
    return `${st.mtimeMs}:${st.size}:${st.ino}`;
  } catch {
    return undefined;
  }
};

/** What changed for whom between two readings of the registry, for the log and for the audit record. */
export interface RegistryChange {
  readonly actor: string;
  readonly change: 'added' | 'removed' | 'key rotated' | 'revoked';
}

export const registryChanges = (before: readonly Identity[], after: readonly Identity[]): RegistryChange[] => {
  const old = new Map(before.map((i) => [i.actor, i]));
  const out: RegistryChange[] = [];
  for (const i of after) {
    const o = old.get(i.actor);
    old.delete(i.actor);
    if (!o) out.push({ actor: i.actor, change: 'added' });
    else {
      if (o.publicKey !== i.publicKey) out.push({ actor: i.actor, change: 'key rotated' });
      if (i.revokedAt && !o.revokedAt) out.push({ actor: i.actor, change: 'revoked' });
    }
  }
  for (const actor of old.keys()) out.push({ actor, change: 'removed' });
  return out;
};

export interface LiveRegistry extends IdentityRegistry {
  /** Reads the file again if it changed; true when it did and the new registry was taken. */
  refresh(): boolean;
  /** Called after each change is taken (the control plane records it in the log). */
  onChange(listener: (registry: IdentityRegistry, changes: readonly RegistryChange[]) => void): void;
  stop(): void;
}

/**
 * A registry that follows its file. A file that no longer reads as a registry (half-written, or
 * edited by hand into something else) is not taken: the last good registry stays in force and the
 * problem is logged as an error, once per version of the file.
 */
export const liveRegistry = (file: string, initial: IdentityRegistry, log: Logger, o: { pollMs?: number } = {}): LiveRegistry => {
  let current = initial;
  let version = versionOf(file);
  const listeners: ((r: IdentityRegistry, c: readonly RegistryChange[]) => void)[] = [];
  const refresh = (): boolean => {
    const now = versionOf(file);
    if (now === version) return false;
    version = now;
    const next = loadRegistry(file);
    if (E.isLeft(next)) {
      log.error('the identity registry changed but cannot be read; the previous one stays in force', { file, problem: next.left });
      return false;
    }
    if (next.right.domain !== current.domain) {
      log.error('the identity registry changed to another domain; the previous one stays in force', { file, domain: next.right.domain, expected: current.domain });
      return false;
    }
    const changes = registryChanges(current.identities, next.right.identities);
    current = next.right;
    if (changes.length > 0) log.info('identity registry reloaded', { file, changes: changes.map((c) => `${c.actor}: ${c.change}`) });
    for (const l of listeners) l(current, changes);
    return true;
  };
  const timer = setInterval(refresh, o.pollMs ?? POLL_MS);
  timer.unref();
  const keyOwner = (key: string): KeyOwner | undefined => current.keyOwner(key) ?? (refresh() ? current.keyOwner(key) : undefined);
  return {
    get domain() {
      return current.domain;
    },
    get identities() {
      return current.identities;
    },
    byActor: (actor) => current.byActor(actor),
    byKey: (key) => keyOwner(key)?.identity,
    keyOwner,
    refresh,
    onChange: (l) => void listeners.push(l),
    stop: () => clearInterval(timer),
  };
};

export interface LiveCredentials {
  /** The credentials in the file now (the last good reading). */
  current(): Credentials;
  /** Signs with the key in the file now. */
  readonly signer: Signer;
  /** The seed in the file now, as nats.js's nkey authenticator takes it: the next login uses the new key. */
  seed(): Uint8Array;
  stop(): void;
}

/**
 * A process's own credentials, following the file: after `nsm init --rotate` its tokens are
 * signed with the new key at once, and its next login to nats-server (when the grace period of the
 * old key ends, the server closes the old key's connection) is made with the new one. A file that
 * names another identity is not taken (logged as an error).
 */
export const liveCredentials = (file: string, initial: Credentials, log: Logger, o: { pollMs?: number } = {}): LiveCredentials => {
  let creds = initial;
  let signer = signerFromSeed(initial.seed);
  let version = versionOf(file);
  const refresh = () => {
    const now = versionOf(file);
    if (now === version) return;
    version = now;
    const next = readCredentials(file);
    if (E.isLeft(next)) return log.error('the credentials file changed but cannot be read; the previous key stays in use', { file, problem: next.left });
    if (next.right.actor !== creds.actor) return log.error('the credentials file changed to another identity; the previous key stays in use', { file, actor: next.right.actor, expected: creds.actor });
    if (next.right.seed === creds.seed) return;
    creds = next.right;
    signer = signerFromSeed(creds.seed);
    log.info('own key rotated: signing with the new key; the next login uses it', { actor: creds.actor, publicKey: signer.publicKey });
  };
  const timer = setInterval(refresh, o.pollMs ?? POLL_MS);
  timer.unref();
  return {
    current: () => creds,
    signer: {
      get publicKey() {
        return signer.publicKey;
      },
      sign: (data) => signer.sign(data),
    },
    seed: () => (refresh(), new TextEncoder().encode(creds.seed)),
    stop: () => clearInterval(timer),
  };
};

