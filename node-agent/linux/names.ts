// Names and marks of everything the Linux dataplane creates. Interface names are derived from
// the connection id and the side, so they can be found again after a restart without a local
// database; each interface also carries an alias (`ip link set dev X alias ...`, returned by
// `ip -json link` as "ifalias") that says which mesh, connection, side and generation it
// belongs to. The alias is what reconciliation trusts; the name is how we look it up.
import { createHash } from 'node:crypto';
import type { Side } from '../../aggregates/connection/index.ts';

/** Linux interface names: at most 15 bytes, and nothing an `ip` argument parser could misread. */
export const IFNAME = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,14}$/;

/** Up to 12 characters of the connection id, enough to tell connections apart on one node. */
const idPart = (connectionId: string): string => connectionId.replace(/[^A-Za-z0-9]/g, '').slice(0, 12).toLowerCase();
const sideLetter = (side: Side): string => (side === 'client' ? 'c' : 'e');

export interface SideNames {
  /** Node-namespace end of the veth pair whose other end is the workload's interface. */
  readonly hostVeth: string;
  readonly vxlan: string;
  /** Unique host-wide (wireguard-go's control sockets share /var/run/wireguard across namespaces). */
  readonly wireguard: string;
}

/**
 * The WireGuard name's id part: 7 characters of the id, then 5 hex digits of a hash of the node
 * and the id. Several nodes can share a host (labs, the demo); when a heal moves a connection's
 * endpoint side from one to another, the old interface may still be there, and a name that did
 * not depend on the node would be the same socket in /var/run/wireguard.
 */
const wireguardPart = (connectionId: string, nodeKey: string): string =>
  idPart(connectionId).slice(0, 7) + createHash('sha256').update(`${nodeKey}/${connectionId}`).digest('hex').slice(0, 5);

/**
 * Role prefixes: "nv" veth, "nx" vxlan, "nw" wireguard, "nb" bridge; then c|e for the side.
 * `nodeKey` tells this node from others on the host: its WireGuard public key.
 */
export const sideNames = (connectionId: string, side: Side, nodeKey: string): SideNames => {
  const id = idPart(connectionId);
  const s = sideLetter(side);
  return { hostVeth: `nv${s}${id}`, vxlan: `nx${s}${id}`, wireguard: `nw${s}${wireguardPart(connectionId, nodeKey)}` };
};

/** The L2 segment of an ETHERNET connection on one node, shared by both sides when they are on the same node. */
export const bridgeName = (connectionId: string): string => `nbx${idPart(connectionId)}`;

/** Every name a side may use in the node namespace (a changed mechanism leaves the old tunnel to remove). */
export const allSideInterfaces = (n: SideNames): readonly string[] => [n.hostVeth, n.vxlan, n.wireguard];

export const MESH_INTERFACE = /^(n[vxw][ce]|nbx)[a-z0-9]{1,12}$/;

export interface Mark {
  readonly domain: string;
  readonly connectionId: string;
  readonly side: Side;
  readonly generation: number;
}

const ALIAS_PREFIX = 'nsm';

export const aliasOf = (m: Mark): string => `${ALIAS_PREFIX}:${m.domain}:${m.connectionId}:${m.side}:${m.generation}`;

export const parseAlias = (alias: string | undefined): Mark | undefined => {
  if (!alias) return undefined;
  const parts = alias.split(':');
  if (parts.length !== 5 || parts[0] !== ALIAS_PREFIX) return undefined;
  const [, domain, connectionId, side, gen] = parts as [string, string, string, string, string];
  const generation = Number(gen);
  if ((side !== 'client' && side !== 'endpoint') || !Number.isInteger(generation) || !domain || !connectionId) return undefined;
  return { domain, connectionId, side, generation };
};

type Owner = Pick<Mark, 'domain' | 'connectionId' | 'side'>;

/** Marked for this side of this connection in this mesh (any generation). */
export const belongsTo = (l: { readonly ifalias?: string }, owner: Owner): boolean => {
  const a = parseAlias(l.ifalias);
  return a !== undefined && a.domain === owner.domain && a.connectionId === owner.connectionId && a.side === owner.side;
};

/**
 * An interface we may treat as ours: marked for this side, or with no alias at all (a crash
 * between creating and marking it). Any other alias is someone else's, even one we cannot read.
 */
export const oursOrUnmarked = (l: { readonly ifalias?: string }, owner: Owner): boolean => l.ifalias === undefined || l.ifalias === '' || belongsTo(l, owner);

/** Marks of the bridge, which belongs to the connection on this node rather than to one side. */
export const bridgeAlias = (domain: string, connectionId: string): string => `${ALIAS_PREFIX}:${domain}:${connectionId}:segment`;

/**
 * A fixed, locally administered MAC for a side's VXLAN device. Both nodes can compute the peer's
 * MAC from the connection id, so routed (IP payload) VXLAN needs no ARP across the tunnel.
 */
export const vxlanMac = (connectionId: string, side: Side): string => {
  const h = createHash('sha256').update(`vxlan:${connectionId}:${side}`).digest();
  const bytes = [0x02, h[0]!, h[1]!, h[2]!, h[3]!, h[4]!];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
};

/**
 * Policy-routing tables of IP connections: one per connection on a node, picked from this range
 * and found again through the rules that point to it (`ip rule ... iif <side interface>`).
 */
export const TABLE_FIRST = 0x4e530000;
export const TABLE_LAST = TABLE_FIRST + 0xffff;
export const RULE_PRIORITY = 1000;
