// The `kernel` mechanism: a veth pair with one end in the workload's namespace (named as the
// connection asks, e.g. nsm-1) and the other end in the node's namespace, where the rest of the
// path (routing table or bridge, and a tunnel across nodes) picks it up.
import * as E from 'fp-ts/lib/Either.js';
import { familyOf } from '../../aggregates/ip.ts';
import { addresses, links, normalizePrefix, routes, type Link } from './iproute.ts';
import { ip, netnsArg, netnsExists, netnsLabel, sysctl, type Netns } from './netns.ts';
import { belongsTo, oursOrUnmarked, type Mark } from './names.ts';
import { Changes, step, type Outcome } from './result.ts';

export interface WorkloadPort {
  readonly nodeNs: Netns;
  readonly hostVeth: string;
  readonly workloadNs: Netns;
  readonly interfaceName: string;
  readonly mtu: number;
  readonly alias: string;
  readonly mark: Mark;
}

/** Makes sure the pair exists and joins the right two interfaces; returns the workload end's MAC. */
export const ensureVethPair = async (p: WorkloadPort, nodeLinks: readonly Link[], changes: Changes): Promise<Outcome<{ workloadMac: string }>> => {
  if (!netnsExists(p.workloadNs)) return E.left(`network namespace ${netnsLabel(p.workloadNs)} does not exist`);
  const wlLinks = await step(links(p.workloadNs));
  if (E.isLeft(wlLinks)) return wlLinks;
  const host = nodeLinks.find((l) => l.ifname === p.hostVeth);
  const wl = wlLinks.right.find((l) => l.ifname === p.interfaceName);
  if (host) {
    if (!oursOrUnmarked(host, p.mark)) {
      return E.left(`interface ${p.hostVeth} in the node namespace belongs to ${host.ifalias}; two connection ids share their first 12 characters`);
    }
    // A veth reports its peer's ifindex as link_index: both directions must agree.
    const paired = wl !== undefined && host.link_index === wl.ifindex && wl.link_index === host.ifindex && host.linkinfo?.info_kind === 'veth';
    if (paired) return E.right({ workloadMac: wl.address ?? '' });
    const del = await step(ip(p.nodeNs, ['link', 'del', 'dev', p.hostVeth]));
    if (E.isLeft(del)) return del;
    changes.add(`deleted ${p.hostVeth}: its other end was not ${p.interfaceName} in ${netnsLabel(p.workloadNs)}`);
  }
  // Re-read: deleting the host end above also took its old peer away.
  const now = host ? await step(links(p.workloadNs)) : wlLinks;
  if (E.isLeft(now)) return now;
  const clash = now.right.find((l) => l.ifname === p.interfaceName);
  if (clash) {
    if (!belongsTo(clash, p.mark)) {
      return E.left(`interface ${p.interfaceName} already exists in namespace ${netnsLabel(p.workloadNs)} and was not made by the mesh for this connection; choose another --interface`);
    }
    const del = await step(ip(p.workloadNs, ['link', 'del', 'dev', p.interfaceName]));
    if (E.isLeft(del)) return del;
    changes.add(`deleted a stale ${p.interfaceName} in ${netnsLabel(p.workloadNs)}`);
  }
  const add = await step(
    ip(p.nodeNs, ['link', 'add', p.hostVeth, 'mtu', String(p.mtu), 'type', 'veth', 'peer', 'name', p.interfaceName, 'mtu', String(p.mtu), 'netns', netnsArg(p.workloadNs)]),
  );
  if (E.isLeft(add)) return add;
  changes.add(`created veth ${p.hostVeth} <-> ${p.interfaceName}@${netnsLabel(p.workloadNs)}`);
  const created = await step(links(p.workloadNs));
  if (E.isLeft(created)) return created;
  const mac = created.right.find((l) => l.ifname === p.interfaceName)?.address;
  return mac ? E.right({ workloadMac: mac }) : E.left(`veth end ${p.interfaceName} did not appear in ${netnsLabel(p.workloadNs)}`);
};

/**
 * The node end's IPv6 link-local address: the workload's gateway for its IPv6 routes. The same on
 * every veth (link-local addresses are per link), so the workload's routes never depend on which
 * node or connection it is.
 */
export const IPV6_GATEWAY = 'fe80::1';

/**
 * No duplicate address detection on an interface: the mesh hands out each address once, and DAD
 * would hold a new address (the link-local one included) unusable for a second or more.
 */
export const noDad = (ns: Netns, dev: string) => step(sysctl(ns, { [`net.ipv6.conf.${dev}.accept_dad`]: 0 }));

/**
 * The workload end: mark, MTU, up; loopback up; exactly the wanted addresses and routes. IPv6
 * routes go via the node end's link-local address (IPV6_GATEWAY): IPv6 has no proxy ARP that
 * answers for any address, and a gateway serves every prefix the connection routes.
 */
export const configureWorkloadEnd = async (
  p: WorkloadPort,
  want: { readonly addresses: readonly string[]; readonly routes: readonly string[] },
  changes: Changes,
): Promise<Outcome<void>> => {
  const ns = p.workloadNs;
  const dev = p.interfaceName;
  const v6 = want.addresses.some((a) => familyOf(a) === 'IPv6');
  // Before the link comes up, so its own link-local address is not held tentative either.
  if (v6) {
    const dad = await noDad(ns, dev);
    if (E.isLeft(dad)) return dad;
  }
  const set = await step(ip(ns, ['link', 'set', 'dev', dev, 'mtu', String(p.mtu), 'alias', p.alias, 'up']));
  if (E.isLeft(set)) return set;
  // The kernel answers ping on the endpoint side only if loopback is up.
  const lo = await step(ip(ns, ['link', 'set', 'dev', 'lo', 'up']));
  if (E.isLeft(lo)) return lo;

  const have = await step(addresses(ns, dev));
  if (E.isLeft(have)) return have;
  // The kernel's own IPv6 link-local address is the link's, not ours to manage.
  const haveSet = new Set(have.right.filter((a) => a.scope !== 'link').map((a) => normalizePrefix(`${a.local}/${a.prefixlen}`)));
  const wantAddrs = want.addresses.map((a) => normalizePrefix(a));
  for (const a of wantAddrs) {
    if (haveSet.has(a)) continue;
    const r = await step(ip(ns, ['addr', 'replace', a, 'dev', dev, ...(familyOf(a) === 'IPv6' ? ['nodad'] : [])]));
    if (E.isLeft(r)) return r;
    changes.add(`address ${a} on ${dev}`);
  }
  for (const a of haveSet) {
    if (wantAddrs.includes(a)) continue;
    const r = await step(ip(ns, ['addr', 'del', a, 'dev', dev]));
    if (E.isLeft(r)) return r;
    changes.add(`removed address ${a} from ${dev}`);
  }

  const current = await step(routes(ns, ['dev', dev]));
  if (E.isLeft(current)) return current;
  // Kernel routes follow from the addresses; ours are the rest.
  const ownRoutes = new Set(current.right.filter((r) => r.protocol !== 'kernel').map((r) => normalizePrefix(r.dst, r.family)));
  for (const r of want.routes.map((x) => normalizePrefix(x))) {
    if (ownRoutes.has(r)) continue;
    const via = familyOf(r) === 'IPv6' ? ['via', IPV6_GATEWAY] : [];
    const add = await step(ip(ns, ['route', 'replace', r, ...via, 'dev', dev]));
    if (E.isLeft(add)) return add;
    changes.add(`route ${r} via ${dev}`);
  }
  const wanted = new Set(want.routes.map((x) => normalizePrefix(x)));
  for (const r of ownRoutes) {
    if (wanted.has(r)) continue;
    const del = await step(ip(ns, ['route', 'del', r, 'dev', dev]));
    if (E.isLeft(del)) return del;
    changes.add(`removed route ${r} from ${dev}`);
  }
  return E.right(undefined);
};
