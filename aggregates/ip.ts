// IPv4 prefix arithmetic for address allocation. IPv6 prefixes are parsed and refused with a
// clear error by the allocator until IPv6 allocation is implemented.
import * as E from 'fp-ts/lib/Either.js';

export interface Ipv4Prefix {
  readonly base: number; // network address as an unsigned 32-bit integer
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

const isIpv6 = (s: string): boolean => /^[0-9a-fA-F:.]+$/.test(s) && s.includes(':');

/** Parses "a.b.c.d/len"; host bits must be zero so that a typo is not silently widened. */
export const parseCidr = (s: string): E.Either<string, Ipv4Prefix> => {
  const [addr, len, ...rest] = s.split('/');
  if (rest.length > 0 || addr === undefined || len === undefined || !/^\d{1,3}$/.test(len)) {
    return E.left(`"${s}" is not a CIDR prefix like 10.0.0.0/24`);
  }
  if (isIpv6(addr)) return E.left(`IPv6 prefix "${s}" is not supported yet (IPv4 only)`);
  const base = parseIpv4(addr);
  const length = Number(len);
  if (base === undefined || length > 32) return E.left(`"${s}" is not a CIDR prefix like 10.0.0.0/24`);
  const size = 2 ** (32 - length);
  if (base % size !== 0) {
    return E.left(`"${s}" has host bits set; did you mean ${formatIpv4(base - (base % size))}/${length}?`);
  }
  return E.right({ base, length });
};

export const prefixSize = (p: Ipv4Prefix): number => 2 ** (32 - p.length);
export const formatPrefix = (p: Ipv4Prefix): string => `${formatIpv4(p.base)}/${p.length}`;
export const contains = (p: Ipv4Prefix, addr: number): boolean => addr >= p.base && addr < p.base + prefixSize(p);
