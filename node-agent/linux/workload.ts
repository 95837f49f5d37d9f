// The `kernel` mechanism: a veth pair with one end in the workload's namespace (named as the
// connection asks, e.g. nsm-1) and the other end in the node's namespace, where the rest of the
// path (routing table or bridge, and a tunnel across nodes) picks it up.
import * as E from 'fp-ts/lib/Either.js';
import { addresses, links, normalizePrefix, routes, type Link } from './iproute.ts';
import { ip, netnsArg, netnsExists, netnsLabel, type Netns } from './netns.ts';
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

/** The workload end: mark, MTU, up; loopback up; exactly the wanted addresses and routes. */
export const configureWorkloadEnd = async (
  p: WorkloadPort,
  want: { readonly addresses: readonly string[]; readonly routes: readonly string[] },
  changes: Changes,
): Promise<Outcome<void>> => {
  const ns = p.workloadNs;
  const dev = p.interfaceName;
  const set = await step(ip(ns, ['link', 'set', 'dev', dev, 'mtu', String(p.mtu), 'alias', p.alias, 'up']));
  if (E.isLeft(set)) return set;
  // The kernel answers ping on the endpoint side only if loopback is up.
  const lo = await step(ip(ns, ['link', 'set', 'dev', 'lo', 'up']));
  if (E.isLeft(lo)) return lo;

  const have = await step(addresses(ns, dev));
  if (E.isLeft(have)) return have;
  const haveSet = new Set(have.right.map((a) => `${a.local}/${a.prefixlen}`));
  for (const a of want.addresses) {
    if (haveSet.has(a)) continue;
    const r = await step(ip(ns, ['addr', 'replace', a, 'dev', dev]));
    if (E.isLeft(r)) return r;
    changes.add(`address ${a} on ${dev}`);
  }
  for (const a of haveSet) {
    if (want.addresses.includes(a)) continue;
    const r = await step(ip(ns, ['addr', 'del', a, 'dev', dev]));
    if (E.isLeft(r)) return r;
    changes.add(`removed address ${a} from ${dev}`);
  }

  const current = await step(routes(ns, ['dev', dev]));
  if (E.isLeft(current)) return current;
  // Kernel routes follow from the addresses; ours are the rest.
  const ownRoutes = new Set(current.right.filter((r) => r.protocol !== 'kernel').map((r) => normalizePrefix(r.dst)));
  for (const r of want.routes.map(normalizePrefix)) {
    if (ownRoutes.has(r)) continue;
    const add = await step(ip(ns, ['route', 'replace', r, 'dev', dev]));
    if (E.isLeft(add)) return add;
    changes.add(`route ${r} via ${dev}`);
  }
  const wanted = new Set(want.routes.map(normalizePrefix));
  for (const r of ownRoutes) {
    if (wanted.has(r)) continue;
    const del = await step(ip(ns, ['route', 'del', r, 'dev', dev]));
    if (E.isLeft(del)) return del;
    changes.add(`removed route ${r} from ${dev}`);
  }
  return E.right(undefined);
};
