// The Linux implementation of the Dataplane port. One side of a connection is:
//
//   workload netns                node netns
//   [interfaceName] ===veth=== [nv<c|e><id>] --(table or bridge)-- [nx|nw<c|e><id>] ==> peer node
//
// The veth end in the workload carries the side's addresses, routes and MTU. In the node's
// namespace, IP connections are routed through a per-connection table, ETHERNET connections
// bridged; across nodes a VXLAN or WireGuard device per side reaches the peer node. Everything
// carries an alias naming mesh, connection, side and generation, which is all `observe` needs
// after a restart. `program` converges (creates what is missing, fixes what differs) and can be
// repeated; `remove` deletes the side's interfaces, rules and processes.
import * as E from 'fp-ts/lib/Either.js';
import type { Side } from '../../aggregates/connection/index.ts';
import type { MechanismType } from '../../aggregates/domain.ts';
import type { Logger } from '../../src/ports/logger.ts';
import type { SideSpec } from '../../src/contracts/nodeCommands.ts';
import { workloadNetns } from '../../src/contracts/netnsRef.ts';
import { sideKey, type Dataplane, type DataplaneError, type ObservedSide } from '../dataplane.ts';
import { succeeds } from './exec.ts';
import { ensureDns, removeDns } from './dns.ts';
import { ensureBridged, ensureRouted, removeBridgeIfEmpty, removeRules, connectionTable } from './fabric.ts';
import { addresses, links, type Link } from './iproute.ts';
import { ensureNodeKeys, type NodeKeys } from './keys.ts';
import { aliasOf, allSideInterfaces, bridgeAlias, bridgeName, IFNAME, oursOrUnmarked, parseAlias, sideNames, vxlanMac, type Mark } from './names.ts';
import { inNetns, ip, netnsExists, netnsLabel, parseNetns, type Netns } from './netns.ts';
import { findUnderlay, localPrefixes, probeMechanisms, type Underlay } from './nodeFacts.ts';
import { Changes, step, type Outcome } from './result.ts';
import { ensureVxlan, ensureWireguard, removeWireguard, type WireguardMode } from './tunnels.ts';
import { configureWorkloadEnd, ensureVethPair, IPV6_GATEWAY, noDad } from './workload.ts';
import { BITS, familyOf, parseInterfaceAddress, type Family } from '../../aggregates/ip.ts';

export interface LinuxDataplaneOptions {
  /** Marks carry the domain, so two meshes on one host leave each other's interfaces alone. */
  readonly domain: string;
  /** The node's namespace: the agent's own by default. */
  readonly nodeNetns: Netns;
  /** Address other nodes reach this one at; detected from the default route when absent. */
  readonly underlayAddress?: string;
  /** Holds the node's WireGuard private key (0600). */
  readonly stateDir: string;
  readonly log: Logger;
  /**
   * Directories whose files a node command may name as a workload's namespace (normalized by
   * checkNetnsDirs); absent: named namespaces only. Checked again here, whatever the control
   * plane let through: this process is the one that acts as root.
   */
  readonly netnsDirs?: readonly string[];
}

/** What the node reports when it joins (node.join). */
export interface NodeFacts {
  readonly underlayAddress?: string;
  readonly mtu: number;
  readonly publicKeys: Readonly<Record<string, string>>;
  readonly localPrefixes: readonly string[];
}

export interface LinuxDataplane extends Dataplane {
  readonly facts: NodeFacts;
  readonly wireguardMode?: WireguardMode;
  readonly nodeNetns: Netns;
}

const otherSide = (s: Side): Side => (s === 'client' ? 'endpoint' : 'client');
const hostAddress = (cidr: string): string => cidr.split('/')[0]!;
/** A route to exactly one address (/32, /128): the peer's address, whose MAC is known across VXLAN. */
const isHostRoute = (cidr: string): boolean => {
  const a = parseInterfaceAddress(cidr);
  return E.isRight(a) && a.right.length === BITS[a.right.family];
};
/** The families a side carries, from its addresses and routes. */
const familiesOf = (spec: Pick<SideSpec, 'addresses' | 'routes'>): Family[] => {
  const seen = new Set([...spec.addresses, ...spec.routes].map(familyOf));
  return (['IPv4', 'IPv6'] as const).filter((f) => seen.has(f));
};
/** host:port, with an IPv6 host in brackets. */
const hostPort = (address: string, port: number): string => (address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * The node end of an IP side that carries IPv6: no DAD, and the link-local gateway address the
 * workload's IPv6 routes point to.
 */
const ensureIpv6Gateway = async (ns: Netns, dev: string, changes: Changes): Promise<Outcome<void>> => {
  const dad = await noDad(ns, dev);
  if (E.isLeft(dad)) return dad;
  const have = await step(addresses(ns, dev));
  if (E.isLeft(have)) return have;
  if (have.right.some((a) => a.local === IPV6_GATEWAY && a.prefixlen === 64)) return E.right(undefined);
  const add = await step(ip(ns, ['addr', 'replace', `${IPV6_GATEWAY}/64`, 'dev', dev, 'nodad']));
  if (E.isLeft(add)) return add;
  changes.add(`gateway ${IPV6_GATEWAY} on ${dev}`);
  return E.right(undefined);
};

/** Probes the host and returns a dataplane, or why this host cannot run one. */
export const createLinuxDataplane = async (o: LinuxDataplaneOptions): Promise<E.Either<string, LinuxDataplane>> => {
  const log = o.log.child({ dataplane: 'linux', netns: netnsLabel(o.nodeNetns) });
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    return E.left('the linux dataplane programs network namespaces and interfaces and needs root (CAP_NET_ADMIN); run the agent as root or use --dataplane simulated');
  }
  if (!(await succeeds(['ip', '-V']))) return E.left('the linux dataplane needs iproute2 (the `ip` command); install it with "apt-get install iproute2"');
  if (!netnsExists(o.nodeNetns)) return E.left(`the node's network namespace ${netnsLabel(o.nodeNetns)} does not exist`);
  const underlay = await findUnderlay(o.nodeNetns, o.underlayAddress);
  if (E.isLeft(underlay)) return underlay;
  const probed = await probeMechanisms(o.nodeNetns);
  const prefixes = await localPrefixes(o.nodeNetns);
  if (E.isLeft(prefixes)) return prefixes;
  let keys: NodeKeys | undefined;
  if (probed.wireguard) {
    const k = await ensureNodeKeys(o.stateDir);
    if (E.isLeft(k)) return k;
    keys = k.right;
  }
  // Tells this node's WireGuard interfaces from those of other nodes on the same host.
  const nodeKey = keys?.publicKey ?? '';
  const ul: Underlay | undefined = underlay.right;
  const mechanisms: MechanismType[] = ['kernel'];
  if (ul && probed.vxlan) mechanisms.push('vxlan');
  if (ul && probed.wireguard && keys) mechanisms.push('wireguard');
  for (const note of probed.notes) (note.startsWith('ipv6:') ? log.warn(note) : log.info(note));
  if (!ul) log.warn('no underlay address (give --underlay, or the node needs a default route): only same-node connections (kernel) are possible');

  const fail = (spec: Pick<SideSpec, 'connectionId' | 'side'>, message: string): E.Either<DataplaneError, never> =>
    E.left({ connectionId: spec.connectionId, side: spec.side, message });
  const ns = o.nodeNetns;

  const markOf = (spec: Pick<SideSpec, 'connectionId' | 'side' | 'generation'>): Mark => ({ domain: o.domain, connectionId: spec.connectionId, side: spec.side, generation: spec.generation });

  const ours = (l: Link, spec: Pick<SideSpec, 'connectionId' | 'side'>): boolean => oursOrUnmarked(l, { domain: o.domain, connectionId: spec.connectionId, side: spec.side });

  /** The side's interfaces in the node namespace, and the first one that belongs to something else. */
  const sideLinks = (all: readonly Link[], spec: Pick<SideSpec, 'connectionId' | 'side'>) => {
    const names = sideNames(spec.connectionId, spec.side, nodeKey);
    const found = all.filter((l) => allSideInterfaces(names).includes(l.ifname));
    return { names, found, foreign: found.find((l) => !ours(l, spec)) };
  };

  const programSide = async (spec: SideSpec, all: readonly Link[], changes: Changes): Promise<Outcome<void>> => {
    if (spec.netns === undefined) {
      return E.left(`the linux dataplane needs the ${spec.side === 'client' ? "workload's network namespace (nsm connect --netns NS)" : "endpoint's network namespace (register the endpoint with --netns NS)"}`);
    }
    const workloadNs = workloadNetns(spec.netns, o.netnsDirs);
    if (E.isLeft(workloadNs)) return workloadNs;
    if (!IFNAME.test(spec.interfaceName)) return E.left(`interface name ${JSON.stringify(spec.interfaceName)} is not a valid Linux interface name`);
    const remote = spec.mechanism.remote;
    if (remote && !mechanisms.includes(remote)) return E.left(`this node cannot provide ${remote} (it offers ${mechanisms.join(', ')})`);
    if (remote && !spec.tunnel) return E.left('a cross-node connection came without tunnel parameters');
    if (remote && !spec.peer?.underlayAddress) return E.left(`node ${spec.peer?.node ?? '?'} has no underlay address; start its agent with --underlay`);
    if (remote === 'wireguard' && spec.payload === 'ETHERNET') return E.left('WireGuard carries IP only; an ETHERNET service needs vxlan');
    if (remote && ul && spec.peer?.underlayAddress && familyOf(spec.peer.underlayAddress) !== familyOf(ul.address)) {
      return E.left(`node ${spec.peer.node} is reached at ${spec.peer.underlayAddress} and this node at ${ul.address}: a tunnel needs one address family on both`);
    }
    const families = familiesOf(spec);
    if (families.includes('IPv6') && probed.noIpv6) return E.left(probed.noIpv6);

    const { names, foreign } = sideLinks(all, spec);
    if (foreign) return E.left(`interface ${foreign.ifname} belongs to ${foreign.ifalias}; two connection ids share their first 12 characters`);
    const mark = markOf(spec);
    const alias = aliasOf(mark);
    const port = { nodeNs: ns, hostVeth: names.hostVeth, workloadNs: workloadNs.right, interfaceName: spec.interfaceName, mtu: spec.mtu, alias, mark };

    const pair = await ensureVethPair(port, all, changes);
    if (E.isLeft(pair)) return pair;
    const wl = await configureWorkloadEnd(port, { addresses: spec.addresses, routes: spec.payload === 'IP' ? spec.routes : [] }, changes);
    if (E.isLeft(wl)) return wl;
    // The client's resolver while connected (and none left over from a generation that had one).
    if (spec.side === 'client') {
      const dns = await ensureDns(workloadNs.right, o.domain, spec.connectionId, spec.dns, changes);
      if (E.isLeft(dns)) return dns;
    }
    if (spec.payload === 'IP' && families.includes('IPv6')) {
      const gw = await ensureIpv6Gateway(ns, names.hostVeth, changes);
      if (E.isLeft(gw)) return gw;
    }
    const host = await step(ip(ns, ['link', 'set', 'dev', names.hostVeth, 'mtu', String(spec.mtu), 'alias', alias, 'up']));
    if (E.isLeft(host)) return host;

    // The tunnel of this side, and none of another kind (a new generation may switch mechanism).
    let tunnel: string | undefined;
    if (remote === 'vxlan' && spec.tunnel && spec.peer?.underlayAddress && ul) {
      tunnel = names.vxlan;
      const v = await ensureVxlan(
        ns,
        { name: names.vxlan, vni: spec.tunnel.vni, port: spec.tunnel.vxlanPort, local: ul.address, remote: spec.peer.underlayAddress, mac: vxlanMac(spec.connectionId, spec.side), mtu: spec.mtu, alias },
        all,
        changes,
      );
      if (E.isLeft(v)) return v;
    }
    if (remote === 'wireguard' && spec.tunnel && spec.peer?.underlayAddress && keys && probed.wireguard) {
      const peerKey = spec.peer.publicKeys?.wireguard;
      if (!peerKey) return E.left(`node ${spec.peer.node} did not publish a WireGuard public key`);
      tunnel = names.wireguard;
      const w = await ensureWireguard(
        ns,
        probed.wireguard,
        {
          name: names.wireguard,
          listenPort: spec.tunnel.wireguardPort,
          privateKeyFile: keys.privateKeyFile,
          peerPublicKey: peerKey,
          peerEndpoint: hostPort(spec.peer.underlayAddress, spec.tunnel.wireguardPort),
          allowedIps: spec.routes,
          mtu: spec.mtu,
          alias,
        },
        all,
        changes,
      );
      if (E.isLeft(w)) return w;
    }
    const present = new Set(all.map((l) => l.ifname));
    if (tunnel !== names.vxlan && present.has(names.vxlan)) {
      const del = await step(ip(ns, ['link', 'del', 'dev', names.vxlan]));
      if (E.isLeft(del)) return del;
      changes.add(`deleted ${names.vxlan}: no longer the mechanism`);
    }
    if (tunnel !== names.wireguard && present.has(names.wireguard)) {
      const del = await removeWireguard(ns, names.wireguard, true, changes);
      if (E.isLeft(del)) return del;
    }

    if (spec.payload === 'ETHERNET') {
      return ensureBridged({ ns, bridge: bridgeName(spec.connectionId), bridgeAlias: bridgeAlias(o.domain, spec.connectionId), mtu: spec.mtu, ports: [names.hostVeth, ...(tunnel ? [tunnel] : [])] }, changes);
    }
    const connectionInterfaces = [...allSideInterfaces(names), ...allSideInterfaces(sideNames(spec.connectionId, otherSide(spec.side), nodeKey))];
    // Interfaces may have come and gone above: the table choice needs the current list.
    const now = changes.list.length > 0 ? await step(links(ns)) : E.right<string, readonly Link[]>(all);
    if (E.isLeft(now)) return now;
    const table = await connectionTable(ns, spec.connectionId, connectionInterfaces, now.right, changes);
    if (E.isLeft(table)) return table;
    const own = spec.addresses.map((a) => ({ prefix: a, dev: names.hostVeth }));
    const across = tunnel ? spec.routes.map((r) => ({ prefix: r, dev: tunnel! })) : [];
    const peerMac = vxlanMac(spec.connectionId, otherSide(spec.side));
    return ensureRouted(
      {
        ns,
        table: table.right.table,
        rules: table.right.rules,
        families,
        interfaces: [names.hostVeth, ...(tunnel ? [tunnel] : [])],
        allInterfaces: allSideInterfaces(names),
        routes: [...own, ...across],
        neighbours: [
          ...spec.addresses.map((a) => ({ address: hostAddress(a), mac: pair.right.workloadMac, dev: names.hostVeth })),
          // Routed VXLAN: the peer's device MAC is known, so no ARP crosses the tunnel for the peer's addresses.
          ...(tunnel === names.vxlan ? spec.routes.filter(isHostRoute).map((r) => ({ address: hostAddress(r), mac: peerMac, dev: names.vxlan })) : []),
        ],
      },
      changes,
    );
  };

  const removeSide = async (spec: Pick<SideSpec, 'connectionId' | 'side'>, changes: Changes): Promise<Outcome<void>> => {
    const all = await step(links(ns));
    if (E.isLeft(all)) return all;
    const { names, found } = sideLinks(all.right, spec);
    // Interfaces under our names but marked for another connection (ids sharing their first 12
    // characters) are not ours to delete: skip them, with their rules.
    const foreign = new Set(found.filter((l) => !ours(l, spec)).map((l) => l.ifname));
    for (const f of foreign) log.warn('not removing an interface of another connection', { connectionId: spec.connectionId, side: spec.side, interface: f });
    const mine = allSideInterfaces(names).filter((n) => !foreign.has(n));
    const has = (n: string) => mine.includes(n) && found.some((l) => l.ifname === n);
    const rules = await removeRules(ns, mine, changes);
    if (E.isLeft(rules)) return rules;
    if (spec.side === 'client') {
      const dns = await removeDns(o.domain, spec.connectionId, changes);
      if (E.isLeft(dns)) return dns;
    }
    if (mine.includes(names.wireguard)) {
      const wg = await removeWireguard(ns, names.wireguard, has(names.wireguard), changes);
      if (E.isLeft(wg)) return wg;
    }
    for (const dev of [names.vxlan, names.hostVeth]) {
      if (!has(dev)) continue;
      // Deleting the host end of the veth also deletes the workload's end (and its addresses and routes).
      const del = await step(ip(ns, ['link', 'del', 'dev', dev]));
      if (E.isLeft(del)) return del;
      changes.add(`deleted ${dev}`);
    }
    return removeBridgeIfEmpty(ns, bridgeName(spec.connectionId), changes);
  };

  return E.right({
    kind: 'linux',
    nodeNetns: ns,
    ...(probed.wireguard ? { wireguardMode: probed.wireguard } : {}),
    facts: {
      ...(ul ? { underlayAddress: ul.address } : {}),
      mtu: ul?.mtu ?? 1500,
      publicKeys: keys ? { wireguard: keys.publicKey } : ({} as Record<string, string>),
      localPrefixes: prefixes.right,
    },
    capabilities: () => mechanisms,
    program: (spec) => async () => {
      const changes = new Changes();
      const before = await step(links(ns));
      const existed = E.isRight(before) && sideLinks(before.right, spec).found.length > 0;
      const r = E.isLeft(before) ? before : await programSide(spec, before.right, changes);
      const fields = { connectionId: spec.connectionId, side: spec.side, generation: spec.generation };
      if (E.isLeft(r)) {
        log.warn('programming failed', { ...fields, error: r.left, done: changes.list });
        return fail(spec, r.left);
      }
      if (existed && changes.list.length > 0) log.info('repaired side', { ...fields, repairs: changes.list });
      else if (changes.list.length > 0) log.debug('created side', { ...fields, steps: changes.list });
      return E.right(undefined);
    },
    remove: (spec) => async () => {
      const changes = new Changes();
      const r = await removeSide(spec, changes);
      if (E.isLeft(r)) return fail(spec, r.left);
      if (changes.list.length > 0) log.debug('removed side', { connectionId: spec.connectionId, side: spec.side, steps: changes.list });
      return E.right(undefined);
    },
    probe: (spec) => async () => {
      // Like the original NSM's liveness check: one ping from the workload, out of its interface,
      // to the other side's address; nothing back within a second counts as a failed probe.
      if (!spec.netns) return fail(spec, 'the side has no namespace to probe from');
      const wns = workloadNetns(spec.netns, o.netnsDirs);
      if (E.isLeft(wns)) return fail(spec, wns.left);
      if (spec.remoteAddresses.length === 0) return fail(spec, 'the side has no remote address to probe');
      // Every family: a dual-stack datapath with one family broken is broken.
      for (const target of spec.remoteAddresses) {
        const r = await inNetns(wns.right, ['ping', '-n', '-q', '-c', '1', '-W', '1', '-I', spec.interfaceName, hostAddress(target)], { timeoutMs: 3000 })();
        if (E.isRight(r)) continue;
        // ping exits 1 when no reply came, 2 on other errors (no such interface, no namespace...).
        if (r.left.exitCode === 1) return E.right({ alive: false, detail: `no reply from ${hostAddress(target)} via ${spec.interfaceName}` });
        return E.right({ alive: false, detail: r.left.message });
      }
      return E.right({ alive: true });
    },
    observe: () => async () => {
      const all = await step(links(ns));
      if (E.isLeft(all)) return E.left({ connectionId: '', side: '', message: all.left });
      const sides = new Map<string, ObservedSide>();
      for (const l of all.right) {
        const m = parseAlias(l.ifalias);
        if (!m || m.domain !== o.domain) continue;
        const key = sideKey(m);
        const seen = sides.get(key);
        // A half-updated side reports its oldest generation, so that reconciliation redoes it.
        if (!seen || m.generation < seen.generation) sides.set(key, { connectionId: m.connectionId, side: m.side, generation: m.generation });
      }
      return E.right([...sides.values()]);
    },
  });
};

/** For `nsm agent --netns`: checks the value names a namespace usable by `ip`. */
export const nodeNetnsFrom = (value: string | undefined): E.Either<string, Netns> => {
  if (value === undefined) return E.right({ kind: 'current' });
  const parsed = parseNetns(value);
  if (E.isLeft(parsed)) return parsed;
  if (!netnsExists(parsed.right)) return E.left(`--netns ${value}: no such network namespace`);
  return E.right(parsed.right);
};

