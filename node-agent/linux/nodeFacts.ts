// What a node tells the mesh about itself when it joins: its underlay address and MTU, which
// tunnel mechanisms its kernel and tools support, and the prefixes it already routes.
import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { familyOf, parseCidr } from '../../aggregates/ip.ts';
import { run, succeeds } from './exec.ts';
import { allAddresses, links, normalizePrefix, routes, sameAddress } from './iproute.ts';
import { inNetnsArgv, ipArgv, type Netns } from './netns.ts';
import { MESH_INTERFACE } from './names.ts';
import { step, type Outcome } from './result.ts';
import type { WireguardMode } from './tunnels.ts';

export interface Underlay {
  readonly address: string;
  readonly device: string;
  readonly mtu: number;
}

/**
 * The given address (which must be on an interface of the node, IPv4 or IPv6), or the source of
 * the default route (IPv4's first, else IPv6's).
 */
export const findUnderlay = async (ns: Netns, given: string | undefined): Promise<Outcome<Underlay | undefined>> => {
  const addrs = await step(allAddresses(ns));
  if (E.isLeft(addrs)) return addrs;
  const ls = await step(links(ns));
  if (E.isLeft(ls)) return ls;
  const mtuOf = (dev: string): number => ls.right.find((l) => l.ifname === dev)?.mtu ?? 1500;
  const owner = (address: string) => addrs.right.find((a) => (a.addr_info ?? []).some((i) => sameAddress(i.local, address)));
  if (given !== undefined) {
    const dev = owner(given);
    if (!dev) return E.left(`underlay address ${given} is not an address of this node's namespace`);
    return E.right({ address: given, device: dev.ifname, mtu: mtuOf(dev.ifname) });
  }
  const defaults = await step(routes(ns, ['default']));
  if (E.isLeft(defaults)) return defaults;
  for (const r of defaults.right) {
    if (!r.dev) continue;
    const a = addrs.right.find((x) => x.ifname === r.dev)?.addr_info?.find((i) => i.scope === 'global' && familyOf(i.local) === r.family);
    if (a) return E.right({ address: r.prefsrc ?? a.local, device: r.dev, mtu: mtuOf(r.dev) });
  }
  return E.right(undefined);
};

/** Prefixes the node routes itself (not the mesh's): never to be handed out as connection addresses. */
export const localPrefixes = async (ns: Netns): Promise<Outcome<string[]>> => {
  const main = await step(routes(ns, ['table', 'main']));
  if (E.isLeft(main)) return main;
  const out = new Set<string>();
  for (const r of main.right) {
    if (r.dst === 'default' || (r.dev && MESH_INTERFACE.test(r.dev))) continue;
    // Every IPv6 link has fe80::/64 (link-local) and loopback ::1: never handed out anyway.
    if (r.family === 'IPv6' && (/^fe[89ab]/i.test(r.dst) || r.dev === 'lo')) continue;
    const p = normalizePrefix(r.dst, r.family);
    if (E.isRight(parseCidr(p))) out.add(p);
  }
  return E.right([...out]);
};

const probeLink = async (ns: Netns, args: readonly string[]): Promise<boolean> => {
  const name = `nsmprobe${randomBytes(3).toString('hex')}`;
  const ok = await succeeds(ipArgv(ns, ['link', 'add', name, ...args]));
  if (ok) await run(ipArgv(ns, ['link', 'del', 'dev', name]))();
  return ok;
};

export interface Probed {
  readonly vxlan: boolean;
  readonly wireguard?: WireguardMode;
  /** Why this node cannot route IPv6 connections (undefined: it can). */
  readonly noIpv6?: string;
  /** Why a mechanism is missing, for the agent's start-up log. */
  readonly notes: string[];
}

export const probeMechanisms = async (ns: Netns): Promise<Probed> => {
  const notes: string[] = [];
  const vxlan = await probeLink(ns, ['type', 'vxlan', 'id', '16777214', 'dstport', '1']);
  if (!vxlan) notes.push('vxlan: the kernel refused to create a VXLAN device');
  const hasWg = await succeeds(inNetnsArgv(ns, ['wg', '--version']));
  let wireguard: WireguardMode | undefined;
  if (!hasWg) notes.push('wireguard: the wg tool (wireguard-tools) is not installed');
  else if (await probeLink(ns, ['type', 'wireguard'])) wireguard = 'kernel';
  else if (await succeeds(['wireguard-go', '--version'])) {
    wireguard = 'userspace';
    notes.push('wireguard: no kernel WireGuard here; using wireguard-go in userspace (slower)');
  } else notes.push('wireguard: no kernel WireGuard and wireguard-go is not installed');
  // IPv6 sides need IPv6 in the node namespace and per-interface forwarding (force_forwarding,
  // Linux 6.17): without it a connection carrying IPv6 fails with this reason, never half-works.
  const v6 = await run(inNetnsArgv(ns, ['sysctl', '-n', 'net.ipv6.conf.all.disable_ipv6', 'net.ipv6.conf.all.force_forwarding']))();
  const noIpv6 = E.isLeft(v6)
    ? `this node's kernel cannot route IPv6 per interface (net.ipv6.conf.*.force_forwarding, Linux 6.17 or later): ${v6.left.message}`
    : v6.right.trim().split('\n')[0] === '1'
      ? "IPv6 is disabled in this node's namespace (net.ipv6.conf.all.disable_ipv6=1)"
      : undefined;
  if (noIpv6) notes.push(`ipv6: ${noIpv6}; connections that carry IPv6 fail on this node`);
  return { vxlan, ...(wireguard ? { wireguard } : {}), ...(noIpv6 ? { noIpv6 } : {}), notes };
};
