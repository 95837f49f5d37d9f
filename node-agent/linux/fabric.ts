// How a side's interfaces are joined inside the node's namespace.
//
// IP payload (routed): each connection gets its own routing table on the node; a rule sends
// whatever arrives on one of the connection's interfaces (`iif`) to that table, which routes the
// local workload's addresses to its veth and the peer's to the tunnel (or, on one node, to the
// peer's veth). Nothing goes into the node's main table, so connections never see each other's
// routes or the node's own, and two endpoints may hand out overlapping addresses. Forwarding and
// proxy ARP are switched on for the mesh's interfaces only, not for the node as a whole.
//
// ETHERNET payload (bridged): one bridge per connection on the node holds the veth end(s) and,
// across nodes, the VXLAN device: a single L2 segment, ARP included.
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { Family } from '../../aggregates/ip.ts';
import { familyFlag, links, neighbours, normalizePrefix, routes, rules, sameAddress, type FamilyRule, type Link, type Neighbour } from './iproute.ts';
import { ip, sysctl, type Netns } from './netns.ts';
import { RULE_PRIORITY, TABLE_FIRST, TABLE_LAST } from './names.ts';
import { Changes, step, type Outcome } from './result.ts';

const numericTable = (r: FamilyRule): number | undefined => (r.table !== undefined && /^\d+$/.test(r.table) ? Number(r.table) : undefined);

/** Deletes an interface's policy rule exactly as listed (family, priority, iif, and its table when it names one). */
const deleteRule = (ns: Netns, r: FamilyRule & { iif: string }, table: string | undefined = r.table) =>
  step(ip(ns, [familyFlag(r.family), 'rule', 'del', 'pref', String(r.priority), 'iif', r.iif, ...(table ? ['table', table] : [])]));
const inRange = (t: number | undefined): t is number => t !== undefined && t >= TABLE_FIRST && t <= TABLE_LAST;

/**
 * Forwarding and proxy ARP on one interface (not node-wide), answered without delay. IPv6: its
 * `forwarding` sysctl is node-wide in effect (per interface it only switches router behaviour),
 * so the per-interface `force_forwarding` (Linux 6.17) is used instead; a kernel without it
 * fails the side with the sysctl's own error rather than make the node a router for everything.
 */
export const routedInterfaceSysctls = (ns: Netns, devs: readonly string[], families: readonly Family[]) =>
  step(
    sysctl(
      ns,
      Object.fromEntries(
        devs.flatMap((d) => [
          ...(families.includes('IPv4')
            ? [
                [`net.ipv4.conf.${d}.forwarding`, 1],
                [`net.ipv4.conf.${d}.proxy_arp`, 1],
                [`net.ipv4.neigh.${d}.proxy_delay`, 0],
              ]
            : []),
          ...(families.includes('IPv6') ? [[`net.ipv6.conf.${d}.force_forwarding`, 1]] : []),
        ]),
      ),
    ),
  );

/**
 * The connection's table on this node: the one its rules already point to (the other side on
 * the same node may have made it), else a free one. Rules whose interface is gone
 * (a workload namespace was deleted under us) are dropped on the way, so tables are reused.
 */
export const connectionTable = async (
  ns: Netns,
  connectionId: string,
  connectionInterfaces: readonly string[],
  nodeLinks: readonly Link[],
  changes: Changes,
): Promise<Outcome<{ table: number; rules: FamilyRule[] }>> => {
  const rs = await step(rules(ns));
  if (E.isLeft(rs)) return rs;
  const present = new Set(nodeLinks.map((l) => l.ifname));
  const ours = rs.right.find((r) => r.iif !== undefined && connectionInterfaces.includes(r.iif) && inRange(numericTable(r)));
  if (ours) return E.right({ table: numericTable(ours)!, rules: rs.right });
  const used = new Set<number>();
  const kept: FamilyRule[] = [];
  for (const r of rs.right) {
    kept.push(r);
    const t = numericTable(r);
    if (!inRange(t)) continue;
    if (r.iif !== undefined && !present.has(r.iif)) {
      const del = await deleteRule(ns, { ...r, iif: r.iif }, String(t));
      if (E.isLeft(del)) return del;
      changes.add(`dropped rule for vanished interface ${r.iif}`);
      kept.pop();
      continue;
    }
    used.add(t);
  }
  // Start where the connection id hashes to: two agents (two meshes on one host) programming at
  // the same moment are unlikely to reach for the same free table.
  const size = TABLE_LAST - TABLE_FIRST + 1;
  const start = createHash('sha256').update(connectionId).digest().readUInt32BE(0) % size;
  for (let k = 0; k < size; k++) {
    const t = TABLE_FIRST + ((start + k) % size);
    if (!used.has(t)) return E.right({ table: t, rules: kept });
  }
  return E.left(`all ${size} routing tables of the mesh are in use on this node`);
};

export interface RoutedSide {
  readonly ns: Netns;
  readonly table: number;
  /** The node's rules as connectionTable read them. */
  readonly rules: readonly FamilyRule[];
  /** The families the side carries: each has its own rules (and IPv6 its own forwarding switch). */
  readonly families: readonly Family[];
  /** This side's interfaces that feed the table: the veth end, and the tunnel across nodes. */
  readonly interfaces: readonly string[];
  /** Every interface name this side could ever have used (stale rules of these are removed). */
  readonly allInterfaces: readonly string[];
  /** prefix -> device, in the connection's table. */
  readonly routes: readonly { readonly prefix: string; readonly dev: string }[];
  /** Neighbour entries that save ARP: address -> MAC on a device. */
  readonly neighbours: readonly { readonly address: string; readonly mac: string; readonly dev: string }[];
}

export const ensureRouted = async (s: RoutedSide, changes: Changes): Promise<Outcome<void>> => {
  const sys = await routedInterfaceSysctls(s.ns, s.interfaces, s.families);
  if (E.isLeft(sys)) return sys;

  const wanted = (r: FamilyRule) => s.families.includes(r.family) && numericTable(r) === s.table && r.priority === RULE_PRIORITY;
  for (const r of s.rules) {
    if (r.iif === undefined || !s.allInterfaces.includes(r.iif)) continue;
    if (s.interfaces.includes(r.iif) && wanted(r)) continue;
    const del = await deleteRule(s.ns, { ...r, iif: r.iif });
    if (E.isLeft(del)) return del;
    changes.add(`removed stale ${r.family} rule iif ${r.iif}`);
  }
  for (const family of s.families) {
    for (const dev of s.interfaces) {
      if (s.rules.some((r) => r.family === family && r.iif === dev && wanted(r))) continue;
      const add = await step(ip(s.ns, [familyFlag(family), 'rule', 'add', 'pref', String(RULE_PRIORITY), 'iif', dev, 'table', String(s.table)]));
      if (E.isLeft(add)) return add;
      changes.add(`${family} rule iif ${dev} -> table ${s.table}`);
    }
  }

  const table = await step(routes(s.ns, ['table', String(s.table)]));
  if (E.isLeft(table)) return table;
  const have = table.right.map((r) => ({ prefix: normalizePrefix(r.dst, r.family), dev: r.dev }));
  for (const want of s.routes) {
    const prefix = normalizePrefix(want.prefix);
    if (have.some((h) => h.prefix === prefix && h.dev === want.dev)) continue;
    const add = await step(ip(s.ns, ['route', 'replace', prefix, 'dev', want.dev, 'table', String(s.table)]));
    if (E.isLeft(add)) return add;
    changes.add(`route ${prefix} dev ${want.dev} in table ${s.table}`);
  }
  // Only this side's stale routes: the other side on the same node owns its own.
  for (const h of have) {
    if (h.dev === undefined || !s.allInterfaces.includes(h.dev)) continue;
    if (s.routes.some((w) => normalizePrefix(w.prefix) === h.prefix && w.dev === h.dev)) continue;
    const del = await step(ip(s.ns, ['route', 'del', h.prefix, 'dev', h.dev, 'table', String(s.table)]));
    if (E.isLeft(del)) return del;
    changes.add(`removed route ${h.prefix} dev ${h.dev} from table ${s.table}`);
  }

  const devs = [...new Set(s.neighbours.map((n) => n.dev))];
  const current = new Map<string, Neighbour[]>();
  for (const dev of devs) {
    const cur = await step(neighbours(s.ns, dev));
    if (E.isLeft(cur)) return cur;
    current.set(dev, cur.right);
  }
  for (const n of s.neighbours) {
    if ((current.get(n.dev) ?? []).some((c) => sameAddress(c.dst, n.address) && c.lladdr === n.mac && c.state?.includes('PERMANENT'))) continue;
    const add = await step(ip(s.ns, ['neigh', 'replace', n.address, 'lladdr', n.mac, 'dev', n.dev, 'nud', 'permanent']));
    if (E.isLeft(add)) return add;
    changes.add(`neighbour ${n.address} at ${n.mac} on ${n.dev}`);
  }
  return E.right(undefined);
};

/** Removes the rules this side added; its routes and neighbours go with its interfaces. */
export const removeRules = async (ns: Netns, sideInterfaces: readonly string[], changes: Changes): Promise<Outcome<void>> => {
  const rs = await step(rules(ns));
  if (E.isLeft(rs)) return rs;
  for (const r of rs.right) {
    if (r.iif === undefined || !sideInterfaces.includes(r.iif)) continue;
    const del = await deleteRule(ns, { ...r, iif: r.iif });
    if (E.isLeft(del)) return del;
    changes.add(`removed rule iif ${r.iif}`);
  }
  return E.right(undefined);
};

export interface BridgedSide {
  readonly ns: Netns;
  readonly bridge: string;
  readonly bridgeAlias: string;
  readonly mtu: number;
  /** The veth end, and the VXLAN device across nodes. */
  readonly ports: readonly string[];
}

export const ensureBridged = async (b: BridgedSide, changes: Changes): Promise<Outcome<void>> => {
  const ls = await step(links(b.ns));
  if (E.isLeft(ls)) return ls;
  const br = ls.right.find((l) => l.ifname === b.bridge);
  if (br && br.linkinfo?.info_kind !== 'bridge') return E.left(`${b.bridge} exists in the node namespace and is not a bridge`);
  if (!br) {
    const add = await step(ip(b.ns, ['link', 'add', b.bridge, 'mtu', String(b.mtu), 'type', 'bridge']));
    if (E.isLeft(add)) return add;
    changes.add(`created bridge ${b.bridge}`);
  }
  const up = await step(ip(b.ns, ['link', 'set', 'dev', b.bridge, 'mtu', String(b.mtu), 'alias', b.bridgeAlias, 'up']));
  if (E.isLeft(up)) return up;
  for (const port of b.ports) {
    if (ls.right.find((l) => l.ifname === port)?.master === b.bridge) continue;
    const m = await step(ip(b.ns, ['link', 'set', 'dev', port, 'master', b.bridge]));
    if (E.isLeft(m)) return m;
    changes.add(`${port} joined bridge ${b.bridge}`);
  }
  return E.right(undefined);
};

/** Deletes the connection's bridge once no port is left on it. */
export const removeBridgeIfEmpty = async (ns: Netns, bridge: string, changes: Changes): Promise<Outcome<void>> => {
  const ls = await step(links(ns));
  if (E.isLeft(ls)) return ls;
  if (!ls.right.some((l) => l.ifname === bridge)) return E.right(undefined);
  if (ls.right.some((l) => l.master === bridge)) return E.right(undefined);
  const del = await step(ip(ns, ['link', 'del', 'dev', bridge]));
  if (E.isLeft(del)) return del;
  changes.add(`deleted bridge ${bridge}`);
  return E.right(undefined);
};
