// Looking at the underlay: a tcpdump capture in a node's namespace (read back from its pcap
// file) and nftables counters, to check what crosses between nodes.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inNs, sh, startProcess, type LabProcess } from './netns.ts';

export interface Packet {
  readonly src: string;
  readonly dst: string;
  /** IP protocol number: 1 ICMP, 6 TCP, 17 UDP. */
  readonly protocol: number;
  readonly srcPort?: number;
  readonly dstPort?: number;
  /** The whole frame, to search for payload bytes. */
  readonly frame: Buffer;
}

const ip4 = (b: Buffer, at: number) => `${b[at]}.${b[at + 1]}.${b[at + 2]}.${b[at + 3]}`;

/** IPv4 packets of a classic pcap file with Ethernet link type. */
export const readPcap = (file: string): Packet[] => {
  const b = readFileSync(file);
  if (b.length < 24) return [];
  const magic = b.readUInt32LE(0);
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d;
  const u32 = (at: number) => (le ? b.readUInt32LE(at) : b.readUInt32BE(at));
  const packets: Packet[] = [];
  for (let off = 24; off + 16 <= b.length; ) {
    const incl = u32(off + 8);
    const frame = b.subarray(off + 16, off + 16 + incl);
    off += 16 + incl;
    if (frame.length < 34 || frame.readUInt16BE(12) !== 0x0800) continue;
    const ihl = (frame[14]! & 0x0f) * 4;
    const protocol = frame[23]!;
    const l4 = 14 + ihl;
    const ports = (protocol === 6 || protocol === 17) && frame.length >= l4 + 4 ? { srcPort: frame.readUInt16BE(l4), dstPort: frame.readUInt16BE(l4 + 2) } : {};
    packets.push({ src: ip4(frame, 26), dst: ip4(frame, 30), protocol, ...ports, frame });
  }
  return packets;
};

export interface Capture {
  readonly file: string;
  /** Stops tcpdump (it flushes on SIGTERM) and returns the captured packets. */
  stop(): Promise<Packet[]>;
}

/** tcpdump on an interface of a namespace; resolves once it is listening. */
export const startCapture = async (netns: string, dev: string, dir: string, name: string): Promise<Capture> => {
  const file = join(dir, `${name}.pcap`);
  const p: LabProcess = startProcess(`tcpdump-${name}`, inNs(netns, ['tcpdump', '-i', dev, '-n', '--immediate-mode', '-U', '-s', '0', '-w', file]), dir);
  await p.waitFor(/listening on/, 10000);
  return {
    file,
    stop: async () => {
      // Immediate mode hands each packet over at once and -U writes it at once; still give the
      // last replies a moment to arrive.
      await new Promise((r) => setTimeout(r, 300));
      await p.stop(3000);
      return readPcap(file);
    },
  };
};

/** An nftables table with named counters in a namespace; returns a reader of their packet counts. */
export const installCounters = async (netns: string, table: string, rules: Readonly<Record<string, string>>): Promise<() => Promise<Record<string, number>>> => {
  const body = [
    `table inet ${table} {`,
    ...Object.keys(rules).map((name) => `  counter ${name} { }`),
    '  chain out { type filter hook postrouting priority 0; policy accept;',
    ...Object.entries(rules).filter(([, r]) => r.startsWith('out ')).map(([name, r]) => `    ${r.slice(4)} counter name ${name}`),
    '  }',
    '  chain in { type filter hook prerouting priority 0; policy accept;',
    ...Object.entries(rules).filter(([, r]) => r.startsWith('in ')).map(([name, r]) => `    ${r.slice(3)} counter name ${name}`),
    '  }',
    '}',
  ].join('\n');
  await sh(inNs(netns, ['nft', '-f', '-']), { input: body + '\n' });
  return async () => {
    const out = JSON.parse(await sh(inNs(netns, ['nft', '-j', 'list', 'counters', 'table', 'inet', table]))) as { nftables: { counter?: { name: string; packets: number } }[] };
    return Object.fromEntries(out.nftables.flatMap((e) => (e.counter ? [[e.counter.name, e.counter.packets]] : [])));
  };
};
