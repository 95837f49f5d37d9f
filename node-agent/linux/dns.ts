// The client's DNS context: `ip netns exec NS` bind-mounts /etc/netns/NS/resolv.conf over
// /etc/resolv.conf, so a named namespace's own resolver configuration lives in that file. The
// agent writes it while a connection with DNS is up and removes it with the last one.
//
// The file is the mesh's only if its first line says so (MARKER, with the domain): a file the
// user wrote is never overwritten or deleted; connecting with DNS into such a namespace fails
// with the reason. Each connection's part is a comment line (ENTRY) from which the file is
// rebuilt, so several connections in one namespace share it: their name servers in order (glibc
// reads the first 3) and one search line (glibc honours only the last "search" line).
import { mkdir, readdir, readFile, rename, rmdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { Netns } from './netns.ts';
import { Changes, type Outcome } from './result.ts';

export const ETC_NETNS = '/etc/netns';

export interface DnsSpec {
  readonly servers: readonly string[];
  readonly searchDomains: readonly string[];
}

interface Entry extends DnsSpec {
  readonly connectionId: string;
}

const MARKER = (domain: string) => `# nsm:${domain}: written by the mesh's node agent while connections with DNS are up; do not edit`;
const ENTRY = /^# nsm-connection (\S+) nameservers=(\S*) search=(\S*)$/;

const list = (s: string): string[] => (s === '' ? [] : s.split(','));

/** The entries of a file the mesh of this domain wrote; undefined when it is someone else's. */
const parse = (text: string, domain: string): Entry[] | undefined => {
  const lines = text.split('\n');
  if (lines[0] !== MARKER(domain)) return undefined;
  return lines.flatMap((l) => {
    const m = ENTRY.exec(l);
    return m ? [{ connectionId: m[1]!, servers: list(m[2]!), searchDomains: list(m[3]!) }] : [];
  });
};

export const render = (domain: string, entries: readonly Entry[]): string => {
  const servers = [...new Set(entries.flatMap((e) => e.servers))];
  const searches = [...new Set(entries.flatMap((e) => e.searchDomains))];
  return [
    MARKER(domain),
    ...entries.map((e) => `# nsm-connection ${e.connectionId} nameservers=${e.servers.join(',')} search=${e.searchDomains.join(',')}`),
    ...servers.map((s) => `nameserver ${s}`),
    ...(searches.length > 0 ? [`search ${searches.join(' ')}`] : []),
    '',
  ].join('\n');
};

const readIfThere = async (file: string): Promise<E.Either<string, string | undefined>> => {
  try {
    return E.right(await readFile(file, 'utf8'));
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    return err.code === 'ENOENT' ? E.right(undefined) : E.left(`cannot read ${file}: ${err.message}`);
  }
};

/** Written beside and renamed over: a resolver never reads half a file. */
const writeAtomic = async (file: string, text: string): Promise<E.Either<string, void>> => {
  try {
    const tmp = `${file}.nsm-${process.pid}`;
    await writeFile(tmp, text, { mode: 0o644 });
    await rename(tmp, file);
    return E.right(undefined);
  } catch (e) {
    return E.left(`cannot write ${file}: ${(e as Error).message}`);
  }
};

/** Writes the file without the connection's entry, or deletes it (and its directory, when empty) with the last one. */
const withoutEntry = async (dir: string, domain: string, connectionId: string, changes: Changes): Promise<Outcome<void>> => {
  const file = join(dir, 'resolv.conf');
  const text = await readIfThere(file);
  if (E.isLeft(text)) return text;
  const entries = text.right === undefined ? undefined : parse(text.right, domain);
  if (!entries || !entries.some((e) => e.connectionId === connectionId)) return E.right(undefined);
  const rest = entries.filter((e) => e.connectionId !== connectionId);
  if (rest.length > 0) {
    const w = await writeAtomic(file, render(domain, rest));
    if (E.isLeft(w)) return w;
    changes.add(`removed connection ${connectionId}'s DNS from ${file}`);
    return E.right(undefined);
  }
  try {
    await unlink(file);
  } catch (e) {
    return E.left(`cannot remove ${file}: ${(e as Error).message}`);
  }
  changes.add(`removed ${file}`);
  // The directory goes too when nothing else is in it (other files there are not ours).
  await rmdir(dir).catch(() => undefined);
  return E.right(undefined);
};

/**
 * The connection's DNS in the namespace's resolv.conf; with `dns` undefined, its entry removed
 * (a new generation without DNS). Only named namespaces have one.
 */
export const ensureDns = async (ns: Netns, domain: string, connectionId: string, dns: DnsSpec | undefined, changes: Changes): Promise<Outcome<void>> => {
  if (ns.kind !== 'named') {
    return dns ? E.left('DNS context needs a named network namespace (ip netns add NAME): its resolver configuration is /etc/netns/NAME/resolv.conf') : E.right(undefined);
  }
  const dir = join(ETC_NETNS, ns.name);
  if (!dns) return withoutEntry(dir, domain, connectionId, changes);
  const file = join(dir, 'resolv.conf');
  const text = await readIfThere(file);
  if (E.isLeft(text)) return text;
  const entries = text.right === undefined ? [] : parse(text.right, domain);
  if (!entries) return E.left(`${file} exists and was not written by this mesh (domain ${domain}): remove it, or connect without the endpoint's DNS`);
  const entry: Entry = { connectionId, servers: [...dns.servers], searchDomains: [...dns.searchDomains] };
  const at = entries.findIndex((e) => e.connectionId === connectionId);
  const next = at < 0 ? [...entries, entry] : entries.map((e, i) => (i === at ? entry : e));
  const wanted = render(domain, next);
  if (wanted === text.right) return E.right(undefined);
  try {
    await mkdir(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    return E.left(`cannot create ${dir}: ${(e as Error).message}`);
  }
  const w = await writeAtomic(file, wanted);
  if (E.isLeft(w)) return w;
  changes.add(`DNS ${dns.servers.join(',')} in ${file}`);
  return E.right(undefined);
};

/**
 * Removes the connection's entry wherever it is: a removal may come without the namespace (a
 * side found at reconciliation that is no longer wanted).
 */
export const removeDns = async (domain: string, connectionId: string, changes: Changes): Promise<Outcome<void>> => {
  let dirs: string[];
  try {
    dirs = await readdir(ETC_NETNS);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return E.right(undefined);
    return E.left(`cannot read ${ETC_NETNS}: ${(e as Error).message}`);
  }
  for (const d of dirs) {
    const r = await withoutEntry(join(ETC_NETNS, d), domain, connectionId, changes);
    if (E.isLeft(r)) return r;
  }
  return E.right(undefined);
};
