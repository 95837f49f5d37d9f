// Soak: does anything leak after a long run? Churns connections at a steady rate for N minutes
// (set up, heal by killing endpoints, close) and samples every process it runs, then judges
// every series with the rule in bench/lib/leak.ts and exits 1 when any grows without bound.
//
//   simulated dataplane:  npm run soak -- --minutes 30
//   Linux dataplane:      sudo npm run soak -- --real --minutes 10
//
// The mesh: a private nats-server (monitoring port on), the control plane, one agent per node and
// the endpoints (`nsm endpoint run icmp-responder`), each its own process. Endpoints come in two
// kinds: stable ones (one per node, sampled like the rest) and victims, killed in turn every
// --heal-every seconds, alternately by SIGKILL (it stops refreshing: its registration lapses;
// on the Linux dataplane its namespace is deleted too) and by SIGTERM (it unregisters and removes
// its namespace); their connections heal elsewhere; then the victim is started again.
// Meanwhile new connections are asked for at --rate per second and the oldest are closed beyond
// --open, so about --open connections are held throughout.
//
// Sampled every --sample seconds, per process: RSS, heap used after a forced GC (the control
// plane's `runtime` query with gc: true; the other Node.js processes through bench/lib/soakProbe.mjs),
// open file descriptors, CPU, NATS subscriptions of its connection; nats-server: RSS,
// connections, subscriptions, JetStream consumers, stream sizes (/varz, /connz?subs=1, /jsz);
// on the Linux dataplane the mesh's interfaces, routes, rules, nft objects, namespaces and
// wireguard-go processes in the lab's namespaces and on the host. After the churn every
// connection is closed and the mesh left to settle: counts must come back to their value before
// the churn.
//
// Writes bench/results/soak.json and soak.svg (simulated) or soak-real.json and soak-real.svg
// (Linux): settings, machine, every sample, every judgement, the churn achieved, the verdict.
// Options: --rate N --open N --heal-every S --sample S --warmup FRACTION --inflight N
// --keep-logs (keep the processes' logs; kept anyway unless the verdict is no-leak)
// --name NAME (bench/results/NAME.json and .svg instead of soak / soak-real)
// --heap-snapshots (of every Node.js process at the end of the warm-up and of the run).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import type { Commit } from '../src/contracts/envelope.ts';
import { subjectsFor } from '../src/contracts/subjects.ts';
import { REPOSITORY_STREAMS } from '../src/command/repository.ts';
import { RETAINED_ENDED } from '../projections/connections.ts';
import { DUPLICATE_WINDOW_MS } from '../infra/nats/streams.ts';
import { REMOVED_KEPT_MS } from '../node-agent/appliedSides.ts';
import { DEFAULT_THRESHOLDS, judgeSeries, MIB, type Judgement, type SeriesSpec } from './lib/leak.ts';
import { fmt, printTable, writeResult, writeSeriesSvg } from './lib/report.ts';
import { cpuSeconds, fdCount, natsFigures, removeDir, rssBytes, startSoakMesh, type SoakEndpointSpec, type SoakMesh, type SoakProcess } from './lib/soakMesh.ts';

const { values: a } = parseArgs({
  options: {
    minutes: { type: 'string', default: '3' },
    real: { type: 'boolean', default: false },
    rate: { type: 'string' },
    open: { type: 'string' },
    'heal-every': { type: 'string' },
    sample: { type: 'string' },
    warmup: { type: 'string', default: '0.2' },
    inflight: { type: 'string', default: '32' },
    'keep-logs': { type: 'boolean', default: false },
    'heap-snapshots': { type: 'boolean', default: false },
    name: { type: 'string' },
  },
});
const REAL = a.real;
const MINUTES = Number(a.minutes);
const RATE = Number(a.rate ?? (REAL ? '1' : '20'));
const OPEN = Number(a.open ?? (REAL ? '12' : '100'));
const HEAL_EVERY_S = Number(a['heal-every'] ?? (REAL ? '30' : '20'));
// About 200 samples per run, at least every 5 s (10 s on the Linux dataplane, whose counts run `ip`).
const SAMPLE_S = Number(a.sample ?? Math.max(REAL ? 10 : 5, Math.round((MINUTES * 60) / 200)));
const WARMUP = Number(a.warmup);
const INFLIGHT = Number(a.inflight);
const EXPIRATION = '3s';
for (const [k, v] of Object.entries({ minutes: MINUTES, rate: RATE, open: OPEN, 'heal-every': HEAL_EVERY_S, sample: SAMPLE_S, inflight: INFLIGHT })) {
  if (!Number.isFinite(v) || v <= 0) throw new Error(`--${k} must be a positive number`);
}
if (!(WARMUP >= 0 && WARMUP < 0.9)) throw new Error('--warmup is a fraction of the run, from 0 to 0.9');
const DOMAIN = 'soak';
/** bench/results/<NAME>.json and .svg: the two runs keep their own results (--name: a comparison, e.g. another nats-server, keeps its own too). */
const NAME = a.name ?? (REAL ? 'soak-real' : 'soak');
if (!/^[a-z0-9][a-z0-9.-]*$/.test(NAME)) throw new Error('--name is a file name: lower-case letters, digits, dots and dashes');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const say = (s: string) => process.stdout.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);

// ---- the mesh -------------------------------------------------------------------------------------

const NODES = REAL ? ['n1', 'n2'] : ['n1', 'n2', 'n3'];
/** One stable endpoint per node and victims beside them (each endpoint its own prefix). */
const ENDPOINTS: SoakEndpointSpec[] = [
  ...NODES.map((node, i) => ({ name: `ep-${i + 1}`, node, prefix: `10.${64 + i}.0.0/16`, victim: false })),
  ...NODES.map((node, i) => ({ name: `ep-${NODES.length + i + 1}`, node, prefix: `10.${64 + NODES.length + i}.0.0/16`, victim: true })),
];
const CLIENTS = NODES.map((n) => `c-${n}`);

let mesh: SoakMesh;
let lab: Awaited<ReturnType<typeof import('./lib/soakLab.ts')['startSoakLab']>> | undefined;
const started = Date.now();
if (REAL) {
  const { startSoakLab } = await import('./lib/soakLab.ts');
  lab = await startSoakLab({ domain: DOMAIN, nodes: NODES, clients: CLIENTS, endpointExpiration: EXPIRATION, livenessInterval: '500ms', controlPlaneArgs: ['--node-timeout', '60s'] });
  mesh = lab.mesh;
} else {
  mesh = await startSoakMesh({ domain: DOMAIN, nodes: NODES, dataplane: 'simulated', endpointExpiration: EXPIRATION, controlPlaneArgs: ['--node-timeout', '60s'] });
}
const run = lab?.run ?? `s${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;
let stopping = false;
const stopAll = async () => {
  if (lab) await lab.stop();
  else await mesh.stop();
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    stopping = true;
    say(`${sig}: stopping the mesh`);
    void stopAll().finally(() => process.exit(130));
  });
}

const client = await mesh.client('soak');
const must = <T>(r: E.Either<{ message: string }, T>, what: string): T => {
  if (E.isLeft(r)) throw new Error(`${what}: ${r.left.message}`);
  return r.right;
};
must(await client.send('service.register', { name: 'soak' }), 'service register');
await Promise.all(ENDPOINTS.map((e) => mesh.startEndpoint(e)));
say(`mesh up in ${((Date.now() - started) / 1000).toFixed(1)} s: ${NODES.length} agents, ${ENDPOINTS.length} endpoints (${ENDPOINTS.filter((e) => e.victim).length} victims), ${REAL ? `linux dataplane, lab ${lab!.run}` : 'simulated dataplane'}; logs in ${mesh.dir}`);

// ---- facts from the log ---------------------------------------------------------------------------

/** When (ms into the churn) the read model began dropping ended connections: its bound was reached. */
let endedFullAt: number | undefined;
/** The endpoint each open connection is on, from EndpointSelected; dropped at close or failure. */
const endpointOf = new Map<string, string>();
const counts = { requested: 0, established: 0, settleFailed: 0, closeSent: 0, closeFailed: 0, closedEvents: 0, healedEvents: 0, failedEvents: 0, skippedAtInflightCap: 0, restartFailed: 0 };
/** Per minute of the churn: established, healed, closed. */
const perMinute: { established: number; healed: number; closed: number }[] = [];
let churnStart = 0;
const minute = () => {
  const m = Math.max(0, Math.floor((Date.now() - churnStart) / 60_000));
  while (perMinute.length <= m) perMinute.push({ established: 0, healed: 0, closed: 0 });
  return perMinute[m]!;
};
const watcher = await mesh.connectRaw('soak watcher');
const dec = new TextDecoder();
watcher.subscribe(`nsm.${DOMAIN}.evt.connection.>`, {
  callback: (_e, m) => {
    const c = JSON.parse(dec.decode(m.data)) as Commit;
    const id = c.stream.slice('connection.'.length);
    for (const ev of c.events) {
      const d = ev.data as { type: string; endpoint?: string };
      if (d.type === 'EndpointSelected') endpointOf.set(id, d.endpoint!);
      else if (d.type === 'ConnectionHealed') {
        counts.healedEvents++;
        if (churnStart) minute().healed++;
      } else if (d.type === 'ConnectionClosed') {
        counts.closedEvents++;
        if (churnStart && endedFullAt === undefined && counts.closedEvents + counts.failedEvents >= RETAINED_ENDED) endedFullAt = Date.now() - churnStart;
        if (churnStart) minute().closed++;
        endpointOf.delete(id);
      } else if (d.type === 'ConnectionFailed' || d.type === 'ConnectionDenied' || d.type === 'ConnectionLimited') {
        counts.failedEvents++;
        endpointOf.delete(id);
      }
    }
  },
});

// ---- sampling -------------------------------------------------------------------------------------

interface Sample {
  /** Milliseconds since the churn started (negative: the baseline before it). */
  readonly t: number;
  readonly values: Record<string, number>;
}
const specs = new Map<string, SeriesSpec>();
const spec = (s: SeriesSpec) => {
  if (!specs.has(s.key)) specs.set(s.key, s);
  return s.key;
};
const lastCpu = new Map<number, { at: number; cpu: number }>();
const cpuPercent = (pid: number): number => {
  const now = Date.now();
  const cpu = cpuSeconds(pid);
  const prev = lastCpu.get(pid);
  lastCpu.set(pid, { at: now, cpu });
  return prev ? ((cpu - prev.cpu) / ((now - prev.at) / 1000)) * 100 : NaN;
};
const stableEndpoints = ENDPOINTS.filter((e) => !e.victim).map((e) => e.name);
const STREAMS = subjectsFor(DOMAIN).streams;
const WORK_QUEUES: Record<string, string> = { [STREAMS.commands]: 'commands', [STREAMS.nodeCommands]: 'node commands' };

const sampleOnce = async (t: number): Promise<Sample> => {
  const v: Record<string, number> = {};
  const procs: SoakProcess[] = [mesh.controlPlane, ...mesh.agents.values(), ...stableEndpoints.map((n) => mesh.endpoints.get(n)!)];
  const [runtime, nats, kernel, ...memories] = await Promise.all([
    client.query<{ memory: NodeJS.MemoryUsage; gcRun: boolean; connections: number; repositoryStreams: number }>('runtime', { gc: true }, 30_000),
    natsFigures(mesh.monitorUrl).catch((e: Error) => {
      say(`nats-server monitoring: ${e.message}`);
      return undefined;
    }),
    lab ? lab.kernelCounts() : Promise.resolve(undefined),
    ...procs.slice(1).map((p) => p.memory()),
  ]);
  for (const [i, p] of procs.entries()) {
    const owner = p.name;
    v[spec({ key: `${owner}.rss`, owner, what: 'RSS', unit: 'bytes', kind: 'memory' })] = rssBytes(p.pid);
    const heap = i === 0 ? (E.isRight(runtime) && runtime.right.gcRun ? runtime.right.memory.heapUsed : NaN) : (memories[i - 1]?.heapUsed ?? NaN);
    v[spec({ key: `${owner}.heapAfterGc`, owner, what: 'heap used after a forced GC', unit: 'bytes', kind: 'memory' })] = heap;
    // Memory outside the JavaScript heap (buffers, sockets): where RSS can grow while the heap does not.
    const mem = i === 0 ? (E.isRight(runtime) ? runtime.right.memory : undefined) : memories[i - 1];
    v[spec({ key: `${owner}.external`, owner, what: 'external memory (buffers) after GC', unit: 'bytes', kind: 'info', note: 'diagnostic: beside RSS' })] = mem?.external ?? NaN;
    // Descriptors move with the work in flight (an agent on Linux runs `ip` with three pipes each).
    v[spec({ key: `${owner}.fds`, owner, what: 'open file descriptors', unit: 'count', kind: 'count', drainSlack: 2, minRise: 10 })] = fdCount(p.pid);
    v[spec({ key: `${owner}.cpu`, owner, what: 'CPU, % of a core', unit: 'percent', kind: 'info', note: 'load, not judged (shared machine)' })] = cpuPercent(p.pid);
    if (nats && p.natsName) {
      v[spec({ key: `${owner}.natsSubscriptions`, owner, what: 'NATS subscriptions of its connection', unit: 'count', kind: 'count', drainSlack: 2 })] = nats.subscriptionsByName.get(p.natsName) ?? NaN;
    }
  }
  if (E.isRight(runtime)) {
    v[spec({ key: 'control-plane.modelConnections', owner: 'control-plane', what: 'connection rows in the live read model', unit: 'count', kind: 'info', note: 'diagnostic: what the heap holds' })] = runtime.right.connections;
    v[spec({ key: 'control-plane.repositoryStreams', owner: 'control-plane', what: 'aggregate states cached (bounded LRU)', unit: 'count', kind: 'info', note: 'diagnostic: a bounded cache (10,000 streams)' })] = runtime.right.repositoryStreams;
  }
  const natsPid = mesh.nats.pid;
  v[spec({ key: 'nats-server.rss', owner: 'nats-server', what: 'RSS', unit: 'bytes', kind: 'memory' })] = rssBytes(natsPid);
  v[spec({ key: 'nats-server.fds', owner: 'nats-server', what: 'open file descriptors', unit: 'count', kind: 'count', drainSlack: 2, minRise: 10 })] = fdCount(natsPid);
  v[spec({ key: 'nats-server.cpu', owner: 'nats-server', what: 'CPU, % of a core', unit: 'percent', kind: 'info', note: 'load, not judged (shared machine)' })] = cpuPercent(natsPid);
  if (nats) {
    v[spec({ key: 'nats-server.connections', owner: 'nats-server', what: 'client connections', unit: 'count', kind: 'count', drainSlack: 0 })] = nats.connections;
    // The soak's own requests in flight hold a reply and a notification subscription each.
    v[spec({ key: 'nats-server.subscriptions', owner: 'nats-server', what: 'subscriptions, all connections', unit: 'count', kind: 'count', drainSlack: 4, minRise: 2 * INFLIGHT })] = nats.subscriptions;
    v[spec({ key: 'nats-server.consumers', owner: 'nats-server', what: 'JetStream consumers', unit: 'count', kind: 'count', drainSlack: 0 })] = nats.consumers;
    for (const s of nats.streams) {
      if (WORK_QUEUES[s.name]) {
        v[spec({ key: `stream.${s.name}.messages`, owner: 'nats-server', what: `${WORK_QUEUES[s.name]} waiting (work queue)`, unit: 'count', kind: 'count', drainSlack: 0 })] = s.messages;
      } else if (s.name === STREAMS.events) {
        const note = 'the log keeps every commit by design';
        v[spec({ key: 'stream.events.messages', owner: 'nats-server', what: 'commits in the event log', unit: 'count', kind: 'info', note })] = s.messages;
        v[spec({ key: 'stream.events.bytes', owner: 'nats-server', what: 'event log size', unit: 'bytes', kind: 'info', note })] = s.bytes;
        v[spec({ key: 'stream.events.subjects', owner: 'nats-server', what: 'subjects in the event log (one per aggregate)', unit: 'count', kind: 'info', note })] = s.subjects;
      }
    }
  }
  if (kernel) {
    for (const [k, n] of Object.entries(kernel)) {
      const [where, what] = k.split('.') as [string, string];
      // A rise of the floor by more than the connections held is a leak (and after the drain, any
      // object at all). The floor: the least count of each minute, since setups lagging on a busy
      // machine or a heal holding both paths raise the count for seconds without leaving anything.
      v[spec({ key: k, owner: where, what: `mesh ${what}${where === 'host' ? ' on the host' : ' in the lab namespaces'}`, unit: 'count', kind: 'count', drainSlack: 0, minRise: OPEN, floorOf: Math.max(1, Math.round(60 / SAMPLE_S)) })] = n;
    }
  }
  v[spec({ key: 'load.open', owner: 'load', what: 'connections held by the soak', unit: 'count', kind: 'info', note: 'the load' })] = openIds.length;
  v[spec({ key: 'load.inflight', owner: 'load', what: 'requests waiting to settle', unit: 'count', kind: 'info', note: 'the load' })] = inflight;
  return { t, values: v };
};

// ---- the churn ------------------------------------------------------------------------------------

const openIds: string[] = [];
let inflight = 0;
let seq = 0;
const pendingCloses = new Set<Promise<void>>();
const closeOne = (id: string) => {
  counts.closeSent++;
  const p = client.send('connection.close', { connectionId: id }).then((r) => {
    if (E.isLeft(r) && r.left.code !== 'not-found') {
      counts.closeFailed++;
      if (counts.closeFailed <= 5) say(`close ${id} failed: ${r.left.message}`);
    }
  });
  pendingCloses.add(p);
  void p.finally(() => pendingCloses.delete(p));
};
const openOne = async () => {
  const n = seq++;
  const id = `${run}${n.toString(36)}`;
  const clientNode = NODES[n % NODES.length]!;
  inflight++;
  counts.requested++;
  try {
    const r = await client.send('connection.request', {
      connectionId: id,
      networkService: 'soak',
      clientNode,
      ...(lab ? { clientNetns: lab.ns(`c-${clientNode}`), clientInterface: `sk${n.toString(36)}` } : {}),
    });
    const settled = E.isRight(r) ? await client.waitForConnection(id, REAL ? 90_000 : 60_000) : r;
    if (E.isRight(settled) && settled.right.state === 'established') {
      counts.established++;
      minute().established++;
      openIds.push(id);
      while (openIds.length > OPEN) closeOne(openIds.shift()!);
    } else {
      counts.settleFailed++;
      const why = E.isLeft(settled) ? settled.left.message : `${settled.right.state}: ${settled.right.reason ?? ''}`;
      if (counts.settleFailed <= 5) say(`connection ${id} did not get established: ${why}`);
      // Whatever state it is in, it is not held: close it so it does not linger.
      closeOne(id);
    }
  } finally {
    inflight--;
  }
};

const heals: { endpoint: string; mode: 'lapse' | 'unregister'; at: number; victims: number; healedMs: number; stragglers: number; restartMs: number }[] = [];
const healLoop = async () => {
  const victims = ENDPOINTS.filter((e) => e.victim);
  for (let i = 0; !stopping; i++) {
    for (const until = Date.now() + HEAL_EVERY_S * 1000; Date.now() < until && !stopping; ) await sleep(250);
    if (stopping) return;
    const ep = victims[i % victims.length]!;
    const mode = i % 2 === 0 ? 'lapse' : 'unregister';
    const proc = mesh.endpoints.get(ep.name)!;
    const on = [...endpointOf].filter(([, e]) => e === ep.name).map(([id]) => id);
    const t0 = Date.now();
    if (mode === 'lapse') {
      await proc.kill();
      // On the Linux dataplane the endpoint's namespace dies with it (as a crashed pod's would).
      if (lab) await import('../test/lib/netns.ts').then(({ exec }) => exec(['ip', 'netns', 'del', lab!.ns(ep.name)]));
    } else {
      await proc.stop(10_000);
    }
    // Healed: each of its connections is on another endpoint now, or was closed by the churn.
    let left = on;
    for (const until = Date.now() + 90_000; left.length > 0 && Date.now() < until; ) {
      await sleep(200);
      left = left.filter((id) => endpointOf.get(id) === ep.name);
    }
    const healedMs = Date.now() - t0;
    if (left.length > 0) say(`heal: ${left.length} of ${on.length} connections still on ${ep.name} after 90 s`);
    const t1 = Date.now();
    for (let attempt = 1; ; attempt++) {
      try {
        await mesh.startEndpoint(ep);
        break;
      } catch (e) {
        counts.restartFailed++;
        say(`restarting ${ep.name} failed (attempt ${attempt}): ${(e as Error).message.split('\n')[0]}`);
        if (attempt >= 3) throw e;
      }
    }
    heals.push({ endpoint: ep.name, mode, at: t0 - churnStart, victims: on.length, healedMs, stragglers: left.length, restartMs: Date.now() - t1 });
  }
};

// The baseline: the mesh idle before any connection, after it settled.
await sleep(3000);
const baseline = await sampleOnce(-1);
const samples: Sample[] = [];
churnStart = Date.now();
const durationMs = MINUTES * 60_000;
say(`churn for ${MINUTES} min: ${RATE} connections/s, about ${OPEN} held, a victim endpoint killed every ${HEAL_EVERY_S} s; a sample every ${SAMPLE_S} s`);

let snapshotted = false;
const heapSnapshots = async (label: string) => {
  const procs = [mesh.controlPlane, ...mesh.agents.values(), ...stableEndpoints.map((n) => mesh.endpoints.get(n)!)];
  for (const p of procs) await p.memory(120_000, join(mesh.dir, `${p.name}.${label}.heapsnapshot`));
  say(`heap snapshots (${label}) written to ${mesh.dir}`);
};
const samplerLoop = (async () => {
  for (let k = 1; !stopping; k++) {
    const due = churnStart + k * SAMPLE_S * 1000;
    if (due > churnStart + durationMs) break;
    while (Date.now() < due && !stopping) await sleep(Math.min(250, due - Date.now()));
    if (stopping) break;
    const s = await sampleOnce(Date.now() - churnStart);
    samples.push(s);
    // Heap snapshots of every Node.js process at the end of the warm-up and at the end of the
    // churn: what a leak is made of (compare them in Chrome DevTools, or with bench/heapdiff.ts).
    const last = churnStart + (k + 1) * SAMPLE_S * 1000 > churnStart + durationMs;
    if (a['heap-snapshots'] && (last || (s.t >= WARMUP * durationMs && !snapshotted))) {
      snapshotted = true;
      await heapSnapshots(last ? 'end' : 'warm');
    }
    if (k % Math.max(1, Math.round(60 / SAMPLE_S)) === 0) {
      const v = s.values;
      say(`${(s.t / 60_000).toFixed(1)} min: held ${openIds.length}, set up ${counts.established}, healed ${counts.healedEvents}, closed ${counts.closedEvents}; control plane heap ${fmt(v['control-plane.heapAfterGc']! / MIB)} MiB, RSS ${fmt(v['control-plane.rss']! / MIB)} MiB; nats subs ${v['nats-server.subscriptions']}, consumers ${v['nats-server.consumers']}`);
    }
  }
})();
const healing = healLoop();
const loads = new Set<Promise<void>>();
for (let k = 0; Date.now() < churnStart + durationMs && !stopping; k++) {
  const due = churnStart + (k * 1000) / RATE;
  if (due > Date.now()) await sleep(due - Date.now());
  if (inflight >= INFLIGHT) {
    counts.skippedAtInflightCap++;
    continue;
  }
  const p = openOne().catch((e: Error) => {
    counts.settleFailed++;
    say(`request crashed: ${e.message}`);
  });
  loads.add(p);
  void p.finally(() => loads.delete(p));
}
const churnMs = Date.now() - churnStart;
stopping = true;
say('churn over: waiting for requests and the heal in progress, then closing every connection');
await Promise.all([...loads]);
await healing;
await samplerLoop;
// Every victim is back up (a heal cycle always restarts it), so the mesh is as it was at the baseline.
while (openIds.length > 0) closeOne(openIds.shift()!);
await Promise.all([...pendingCloses]);
// The drain: no connection left active, then quiet for a while (agents remove their sides).
const drainStart = Date.now();
for (;;) {
  const active = await client.query<unknown[]>('connections', { limit: 10 });
  if (E.isRight(active) && active.right.length === 0) break;
  if (Date.now() - drainStart > 120_000) {
    say('drain: connections still active after 120 s');
    break;
  }
  await sleep(500);
}
await sleep(REAL ? 15_000 : 8_000);
const afterDrain = await sampleOnce(Date.now() - churnStart);
say(`drained in ${((Date.now() - drainStart) / 1000).toFixed(1)} s`);

// ---- verdict --------------------------------------------------------------------------------------

const warmupMs = WARMUP * churnMs;
const RSS_MIN_WINDOW_MS = 5 * 60_000;
// Bounded structures fill before memory can level off; a series is judged only from the moment
// they are full (after the warm-up in any case):
// - the control plane caches REPOSITORY_STREAMS aggregate states and keeps the RETAINED_ENDED
//   most recent ended connections: its memory is judged once both are full, and not at all
//   when the run ends before (at the Linux dataplane's rate a short run does not fill them);
// - nats-server remembers message ids for the duplicate window (2 minutes);
// - an agent remembers removed sides for REMOVED_KEPT_MS (1 minute), and the simulated
//   dataplane journals its last JOURNAL_KEPT to twice that many calls: 2 minutes for both.
const repoFullAt = samples.find((x) => (x.values['control-plane.repositoryStreams'] ?? 0) >= REPOSITORY_STREAMS)?.t;
const lastValue = (key: string) => samples[samples.length - 1]?.values[key] ?? NaN;
const controlPlaneCaches: { fromMs: number } | { notJudged: string } =
  repoFullAt !== undefined && endedFullAt !== undefined
    ? { fromMs: Math.max(warmupMs, repoFullAt, endedFullAt) }
    : {
        notJudged: `caches still filling at the end (${[
          ...(repoFullAt === undefined ? [`${lastValue('control-plane.repositoryStreams')} of ${REPOSITORY_STREAMS} aggregate states cached`] : []),
          ...(endedFullAt === undefined ? [`${counts.closedEvents + counts.failedEvents} of the ${RETAINED_ENDED} ended connections it keeps`] : []),
        ].join('; ')})`,
      };
const judgements: Judgement[] = [...specs.values()].map((s) => {
  const cpMemory = s.owner === 'control-plane' && s.kind === 'memory';
  const filling = s.kind === 'memory' && (s.owner === 'nats-server' || s.owner.startsWith('agent-'));
  const from = cpMemory && 'fromMs' in controlPlaneCaches ? controlPlaneCaches.fromMs : filling ? Math.max(warmupMs, DUPLICATE_WINDOW_MS, 2 * REMOVED_KEPT_MS) : warmupMs;
  // RSS moves in sawtooth cycles of a minute or more (the heap grows, then pages go back to the
  // system): its trend means something only over several of them.
  const rssTooShort = s.key.endsWith('.rss') && churnMs - from < RSS_MIN_WINDOW_MS;
  const notJudged = cpMemory && 'notJudged' in controlPlaneCaches ? controlPlaneCaches.notJudged : rssTooShort ? `RSS is judged over ${RSS_MIN_WINDOW_MS / 60_000} minutes or more (it moves in sawtooth cycles of a minute or more)` : undefined;
  return judgeSeries(s, samples.map((x) => ({ t: x.t, v: x.values[s.key] ?? NaN })), {
    warmupMs: from,
    ...(notJudged !== undefined ? { trendNotJudged: notJudged } : {}),
    ...(baseline.values[s.key] !== undefined ? { baseline: baseline.values[s.key]! } : {}),
    ...(afterDrain.values[s.key] !== undefined ? { afterDrain: afterDrain.values[s.key]! } : {}),
  });
});
if ('fromMs' in controlPlaneCaches) say(`control-plane memory judged from ${(controlPlaneCaches.fromMs / 60_000).toFixed(1)} min: its caches were full from then on`);
const show = (j: Judgement, v: number) => (j.unit === 'bytes' ? `${fmt(v / MIB)} MiB` : j.unit === 'percent' ? `${fmt(v)} %` : fmt(v, 0));
const rate = (j: Judgement, v: number) => (j.unit === 'bytes' ? `${fmt(v / MIB)} MiB/h` : `${fmt(v)}/h`);
printTable(
  `Soak: ${(churnMs / 60_000).toFixed(1)} min of churn on the ${REAL ? 'Linux' : 'simulated'} dataplane; slopes by least squares over the samples after the first ${Math.round(WARMUP * 100)} % (${samples.filter((s) => s.t >= warmupMs).length} of ${samples.length})`,
  ['series', 'from', 'start', 'end', 'slope', '% of level /h', 'last half', 'before -> after drain', 'verdict'],
  judgements.map((j) => [
    j.key,
    `${(j.fromMs / 60_000).toFixed(1)} min`,
    show(j, j.start),
    show(j, j.end),
    rate(j, j.slopePerHour),
    Number.isFinite(j.slopePerHourOfLevel) ? `${fmt(j.slopePerHourOfLevel * 100)} %` : '-',
    rate(j, j.lastHalfSlopePerHour),
    j.drain ? `${fmt(j.drain.baseline, 0)} -> ${fmt(j.drain.after, 0)}` : '',
    j.kind === 'info' ? `info: ${j.note ?? ''}` : j.leak ? `LEAK: ${j.reason}` : j.reason.includes('not judged') ? j.reason : `ok: ${j.reason}`,
  ]),
);
const minutesRun = churnMs / 60_000;
const full = perMinute.slice(0, Math.max(1, Math.floor(minutesRun)));
const avg = (k: 'established' | 'healed' | 'closed') => full.reduce((s, m) => s + m[k], 0) / full.length;
printTable('Churn achieved', ['', 'total', 'per minute (mean of whole minutes)', 'per minute, each minute'], [
  ['connections set up (established)', counts.established, avg('established'), full.map((m) => m.established).join(' ')],
  ['connections healed (ConnectionHealed)', counts.healedEvents, avg('healed'), full.map((m) => m.healed).join(' ')],
  ['connections closed (ConnectionClosed)', counts.closedEvents, avg('closed'), full.map((m) => m.closed).join(' ')],
]);
const healD = heals.map((h) => h.healedMs).sort((x, y) => x - y);
process.stdout.write(
  `endpoint kills: ${heals.length} (${heals.filter((h) => h.mode === 'lapse').length} lapsed, ${heals.filter((h) => h.mode === 'unregister').length} unregistered), ` +
    `${heals.reduce((s, h) => s + h.victims, 0)} connections on them, all moved in p50 ${fmt((healD[Math.floor(healD.length / 2)] ?? NaN) / 1000)} s, max ${fmt((healD[healD.length - 1] ?? NaN) / 1000)} s; ` +
    `${heals.reduce((s, h) => s + h.stragglers, 0)} not moved within 90 s\n` +
    `requests: ${counts.requested}, not established: ${counts.settleFailed}, skipped at the in-flight cap (${INFLIGHT}): ${counts.skippedAtInflightCap}; closes sent ${counts.closeSent}, failed ${counts.closeFailed}; ConnectionFailed events ${counts.failedEvents}\n`,
);

// nats-server indexes every subject of the event stream in memory, and the log has one subject
// per aggregate (every connection ever made): its memory is set beside the subjects added.
const slopeOf = (key: string) => judgements.find((j) => j.key === key)?.slopePerHour ?? NaN;
const serverRss = judgements.find((j) => j.key === 'nats-server.rss');
const serverBytesPerNewSubject = serverRss && churnMs - serverRss.fromMs >= RSS_MIN_WINDOW_MS ? slopeOf('nats-server.rss') / slopeOf('stream.events.subjects') : null;
process.stdout.write(
  serverBytesPerNewSubject === null
    ? 'nats-server RSS per subject added to the event log: not estimated (a window of 5 minutes or more is needed)\n'
    : `nats-server RSS per subject added to the event log: ${fmt(serverBytesPerNewSubject, 0)} bytes (slope over slope)\n`,
);
const leaks = judgements.filter((j) => j.leak);
const troubles = counts.requested === 0 ? 1 : (counts.settleFailed + counts.closeFailed) / counts.requested;
const churnBroken = counts.established === 0 || heals.length === 0 || troubles > 0.05 || heals.some((h) => h.stragglers > 0);
const verdict = leaks.length > 0 ? 'leak' : churnBroken ? 'churn-failed' : 'no-leak';
const svg = writeSeriesSvg(
  NAME,
  `Soak, ${REAL ? 'Linux' : 'simulated'} dataplane: ${minutesRun.toFixed(1)} min, ${fmt(avg('established'))} set up, ${fmt(avg('healed'))} healed, ${fmt(avg('closed'))} closed per minute: ${verdict}`,
  judgements.map((j) => ({
    label: `${j.key}${j.kind === 'info' ? ' (info)' : ''}`,
    points: samples.map((s) => ({ t: s.t, v: s.values[j.key] ?? NaN })),
    caption: `${show(j, j.start)} -> ${show(j, j.end)}, ${rate(j, j.slopePerHour)}${j.leak ? ' LEAK' : ''}`,
    flagged: j.leak,
    warmupMs: j.fromMs,
  })),
  { warmupMs },
);
const file = writeResult(NAME, {
  settings: {
    dataplane: REAL ? 'linux' : 'simulated',
    minutes: MINUTES,
    ratePerSecond: RATE,
    held: OPEN,
    healEverySeconds: HEAL_EVERY_S,
    sampleSeconds: SAMPLE_S,
    warmupFraction: WARMUP,
    inflightCap: INFLIGHT,
    endpointExpiration: EXPIRATION,
    nodes: NODES,
    endpoints: ENDPOINTS,
    thresholds: DEFAULT_THRESHOLDS,
    rule: 'bench/lib/leak.ts: a series leaks when its least-squares slope after the warm-up is significant (> 3 standard errors), material (memory: > 10 % of its level and > 1 MiB per hour, and > 256 KiB over the window; counts: a rise over the window > max(2 or the series floor, 5 % of the level); kernel objects judged on the least value of each minute) and sustained (the last half alone rises at half the threshold or more); counts with a drain slack must also be back within it after every connection is closed',
  },
  verdict,
  leaks: leaks.map((j) => ({ key: j.key, reason: j.reason })),
  serverBytesPerNewSubject,
  churn: {
    minutes: minutesRun,
    ...counts,
    perMinute,
    meanPerMinute: { established: avg('established'), healed: avg('healed'), closed: avg('closed') },
    endpointKills: heals,
  },
  judgements,
  baseline,
  afterDrain,
  samples,
  logs: a['keep-logs'] || verdict !== 'no-leak' ? mesh.dir : 'removed (pass --keep-logs to keep them)',
  chart: svg,
});
if (verdict !== 'no-leak') {
  // A look inside nats-server for whoever reads the logs (go tool pprof <file>).
  await fetch(`${mesh.profileUrl}/debug/pprof/heap`, { signal: AbortSignal.timeout(10_000) })
    .then(async (r) => writeFileSync(join(mesh.dir, 'nats-server.heap.pprof'), Buffer.from(await r.arrayBuffer())))
    .catch(() => undefined);
}
process.stdout.write(`\nverdict: ${verdict}${leaks.length ? ` (${leaks.map((j) => j.key).join(', ')})` : ''}${churnBroken && !leaks.length ? ' (the churn did not run as intended: see above)' : ''}\nwrote ${file} and ${svg}\n`);
await watcher.close();
await stopAll();
if (!a['keep-logs'] && verdict === 'no-leak') removeDir(mesh.dir);
else process.stdout.write(`logs kept in ${mesh.dir}\n`);
process.exit(verdict === 'no-leak' ? 0 : 1);
