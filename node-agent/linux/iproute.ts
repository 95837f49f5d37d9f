// `ip -json` output, decoded: links, addresses, routes, rules and neighbours, as far as the
// dataplane reads them. The kernel adds fields between versions, so these decoders keep the
// fields they know and ignore the rest (unlike the mesh's own contracts, which refuse extras).
import * as E from 'fp-ts/lib/Either.js';
import { pipe } from 'fp-ts/lib/function.js';
import * as TE from 'fp-ts/lib/TaskEither.js';
import { canonicalAddress, canonicalPrefix, type Family } from '../../aggregates/ip.ts';
import * as D from '../../src/contracts/decode.ts';
import type { CommandError } from './exec.ts';
import { ip, type Netns } from './netns.ts';

type Fields = Record<string, D.Decoder<unknown>>;
type Out<F extends Fields> = { [K in keyof F]: F[K] extends D.Decoder<infer A> ? A : never };
type OptOut<F extends Fields> = { [K in keyof F]?: F[K] extends D.Decoder<infer A> ? A : never };

/** Like D.object, but unknown fields are ignored. */
const loose =
  <R extends Fields, O extends Fields = Record<never, never>>(required: R, optional?: O): D.Decoder<Out<R> & OptOut<O>> =>
  (v, path) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) return E.left({ path, message: 'expected an object' });
    const rec = v as Record<string, unknown>;
    const known = Object.fromEntries(Object.keys({ ...required, ...optional }).filter((k) => rec[k] !== undefined && rec[k] !== null).map((k) => [k, rec[k]]));
    return D.object(required, optional)(known, path);
  };

const str = D.string({ max: 4096 });
const int = D.integer({ min: 0, max: 2 ** 32 });
/** link_netnsid is -1 when the peer's namespace has no id here (e.g. it is being deleted). */
const signedInt = D.integer({ min: -(2 ** 31), max: 2 ** 32 });
const anyValue: D.Decoder<unknown> = (v) => E.right(v);

const linkInfo = loose({}, { info_kind: str, info_data: anyValue, info_slave_kind: str });
const link = loose(
  { ifindex: int, ifname: str },
  { flags: D.array(str, { max: 64 }), mtu: int, address: str, ifalias: str, link_index: int, link_netnsid: signedInt, master: str, operstate: str, linkinfo: linkInfo },
);
export type Link = typeof link extends D.Decoder<infer A> ? A : never;

const addrInfo = loose({ family: str, local: str, prefixlen: int }, { scope: str });
const addr = loose({ ifname: str }, { addr_info: D.array(addrInfo, { max: 4096 }) });
export type AddrInfo = typeof addrInfo extends D.Decoder<infer A> ? A : never;

const route = loose({ dst: str }, { dev: str, gateway: str, protocol: str, scope: str, type: str, table: str, prefsrc: str });
export type Route = typeof route extends D.Decoder<infer A> ? A : never;

const rule = loose({ priority: int }, { iif: str, table: str, src: str });
export type Rule = typeof rule extends D.Decoder<infer A> ? A : never;

const neigh = loose({ dst: str }, { lladdr: str, dev: str, state: D.array(str, { max: 16 }) });
export type Neighbour = typeof neigh extends D.Decoder<infer A> ? A : never;

const jsonList =
  <A>(item: D.Decoder<A>, what: string) =>
  (ns: Netns, args: readonly string[]): TE.TaskEither<CommandError, A[]> =>
    pipe(
      ip(ns, ['-json', ...args]),
      TE.chainEitherK((out) => {
        const parsed = D.parseJson(out.trim() === '' ? '[]' : out, 64 * 1024 * 1024);
        const decoded = E.isRight(parsed) ? D.array(item, { max: 1_000_000 })(parsed.right, what) : parsed;
        return E.mapLeft((e: D.DecodeError): CommandError => ({ command: `ip -json ${args.join(' ')}`, exitCode: 0, stderr: '', message: `unexpected output of ip -json ${args.join(' ')}: ${D.formatDecodeError(e)}` }))(decoded);
      }),
    );

const listLinks = jsonList(link, 'links');
/** Every link of the namespace, with kind details (-d). */
export const links = (ns: Netns): TE.TaskEither<CommandError, Link[]> => listLinks(ns, ['-d', 'link', 'show']);

/** Both families' addresses of a device ("family": inet or inet6; "scope": link for IPv6 link-local ones). */
export const addresses = (ns: Netns, dev: string): TE.TaskEither<CommandError, AddrInfo[]> =>
  pipe(
    jsonList(addr, 'addresses')(ns, ['addr', 'show', 'dev', dev]),
    TE.map((as) => as.flatMap((a) => a.addr_info ?? [])),
  );

export const allAddresses = (ns: Netns) => jsonList(addr, 'addresses')(ns, ['addr', 'show']);

const FAMILY_FLAG: Readonly<Record<Family, string>> = { IPv4: '-4', IPv6: '-6' };
const both = <A>(list: (family: Family) => TE.TaskEither<CommandError, A[]>): TE.TaskEither<CommandError, A[]> =>
  pipe(
    list('IPv4'),
    TE.chain((v4) => pipe(list('IPv6'), TE.map((v6) => [...v4, ...v6]))),
  );

export type FamilyRoute = Route & { readonly family: Family };

/**
 * Routes of both families, each tagged with its family (`ip -json` does not say it, and the same
 * text "default" means 0.0.0.0/0 or ::/0); a routing table that has no route yet (so "does not
 * exist" for the kernel) is empty.
 */
export const routes = (ns: Netns, args: readonly string[]): TE.TaskEither<CommandError, FamilyRoute[]> =>
  both((family) =>
    pipe(
      jsonList(route, 'routes')(ns, [FAMILY_FLAG[family], 'route', 'show', ...args]),
      TE.map((rs) => rs.map((r): FamilyRoute => ({ ...r, family }))),
      TE.orElse((e) => (/FIB table does not exist/.test(e.stderr) ? TE.right<CommandError, FamilyRoute[]>([]) : TE.left(e))),
    ),
  );

export type FamilyRule = Rule & { readonly family: Family };

export const rules = (ns: Netns): TE.TaskEither<CommandError, FamilyRule[]> =>
  both((family) => pipe(jsonList(rule, 'rules')(ns, [FAMILY_FLAG[family], 'rule', 'show']), TE.map((rs) => rs.map((r): FamilyRule => ({ ...r, family })))));

/** The `ip` flag that selects a family (rules are per family, and `ip rule` defaults to IPv4). */
export const familyFlag = (family: Family): string => FAMILY_FLAG[family];

export const neighbours = (ns: Netns, dev: string): TE.TaskEither<CommandError, Neighbour[]> => jsonList(neigh, 'neighbours')(ns, ['neigh', 'show', 'dev', dev]);

/**
 * A route's destination in one canonical form: "10.0.0.1" and "10.0.0.1/32" name the same host
 * route, as do "fd00::1" and "FD00:0::1/128"; "default" is 0.0.0.0/0 or ::/0 by family.
 */
export const normalizePrefix = (p: string, family?: Family): string => {
  const v6 = family === 'IPv6' || (family === undefined && p.includes(':'));
  if (p === 'default') return v6 ? '::/0' : '0.0.0.0/0';
  return canonicalPrefix(p.includes('/') ? p : `${p}/${v6 ? 128 : 32}`);
};

/** An address as iproute2 prints it, comparable with ours whatever the text form. */
export const sameAddress = (a: string | undefined, b: string): boolean => a !== undefined && (canonicalAddress(a) ?? a) === (canonicalAddress(b) ?? b);
