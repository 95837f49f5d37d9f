// Benchmark of the Linux dataplane on a namespace lab (needs root): not a test, a measurement.
//
//   npm run bench:dataplane -- [--connections N] [--seconds S] [--rounds R]
//
// 1. Connection setup latency, request sent -> ConnectionEstablished seen by the client, for N
//    connections in a row per mechanism: kernel (client and endpoint on one node), vxlan and
//    wireguard (client on n1, endpoint on n2). p50/p99/max.
// 2. TCP throughput with iperf3 through one connection of each mechanism, as a ratio to a bare
//    veth pair between two namespaces measured in the same run (the best a veth-based path can do
//    on this machine). R rounds, each measuring the baseline and every mechanism one after the
//    other, so that a busy moment of the machine hits all of them; medians are compared.
// Writes bench/results/dataplane.json and prints a table.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { exitWhenFlushed } from '../infra/stdio.ts';
import type { MeshClient } from '../src/client/index.ts';
import { must } from '../test/lib/mesh.ts';
import { addressOf, exec, inNs, ROOT, sh, startLab, startProcess, type ConnectionView, type Lab } from '../test/lib/netns.ts';

type Mechanism = 'kernel' | 'vxlan' | 'wireguard';
const MECHANISMS: readonly Mechanism[] = ['kernel', 'vxlan', 'wireguard'];

// The in-process control plane's info lines would drown the figures.
process.env.NSM_LOG_LEVEL ??= 'warn';
const { values: args } = parseArgs({ options: { connections: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' } } });
const N = Number(args.connections ?? 20);
const SECONDS = Number(args.seconds ?? 5);
/** Throughput rounds: each measures the baseline and every mechanism, interleaved; medians are reported. */
const ROUNDS = Number(args.rounds ?? 3);

const quantile = (sorted: readonly number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;
const say = (s: string) => process.stderr.write(s + '\n');

const version = async (argv: string[]) => {
  const r = await exec(argv);
  return (r.stdout || r.stderr).trim().split('\n')[0] ?? 'unknown';
};

const serviceFor = (m: Mechanism) => (m === 'kernel' ? 'bench-local' : 'bench-remote');

/** Setup time as the client sees it, and the part spent programming both nodes (PathPlanned -> ConnectionEstablished, from event times). */
const connectOne = async (lab: Lab, c: MeshClient, id: string, m: Mechanism, iface: string): Promise<{ ms: number; dataplaneMs: number; view: ConnectionView }> => {
  const t0 = performance.now();
  must(await c.send('connection.request', { connectionId: id, networkService: serviceFor(m), clientNode: 'n1', clientNetns: lab.ns('client'), clientInterface: iface, mechanismPreferences: [m] }));
  const settled = must(await c.waitForConnection(id, 60000));
  const ms = performance.now() - t0;
  if (settled.state !== 'established') throw new Error(`connection ${id} (${m}) ${settled.state}: ${settled.reason ?? ''}`);
  const history = must(await c.query<{ event: { type: string; time: string } }[]>('history', { id }));
  const at = (type: string) => Date.parse(history.find((h) => h.event.type === type)?.event.time ?? '');
  return { ms, dataplaneMs: at('ConnectionEstablished') - at('PathPlanned'), view: must(await c.query<ConnectionView>('connection', { id })) };
};

const closeAll = async (c: MeshClient, ids: readonly string[]) => {
  for (const id of ids) must(await c.send('connection.close', { connectionId: id }));
  for (const id of ids) {
    for (let i = 0; i < 200; i++) {
      const row = must(await c.query<{ state: string; programmed: string[] }>('connection', { id }));
      const history = must(await c.query<{ event: { type: string } }[]>('history', { id }));
      if (row.state === 'closed' && history.filter((h) => h.event.type === 'DataplaneRemoved').length === 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
};

/** iperf3 from one namespace to an address served in another; returns received Mbit/s. */
const iperf = async (lab: Lab, serverNs: string, clientNs: string, address: string): Promise<number> => {
  const server = startProcess(`iperf3-server-${serverNs}`, inNs(serverNs, ['iperf3', '-s', '-1', '--forceflush', '-B', address]), lab.dir);
  try {
    await server.waitFor(/Server listening/, 10000);
    const out = await sh(inNs(clientNs, ['iperf3', '-c', address, '-t', String(SECONDS), '-J']), { timeoutMs: (SECONDS + 30) * 1000 });
    const j = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
    return j.end.sum_received.bits_per_second / 1e6;
  } finally {
    await server.stop(2000);
  }
};

const main = async () => {
  say(`nsm dataplane benchmark: ${N} connections per mechanism, iperf3 ${SECONDS}s per path`);
  const lab = await startLab({ nodes: ['n1', 'n2'] });
  try {
    const c = await lab.client('bench');
    must(await c.send('service.register', { name: 'bench-local' }));
    must(await c.send('service.register', { name: 'bench-remote' }));
    await lab.startEndpoint({ name: 'ep-local', service: 'bench-local', node: 'n1', role: 'ep1', prefix: '10.90.0.0/16' });
    await lab.startEndpoint({ name: 'ep-remote', service: 'bench-remote', node: 'n2', role: 'ep2', prefix: '10.91.0.0/16' });
    await lab.addNamespace('client');

    const setup: Record<string, { n: number; p50: number; p99: number; max: number; mean: number; dataplaneP50: number; dataplaneP99: number }> = {};
    for (const m of MECHANISMS) {
      const times: number[] = [];
      const dataplane: number[] = [];
      const ids: string[] = [];
      for (let i = 0; i < N; i++) {
        const id = lab.connectionId(`${m[0]}${i}`);
        ids.push(id);
        const r = await connectOne(lab, c, id, m, `b${m[0]}${i}`);
        times.push(r.ms);
        dataplane.push(r.dataplaneMs);
      }
      await closeAll(c, ids);
      const sorted = [...times].sort((a, b) => a - b);
      const dp = [...dataplane].sort((a, b) => a - b);
      setup[m] = {
        n: N,
        p50: round(quantile(sorted, 0.5)),
        p99: round(quantile(sorted, 0.99)),
        max: round(sorted.at(-1)!),
        mean: round(times.reduce((a, b) => a + b, 0) / N),
        dataplaneP50: quantile(dp, 0.5),
        dataplaneP99: quantile(dp, 0.99),
      };
      say(`  setup ${m}: p50 ${setup[m]!.p50} ms, p99 ${setup[m]!.p99} ms (programming both nodes: p50 ${setup[m]!.dataplaneP50} ms)`);
    }

    // The baseline: two namespaces joined by one veth pair, nothing else.
    const a = await lab.addNamespace('bare-a');
    const b = await lab.addNamespace('bare-b');
    await sh(['ip', '-n', a, 'link', 'add', 'bare0', 'type', 'veth', 'peer', 'name', 'bare0', 'netns', b]);
    await sh(['ip', '-n', a, 'addr', 'add', '10.99.0.1/24', 'dev', 'bare0']);
    await sh(['ip', '-n', b, 'addr', 'add', '10.99.0.2/24', 'dev', 'bare0']);
    await sh(['ip', '-n', a, 'link', 'set', 'bare0', 'up']);
    await sh(['ip', '-n', b, 'link', 'set', 'bare0', 'up']);

    const paths: { name: string; serverNs: string; address: string; mtu: number; id?: string }[] = [{ name: 'bare-veth', serverNs: b, address: '10.99.0.2', mtu: 1500 }];
    for (const m of MECHANISMS) {
      const id = lab.connectionId(`${m[0]}t`);
      const { view } = await connectOne(lab, c, id, m, `t${m[0]}`);
      paths.push({ name: m, serverNs: lab.ns(m === 'kernel' ? 'ep1' : 'ep2'), address: addressOf(view.context!.ipContext.dstIpAddrs[0]!), mtu: view.context!.mtu, id });
    }
    const samples = new Map<string, number[]>(paths.map((p) => [p.name, []]));
    for (let r = 1; r <= ROUNDS; r++) {
      for (const p of paths) {
        const mbps = await iperf(lab, p.serverNs, p.name === 'bare-veth' ? a : lab.ns('client'), p.address);
        samples.get(p.name)!.push(round(mbps));
        say(`  round ${r}/${ROUNDS} iperf3 ${p.name}: ${round(mbps)} Mbit/s`);
      }
    }
    await closeAll(c, paths.flatMap((p) => (p.id ? [p.id] : [])));
    const median = (xs: readonly number[]) => quantile([...xs].sort((x, y) => x - y), 0.5);
    const baseline = median(samples.get('bare-veth')!);
    const throughput: Record<string, { mbps: number; ratio: number; mtu: number; samples: number[] }> = {};
    for (const m of MECHANISMS) {
      const xs = samples.get(m)!;
      throughput[m] = { mbps: median(xs), ratio: round(median(xs) / baseline, 3), mtu: paths.find((p) => p.name === m)!.mtu, samples: xs };
    }

    const agentLog = lab.nodes.get('n1')!.agent!.output();
    const wireguardMode = /"wireguard":"(kernel|userspace)"/.exec(agentLog)?.[1] ?? 'unknown';
    const result = {
      benchmark: 'dataplane',
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: round(totalmem() / 2 ** 30), kernel: release() },
      versions: {
        node: process.version,
        iproute2: await version(['ip', '-V']),
        iperf3: await version(['iperf3', '--version']),
        wireguardGo: await version(['wireguard-go', '--version']),
        natsServer: await version(['nats-server', '--version']),
      },
      parameters: { connectionsPerMechanism: N, iperfSeconds: SECONDS, throughputRounds: ROUNDS, statistic: 'median of rounds', wireguard: wireguardMode, underlayMtu: 1500, topology: 'kernel: client and endpoint on n1; vxlan/wireguard: client on n1, endpoint on n2; nodes are namespaces on one underlay bridge' },
      setupLatencyMs: setup,
      throughput: { bareVeth: { mbps: baseline, samples: samples.get('bare-veth') }, ...throughput },
    };
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(join(ROOT, 'bench', 'results', 'dataplane.json'), JSON.stringify(result, null, 2) + '\n');

    const rows = MECHANISMS.map((m) => [m, setup[m]!.p50, setup[m]!.p99, setup[m]!.dataplaneP50, throughput[m]!.mtu, throughput[m]!.mbps, `${round(throughput[m]!.ratio * 100)}%`]);
    const header = ['mechanism', 'setup p50 ms', 'setup p99 ms', 'programming p50 ms', 'mtu', 'iperf3 Mbit/s', 'vs bare veth'];
    const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
    const line = (r: readonly unknown[]) => r.map((x, i) => String(x).padEnd(widths[i]!)).join('  ');
    process.stdout.write(`\n${line(header)}\n${rows.map(line).join('\n')}\nbare veth pair: ${round(baseline)} Mbit/s (baseline, same run; medians of ${ROUNDS} rounds of ${SECONDS}s)   wireguard: ${wireguardMode}\n`);
    process.stdout.write(`written to bench/results/dataplane.json\n`);
  } finally {
    await lab.stop();
  }
};

main().then(
  () => exitWhenFlushed(0),
  (e) => {
    process.stderr.write(`bench:dataplane failed: ${(e as Error).message}\n`);
    return exitWhenFlushed(1);
  },
);
