// Tunnels between nodes, one device per connection side in the node's namespace.
// VXLAN: VNI and UDP port from the connection's tunnel parameters, `remote` the peer's underlay.
// WireGuard: listen port from the tunnel parameters, the node's own key, one peer (the other
// node's public key at its underlay address); kernel WireGuard when the kernel has it,
// wireguard-go (userspace, a process per interface) otherwise.
import { existsSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { run } from './exec.ts';
import { links, sameAddress, type Link } from './iproute.ts';
import { inNetns, inNetnsArgv, ip, type Netns } from './netns.ts';
import { Changes, step, stepDone, type Outcome } from './result.ts';
import { sleep } from '../../src/lib/time.ts';

export interface VxlanSpec {
  readonly name: string;
  readonly vni: number;
  readonly port: number;
  readonly local: string;
  readonly remote: string;
  readonly mac: string;
  readonly mtu: number;
  readonly alias: string;
}

const sameVxlan = (l: Link, v: VxlanSpec): boolean => {
  if (l.linkinfo?.info_kind !== 'vxlan') return false;
  // An IPv6 underlay is reported as remote6 and local6.
  const d = (l.linkinfo.info_data ?? {}) as { id?: number; remote?: string; local?: string; remote6?: string; local6?: string; port?: number };
  return d.id === v.vni && sameAddress(d.remote ?? d.remote6, v.remote) && sameAddress(d.local ?? d.local6, v.local) && d.port === v.port && l.address === v.mac;
};

export const ensureVxlan = async (ns: Netns, v: VxlanSpec, nodeLinks: readonly Link[], changes: Changes): Promise<Outcome<void>> => {
  const existing = nodeLinks.find((l) => l.ifname === v.name);
  if (existing && !sameVxlan(existing, v)) {
    const del = await step(ip(ns, ['link', 'del', 'dev', v.name]));
    if (E.isLeft(del)) return del;
    changes.add(`deleted ${v.name}: its VXLAN parameters changed`);
  }
  if (!existing || !sameVxlan(existing, v)) {
    const add = await step(
      ip(ns, ['link', 'add', v.name, 'address', v.mac, 'mtu', String(v.mtu), 'type', 'vxlan', 'id', String(v.vni), 'remote', v.remote, 'local', v.local, 'dstport', String(v.port)]),
    );
    if (E.isLeft(add)) return add;
    changes.add(`created vxlan ${v.name} (VNI ${v.vni}, ${v.local} -> ${v.remote}:${v.port})`);
  }
  return stepDone(ip(ns, ['link', 'set', 'dev', v.name, 'mtu', String(v.mtu), 'alias', v.alias, 'up']));
};

export type WireguardMode = 'kernel' | 'userspace';

export interface WireguardSpec {
  readonly name: string;
  readonly listenPort: number;
  readonly privateKeyFile: string;
  readonly peerPublicKey: string;
  readonly peerEndpoint: string;
  readonly allowedIps: readonly string[];
  readonly mtu: number;
  readonly alias: string;
}

export const WG_SOCKET_DIR = '/var/run/wireguard';
/** wireguard-go refuses to start on Linux without it. */
const USERSPACE_ENV = 'WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD';

/** Pids of wireguard-go processes serving the interface (found by their command line). */
export const wireguardGoPids = (ifname: string): number[] => {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (argv[0]?.endsWith('wireguard-go') && argv.includes(ifname)) {
        const state = /^State:\s+(\S)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1];
        if (state !== 'Z') pids.push(Number(entry));
      }
    } catch {
      // the process went away while we looked
    }
  }
  return pids;
};

const startWireguardGo = async (ns: Netns, name: string): Promise<Outcome<void>> => {
  const env: NodeJS.ProcessEnv = { ...process.env, [USERSPACE_ENV]: '1' };
  // With LOG_LEVEL set, wireguard-go keeps our pipes open in its daemon; we want it silent.
  delete env.LOG_LEVEL;
  // Its own session: stopping the agent (Ctrl-C reaches the whole process group) must not
  // take the tunnels down; a restarted agent adopts them.
  return stepDone(run(inNetnsArgv(ns, ['wireguard-go', name]), { env, detached: true, timeoutMs: 10000 }));
};

export const ensureWireguard = async (ns: Netns, mode: WireguardMode, w: WireguardSpec, nodeLinks: readonly Link[], changes: Changes): Promise<Outcome<void>> => {
  const existing = nodeLinks.find((l) => l.ifname === w.name);
  const kind = mode === 'kernel' ? 'wireguard' : 'tun';
  if (existing && existing.linkinfo?.info_kind !== kind) {
    const del = await step(ip(ns, ['link', 'del', 'dev', w.name]));
    if (E.isLeft(del)) return del;
    changes.add(`deleted ${w.name}: not a ${mode} WireGuard interface`);
  }
  if (!existing || existing.linkinfo?.info_kind !== kind) {
    const created = mode === 'kernel' ? await step(ip(ns, ['link', 'add', w.name, 'type', 'wireguard'])) : await startWireguardGo(ns, w.name);
    if (E.isLeft(created)) return created;
    changes.add(`created ${mode} WireGuard interface ${w.name}`);
  }
  const peers = await step(inNetns(ns, ['wg', 'show', w.name, 'peers']));
  if (E.isLeft(peers)) return peers;
  for (const stale of peers.right.split('\n').map((s) => s.trim()).filter((s) => s && s !== w.peerPublicKey)) {
    const r = await step(inNetns(ns, ['wg', 'set', w.name, 'peer', stale, 'remove']));
    if (E.isLeft(r)) return r;
    changes.add(`removed a stale peer from ${w.name}`);
  }
  const set = await step(
    inNetns(ns, [
      'wg', 'set', w.name,
      'listen-port', String(w.listenPort),
      'private-key', w.privateKeyFile,
      'peer', w.peerPublicKey,
      'endpoint', w.peerEndpoint,
      'allowed-ips', w.allowedIps.join(','),
    ]),
  );
  if (E.isLeft(set)) return set;
  return stepDone(ip(ns, ['link', 'set', 'dev', w.name, 'mtu', String(w.mtu), 'alias', w.alias, 'up']));
};


/** Removes a WireGuard interface and, in userspace mode, its process and control socket. */
export const removeWireguard = async (ns: Netns, name: string, present: boolean, changes: Changes): Promise<Outcome<void>> => {
  const pids = wireguardGoPids(name);
  for (const pid of pids) {
    try {
      // SIGTERM: wireguard-go closes its tun device and removes its socket itself.
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 40 && wireguardGoPids(name).length > 0; i++) await sleep(50);
  for (const pid of wireguardGoPids(name)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  if (pids.length > 0) changes.add(`stopped wireguard-go for ${name}`);
  const still = await step(links(ns));
  if (E.isLeft(still)) return still;
  if (present && still.right.some((l) => l.ifname === name)) {
    const del = await step(ip(ns, ['link', 'del', 'dev', name]));
    if (E.isLeft(del)) return del;
  }
  if (present) changes.add(`deleted ${name}`);
  const socket = `${WG_SOCKET_DIR}/${name}.sock`;
  if (existsSync(socket) && wireguardGoPids(name).length === 0) {
    try {
      unlinkSync(socket);
      changes.add(`removed stale socket ${socket}`);
    } catch (e) {
      return E.left(`cannot remove ${socket}: ${(e as Error).message}`);
    }
  }
  return E.right(undefined);
};
