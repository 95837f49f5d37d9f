// IPv6 and dual stack on real namespaces, nodes joined by an IPv4 underlay: endpoints registered
// with an IPv6 prefix and an IPv4 one through the CLI; a connection gets a pair of each family
// and `ping -6` and `ping -4` both pass over kernel (one node), VXLAN and WireGuard (two nodes),
// full-size packets included; an IPv6-only service gets IPv6 only; close leaves nothing of either
// family. Bad input (an IPv6 prefix inside an exclusion, a prefix of the wrong family for a
// service, a malformed address) is refused naming the field, and nothing is registered. A node
// that cannot route IPv6 fails such a connection with the reason, and leaves nothing behind.
// The same over an IPv6 underlay: ipv6Underlay.test.ts.
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { linksIn, meshRoutesIn, sh, startLab, stopLabAndCheck, type Lab } from '../lib/netns.ts';
import { closeAndCheck, connectCli, familyRoutes, pingBoth } from '../lib/dualStack.ts';

const s = suite<{ lab?: Lab; c?: MeshClient }>('e2e: IPv6 and dual stack over an IPv4 underlay', {});

s.before(async (ctx) => {
  const lab = (ctx.lab = await startLab({ nodes: ['n1', 'n2', 'n3'] }));
  ctx.c = await lab.client();
  for (const args of [['service', 'register', 'near'], ['service', 'register', 'far'], ['service', 'register', 'six', '--family', 'IPv6'], ['service', 'register', 'off'], ['service', 'register', 'l2', '--payload', 'ETHERNET']]) {
    const r = await lab.nsm(args);
    assert.is(r.code, 0, r.stderr);
  }
  await lab.startEndpoint({ name: 'ep-near', service: 'near', node: 'n1', role: 'ep-near', prefixes: ['fd00:11::/64', '10.61.0.0/24'] });
  await lab.startEndpoint({ name: 'ep-far', service: 'far', node: 'n2', role: 'ep-far', prefixes: ['fd00:12::/64', '10.62.0.0/24'] });
  await lab.startEndpoint({ name: 'ep-l2', service: 'l2', node: 'n2', role: 'ep-l2', prefixes: ['fd00:14::/64', '10.65.0.0/24'] });
  await lab.startEndpoint({ name: 'ep-six', service: 'six', node: 'n2', role: 'ep-six', prefix: 'fd00:16::/64' });
  await lab.addNamespace('client');
});
s.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

s('kernel, one node: a pair per family; ping -6 and ping -4 pass both ways; IPv6 routes go via the node', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('k6');
  const conn = await connectCli(lab, id, 'near', 'kernel', 'nsm-k6');
  assert.equal(conn.mechanism, { local: 'kernel' });
  assert.equal(conn.context!.ipContext.srcIpAddrs, ['fd00:11::3/128', '10.61.0.3/32']);
  assert.equal(conn.context!.ipContext.dstIpAddrs, ['fd00:11::2/128', '10.61.0.2/32']);
  await pingBoth(lab, 'client', conn, { mtu: 1500 });
  await pingBoth(lab, 'ep-near', conn, { reverse: true });
  // The workload reaches its peer's IPv6 address through the node end's link-local address.
  assert.equal(await familyRoutes(lab.ns('client'), 'nsm-k6', 'IPv6'), ['fd00:11::2 via fe80::1']);
  assert.equal(await familyRoutes(lab.ns('client'), 'nsm-k6', 'IPv4'), ['10.61.0.2']);
  await closeAndCheck(lab, id, 'nsm-k6', 'ep-near');
});

for (const mechanism of ['vxlan', 'wireguard'] as const) {
  s(`${mechanism}, two nodes: ping -6 and ping -4 at full MTU, both ways; close leaves nothing`, async (ctx) => {
    const lab = ctx.lab!;
    const id = lab.connectionId(mechanism === 'vxlan' ? 'v6' : 'w6');
    const iface = mechanism === 'vxlan' ? 'nsm-v6' : 'nsm-w6';
    const conn = await connectCli(lab, id, 'far', mechanism, iface);
    assert.equal(conn.mechanism, { local: 'kernel', remote: mechanism });
    // Over an IPv4 underlay: VXLAN 50 bytes, WireGuard 80.
    assert.is(conn.context!.mtu, mechanism === 'vxlan' ? 1450 : 1420);
    await pingBoth(lab, 'client', conn, { mtu: conn.context!.mtu });
    await pingBoth(lab, 'ep-far', conn, { reverse: true });
    await closeAndCheck(lab, id, iface, 'ep-far');
  });
}

s('an ETHERNET service over VXLAN: one subnet per family (/64 and /24), neighbour discovery and ARP across the tunnel', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('e6');
  const conn = await connectCli(lab, id, 'l2', 'vxlan', 'nsm-e6');
  assert.equal(conn.mechanism, { local: 'kernel', remote: 'vxlan' });
  assert.equal(conn.context!.ipContext.srcIpAddrs, ['fd00:14::3/64', '10.65.0.3/24']);
  assert.equal(conn.context!.ipContext.dstIpAddrs, ['fd00:14::2/64', '10.65.0.2/24']);
  await pingBoth(lab, 'client', conn, { mtu: conn.context!.mtu });
  await pingBoth(lab, 'ep-l2', conn, { reverse: true });
  // No routes: both ends are on one segment; the peer's IPv6 address was found by neighbour discovery.
  assert.equal(await familyRoutes(lab.ns('client'), 'nsm-e6', 'IPv6'), []);
  const neigh = JSON.parse(await sh(['ip', '-n', lab.ns('client'), '-json', '-6', 'neigh', 'show', 'dev', 'nsm-e6'])) as { dst: string }[];
  assert.ok(neigh.some((n) => n.dst === 'fd00:14::2'), `fd00:14::2 resolved: ${JSON.stringify(neigh)}`);
  await closeAndCheck(lab, id, 'nsm-e6', 'ep-l2');
});

s('an IPv6-only service: the connection gets IPv6 only, and answers ping -6 over WireGuard', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('o6');
  const conn = await connectCli(lab, id, 'six', 'wireguard', 'nsm-o6');
  assert.equal(conn.context!.ipContext.srcIpAddrs, ['fd00:16::3/128']);
  assert.equal(conn.context!.ipContext.dstIpAddrs, ['fd00:16::2/128']);
  const ping = await lab.ping('client', 'fd00:16::2', { family: 'IPv6' });
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  const v4 = JSON.parse((await lab.nsm(['--json', 'ls', 'addresses'])).stdout) as { connectionId: string; family: string }[];
  assert.equal(v4.filter((r) => r.connectionId === id).map((r) => r.family), ['IPv6'], 'nsm ls addresses lists one IPv6 pair');
  assert.equal(await familyRoutes(lab.ns('client'), 'nsm-o6', 'IPv4'), [], 'no IPv4 route on the interface');
  await closeAndCheck(lab, id, 'nsm-o6', 'ep-six');
});

s('a node whose namespace cannot route IPv6 fails a dual-stack connection saying why, and programs nothing', async (ctx) => {
  const lab = ctx.lab!;
  const n3 = lab.nodes.get('n3')!;
  // The agent probes its node at start: restart it on a namespace with IPv6 switched off.
  await n3.agent!.stop();
  await sh(['ip', 'netns', 'exec', n3.netns, 'sysctl', '-q', '-w', 'net.ipv6.conf.all.disable_ipv6=1']);
  const agent = await lab.startAgent('n3');
  await agent.waitFor(/ipv6: IPv6 is disabled in this node's namespace/, 10000);
  await lab.startEndpoint({ name: 'ep-off', service: 'off', node: 'n3', role: 'ep-off', prefixes: ['fd00:13::/64', '10.64.0.0/24'] });
  const id = lab.connectionId('x6');
  const r = await lab.nsm(['connect', 'off', '--node', 'n3', '--netns', lab.ns('client'), '--interface', 'nsm-x6', '--mechanism', 'kernel', '--id', id, '--wait']);
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, new RegExp(`connection ${id} failed: .*IPv6 is disabled in this node's namespace`), r.stderr);
  assert.equal((await linksIn(lab.ns('client'))).filter((l) => l.ifname === 'nsm-x6'), [], 'no interface in the client namespace');
  assert.equal(await meshRoutesIn(n3.netns), [], 'no route on the node');
});

s('bad input is refused naming the field, and nothing is registered', async (ctx) => {
  const lab = ctx.lab!;
  const cases: { args: string[]; says: RegExp }[] = [
    { args: ['endpoint', 'register', 'bad-1', '--service', 'far', '--node', 'n2', '--prefix', 'fd00:20::/64', '--exclude', 'fd00::/16'], says: /body\.excludedPrefixes\[0\]: "fd00::\/16" covers the whole prefix fd00:20::\/64/ },
    { args: ['endpoint', 'register', 'bad-2', '--service', 'six', '--node', 'n2', '--prefix', 'fd00:21::/64', '--prefix', '10.63.0.0/24'], says: /prefixes\[1\]: "10\.63\.0\.0\/24" is IPv4; network service "six" carries IPv6 only/ },
    { args: ['endpoint', 'register', 'bad-3', '--service', 'far', '--node', 'n2', '--prefix', 'fd00:22::g/64'], says: /body\.prefix: "fd00:22::g\/64" is not a CIDR prefix like 10\.0\.0\.0\/24 or fd00::\/64/ },
    { args: ['endpoint', 'register', 'bad-4', '--service', 'far', '--node', 'n2', '--prefix', 'fd00:23::/64', '--prefix', 'fd00:24::/64'], says: /body\.prefixes\[1\]: "fd00:24::\/64" is a second IPv6 prefix; give one per family/ },
    { args: ['endpoint', 'register', 'bad-5', '--service', 'six', '--node', 'n2'], says: /"169\.254\.0\.0\/16" is IPv4; network service "six" carries IPv6 only/ },
  ];
  for (const k of cases) {
    const r = await lab.nsm(k.args);
    assert.is(r.code, 1, `${k.args.join(' ')} should fail: ${r.stdout}`);
    assert.match(r.stderr, k.says, r.stderr);
  }
  const endpoints = must(await ctx.c!.query<{ name: string }[]>('endpoints'));
  assert.equal(endpoints.map((e) => e.name).filter((n) => n.startsWith('bad-')), [], 'none of them was registered');
});

s.run();
