// IPv6 and dual stack at the boundary: what endpoint.register, service.register and node.join
// accept, and how a refusal names the field (nothing is decided, so nothing is registered).
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { decodeCommand, type CommandKind } from '../../src/contracts/commands.ts';
import { formatDecodeError } from '../../src/contracts/decode.ts';
import { suite } from '../lib/harness.ts';

const s = suite('contracts: addresses');

const decode = (kind: CommandKind, body: Record<string, unknown>) => decodeCommand(kind, 'alice', { id: 'cmd-1', body });
const refusal = (kind: CommandKind, body: Record<string, unknown>): string => {
  const r = decode(kind, body);
  if (E.isRight(r)) throw new Error(`expected ${kind} ${JSON.stringify(body)} to be refused`);
  return formatDecodeError(r.left);
};
const ep = (over: Record<string, unknown>) => ({ name: 'ep-1', networkServiceNames: ['web'], node: 'n1', ...over });

s('an endpoint with an IPv6 prefix, or one of each family, is accepted', () => {
  for (const body of [ep({ prefix: 'fd00:10::/64' }), ep({ prefixes: ['fd00:10::/64', '10.60.0.0/24'], excludedPrefixes: ['fd00:10::/120', '10.60.0.0/28'] })]) {
    assert.ok(E.isRight(decode('endpoint.register', body)), JSON.stringify(body));
  }
});

s('a malformed address or prefix is refused, naming the field', () => {
  assert.is(refusal('endpoint.register', ep({ prefixes: ['10.60.0.0/24', 'fd00::zz/64'] })), 'body.prefixes[1]: "fd00::zz/64" is not a CIDR prefix like 10.0.0.0/24 or fd00::/64');
  assert.is(refusal('endpoint.register', ep({ prefix: 'fd00:10::1/64' })), 'body.prefix: "fd00:10::1/64" has host bits set; did you mean fd00:10::/64?');
  assert.is(refusal('endpoint.register', ep({ prefix: 'fd00::/64', excludedPrefixes: ['fd00::/200'] })), 'body.excludedPrefixes[0]: "fd00::/200" is not a CIDR prefix like 10.0.0.0/24 or fd00::/64');
  assert.match(refusal('node.join', { name: 'n1', mechanisms: ['kernel'], dataplane: 'linux', underlayAddress: 'fd00::1::2' }), /^body\.underlayAddress: "fd00::1::2" is not an IPv4 or IPv6 address$/);
  assert.match(refusal('node.join', { name: 'n1', mechanisms: ['kernel'], dataplane: 'linux', underlayAddress: '10.0.0.300' }), /^body\.underlayAddress: /);
});

s('an IPv6 prefix wholly inside an excluded one is refused, naming the exclusion and the prefix', () => {
  assert.is(
    refusal('endpoint.register', ep({ prefixes: ['10.60.0.0/24', 'fd00:10::/64'], excludedPrefixes: ['10.60.0.0/28', 'fd00::/16'] })),
    'body.excludedPrefixes[1]: "fd00::/16" covers the whole prefix fd00:10::/64: no address of it could be handed out',
  );
  assert.is(refusal('endpoint.register', ep({ prefix: 'fd00:10::/64', excludedPrefixes: ['fd00:10::/64'] })), 'body.excludedPrefixes[0]: "fd00:10::/64" covers the whole prefix fd00:10::/64: no address of it could be handed out');
});

s('two prefixes of one family, or both forms at once, are refused', () => {
  assert.is(refusal('endpoint.register', ep({ prefixes: ['fd00:10::/64', 'fd00:11::/64'] })), 'body.prefixes[1]: "fd00:11::/64" is a second IPv6 prefix; give one per family');
  assert.is(refusal('endpoint.register', ep({ prefix: '10.60.0.0/24', prefixes: ['fd00:10::/64'] })), 'body.prefixes: give prefix or prefixes, not both');
  assert.is(refusal('endpoint.register', ep({ prefixes: [] })), 'body.prefixes: needs at least 1 item(s)');
});

s('link-local and multicast IPv6 prefixes are refused: the dataplane\'s gateway is fe80::1 on every link', () => {
  assert.is(refusal('endpoint.register', ep({ prefix: 'fe80::/64' })), 'body.prefix: "fe80::/64" overlaps fe80::/10 (link-local); give a unique local (fd00::/8) or global prefix');
  assert.is(refusal('endpoint.register', ep({ prefixes: ['10.60.0.0/24', 'ff02::/16'] })), 'body.prefixes[1]: "ff02::/16" overlaps ff00::/8 (multicast); give a unique local (fd00::/8) or global prefix');
  // A prefix that merely contains the range overlaps it too.
  assert.match(refusal('endpoint.register', ep({ prefix: 'fe00::/7' })), /^body\.prefix: "fe00::\/7" overlaps fe80::\/10/);
});

s('an endpoint\'s DNS: servers are addresses or "endpoint", search domains are names; a bad one is refused naming the field', () => {
  assert.ok(E.isRight(decode('endpoint.register', ep({ dns: { servers: ['endpoint', 'fd00:53::1', '10.0.0.53'], searchDomains: ['svc.test'] } }))));
  assert.is(refusal('endpoint.register', ep({ dns: { servers: ['fd00::g'] } })), 'body.dns.servers[0]: invalid value "fd00::g": an IP address or "endpoint"');
  assert.is(refusal('endpoint.register', ep({ dns: { servers: ['10.0.0.300'] } })), 'body.dns.servers[0]: "10.0.0.300" is not an IPv4 or IPv6 address (or "endpoint")');
  assert.match(refusal('endpoint.register', ep({ dns: { servers: ['endpoint'], searchDomains: ['bad name'] } })), /^body\.dns\.searchDomains\[0\]: /);
  assert.match(refusal('endpoint.register', ep({ dns: { servers: ['1.1.1.1', '1.0.0.1', '8.8.8.8', '8.8.4.4'] } })), /^body\.dns\.servers: /);
  assert.match(refusal('endpoint.register', ep({ dns: { searchDomains: ['svc.test'] } })), /^body\.dns\.servers: /);
  // A service offers DNS the same way.
  assert.ok(E.isRight(decode('service.register', { name: 'web', dns: { servers: ['endpoint'], searchDomains: ['cluster.test'] } })));
  assert.is(refusal('service.register', { name: 'web', dns: { servers: ['10.0.0.300'] } }), 'body.dns.servers[0]: "10.0.0.300" is not an IPv4 or IPv6 address (or "endpoint")');
});

s('a service names the families it carries, each once', () => {
  assert.ok(E.isRight(decode('service.register', { name: 'web', ipFamilies: ['IPv6'] })));
  assert.is(refusal('service.register', { name: 'web', ipFamilies: ['IPv6', 'IPv6'] }), 'body.ipFamilies: a family is named twice');
  assert.is(refusal('service.register', { name: 'web', ipFamilies: ['ipv7'] }), 'body.ipFamilies[0]: expected one of IPv4, IPv6, got "ipv7"');
});

s.run();
