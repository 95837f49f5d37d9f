// Which network namespaces a command may name for a workload or an endpoint. The agent runs as
// root and creates interfaces, addresses and routes in the namespace it is given, so a reference
// must never reach the host's own namespace or another process's: only named namespaces
// (`ip netns add NAME`, kept in /run/netns) are accepted, and paths only to a file directly in a
// directory the operator allows (e.g. where a container runtime keeps pod namespaces). The
// control plane checks this before anything is decided, and every agent checks it again.
import * as E from 'fp-ts/lib/Either.js';

export const NETNS_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
/** Where `ip netns add` keeps named namespaces: a path in it is that name. */
export const NAMED_NETNS_DIRS: readonly string[] = ['/run/netns', '/var/run/netns'];

export type NetnsRef = { readonly kind: 'named'; readonly name: string } | { readonly kind: 'path'; readonly path: string };

const isName = (s: string) => NETNS_NAME.test(s) && s !== '.' && s !== '..';

/** "/a/b/" -> "/a/b"; undefined when it is not an absolute path with plain segments. */
const normalDir = (dir: string): string | undefined => {
  const trimmed = dir.length > 1 ? dir.replace(/\/+$/, '') : dir;
  const parts = trimmed.split('/');
  return parts[0] === '' && parts.slice(1).every(isName) ? trimmed : undefined;
};

/** Checks an operator's --netns-dir values: absolute directories with plain segments. */
export const checkNetnsDirs = (dirs: readonly string[]): E.Either<string, readonly string[]> => {
  const out: string[] = [];
  for (const d of dirs) {
    const n = normalDir(d);
    if (n === undefined || n === '/') return E.left(`--netns-dir ${JSON.stringify(d)}: expected an absolute directory such as /run/containerd/netns (plain names between slashes, not "/")`);
    out.push(n);
  }
  return E.right(out);
};

const refusal = (value: string, allowedDirs: readonly string[]) =>
  `network namespace ${JSON.stringify(value)}: only named namespaces (ip netns add NAME) are accepted` +
  (allowedDirs.length > 0 ? `, or a file directly in ${allowedDirs.join(', ')}` : '; a path is accepted only in a directory the operator allows (--netns-dir), and none is allowed here');

/**
 * A workload's or endpoint's namespace as a command names it. `allowedDirs` are normalized
 * directories (checkNetnsDirs); a path in /run/netns is the named namespace it holds.
 */
export const workloadNetns = (value: string, allowedDirs: readonly string[] = []): E.Either<string, NetnsRef> => {
  if (isName(value)) return E.right({ kind: 'named', name: value });
  const slash = value.lastIndexOf('/');
  // A plain absolute path, one file in one directory: no "..", ".", "//" or trailing "/" to hide behind.
  const dir = slash > 0 ? normalDir(value.slice(0, slash)) : undefined;
  const base = value.slice(slash + 1);
  if (dir === undefined || dir !== value.slice(0, slash) || !isName(base)) return E.left(refusal(value, allowedDirs));
  if (NAMED_NETNS_DIRS.includes(dir)) return E.right({ kind: 'named', name: base });
  if (allowedDirs.includes(dir)) return E.right({ kind: 'path', path: value });
  return E.left(refusal(value, allowedDirs));
};
