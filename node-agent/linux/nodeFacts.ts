// What a node tells the mesh about itself when it joins: its underlay address and MTU, which
// tunnel mechanisms its kernel and tools support, and the prefixes it already routes.
import { randomBytes } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { parseCidr } from '../../aggregates/ip.ts';
import { run, succeeds } from './exec.ts';
import { allAddresses, links, normalizePrefix, routes } from './iproute.ts';
import { inNetnsArgv, ipArgv, type Netns } from './netns.ts';
import { MESH_INTERFACE } from './names.ts';
import { step, type Outcome } from './result.ts';
import type { WireguardMode } from './tunnels.ts';

export interface Underlay {
  readonly address: string;
  readonly device: string;
  readonly mtu: number;
}

/** The given address (which must be on an interface of the node), or the source of the default route. */
export const findUnderlay = async (ns: Netns, given: string | undefined): Promise<Outcome<Underlay | undefined>> => {
  const addrs = await step(allAddresses(ns));
  if (E.isLeft(addrs)) return addrs;
  const ls = await step(links(ns));
  if (E.isLeft(ls)) return ls;
  const mtuOf = (dev: string): number => ls.right.find((l) => l.ifname === dev)?.mtu ?? 1500;
  const owner = (address: string) => addrs.right.find((a) => (a.addr_info ?? []).some((i) => i.local === address));
  if (given !== undefined) {
    const dev = owner(given);
    if (!dev) return E.left(`underlay address ${given} is not an address of this node's namespace`);
    return E.right({ address: given, device: dev.ifname, mtu: mtuOf(dev.ifname) });
  }
  const defaults = await step(routes(ns, ['default']));
  if (E.isLeft(defaults)) return defaults;
  for (const r of defaults.right) {
    if (!r.dev) continue;
    const a = addrs.right.find((x) => x.ifname === r.dev)?.addr_info?.find((i) => i.scope === 'global');
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
    const p = normalizePrefix(r.dst);
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
  return { vxlan, ...(wireguard ? { wireguard } : {}), notes };
};
