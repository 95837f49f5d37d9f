// Credentials files: one per identity, written by `nsm init` with mode 0600. JSON holding the
// identity's name, role, actor, domain, its nkey seed (the only secret) and the CA certificate
// that signed the NATS server's certificate (public), so one file is all a process needs.
import { readFileSync, writeFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { nkeyAuthenticator, type ConnectionOptions } from 'nats';
import { inboxPrefixFor, ROLES, type Role } from './identities.ts';
import { signerFromSeed, USER_SEED_PATTERN, type Signer } from './keys.ts';

export interface Credentials {
  readonly domain: string;
  readonly name: string;
  readonly role: Role;
  readonly actor: string;
  readonly seed: string;
  /** PEM of the CA that signed the server certificate. */
  readonly ca?: string;
}

const MAX_CREDS = 64 * 1024;

/** Never says what the file holds beyond its shape: the seed must not reach an error message. */
export const parseCredentials = (text: string, where: string): E.Either<string, Credentials> => {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return E.left(`${where} is not an nsm credentials file (not JSON)`);
  }
  const c = raw as Record<string, unknown>;
  if (typeof c !== 'object' || c === null || c.nsm !== 'credentials') return E.left(`${where} is not an nsm credentials file`);
  for (const k of ['domain', 'name', 'role', 'actor', 'seed'] as const) {
    if (typeof c[k] !== 'string' || (c[k] as string).length === 0) return E.left(`${where}: field "${k}" is missing`);
  }
  if (!(ROLES as readonly string[]).includes(c.role as string)) return E.left(`${where}: unknown role`);
  if (!USER_SEED_PATTERN.test(c.seed as string)) return E.left(`${where}: the seed is not an nkey user seed`);
  if (c.ca !== undefined && typeof c.ca !== 'string') return E.left(`${where}: field "ca" must be a PEM string`);
  return E.right({
    domain: c.domain as string,
    name: c.name as string,
    role: c.role as Role,
    actor: c.actor as string,
    seed: c.seed as string,
    ...(typeof c.ca === 'string' ? { ca: c.ca } : {}),
  });
};

export const readCredentials = (file: string): E.Either<string, Credentials> => {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    return E.left(`cannot read credentials ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (text.length > MAX_CREDS) return E.left(`${file} is too large to be a credentials file`);
  return parseCredentials(text, file);
};

/** Creates the file with mode 0600; refuses to replace an existing one. */
export const writeCredentials = (file: string, c: Credentials): void => {
  writeFileSync(file, JSON.stringify({ nsm: 'credentials', version: 1, ...c }, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
};

export const signerOf = (c: Credentials): Signer => signerFromSeed(c.seed);

export interface TlsChoice {
  /** A CA file that overrides the one in the credentials. */
  readonly caFile?: string;
}

/**
 * nats.js options that authenticate as the identity, over TLS, with its private inbox prefix.
 * `seed`: where each login takes the key from (./live.ts follows the credentials file, so a
 * reconnect after a rotation logs in with the new key); default: the key in `c`.
 */
export const natsAuthOptions = (c: Credentials, tls: TlsChoice = {}, seed?: () => Uint8Array): Partial<ConnectionOptions> => {
  return {
    authenticator: nkeyAuthenticator(seed ?? new TextEncoder().encode(c.seed)),
    inboxPrefix: inboxPrefixFor(c.actor),
    tls: tls.caFile ? { caFile: tls.caFile } : c.ca ? { ca: c.ca } : {},
  };
};

/** How a process connects: as the identity when it has credentials, otherwise anonymously; over TLS with caFile when given. */
export const connectionAuth = (c: Credentials | undefined, caFile?: string, seed?: () => Uint8Array): Partial<ConnectionOptions> =>
  c ? natsAuthOptions(c, caFile ? { caFile } : {}, seed) : caFile ? { tls: { caFile } } : {};
