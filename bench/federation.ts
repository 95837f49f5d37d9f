// Cross-domain connection setup against same-domain setup, as a ratio, in one run.
//
// Two domains, each its own nats-server (its own JetStream domain) on loopback joined by a
// leafnode link, its own control plane (in this process) and simulated node agents (no
// packets: the figures are the control planes' and the bus's, not a dataplane's).
//   same-domain:  a client in a asks for "local", whose endpoint is on another node of a
//   cross-domain: a client in a asks for "icmp@b", whose endpoint is in b
// Both cross nodes, so both allocate a tunnel id; requests alternate between the two kinds so
// that drift over the run affects both alike. Baselines from the same run: a NATS
// request/reply inside a's server and one across the leafnode link.
// Usage: npm run bench:federation [-- --connections 200]
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { createLogger } from '../infra/log.ts';
import { startTestFederation } from '../test/lib/federation.ts';
import { distribution, ok, printTable, writeCdfSvg, writeResult } from './lib/report.ts';

const { values: a } = parseArgs({ options: { connections: { type: 'string', default: '200' }, warmup: { type: 'string', default: '20' } } });
const N = Number(a.connections);
const WARMUP = Number(a.warmup);


const fed = await startTestFederation({
  domains: [
    { name: 'a', nodes: ['n1', 'n2'], tunnelIds: { from: 0, to: 9999 }, underlay: (n) => (n === 'n1' ? '192.0.2.11' : '192.0.2.12') },
    { name: 'b', nodes: ['n1'], tunnelIds: { from: 10000, to: 19999 }, underlay: () => '192.0.2.21' },
  ],
  // Per-connection info logs would cost the control planes time; warnings still show.
  log: createLogger('bench-federation', {}, undefined, process.env.NSM_LOG_LEVEL ?? 'warn'),
});
try {
  const ca = await fed.domain('a').client('bench');
  const cb = await fed.domain('b').client('bench');
  ok(await ca.send('service.register', { name: 'local' }));
  ok(await ca.send('endpoint.register', { name: 'ep-a', node: 'n2', networkServiceNames: ['local'], prefix: '10.0.0.0/12' }));
  ok(await cb.send('service.register', { name: 'icmp' }));
  ok(await cb.send('endpoint.register', { name: 'ep-b', node: 'n1', networkServiceNames: ['icmp'], prefix: '10.16.0.0/12' }));

  // Baselines: request/reply inside a's server, and from a to a responder on b's server.
  const ncA = await fed.domain('a').connect();
  const ncB = await fed.domain('b').connect();
  ncA.subscribe('bench.echo.local', { callback: (_e, m) => m.respond(m.data) });
  ncB.subscribe('bench.echo.remote', { callback: (_e, m) => m.respond(m.data) });
  await ncA.flush();
  await ncB.flush();
  await new Promise((r) => setTimeout(r, 500));
  const rrLocal: number[] = [];
  const rrRemote: number[] = [];
  for (let i = 0; i < 1000; i++) {
    let t = performance.now();
    await ncA.request('bench.echo.local', new Uint8Array(64), { timeout: 5000 });
    rrLocal.push(performance.now() - t);
    t = performance.now();
    await ncA.request('bench.echo.remote', new Uint8Array(64), { timeout: 5000 });
    rrRemote.push(performance.now() - t);
  }

  const setup = async (service: string): Promise<number> => {
    const id = randomUUID();
    const t = performance.now();
    ok(await ca.send('connection.request', { connectionId: id, networkService: service, clientNode: 'n1' }));
    const s = ok(await ca.waitForConnection(id, 30_000));
    if (s.state !== 'established') throw new Error(`connection ${id} to ${service} ${s.state}: ${s.reason}`);
    return performance.now() - t;
  };
  const same: number[] = [];
  const cross: number[] = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const l = await setup('local');
    const r = await setup('icmp@b');
    if (i >= WARMUP) {
      same.push(l);
      cross.push(r);
    }
  }

  const sameD = distribution(same);
  const crossD = distribution(cross);
  const rrL = distribution(rrLocal);
  const rrR = distribution(rrRemote);
  printTable('Connection setup, request -> Established (simulated dataplane), ms', ['series', 'n', 'p50', 'p90', 'p99', 'max'], [
    ['NATS request/reply in a (baseline)', String(rrL.n), rrL.p50, rrL.p90, rrL.p99, rrL.max],
    ['NATS request/reply a -> b over the leafnode (baseline)', String(rrR.n), rrR.p50, rrR.p90, rrR.p99, rrR.max],
    ['same-domain (a -> endpoint on another node of a)', String(sameD.n), sameD.p50, sameD.p90, sameD.p99, sameD.max],
    ['cross-domain (a -> icmp@b)', String(crossD.n), crossD.p50, crossD.p90, crossD.p99, crossD.max],
    ['ratio cross / same', '', crossD.p50 / sameD.p50, crossD.p90 / sameD.p90, crossD.p99 / sameD.p99, crossD.max / sameD.max],
  ]);
  const svg = writeCdfSvg('federation', 'Connection setup: cross-domain vs same-domain (simulated dataplane)', [
    { label: 'NATS request/reply over the leafnode', samplesMs: rrRemote },
    { label: 'same-domain setup', samplesMs: same },
    { label: 'cross-domain setup (svc@b)', samplesMs: cross },
  ]);
  const file = writeResult('federation', {
    parameters: { connections: N, warmup: WARMUP, domains: 2, nodes: { a: 2, b: 1 }, dataplane: 'simulated', controlPlanes: 'in the benchmark process', link: 'leafnode on loopback', order: 'alternating same/cross' },
    baseline: { requestReplyLocalMs: rrL, requestReplyAcrossLeafnodeMs: rrR },
    sameDomainSetupMs: sameD,
    crossDomainSetupMs: crossD,
    ratios: { p50: crossD.p50 / sameD.p50, p90: crossD.p90 / sameD.p90, p99: crossD.p99 / sameD.p99 },
    chart: svg,
  });
  process.stdout.write(`\nwrote ${file} and ${svg}\n`);
} finally {
  await fed.stop();
}
