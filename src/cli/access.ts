// How the CLI and the mesh's processes find where the mesh is and who they are: the NATS URL,
// the credentials file, the CA and the identity registry, from flags, the environment, the
// pointer that `nsm init` / `nsm up` leave in the user's config, and the default data dir.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { readCredentials, type Credentials } from '../security/credentials.ts';
import type { Role } from '../security/identities.ts';
import { deploymentPaths } from '../security/init.ts';

/** An environment variable's value; an empty one counts as unset. */
export const env = (k: string): string | undefined => (process.env[k] && process.env[k]!.length > 0 ? process.env[k] : undefined);

export const defaultDataDir = (domain: string): string => join(env('XDG_DATA_HOME') ?? join(homedir(), '.local', 'share'), 'nsm', domain);
export const configDir = (): string => join(env('XDG_CONFIG_HOME') ?? join(homedir(), '.config'), 'nsm');
export const DEFAULT_URL = 'nats://127.0.0.1:4222';

/** What `nsm init` and `nsm up` remember for a domain, so the CLI on this host needs no flags. */
export interface Pointer {
  readonly deployment: string;
  readonly url?: string;
}

const pointerFile = (domain: string) => join(configDir(), `${domain}.json`);

export const readPointer = (domain: string): Pointer | undefined => {
  try {
    const p = JSON.parse(readFileSync(pointerFile(domain), 'utf8')) as Partial<Pointer>;
    return typeof p.deployment === 'string' ? { deployment: p.deployment, ...(typeof p.url === 'string' ? { url: p.url } : {}) } : undefined;
  } catch {
    return undefined;
  }
};

export const writePointer = (domain: string, p: Pointer): string => {
  mkdirSync(configDir(), { recursive: true, mode: 0o700 });
  writeFileSync(pointerFile(domain), JSON.stringify({ ...p, deployment: resolve(p.deployment) }, null, 2) + '\n', { mode: 0o600 });
  return pointerFile(domain);
};

/** An insecure mesh of this domain has no credentials to point at. */
export const forgetPointer = (domain: string): void => rmSync(pointerFile(domain), { force: true });

export interface AccessFlags {
  readonly server?: string;
  readonly creds?: string;
  readonly 'tls-ca'?: string;
  readonly identities?: string;
}

export interface Access {
  readonly url: string;
  /** Absent: connect without credentials (an insecure mesh). */
  readonly credentials?: Credentials;
  readonly credentialsFile?: string;
  readonly tlsCaFile?: string;
}

/** The deployment directories to look in for a domain, in order. */
const deployments = (domain: string): string[] => [readPointer(domain)?.deployment, defaultDataDir(domain)].filter((d): d is string => d !== undefined);

/**
 * `--creds FILE`, else NSM_CREDS, else the identity's file in the deployment the pointer names,
 * else in the default data dir; none found: no credentials.
 */
export const resolveAccess = (flags: AccessFlags, domain: string, who: { role: Role; name: string }): E.Either<string, Access> => {
  const url = flags.server ?? env('NSM_NATS_URL') ?? readPointer(domain)?.url ?? DEFAULT_URL;
  const tlsCaFile = flags['tls-ca'] ?? env('NSM_TLS_CA');
  const explicit = flags.creds ?? env('NSM_CREDS');
  const found = explicit ?? deployments(domain).map((d) => deploymentPaths(d).creds(who.name, who.role)).find((f) => existsSync(f));
  if (!found) return E.right({ url, ...(tlsCaFile ? { tlsCaFile } : {}) });
  const c = readCredentials(found);
  if (E.isLeft(c)) return c;
  if (c.right.domain !== domain) return E.left(`${found} holds credentials for domain "${c.right.domain}", not "${domain}" (use --domain ${c.right.domain})`);
  return E.right({ url, credentials: c.right, credentialsFile: found, ...(tlsCaFile ? { tlsCaFile } : {}) });
};

/** `--identities FILE`, else NSM_IDENTITIES, else identities.json next to the credentials' directory. */
export const resolveIdentities = (flags: AccessFlags, credentialsFile: string | undefined, domain: string): string | undefined => {
  const explicit = flags.identities ?? env('NSM_IDENTITIES');
  if (explicit) return explicit;
  const candidates = [
    ...(credentialsFile ? [join(dirname(dirname(resolve(credentialsFile))), 'identities.json')] : []),
    ...deployments(domain).map((d) => deploymentPaths(d).identities),
  ];
  return candidates.find((f) => existsSync(f));
};
