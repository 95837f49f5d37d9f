// The scale run: many simulated nodes, endpoints and connections on one machine, reporting the
// time to get there, the control plane's memory per connection, and query latency at that size
// against a raw NATS request/reply measured in the same run.
// Usage: npm run bench:scale [-- --nodes 100 --endpoints 10000 --connections 100000 --inflight 256]
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import type { MeshClient } from '../src/client/index.ts';
import { startBenchMesh } from './lib/mesh.ts';
import { distribution, ok, goal, printTable, writeCdfSvg, writeResult } from './lib/report.ts';

const { values: a } = parseArgs({
  options: {
    nodes: { type: 'string', default: '100' },
    endpoints: { type: 'string', default: '10000' },
    connections: { type: 'string', default: '100000' },
    inflight: { type: 'string', default: '256' },
    queries: { type: 'string', default: '200' },
  },
});
const NODES = Number(a.nodes);
const ENDPOINTS = Number(a.endpoints);
const CONNECTIONS = Number(a.connections);
const INFLIGHT = Number(a.inflight);
const QUERIES = Number(a.queries);
const log = (msg: string) => process.stderr.write(`[scale] ${msg}\n`);

/** Runs `task(i)` for i in [0, n) with at most `limit` at once; reports progress now and then. */
const pool = async (n: number, limit: number, what: string, task: (i: number) => Promise<void>) => {
  let next = 0;
  let done = 0;
  const t0 = Date.now();
  let shown = t0;
  await Promise.all(
    Array.from({ length: Math.min(limit, n) }, async () => {
      while (next < n) {
        const i = next++;
        await task(i);
        done++;
        if (Date.now() - shown > 10_000) {
          shown = Date.now();
          log(`${what}: ${done}/${n} (${Math.round(done / ((shown - t0) / 1000))}/s)`);
        }
      }
    }),
  );
  return (Date.now() - t0) / 1000;
};

const queryLatencies = async (c: MeshClient, name: string, params: () => unknown, n: number): Promise<number[]> => {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    ok(await c.query(name, params(), 60_000));
    out.push(performance.now() - t);
  }
  return out;
};

// --expose-gc: the runtime query can collect garbage first, so heapUsed is what is retained.
const mesh = await startBenchMesh({ domain: 'scale', nodeOptions: '--expose-gc' });
try {
  const raw = await mesh.connectRaw();
  raw.subscribe('bench.echo', { callback: (_e, m) => m.respond(m.data) });
  const rr: number[] = [];
  for (let i = 0; i < 1000; i++) {
    const t = performance.now();
    await raw.request('bench.echo', new Uint8Array(64), { timeout: 5000 });
    rr.push(performance.now() - t);
  }

  const nodes = Array.from({ length: NODES }, (_, i) => `n${i}`);
  const t0 = Date.now();
  await mesh.addAgents(nodes);
  const rssIdle = mesh.controlPlaneRss();
  const c = await mesh.client('scale');
  ok(await c.send('service.register', { name: 'svc' }));
  // Endpoints spread over the nodes, each with a /22 of its own (up to 510 pairs).
  const endpointSeconds = await pool(ENDPOINTS, INFLIGHT, 'endpoints', async (i) => {
    const base = i * 4;
    ok(await c.send('endpoint.register', {
      name: `ep${i}`,
      node: nodes[i % NODES]!,
      prefix: `10.${64 + Math.floor(base / 256)}.${base % 256}.0/22`,
      networkServiceNames: ['svc'],
    }));
  });
  const retained = async () => ok(await c.query<{ memory: { heapUsed: number } }>('runtime', { gc: true }, 60_000)).memory.heapUsed;
  const rssEndpoints = mesh.controlPlaneRss();
  const heapEndpoints = await retained();
  log(`${ENDPOINTS} endpoints registered in ${endpointSeconds.toFixed(1)} s`);

  const rssAt: { connections: number; rss: number; heapAfterGc: number }[] = [{ connections: 0, rss: rssEndpoints, heapAfterGc: heapEndpoints }];
  const marks = [Math.min(10_000, CONNECTIONS), CONNECTIONS];
  let established = 0;
  const connect = async (i: number) => {
    const id = randomUUID();
    ok(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: nodes[i % NODES]! }));
    const s = ok(await c.waitForConnection(id, 300_000));
    if (s.state !== 'established') throw new Error(`connection ${id} ${s.state}: ${s.reason}`);
    established++;
  };
  let connectSeconds = 0;
  let from = 0;
  for (const mark of marks) {
    if (mark <= from) continue;
    connectSeconds += await pool(mark - from, INFLIGHT, 'connections', (i) => connect(from + i));
    from = mark;
    rssAt.push({ connections: mark, rss: mesh.controlPlaneRss(), heapAfterGc: await retained() });
    log(`${mark} connections established; control-plane RSS ${(mesh.controlPlaneRss() / 2 ** 20).toFixed(0)} MiB`);
  }
  const toScaleSeconds = (Date.now() - t0) / 1000;

  // Queries at that size.
  const status = await queryLatencies(c, 'status', () => ({}), QUERIES);
  // Lists are paged: an answer must fit one NATS message (1 MiB).
  const one = await queryLatencies(c, 'endpoints', () => ({ limit: 100, offset: Math.floor(Math.random() * (ENDPOINTS - 100)) }), Math.max(10, Math.floor(QUERIES / 4)));
  const byNode = await queryLatencies(c, 'connections', () => ({ node: nodes[Math.floor(Math.random() * NODES)], limit: 200 }), Math.max(10, Math.floor(QUERIES / 4)));
  const rows = ok(await c.query<{ id: string }[]>('connections', { node: 'n0', limit: 500 }));
  const byId = await queryLatencies(c, 'connection', () => ({ id: rows[Math.floor(Math.random() * rows.length)]!.id }), QUERIES);

  const perConnection = rssAt.slice(1).map((r) => ({
    connections: r.connections,
    bytesPerConnection: (r.rss - rssEndpoints) / r.connections,
    retainedBytesPerConnection: (r.heapAfterGc - heapEndpoints) / r.connections,
  }));
  const rrD = distribution(rr);
  const qs = { status: distribution(status), connectionById: distribution(byId), connectionsOfANodePageOf200: distribution(byNode), endpointsPageOf100: distribution(one) };
  printTable(`Scale: ${NODES} nodes, ${ENDPOINTS} endpoints, ${CONNECTIONS} connections (simulated dataplane)`, ['figure', 'value'], [
    ['time to reach it, s', toScaleSeconds],
    ['endpoint registrations, s', endpointSeconds],
    ['connections established, s', connectSeconds],
    ['connections established / s', CONNECTIONS / connectSeconds],
    ['control-plane RSS idle (agents joined), MiB', rssIdle / 2 ** 20],
    ['control-plane RSS with endpoints, MiB', rssEndpoints / 2 ** 20],
    ...rssAt.slice(1).map((r) => [`control-plane RSS at ${r.connections} connections, MiB`, r.rss / 2 ** 20] as [string, number]),
    ...perConnection.map((p) => [`RSS bytes per connection at ${p.connections}`, p.bytesPerConnection] as [string, number]),
    ...perConnection.map((p) => [`retained heap bytes per connection at ${p.connections} (after GC)`, p.retainedBytesPerConnection] as [string, number]),
  ]);
  printTable('Query latency at that size, ms', ['query', 'n', 'p50', 'p99', 'max', 'p50 / raw request-reply'], [
    ['raw NATS request/reply (baseline)', rrD.n, rrD.p50, rrD.p99, rrD.max, 1],
    ...Object.entries(qs).map(([k, d]) => [k, d.n, d.p50, d.p99, d.max, d.p50 / rrD.p50] as (string | number)[]),
  ]);
  const last = perConnection[perConnection.length - 1]!;
  const goals = [
    goal(`control-plane RSS per connection at ${last.connections}`, last.bytesPerConnection / 1024, 2, 'lower', ' KiB'),
    goal(`control-plane retained heap per connection at ${last.connections}`, last.retainedBytesPerConnection / 1024, 2, 'lower', ' KiB'),
  ];
  const svg = writeCdfSvg('scale-queries', `Query latency at ${CONNECTIONS} connections vs raw request/reply`, [
    { label: 'raw NATS request/reply', samplesMs: rr },
    { label: 'connection by id', samplesMs: byId },
    { label: 'status', samplesMs: status },
    { label: `connections of one node, first page of 200 (of ~${Math.round(CONNECTIONS / NODES)})`, samplesMs: byNode },
  ]);
  const file = writeResult('scale', {
    parameters: { nodes: NODES, endpoints: ENDPOINTS, connections: CONNECTIONS, inflight: INFLIGHT, dataplane: 'simulated', agents: 'all in the benchmark process', controlPlane: 'separate process' },
    timesSeconds: { toScale: toScaleSeconds, endpoints: endpointSeconds, connections: connectSeconds },
    connectionsPerSecond: CONNECTIONS / connectSeconds,
    established,
    controlPlaneRssBytes: { idle: rssIdle, withEndpoints: rssEndpoints, at: rssAt },
    bytesPerConnection: perConnection,
    queryLatencyMs: { baselineRequestReply: rrD, ...qs },
    goals,
    chart: svg,
  });
  process.stdout.write(`\nwrote ${file} and ${svg}\n`);
} finally {
  await mesh.stop();
}
