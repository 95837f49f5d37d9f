// Helpers for the IPv6 and dual-stack labs: connect through the CLI, ping every family of a
// connection (full size with "don't fragment" when asked), list a device's routes per family, and
// close a connection checking that nothing of either family is left.
import * as assert from 'uvu/assert';
import { familyOf, type Family } from '../../aggregates/ip.ts';
import { addressOf, interfacesOf, linksIn, meshRoutesIn, rootLinksWith, rulesIn, sh, wireguardLeft, type ConnectionView, type Lab } from './netns.ts';

/**
 * What these helpers need of a lab: the startLab one, or namespaces around the default secure
 * mesh (where `nsm` runs as a client identity).
 */
export type DualLab = Pick<Lab, 'nodes' | 'ns' | 'nsm' | 'ping'>;

/** `nsm connect SVC --node n1 --netns <client> --mechanism M --wait --json`, as a user would. */
export const connectCli = async (lab: DualLab, id: string, service: string, mechanism: string, iface: string, o: { node?: string; netns?: string } = {}): Promise<ConnectionView> => {
  const r = await lab.nsm(['connect', service, '--node', o.node ?? 'n1', '--netns', o.netns ?? lab.ns('client'), '--interface', iface, '--mechanism', mechanism, '--id', id, '--wait', '--json']);
  const logs = [...lab.nodes.values()].map((n) => `--- agent ${n.name}:\n${n.agent?.output().slice(-2500) ?? ''}`).join('\n');
  assert.is(r.code, 0, `nsm connect ${service} failed: ${r.stderr}\n${logs}`);
  const conn = JSON.parse(r.stdout) as ConnectionView;
  assert.is(conn.state, 'established');
  return conn;
};

/** ICMP and IP header bytes around a ping's payload. */
const HEADERS: Readonly<Record<Family, number>> = { IPv4: 20 + 8, IPv6: 40 + 8 };

/**
 * From `role`, pings each family's peer address of the connection (the endpoint's, or with
 * `reverse` the client's) with `ping -4`/`ping -6`; with `mtu`, also the largest packet that
 * fits, with "don't fragment".
 */
export const pingBoth = async (lab: DualLab, role: string, conn: ConnectionView, o: { mtu?: number; reverse?: boolean } = {}): Promise<Family[]> => {
  const targets = o.reverse ? conn.context!.ipContext.srcIpAddrs : conn.context!.ipContext.dstIpAddrs;
  const families: Family[] = [];
  for (const cidr of targets) {
    const family = familyOf(cidr)!;
    families.push(family);
    const address = addressOf(cidr);
    const ping = await lab.ping(role, address, { family });
    assert.is(ping.code, 0, `ping ${family === 'IPv6' ? '-6' : '-4'} ${address} from ${role}:\n${ping.stdout}${ping.stderr}`);
    assert.match(ping.stdout, /3 received/);
    if (o.mtu !== undefined) {
      const size = o.mtu - HEADERS[family];
      const big = await lab.ping(role, address, { family, size, dontFragment: true, count: 2 });
      assert.is(big.code, 0, `a full-MTU ${family} ping (${size} bytes, MTU ${o.mtu}) from ${role} does not pass:\n${big.stdout}${big.stderr}`);
    }
  }
  return families;
};

/** The routes of one family on a device, the kernel's own left out: "dst" or "dst via gw". */
export const familyRoutes = async (ns: string, dev: string, family: Family): Promise<string[]> => {
  const rs = JSON.parse(await sh(['ip', '-n', ns, '-json', family === 'IPv6' ? '-6' : '-4', 'route', 'show', 'dev', dev])) as { dst: string; gateway?: string; protocol?: string }[];
  return rs.filter((r) => r.protocol !== 'kernel').map((r) => (r.gateway ? `${r.dst} via ${r.gateway}` : r.dst));
};

/** `nsm close ID`, then waits until no node or namespace holds anything of the connection, in either family. */
export const closeAndCheck = async (lab: DualLab, id: string, iface: string, epRole: string, clientRole = 'client'): Promise<void> => {
  const closed = await lab.nsm(['close', id]);
  assert.is(closed.code, 0, `nsm close ${id}: ${closed.stderr}`);
  const idPart = id.toLowerCase().slice(0, 12);
  const nodes = [...lab.nodes.values()].map((n) => ({ n, names: interfacesOf(n, id) }));
  const mine = async () => [
    ...(await Promise.all(nodes.map(async ({ n, names }) => (await linksIn(n.netns)).filter((l) => names.includes(l.ifname)).map((l) => `${n.name}:${l.ifname}`)))).flat(),
    ...(await linksIn(lab.ns(clientRole))).filter((l) => l.ifname === iface).map((l) => `${clientRole}:${l.ifname}`),
    ...(await linksIn(lab.ns(epRole))).filter((l) => l.ifname.includes(idPart)).map((l) => `${epRole}:${l.ifname}`),
    ...(await Promise.all(nodes.map(async ({ n, names }) => (await rulesIn(n.netns)).filter((r) => r.iif !== undefined && names.includes(r.iif)).map((r) => `${n.name} rule iif ${r.iif}`)))).flat(),
    ...rootLinksWith(idPart).map((l) => `interface ${l} in the root namespace`),
    ...wireguardLeft(nodes.flatMap((x) => x.names)),
    ...(await Promise.all(nodes.map(async ({ n }) => (await meshRoutesIn(n.netns)).map((r) => `${n.name} route ${r}`)))).flat(),
  ];
  let left = await mine();
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = await mine();
  }
  assert.equal(left, [], `nothing of connection ${id} is left after close`);
};
