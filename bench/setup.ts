// Connection setup on the simulated dataplane, each figure beside its baseline from the same run:
//   latency  request -> Established, one at a time, against a raw NATS request/reply round trip;
//   rate     connections established per second with many in flight, and events appended per
//            second against raw JetStream publishing with the same number in flight.
// Usage: npm run bench:setup [-- --sequential 300 --sustained 3000 --inflight 256]
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { StorageType } from 'nats';
import { distribution, ok, goal, printTable, writeCdfSvg, writeResult } from './lib/report.ts';
import { startBenchMesh } from './lib/mesh.ts';
import { subjectsFor } from '../src/contracts/subjects.ts';

const { values: a } = parseArgs({
  options: { sequential: { type: 'string', default: '300' }, sustained: { type: 'string', default: '3000' }, inflight: { type: 'string', default: '256' } },
});
const SEQ = Number(a.sequential);
const SUSTAINED = Number(a.sustained);
const INFLIGHT = Number(a.inflight);

const mesh = await startBenchMesh();
try {
  const nc = await mesh.connectRaw();
  // Baseline 1: raw request/reply through the same server.
  nc.subscribe('bench.echo', { callback: (_e, m) => m.respond(m.data) });
  const rr: number[] = [];
  for (let i = 0; i < Math.max(1000, SEQ); i++) {
    const t = performance.now();
    await nc.request('bench.echo', new Uint8Array(64), { timeout: 5000 });
    rr.push(performance.now() - t);
  }

  await mesh.addAgents(['n1', 'n2']);
  const c = await mesh.client('bench');
  ok(await c.send('service.register', { name: 'svc' }));
  ok(await c.send('endpoint.register', { name: 'ep1', node: 'n1', prefix: '10.0.0.0/12', networkServiceNames: ['svc'] }));
  ok(await c.send('endpoint.register', { name: 'ep2', node: 'n2', prefix: '10.16.0.0/12', networkServiceNames: ['svc'] }));

  // Latency: one connection at a time (warm-up of 20 not counted).
  const setup: number[] = [];
  for (let i = 0; i < SEQ + 20; i++) {
    const id = randomUUID();
    const t = performance.now();
    ok(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: i % 2 ? 'n1' : 'n2' }));
    const s = ok(await c.waitForConnection(id, 30_000));
    if (s.state !== 'established') throw new Error(`connection ${id} ${s.state}: ${s.reason}`);
    if (i >= 20) setup.push(performance.now() - t);
  }

  // Rate: SUSTAINED requests with INFLIGHT outstanding.
  const jsm = await nc.jetstreamManager();
  const eventStream = subjectsFor(mesh.domain).streams.events;
  const before = Number((await jsm.streams.info(eventStream)).state.last_seq);
  let next = 0;
  const cpu0 = mesh.cpuSeconds();
  const t0 = performance.now();
  const worker = async () => {
    while (next < SUSTAINED) {
      const i = next++;
      const id = randomUUID();
      ok(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: i % 2 ? 'n1' : 'n2' }));
      const s = ok(await c.waitForConnection(id, 120_000));
      if (s.state !== 'established') throw new Error(`connection ${id} ${s.state}: ${s.reason}`);
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT }, worker));
  const sustainedSec = (performance.now() - t0) / 1000;
  const cpu1 = mesh.cpuSeconds();
  // Share of one core each process used during the sustained phase (the machine has two).
  const cpuShare = {
    controlPlane: (cpu1.controlPlane - cpu0.controlPlane) / sustainedSec,
    natsServer: (cpu1.natsServer - cpu0.natsServer) / sustainedSec,
    agentsAndClient: (cpu1.benchProcess - cpu0.benchProcess) / sustainedSec,
  };
  const info = await jsm.streams.info(eventStream);
  const commits = Number(info.state.last_seq) - before;
  // Events per commit, from a sample of the log (each message is one commit of 1+ events).
  const sample = await jsm.streams.getMessage(info.config.name, { seq: Number(info.state.last_seq) - 1 });
  const eventsPerCommitSample = (JSON.parse(new TextDecoder().decode(sample.data)) as { events: unknown[] }).events.length;
  const rss = mesh.controlPlaneRss();

  // Baseline 2: raw JetStream publishing with the same number in flight, same message size.
  await jsm.streams.add({ name: 'BENCH_RAW', subjects: ['bench.raw.>'], storage: StorageType.File });
  const js = nc.jetstream();
  const payload = sample.data;
  const RAW = Math.max(commits, 5000);
  let sent = 0;
  const r0 = performance.now();
  await Promise.all(
    Array.from({ length: INFLIGHT }, async () => {
      while (sent < RAW) {
        const i = sent++;
        await js.publish(`bench.raw.${i % 1000}`, payload, { msgID: `raw-${i}` });
      }
    }),
  );
  const rawPerSec = RAW / ((performance.now() - r0) / 1000);

  const rrD = distribution(rr);
  const setupD = distribution(setup);
  const connPerSec = SUSTAINED / sustainedSec;
  const commitsPerSec = commits / sustainedSec;
  printTable('Connection setup latency (simulated dataplane), ms', ['series', 'n', 'p50', 'p90', 'p99', 'max'], [
    ['raw NATS request/reply (baseline)', rrD.n, rrD.p50, rrD.p90, rrD.p99, rrD.max],
    ['request -> Established', setupD.n, setupD.p50, setupD.p90, setupD.p99, setupD.max],
    ['ratio to baseline', '', setupD.p50 / rrD.p50, setupD.p90 / rrD.p90, setupD.p99 / rrD.p99, setupD.max / rrD.max],
  ]);
  printTable(`Sustained rate (${SUSTAINED} connections, ${INFLIGHT} in flight)`, ['figure', 'value'], [
    ['connections established / s', connPerSec],
    ['commits appended / s (control plane)', commitsPerSec],
    ['raw JetStream publishes / s, same in flight (baseline)', rawPerSec],
    ['appends ratio to raw', commitsPerSec / rawPerSec],
    ['control-plane RSS after the run, MiB', rss / 2 ** 20],
    ['CPU: control plane (cores)', cpuShare.controlPlane],
    ['CPU: nats-server (cores)', cpuShare.natsServer],
    ['CPU: agents + client in this process (cores)', cpuShare.agentsAndClient],
  ]);
  const goals = [
    goal('setup p50', setupD.p50, 5, 'lower', ' ms'),
    goal('setup p99', setupD.p99, 25, 'lower', ' ms'),
    goal('connections established per second', connPerSec, 2000, 'higher'),
    goal('appends as a ratio of raw pipelined JetStream', commitsPerSec / rawPerSec, 0.5, 'higher'),
  ];
  const svg = writeCdfSvg('setup', 'Connection setup latency vs raw NATS request/reply', [
    { label: 'raw NATS request/reply', samplesMs: rr },
    { label: 'request -> Established (simulated dataplane)', samplesMs: setup },
  ]);
  const file = writeResult('setup', {
    parameters: { sequential: SEQ, sustained: SUSTAINED, inflight: INFLIGHT, endpoints: 2, nodes: 2, controlPlane: 'separate process', agentsAndClient: 'bench process' },
    baseline: { requestReplyMs: rrD, rawJetStreamPublishesPerSec: rawPerSec },
    setupLatencyMs: setupD,
    ratios: { p50: setupD.p50 / rrD.p50, p99: setupD.p99 / rrD.p99, appendsToRaw: commitsPerSec / rawPerSec },
    sustained: { connectionsPerSec: connPerSec, commitsPerSec, commits, eventsPerCommitSample, seconds: sustainedSec },
    controlPlaneRssBytes: rss,
    cpuCoresDuringSustained: cpuShare,
    goals,
    chart: svg,
  });
  process.stdout.write(`\nwrote ${file} and ${svg}\n`);
} finally {
  await mesh.stop();
}
