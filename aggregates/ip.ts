// IPv4 and IPv6 addresses and prefixes as BigInt arithmetic, for address allocation, exclusions
// and the checks at the boundary. An IPv6 /64 holds 2^64 addresses: nothing here enumerates a
// prefix, every question (containment, overlap, the next pair past an exclusion) is answered
// with arithmetic on the prefix's bounds.
import * as E from 'fp-ts/lib/Either.js';

export type Family = 'IPv4' | 'IPv6';
export const FAMILIES: readonly Family[] = ['IPv4', 'IPv6'];
export const BITS: Readonly<Record<Family, number>> = { IPv4: 32, IPv6: 128 };

export interface Address {
  readonly family: Family;
  readonly value: bigint;
}

export interface IpPrefix {
  readonly family: Family;
  /** The network address. */
  readonly base: bigint;
  readonly length: number;
}

const octet = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export const parseIpv4 = (s: string): number | undefined => {
  const parts = s.split('.');
  if (parts.length !== 4 || !parts.every((p) => octet.test(p))) return undefined;
  return parts.reduce((acc, p) => acc * 256 + Number(p), 0);
};

export const formatIpv4 = (n: number): string =>
  [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');

const hextet = /^[0-9a-fA-F]{1,4}$/;

/**
 * "fd00::1", "2001:db8:0:0:0:0:0:1", "::", "::ffff:192.0.2.1" (a dotted IPv4 tail). Zone ids
 * ("fe80::1%eth0") are refused: the mesh never hands out or routes a link-local address.
 */
export const parseIpv6 = (s: string): bigint | undefined => {
  if (s.length < 2 || s.length > 45 || !s.includes(':')) return undefined;
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i === items.length - 1 && item.includes('.')) {
        const v4 = parseIpv4(item);
        if (v4 === undefined) return undefined;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else if (hextet.test(item)) out.push(parseInt(item, 16));
      else return undefined;
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  // A dotted tail belongs at the end only.
  if (halves.length === 2 && halves[0]!.includes('.')) return undefined;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...new Array<number>(halves.length === 2 ? missing : 0).fill(0), ...tail];
  return all.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n);
};

/**
 * The canonical text form of RFC 5952, as iproute2 prints it: lowercase, no leading zeros, the
 * longest run of two or more zero groups (the first of equal runs) as "::".
 */
export const formatIpv6 = (v: bigint): string => {
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((v >> BigInt(i * 16)) & 0xffffn));
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j;
  }
  const hex = (xs: number[]) => xs.map((x) => x.toString(16)).join(':');
  if (best.len < 2) return hex(g);
  return `${hex(g.slice(0, best.at))}::${hex(g.slice(best.at + best.len))}`;
};

export const parseAddress = (s: string): Address | undefined => {
  if (s.includes(':')) {
    const v = parseIpv6(s);
    return v === undefined ? undefined : { family: 'IPv6', value: v };
  }
  const v = parseIpv4(s);
  return v === undefined ? undefined : { family: 'IPv4', value: BigInt(v) };
};

export const formatAddress = (family: Family, value: bigint): string => (family === 'IPv4' ? formatIpv4(Number(value)) : formatIpv6(value));

/** The address in canonical form ("FD00:0::1" -> "fd00::1"), or undefined when it is none. */
export const canonicalAddress = (s: string): string | undefined => {
  const a = parseAddress(s);
  return a ? formatAddress(a.family, a.value) : undefined;
};

const lengthOk = /^\d{1,3}$/;
const EXAMPLE = 'like 10.0.0.0/24 or fd00::/64';

const splitCidr = (s: string): { addr: Address; length: number } | undefined => {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined || len === undefined || !lengthOk.test(len)) return undefined;
  const a = parseAddress(addr);
  const length = Number(len);
  if (!a || length > BITS[a.family]) return undefined;
  return { addr: a, length };
};

export const prefixSize = (p: Pick<IpPrefix, 'family' | 'length'>): bigint => 1n << BigInt(BITS[p.family] - p.length);

/** Parses "a.b.c.d/len" or "x:y::/len"; host bits must be zero so that a typo is not silently widened. */
export const parseCidr = (s: string): E.Either<string, IpPrefix> => {
  const c = splitCidr(s);
  if (!c) return E.left(`"${s}" is not a CIDR prefix ${EXAMPLE}`);
  const size = prefixSize({ family: c.addr.family, length: c.length });
  const base = c.addr.value - (c.addr.value % size);
  if (base !== c.addr.value) {
    return E.left(`"${s}" has host bits set; did you mean ${formatAddress(c.addr.family, base)}/${c.length}?`);
  }
  return E.right({ family: c.addr.family, base, length: c.length });
};

/** An interface address "10.0.0.2/24" or "fd00::2/64": host bits allowed, unlike a prefix. */
export const parseInterfaceAddress = (s: string): E.Either<string, Address & { readonly length: number }> => {
  const c = splitCidr(s);
  return c ? E.right({ ...c.addr, length: c.length }) : E.left(`"${s}" is not an address with prefix length, like 10.0.0.2/24 or fd00::2/64`);
};

export const formatPrefix = (p: IpPrefix): string => `${formatAddress(p.family, p.base)}/${p.length}`;

/** The prefix in canonical form, or the input when it is not one (the decoders refuse those). */
export const canonicalPrefix = (s: string): string => {
  const c = splitCidr(s);
  return c ? `${formatAddress(c.addr.family, c.addr.value)}/${c.length}` : s;
};

/** The family of an address, with or without a prefix length. */
export const familyOf = (s: string): Family | undefined => parseAddress(s.split('/')[0]!)?.family;

/** The last address of the prefix. */
export const lastOf = (p: IpPrefix): bigint => p.base + prefixSize(p) - 1n;

export const contains = (p: IpPrefix, a: Address): boolean => a.family === p.family && a.value >= p.base && a.value <= lastOf(p);

/** True when every address of `inner` is in `outer`. */
export const covers = (outer: IpPrefix, inner: IpPrefix): boolean =>
  outer.family === inner.family && outer.length <= inner.length && inner.base >= outer.base && lastOf(inner) <= lastOf(outer);

export const overlaps = (a: IpPrefix, b: IpPrefix): boolean => a.family === b.family && a.base <= lastOf(b) && b.base <= lastOf(a);

/** "10.0.0.2/32" or "fd00::2/128": the route to exactly one address. */
export const hostPrefix = (a: Address): string => `${formatAddress(a.family, a.value)}/${BITS[a.family]}`;

/** The prefix's host route form for an interface address ("10.0.0.2/24" -> "10.0.0.2/32"). */
export const hostRouteOf = (cidr: string): string | undefined => {
  const a = parseAddress(cidr.split('/')[0]!);
  return a ? hostPrefix(a) : undefined;
};
