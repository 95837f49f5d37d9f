import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { contains, formatIpv4, formatPrefix, parseCidr, parseIpv4, prefixSize } from '../../aggregates/ip.ts';
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
  assert.equal(p, E.right({ base: parseIpv4('10.60.0.0')!, length: 24 }));
  if (E.isRight(p)) {
    assert.is(formatPrefix(p.right), '10.60.0.0/24');
    assert.is(prefixSize(p.right), 256);
  }
  assert.equal(parseCidr('0.0.0.0/0'), E.right({ base: 0, length: 0 }));
  assert.equal(parseCidr('10.1.2.7/32'), E.right({ base: parseIpv4('10.1.2.7')!, length: 32 }));
});

s('host bits set are rejected with the intended prefix suggested', () => {
  assert.equal(parseCidr('10.60.0.1/24'), E.left('"10.60.0.1/24" has host bits set; did you mean 10.60.0.0/24?'));
  assert.equal(parseCidr('192.168.1.130/25'), E.left('"192.168.1.130/25" has host bits set; did you mean 192.168.1.128/25?'));
  assert.equal(parseCidr('10.1.2.5/31'), E.left('"10.1.2.5/31" has host bits set; did you mean 10.1.2.4/31?'));
});

s('IPv6 prefixes are rejected as not supported yet', () => {
  assert.equal(parseCidr('fd00::/64'), E.left('IPv6 prefix "fd00::/64" is not supported yet (IPv4 only)'));
  assert.equal(parseCidr('::1/128'), E.left('IPv6 prefix "::1/128" is not supported yet (IPv4 only)'));
});

s('malformed prefixes are rejected with an example of the right shape', () => {
  for (const bad of ['10.60.0.0', '10.60.0.0/', '10.60.0.0/33', '10.60.0.0/24/1', '10.60.0/24', 'x/24', '10.60.0.0/2a', '/24']) {
    assert.equal(parseCidr(bad), E.left(`"${bad}" is not a CIDR prefix like 10.0.0.0/24`), bad);
  }
});

s('contains is inclusive of the network and broadcast addresses and nothing beyond', () => {
  const p = { base: parseIpv4('10.60.0.0')!, length: 24 };
  assert.ok(contains(p, parseIpv4('10.60.0.0')!));
  assert.ok(contains(p, parseIpv4('10.60.0.255')!));
  assert.not.ok(contains(p, parseIpv4('10.60.1.0')!));
  assert.not.ok(contains(p, parseIpv4('10.59.255.255')!));
  assert.is(prefixSize({ base: 0, length: 32 }), 1);
});

s.run();
