// Two nodes (two namespaces on one underlay bridge, an agent process each): a client on n1, an
// endpoint on n2, joined over VXLAN and over WireGuard; an ETHERNET service over VXLAN gives one
// subnet where ARP resolves. For WireGuard the underlay is checked to carry only UDP to the
// tunnel's port, with a capture and nftables counters; the same capture over VXLAN finds the
// ping's payload in clear, which shows the check can see plaintext when there is some.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import { installCounters, startCapture, type Packet } from '../lib/capture.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { addressOf, interfacesOf, linksIn, meshRoutesIn, rootLinksWith, rulesIn, sh, startLab, wireguardLeft, type ConnectionView, type Lab, stopLabAndCheck } from '../lib/netns.ts';

const PATTERN = 'feedfacecafebeef';
const PATTERN_BYTES = Buffer.from(PATTERN, 'hex');

const s = suite<{ lab?: Lab; c?: MeshClient }>('e2e: two nodes over VXLAN and WireGuard', {});

s.before(async (ctx) => {
  const lab = (ctx.lab = await startLab({ nodes: ['n1', 'n2'] }));
  const c = (ctx.c = await lab.client());
  must(await c.send('service.register', { name: 'icmp' }));
  must(await c.send('service.register', { name: 'l2', payload: 'ETHERNET' }));
  await lab.startEndpoint({ name: 'responder', service: 'icmp', node: 'n2', role: 'ep', prefix: '10.70.0.0/24' });
  await lab.startEndpoint({ name: 'l2-responder', service: 'l2', node: 'n2', role: 'ep2', prefix: '10.71.0.0/24' });
  await lab.addNamespace('client');
});
s.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

const connect = async (lab: Lab, c: MeshClient, id: string, service: string, mechanism: string, iface: string): Promise<ConnectionView> => {
  must(await c.send('connection.request', { connectionId: id, networkService: service, clientNode: 'n1', clientNetns: lab.ns('client'), clientInterface: iface, mechanismPreferences: [mechanism as 'vxlan'] }));
  const settled = await c.waitForConnection(id, 30000);
  const logs = () => `\n--- agent n1:\n${lab.nodes.get('n1')!.agent!.output().slice(-3000)}\n--- agent n2:\n${lab.nodes.get('n2')!.agent!.output().slice(-3000)}`;
  if (E.isLeft(settled)) throw new Error(`connection ${id}: ${settled.left.message}${logs()}`);
  const view = must(await c.query<ConnectionView>('connection', { id }));
  assert.is(settled.right.state, 'established', `connection ${id}: ${settled.right.reason ?? ''}${logs()}`);
  return view;
};

/** Closes and waits until neither node nor namespace holds anything of the connection. */
const closeAndCheck = async (lab: Lab, c: MeshClient, id: string, iface: string, epRole: string) => {
  must(await c.send('connection.close', { connectionId: id }));
  const idPart = id.toLowerCase().slice(0, 12);
  const [n1, n2] = [interfacesOf(lab.nodes.get('n1')!, id), interfacesOf(lab.nodes.get('n2')!, id)];
  const mine = async () => [
    ...(await linksIn(lab.ns('n1'))).filter((l) => n1.includes(l.ifname)).map((l) => `n1:${l.ifname}`),
    ...(await linksIn(lab.ns('n2'))).filter((l) => n2.includes(l.ifname)).map((l) => `n2:${l.ifname}`),
    ...(await linksIn(lab.ns('client'))).filter((l) => l.ifname === iface).map((l) => `client:${l.ifname}`),
    ...(await linksIn(lab.ns(epRole))).filter((l) => l.ifname.includes(idPart)).map((l) => `${epRole}:${l.ifname}`),
    ...(await rulesIn(lab.ns('n1'))).filter((r) => r.iif !== undefined && n1.includes(r.iif)).map((r) => `n1 rule iif ${r.iif}`),
    ...(await rulesIn(lab.ns('n2'))).filter((r) => r.iif !== undefined && n2.includes(r.iif)).map((r) => `n2 rule iif ${r.iif}`),
    ...rootLinksWith(idPart).map((l) => `interface ${l} in the root namespace`),
    ...wireguardLeft([...n1, ...n2]),
    ...(await meshRoutesIn(lab.ns('n1'))).map((r) => `n1 route ${r}`),
    ...(await meshRoutesIn(lab.ns('n2'))).map((r) => `n2 route ${r}`),
  ];
  let left = await mine();
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = await mine();
  }
  assert.equal(left, [], `nothing of connection ${id} is left after close`);
};

const between = (p: Packet, a: string, b: string) => (p.src === a && p.dst === b) || (p.src === b && p.dst === a);

s('VXLAN: ping across nodes at full MTU; the capture sees the payload in clear', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('vx');
  const conn = await connect(lab, ctx.c!, id, 'icmp', 'vxlan', 'nsm-vx');
  assert.equal(conn.mechanism, { local: 'kernel', remote: 'vxlan' });
  assert.is(conn.context!.mtu, 1450, 'VXLAN takes 50 bytes of the 1500-byte underlay');
  assert.is((await linksIn(lab.ns('client'))).find((l) => l.ifname === 'nsm-vx')?.mtu, 1450);
  const dst = addressOf(conn.context!.ipContext.dstIpAddrs[0]!);

  const cap = await startCapture(lab.ns('n1'), 'ul0', lab.dir, 'vxlan');
  const ping = await lab.ping('client', dst, { pattern: PATTERN });
  // The largest packet that fits the MTU, with "don't fragment": 1450 - 20 (IP) - 8 (ICMP).
  const big = await lab.ping('client', dst, { size: 1422, dontFragment: true, count: 2 });
  const packets = await cap.stop();
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  assert.is(big.code, 0, `a full-MTU ping does not pass: ${big.stdout}${big.stderr}`);
  const tunnel = packets.filter((p) => between(p, '172.31.0.11', '172.31.0.12') && p.protocol === 17 && p.dstPort === 4789);
  assert.ok(tunnel.length >= 6, `VXLAN packets on the underlay: ${tunnel.length}`);
  assert.ok(packets.some((p) => p.frame.includes(PATTERN_BYTES)), 'the ping payload is visible on the underlay (VXLAN does not encrypt)');
  await closeAndCheck(lab, ctx.c!, id, 'nsm-vx', 'ep');
});

s('WireGuard: ping across nodes; the underlay carries only UDP to the WireGuard port', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('wg');
  const conn = await connect(lab, ctx.c!, id, 'icmp', 'wireguard', 'nsm-wg');
  assert.equal(conn.mechanism, { local: 'kernel', remote: 'wireguard' });
  assert.is(conn.context!.mtu, 1420, 'WireGuard takes 80 bytes of the 1500-byte underlay');
  const src = addressOf(conn.context!.ipContext.srcIpAddrs[0]!);
  const dst = addressOf(conn.context!.ipContext.dstIpAddrs[0]!);
  const plan = must(await ctx.c!.query<{ sides: { connectionId: string; tunnel?: { wireguardPort: number } }[] }>('node-desired', { node: 'n1' }));
  const port = plan.sides.find((x) => x.connectionId === id)!.tunnel!.wireguardPort;

  const read = await installCounters(lab.ns('n1'), 'nsmcheck', {
    udpOut: `out oifname "ul0" udp dport ${port}`,
    udpIn: `in iifname "ul0" udp sport ${port}`,
    icmpOut: 'out oifname "ul0" ip protocol icmp',
    icmpIn: 'in iifname "ul0" ip protocol icmp',
    clearOut: `out oifname "ul0" ip saddr ${src} ip daddr ${dst}`,
    clearIn: `in iifname "ul0" ip saddr ${dst} ip daddr ${src}`,
  });
  const cap = await startCapture(lab.ns('n1'), 'ul0', lab.dir, 'wireguard');
  const ping = await lab.ping('client', dst, { pattern: PATTERN, count: 5 });
  const big = await lab.ping('client', dst, { size: 1392, dontFragment: true, count: 2 });
  const packets = await cap.stop();
  const counters = await read();
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  assert.is(big.code, 0, `a full-MTU ping does not pass: ${big.stdout}${big.stderr}`);

  assert.ok(counters.udpOut! >= 7 && counters.udpIn! >= 7, `UDP to/from the WireGuard port: ${JSON.stringify(counters)}`);
  assert.is(counters.icmpOut, 0, 'no ICMP leaves the node on the underlay');
  assert.is(counters.icmpIn, 0, 'no ICMP arrives on the underlay');
  assert.is(counters.clearOut! + counters.clearIn!, 0, "no packet with the workloads' addresses on the underlay");
  const nodeTraffic = packets.filter((p) => between(p, '172.31.0.11', '172.31.0.12'));
  assert.ok(nodeTraffic.length >= 14, `captured ${nodeTraffic.length} packets between the nodes`);
  const notWireguard = nodeTraffic.filter((p) => !(p.protocol === 17 && p.srcPort === port && p.dstPort === port));
  assert.equal(notWireguard.map((p) => `${p.src}->${p.dst} proto ${p.protocol} ${p.srcPort ?? ''}->${p.dstPort ?? ''}`), [], 'every packet between the nodes is WireGuard UDP');
  assert.not.ok(packets.some((p) => p.frame.includes(PATTERN_BYTES)), 'the ping payload never appears in clear');
  await sh(['ip', 'netns', 'exec', lab.ns('n1'), 'nft', 'delete', 'table', 'inet', 'nsmcheck']);
  await closeAndCheck(lab, ctx.c!, id, 'nsm-wg', 'ep');
});

s('ETHERNET over VXLAN: one subnet, ARP resolves the endpoint', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('l2');
  const conn = await connect(lab, ctx.c!, id, 'l2', 'vxlan', 'nsm-l2');
  const src = conn.context!.ipContext.srcIpAddrs[0]!;
  const dst = conn.context!.ipContext.dstIpAddrs[0]!;
  assert.match(src, /\/24$/);
  assert.match(dst, /\/24$/);
  const ping = await lab.ping('client', addressOf(dst));
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  const epMac = (await linksIn(lab.ns('ep2'))).find((l) => l.ifname === conn.interfaces!.endpoint) as { address?: string } | undefined;
  const neigh = JSON.parse(await sh(['ip', '-n', lab.ns('client'), '-json', 'neigh', 'show', 'dev', 'nsm-l2'])) as { dst: string; lladdr?: string; state: string[] }[];
  const entry = neigh.find((n) => n.dst === addressOf(dst));
  assert.ok(entry, `the client has a neighbour entry for ${dst}: ${JSON.stringify(neigh)}`);
  assert.is(entry!.lladdr, epMac?.address, "ARP resolved the endpoint's own MAC across the tunnel");
  assert.not.ok(entry!.state.includes('PERMANENT'), 'learnt by ARP, not configured');
  const routes = JSON.parse(await sh(['ip', '-n', lab.ns('client'), '-json', '-4', 'route', 'show', 'dev', 'nsm-l2'])) as { dst: string; protocol?: string }[];
  assert.equal(routes.map((r) => `${r.dst} ${r.protocol ?? ''}`), ['10.71.0.0/24 kernel'], 'the subnet is on-link: no routes needed');
  await closeAndCheck(lab, ctx.c!, id, 'nsm-l2', 'ep2');
});

s('ETHERNET over WireGuard is refused at negotiation with a clear reason', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('nx');
  must(await ctx.c!.send('connection.request', { connectionId: id, networkService: 'l2', clientNode: 'n1', clientNetns: lab.ns('client'), mechanismPreferences: ['wireguard'] }));
  const waited = await ctx.c!.waitForConnection(id, 20000);
  if (E.isLeft(waited)) {
    const history = await ctx.c!.query('history', { id });
    throw new Error(`${waited.left.message}; history: ${JSON.stringify(history)}`);
  }
  const settled = waited.right;
  assert.is(settled.state, 'failed');
  assert.match(settled.reason ?? '', /no mechanism joins node n1 .* and node n2 .* for ETHERNET payload; client asked for wireguard/);
});

s('no private key in any event or log; only public keys travel', async (ctx) => {
  const lab = ctx.lab!;
  const keys = [...lab.nodes.values()].map((n) => readFileSync(join(n.stateDir, 'wireguard.key'), 'utf8').trim());
  assert.is(keys.length, 2);
  for (const n of lab.nodes.values()) {
    const mode = (await sh(['stat', '-c', '%a', join(n.stateDir, 'wireguard.key')])).trim();
    assert.is(mode, '600', `the key of ${n.name} is readable by root only`);
  }
  const events: string[] = [];
  for await (const commit of lab.cp.store.readAll(0n)) events.push(JSON.stringify(commit, (_k, v) => (typeof v === "bigint" ? v.toString() : v)));
  assert.ok(events.length > 10);
  const joined = events.join('\n');
  const logs = [...lab.nodes.values()].map((n) => n.agent!.output()).join('\n');
  for (const k of keys) {
    assert.not.ok(joined.includes(k), 'a private key is in the event log');
    assert.not.ok(logs.includes(k), 'a private key is in an agent log');
  }
  const nodes = must(await ctx.c!.query<{ name: string; publicKeys: Record<string, string>; localPrefixes?: string[] }[]>('nodes'));
  assert.equal(nodes.map((n) => Object.keys(n.publicKeys)), [['wireguard'], ['wireguard']]);
  assert.equal(nodes.map((n) => n.localPrefixes), [['172.31.0.0/24'], ['172.31.0.0/24']], "each node reported its own routes, which addresses never come from");
  assert.ok(nodes.every((n) => joined.includes(n.publicKeys.wireguard!)), 'public keys are in the events');
});

s.run();
