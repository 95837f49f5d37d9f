// Network namespaces as the dataplane addresses them: the agent's own (`current`), a named one
// (`ip netns add NAME`, under /run/netns) or a path such as /proc/<pid>/ns/net. `ip -n` only
// takes names, so paths go through nsenter; every other tool runs through nsenter too.
import { existsSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import { run, type CommandError, type RunOptions } from './exec.ts';

export type Netns =
  | { readonly kind: 'current' }
  | { readonly kind: 'named'; readonly name: string }
  | { readonly kind: 'path'; readonly path: string };

export const NETNS_RUN_DIR = '/run/netns';

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;
const PATH = /^\/[A-Za-z0-9_.\/-]{1,254}$/;

/** A namespace reference from user input: a name, or an absolute path without "..". */
export const parseNetns = (s: string): E.Either<string, Netns> => {
  if (NAME.test(s) && s !== '.' && s !== '..') return E.right({ kind: 'named', name: s });
  if (PATH.test(s) && !s.split('/').includes('..')) return E.right({ kind: 'path', path: s });
  return E.left(`network namespace ${JSON.stringify(s)}: expected a name (letters, digits, "_", "-", ".") or an absolute path such as /proc/<pid>/ns/net`);
};

export const netnsLabel = (ns: Netns): string => (ns.kind === 'current' ? '(own namespace)' : ns.kind === 'named' ? ns.name : ns.path);

export const netnsPath = (ns: Netns): string | undefined =>
  ns.kind === 'named' ? `${NETNS_RUN_DIR}/${ns.name}` : ns.kind === 'path' ? ns.path : undefined;

export const netnsExists = (ns: Netns): boolean => {
  const p = netnsPath(ns);
  return p === undefined || existsSync(p);
};

/** What `ip link set ... netns X` and `veth peer ... netns X` take: a name or a path. */
export const netnsArg = (ns: Netns): string => (ns.kind === 'named' ? ns.name : ns.kind === 'path' ? ns.path : String(process.pid));

/** argv for `ip ARGS` inside the namespace. */
export const ipArgv = (ns: Netns, args: readonly string[]): string[] =>
  ns.kind === 'named' ? ['ip', '-n', ns.name, ...args] : ns.kind === 'path' ? ['nsenter', `--net=${ns.path}`, 'ip', ...args] : ['ip', ...args];

/** argv for any other tool inside the namespace. */
export const inNetnsArgv = (ns: Netns, argv: readonly string[]): string[] => {
  const p = netnsPath(ns);
  return p === undefined ? [...argv] : ['nsenter', `--net=${p}`, ...argv];
};

export const ip = (ns: Netns, args: readonly string[], opts?: RunOptions): TE.TaskEither<CommandError, string> => run(ipArgv(ns, args), opts);

export const inNetns = (ns: Netns, argv: readonly string[], opts?: RunOptions): TE.TaskEither<CommandError, string> => run(inNetnsArgv(ns, argv), opts);

/** Sets sysctls (name -> value) in the namespace with one `sysctl -w` call. */
export const sysctl = (ns: Netns, values: Readonly<Record<string, string | number>>): TE.TaskEither<CommandError, string> =>
  inNetns(ns, ['sysctl', '-q', '-w', ...Object.entries(values).map(([k, v]) => `${k}=${v}`)]);

/** Creates a named namespace with its loopback up; says whether it created it. */
export const ensureNamedNetns = async (name: string): Promise<E.Either<CommandError, boolean>> => {
  if (existsSync(`${NETNS_RUN_DIR}/${name}`)) return E.right(false);
  const added = await run(['ip', 'netns', 'add', name])();
  if (E.isLeft(added)) return added;
  const lo = await run(['ip', '-n', name, 'link', 'set', 'lo', 'up'])();
  return E.isLeft(lo) ? lo : E.right(true);
};

export const deleteNamedNetns = (name: string): TE.TaskEither<CommandError, string> => run(['ip', 'netns', 'del', name]);
