import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { canonicalAddress, canonicalPrefix, contains, covers, familyOf, formatIpv4, formatIpv6, formatPrefix, hostRouteOf, lastOf, overlaps, parseAddress, parseCidr, parseInterfaceAddress, parseIpv4, parseIpv6, prefixSize } from '../../aggregates/ip.ts';
import { suite } from '../lib/harness.ts';

const s = suite('ip');

s('parseIpv4 gives the unsigned 32-bit value', () => {
  assert.is(parseIpv4('0.0.0.0'), 0);
  assert.is(parseIpv4('10.60.0.2'), 10 * 2 ** 24 + 60 * 2 ** 16 + 2);
  assert.is(parseIpv4('255.255.255.255'), 2 ** 32 - 1);
  assert.is(parseIpv4('192.168.1.10'), 3232235786);
});

s('parseIpv4 refuses anything that is not four decimal octets', () => {
  for (const bad of ['256.0.0.1', '1.2.3', '1.2.3.4.5', '01.2.3.4', '1.2.3.-4', 'a.b.c.d', '', '1..2.3', ' 1.2.3.4']) {
    assert.is(parseIpv4(bad), undefined, bad);
  }
});

s('formatIpv4 is the inverse of parseIpv4, including the top bit', () => {
  assert.is(formatIpv4(0), '0.0.0.0');
  assert.is(formatIpv4(2 ** 32 - 1), '255.255.255.255');
  assert.is(formatIpv4(3232235786), '192.168.1.10');
  for (const a of ['10.60.0.253', '128.0.0.1', '172.16.254.3']) assert.is(formatIpv4(parseIpv4(a)!), a);
});

s('parseCidr parses a prefix and formatPrefix prints it back', () => {
  const p = parseCidr('10.60.0.0/24');
  assert.equal(p, E.right({ family: 'IPv4', base: BigInt(parseIpv4('10.60.0.0')!), length: 24 }));
  if (E.isRight(p)) {
    assert.is(formatPrefix(p.right), '10.60.0.0/24');
    assert.is(prefixSize(p.right), 256n);
  }
  assert.equal(parseCidr('0.0.0.0/0'), E.right({ family: 'IPv4', base: 0n, length: 0 }));
  assert.equal(parseCidr('10.1.2.7/32'), E.right({ family: 'IPv4', base: BigInt(parseIpv4('10.1.2.7')!), length: 32 }));
});

s('host bits set are rejected with the intended prefix suggested', () => {
  assert.equal(parseCidr('10.60.0.1/24'), E.left('"10.60.0.1/24" has host bits set; did you mean 10.60.0.0/24?'));
  assert.equal(parseCidr('192.168.1.130/25'), E.left('"192.168.1.130/25" has host bits set; did you mean 192.168.1.128/25?'));
  assert.equal(parseCidr('10.1.2.5/31'), E.left('"10.1.2.5/31" has host bits set; did you mean 10.1.2.4/31?'));
});

s('parseIpv6 reads every text form of RFC 4291', () => {
  assert.is(parseIpv6('::'), 0n);
  assert.is(parseIpv6('::1'), 1n);
  assert.is(parseIpv6('fd00::'), 0xfd00n << 112n);
  assert.is(parseIpv6('2001:db8:0:0:0:0:0:1'), (0x20010db8n << 96n) | 1n);
  assert.is(parseIpv6('2001:DB8::1'), (0x20010db8n << 96n) | 1n);
  assert.is(parseIpv6('fd00:10::1:2'), (0xfd000010n << 96n) | 0x10002n);
  assert.is(parseIpv6('ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff'), (1n << 128n) - 1n);
  assert.is(parseIpv6('::ffff:192.0.2.1'), (0xffffn << 32n) | 0xc0000201n);
  assert.is(parseIpv6('1:2:3:4:5:6:7::'), 0x0001000200030004000500060007_0000n);
});

s('parseIpv6 refuses what is not an address, zone ids included', () => {
  for (const bad of ['', ':', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1::2::3', 'fd00::g', '12345::', 'fe80::1%eth0', '1.2.3.4::', '::1.2.3', ':1::', '1:2:3:4:5:6:7:8::', ' ::1']) {
    assert.is(parseIpv6(bad), undefined, JSON.stringify(bad));
  }
});

s('formatIpv6 prints the canonical form (RFC 5952): lowercase, longest zero run compressed, the first of equal runs', () => {
  assert.is(formatIpv6(0n), '::');
  assert.is(formatIpv6(1n), '::1');
  assert.is(formatIpv6(parseIpv6('2001:0DB8:0000:0000:0000:0000:0000:0001')!), '2001:db8::1');
  assert.is(formatIpv6(parseIpv6('2001:db8:0:1:0:0:0:1')!), '2001:db8:0:1::1');
  assert.is(formatIpv6(parseIpv6('2001:db8:0:0:1:0:0:1')!), '2001:db8::1:0:0:1');
  // A single zero group is not compressed.
  assert.is(formatIpv6(parseIpv6('2001:db8:0:1:1:1:1:1')!), '2001:db8:0:1:1:1:1:1');
  assert.is(formatIpv6(parseIpv6('fd00:10::')!), 'fd00:10::');
  for (const a of ['fd00:10::2', 'fe80::1', '::ffff:c000:201', '1:2:3:4:5:6:7:8']) assert.is(formatIpv6(parseIpv6(a)!), a);
});

s('parseAddress tells the families apart; canonicalAddress normalises', () => {
  assert.equal(parseAddress('10.0.0.1'), { family: 'IPv4', value: 0x0a000001n });
  assert.equal(parseAddress('fd00::1'), { family: 'IPv6', value: (0xfd00n << 112n) | 1n });
  assert.is(parseAddress('10.0.0.256'), undefined);
  assert.is(canonicalAddress('FD00:0:0::0001'), 'fd00::1');
  assert.is(canonicalAddress('nope'), undefined);
  assert.is(familyOf('fd00::2/128'), 'IPv6');
  assert.is(familyOf('10.0.0.2/32'), 'IPv4');
  assert.is(canonicalPrefix('FD00:0::/64'), 'fd00::/64');
});

s('IPv6 prefixes: parsed, sized as bigints, host bits refused with the intended prefix', () => {
  const p = parseCidr('fd00:10::/64');
  assert.equal(p, E.right({ family: 'IPv6', base: 0xfd000010n << 96n, length: 64 }));
  if (E.isRight(p)) {
    assert.is(prefixSize(p.right), 1n << 64n);
    assert.is(formatPrefix(p.right), 'fd00:10::/64');
    assert.is(lastOf(p.right), (0xfd000010n << 96n) | ((1n << 64n) - 1n));
  }
  assert.equal(parseCidr('::/0'), E.right({ family: 'IPv6', base: 0n, length: 0 }));
  assert.equal(parseCidr('fd00:10::1/64'), E.left('"fd00:10::1/64" has host bits set; did you mean fd00:10::/64?'));
  assert.equal(parseCidr('fd00::/129'), E.left('"fd00::/129" is not a CIDR prefix like 10.0.0.0/24 or fd00::/64'));
  assert.equal(parseCidr('fd00::zz/64'), E.left('"fd00::zz/64" is not a CIDR prefix like 10.0.0.0/24 or fd00::/64'));
});

s('interface addresses keep their host bits, in both families', () => {
  assert.equal(parseInterfaceAddress('fd00::2/64'), E.right({ family: 'IPv6', value: (0xfd00n << 112n) | 2n, length: 64 }));
  assert.equal(parseInterfaceAddress('10.0.0.2/24'), E.right({ family: 'IPv4', value: 0x0a000002n, length: 24 }));
  assert.ok(E.isLeft(parseInterfaceAddress('10.0.0.2/33')));
  assert.ok(E.isLeft(parseInterfaceAddress('fd00::2')));
  assert.is(hostRouteOf('fd00::2/64'), 'fd00::2/128');
  assert.is(hostRouteOf('10.0.0.2/24'), '10.0.0.2/32');
});

s('covers and overlaps compare bounds, never across families', () => {
  const p = (s: string) => {
    const r = parseCidr(s);
    if (E.isLeft(r)) throw new Error(r.left);
    return r.right;
  };
  assert.ok(covers(p('fd00::/16'), p('fd00:10::/64')));
  assert.not.ok(covers(p('fd00:10::/64'), p('fd00::/16')));
  assert.ok(overlaps(p('fd00:10::/64'), p('fd00::/16')));
  assert.ok(overlaps(p('fd00:10::/64'), p('fd00:10::8000:0:0:0/65')));
  assert.not.ok(overlaps(p('fd00:10::/64'), p('fd00:11::/64')));
  assert.not.ok(overlaps(p('0.0.0.0/0'), p('::/0')));
  assert.ok(covers(p('10.0.0.0/8'), p('10.60.0.0/24')));
});

s('malformed prefixes are rejected with an example of the right shape', () => {
  for (const bad of ['10.60.0.0', '10.60.0.0/', '10.60.0.0/33', '10.60.0.0/24/1', '10.60.0/24', 'x/24', '10.60.0.0/2a', '/24']) {
    assert.equal(parseCidr(bad), E.left(`"${bad}" is not a CIDR prefix like 10.0.0.0/24 or fd00::/64`), bad);
  }
});

s('contains is inclusive of the network and broadcast addresses and nothing beyond', () => {
  const p = { family: 'IPv4' as const, base: BigInt(parseIpv4('10.60.0.0')!), length: 24 };
  const a = (s: string) => parseAddress(s)!;
  assert.ok(contains(p, a('10.60.0.0')));
  assert.ok(contains(p, a('10.60.0.255')));
  assert.not.ok(contains(p, a('10.60.1.0')));
  assert.not.ok(contains(p, a('10.59.255.255')));
  assert.not.ok(contains(p, a('::a3c:1')), 'an IPv6 address with the same low bits is not in an IPv4 prefix');
  assert.is(prefixSize({ family: 'IPv4', length: 32 }), 1n);
});

s.run();
