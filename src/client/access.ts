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
  /** A pointer that was passed over, and why: one line each, for stderr. */
  readonly notes?: readonly string[];
}

/** host:port of each server of a URL list ("nats://a:4222,tls://b"); loopback names count as one. */
const serverKeys = (urls: string): string[] =>
  urls
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean)
    .map((u) => {
      try {
        const parsed = new URL(`nats://${u.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '')}`);
        const host = parsed.hostname.toLowerCase();
        const loopback = host === 'localhost' || host === '[::1]' || /^127\./.test(host);
        return `${loopback ? '127.0.0.1' : host}:${parsed.port || '4222'}`;
      } catch {
        return u.toLowerCase();
      }
    });

/** Whether two server URLs (lists) name the same server: scheme aside, one host:port in common. */
export const sameServer = (a: string, b: string): boolean => {
  const keys = new Set(serverKeys(a));
  return serverKeys(b).some((k) => keys.has(k));
};

/**
 * Why a pointer must not be used: its deployment is gone, or it was written for another server
 * than the one in use (--server or NSM_NATS_URL). Its credentials and CA would then be sent to
 * a server they were not made for: another mesh of the same domain (the demo's, a test's) fails
 * with a TLS error, or is refused, for no reason the user can see.
 */
const pointerProblem = (p: Pointer, inUse: string | undefined): string | undefined => {
  if (!existsSync(p.deployment)) return `its deployment ${p.deployment} is gone`;
  if (!existsSync(deploymentPaths(p.deployment).identities)) return `${p.deployment} no longer holds a deployment (no identities.json)`;
  if (inUse !== undefined && p.url !== undefined && !sameServer(p.url, inUse)) return `it points at ${p.url}, not the server in use ${inUse}`;
  return undefined;
};

interface Located {
  readonly url: string;
  /** The deployment directories to look in for credentials and identities, in order. */
  readonly deployments: readonly string[];
  readonly notes: readonly string[];
}

/** Where the mesh of a domain is: the flags, the environment, then the pointer if it fits, then the default data dir. */
const locate = (flags: AccessFlags, domain: string): Located => {
  const inUse = flags.server ?? env('NSM_NATS_URL');
  const pointer = readPointer(domain);
  const fallback = defaultDataDir(domain);
  if (!pointer) return { url: inUse ?? DEFAULT_URL, deployments: [fallback], notes: [] };
  const problem = pointerProblem(pointer, inUse);
  if (problem === undefined) return { url: inUse ?? pointer.url ?? DEFAULT_URL, deployments: [pointer.deployment, fallback], notes: [] };
  // Passed over: its deployment is not taken by way of the default data dir either.
  return { url: inUse ?? DEFAULT_URL, deployments: resolve(fallback) === resolve(pointer.deployment) ? [] : [fallback], notes: [`ignoring ${pointerFile(domain)}: ${problem}`] };
};

/**
 * `--creds FILE`, else NSM_CREDS, else the identity's file in the deployment the pointer names
 * (when it fits the server in use: see pointerProblem), else in the default data dir; none
 * found: no credentials.
 */
export const resolveAccess = (flags: AccessFlags, domain: string, who: { role: Role; name: string }): E.Either<string, Access> => {
  const { url, deployments, notes } = locate(flags, domain);
  const tlsCaFile = flags['tls-ca'] ?? env('NSM_TLS_CA');
  const explicit = flags.creds ?? env('NSM_CREDS');
  const found = explicit ?? deployments.map((d) => deploymentPaths(d).creds(who.name, who.role)).find((f) => existsSync(f));
  const extra = { ...(tlsCaFile ? { tlsCaFile } : {}), ...(notes.length > 0 ? { notes } : {}) };
  if (!found) return E.right({ url, ...extra });
  const c = readCredentials(found);
  if (E.isLeft(c)) return c;
  if (c.right.domain !== domain) return E.left(`${found} holds credentials for domain "${c.right.domain}", not "${domain}" (use --domain ${c.right.domain})`);
  return E.right({ url, credentials: c.right, credentialsFile: found, ...extra });
};

/** `--identities FILE`, else NSM_IDENTITIES, else identities.json next to the credentials' directory. */
export const resolveIdentities = (flags: AccessFlags, credentialsFile: string | undefined, domain: string): string | undefined => {
  const explicit = flags.identities ?? env('NSM_IDENTITIES');
  if (explicit) return explicit;
  const candidates = [
    ...(credentialsFile ? [join(dirname(dirname(resolve(credentialsFile))), 'identities.json')] : []),
    ...locate(flags, domain).deployments.map((d) => deploymentPaths(d).identities),
  ];
  return candidates.find((f) => existsSync(f));
};
