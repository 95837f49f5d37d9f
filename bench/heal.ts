// Heal time. Simulated dataplane: N connections over three endpoints; one endpoint stops
// refreshing its registration; how long until every one of its connections is established on a
// survivor, split into detection (lapse -> EndpointExpired) and repair (EndpointExpired -> each
// ConnectionHealed), beside the baseline of setting the same connections up from scratch in the
// same run. With --real (root): the ping outage a workload sees on the Linux dataplane when its
// endpoint's process and namespace are killed.
// Usage: npm run bench:heal [-- --connections 1000 --expiration 3] [-- --real]
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import { jetStreamEventStore } from '../infra/eventstore/jetstream.ts';
import { createLogger } from '../infra/log.ts';
import type { StoredCommit } from '../src/contracts/envelope.ts';
import { keepEndpointRegistered, type KeptRegistration } from '../src/client/index.ts';
import { startBenchMesh } from './lib/mesh.ts';
import { distribution, ok, printTable, writeCdfSvg, writeResult } from './lib/report.ts';

const { values: a } = parseArgs({
  options: { connections: { type: 'string', default: '1000' }, expiration: { type: 'string', default: '3' }, inflight: { type: 'string', default: '256' }, real: { type: 'boolean', default: false } },
});
const N = Number(a.connections);
const EXPIRATION = Number(a.expiration);
const INFLIGHT = Number(a.inflight);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const simulated = async () => {
  const mesh = await startBenchMesh({ domain: 'heal', controlPlaneArgs: ['--node-timeout', '60s'] });
  const regs: KeptRegistration[] = [];
  try {
    await mesh.addAgents(['n1', 'n2', 'n3']);
    const c = await mesh.client('heal');
    ok(await c.send('service.register', { name: 'svc' }));
    for (const [name, node, prefix] of [['ep-a', 'n1', '10.1.0.0/18'], ['ep-b', 'n2', '10.2.0.0/18'], ['ep-c', 'n3', '10.3.0.0/18']] as const) {
      const k = await keepEndpointRegistered(c, { name, node, prefix, networkServiceNames: ['svc'] }, { expirationSeconds: EXPIRATION, log: createLogger('bench', {}, undefined, 'warn') });
      if (E.isLeft(k)) throw new Error(k.left);
      regs.push(k.right);
    }
    // Baseline: set the connections up from scratch, clients on all three nodes (local endpoint first).
    const setupMs: number[] = [];
    let next = 0;
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: INFLIGHT }, async () => {
        while (next < N) {
          const i = next++;
          const id = randomUUID();
          const t = performance.now();
          ok(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: `n${(i % 3) + 1}` }));
          const s = ok(await c.waitForConnection(id, 120_000));
          if (s.state !== 'established') throw new Error(`${id}: ${s.state} ${s.reason}`);
          setupMs.push(performance.now() - t);
        }
      }),
    );
    const setupAllMs = Date.now() - t0;

    // The failure: ep-a stops refreshing (its last refresh is the moment it started to die).
    const stoppedAt = Date.now();
    await regs.shift()!.stop({ unregister: false });
    const store = await jetStreamEventStore(await mesh.connectRaw(), mesh.domain);
    const read = async () => {
      const out: StoredCommit[] = [];
      for await (const cm of store.readAll(0n)) out.push(cm);
      return out;
    };
    let log: StoredCommit[] = [];
    let victims = 0;
    for (let healed = -1; ; ) {
      await sleep(500);
      log = await read();
      const expired = log.some((cm) => cm.events.some((e) => e.type === 'EndpointExpired'));
      const onA = new Set(log.filter((cm) => cm.stream.startsWith('connection.') && cm.events.some((e) => e.type === 'EndpointSelected' && (e.data as unknown as { endpoint: string }).endpoint === 'ep-a')).map((cm) => cm.stream));
      victims = onA.size;
      healed = log.filter((cm) => cm.events.some((e) => e.type === 'ConnectionHealed')).length;
      if (expired && healed >= victims) break;
      if (Date.now() - stoppedAt > 300_000) throw new Error(`not healed within 5 minutes (${healed} of ${victims})`);
    }
    const allHealedMs = Date.now() - stoppedAt;
    await store.close();
    const expiredEvent = log.flatMap((cm) => cm.events).find((e) => e.type === 'EndpointExpired')!;
    const lapse = Date.parse((expiredEvent.data as unknown as { expirationTime: string }).expirationTime);
    const expiredAt = Date.parse(expiredEvent.time);
    const healedAt = log.flatMap((cm) => cm.events).filter((e) => e.type === 'ConnectionHealed').map((e) => Date.parse(e.time));
    const repairMs = healedAt.map((t) => t - expiredAt);
    const fromFailureMs = healedAt.map((t) => t - stoppedAt);
    const detectionMs = expiredAt - lapse;
    const setupD = distribution(setupMs);
    const repairD = distribution(repairMs);
    const failureD = distribution(fromFailureMs);
    printTable(`Heal of the ${victims} connections of an endpoint that stopped refreshing (expiry ${EXPIRATION} s, simulated dataplane)`, ['figure', 'p50 ms', 'p99 ms', 'max ms'], [
      ['baseline: setting one up from scratch, same load', setupD.p50, setupD.p99, setupD.max],
      ['detection: registration lapsed -> EndpointExpired', detectionMs, detectionMs, detectionMs],
      ['repair: EndpointExpired -> ConnectionHealed', repairD.p50, repairD.p99, repairD.max],
      ['failure (last refresh) -> re-established', failureD.p50, failureD.p99, failureD.max],
      ['repair p50 / setup p50', repairD.p50 / setupD.p50, repairD.p99 / setupD.p99, ''],
    ]);
    process.stdout.write(`all ${N} connections set up in ${setupAllMs} ms; all ${victims} healed ${allHealedMs} ms after the failure (checked every 500 ms)\n`);
    return { victims, setupAllMs, allHealedMs, detectionMs, setupMs: setupD, repairMs: repairD, fromFailureMs: failureD, samples: { setupMs, repairMs } };
  } finally {
    for (const r of regs) await r.stop({ unregister: false });
    await mesh.stop();
  }
};

const real = async () => {
  const { addressOf, inNs, sh, startLab, startProcess } = await import('../test/lib/netns.ts');
  const lab = await startLab({ nodes: ['n1', 'n2'], healing: { tickMs: 200, nodeTimeoutMs: 60_000 }, agentArgs: ['--liveness-interval', '500ms'] });
  try {
    const r0 = await lab.nsm(['service', 'register', 'icmp']);
    if (r0.code !== 0) throw new Error(r0.stderr);
    const epA = await lab.startEndpoint({ name: 'ep-a', service: 'icmp', node: 'n1', role: 'ep-a', prefix: '10.60.0.0/24', expiration: `${EXPIRATION}s` });
    await lab.startEndpoint({ name: 'ep-b', service: 'icmp', node: 'n2', role: 'ep-b', prefix: '10.60.0.0/24', expiration: `${EXPIRATION}s` });
    await lab.addNamespace('client');
    const id = lab.connectionId('h1');
    const r = await lab.nsm(['connect', 'icmp', '--node', 'n1', '--netns', lab.ns('client'), '--interface', 'nsm-h1', '--id', id, '--wait', '--json']);
    if (r.code !== 0) throw new Error(r.stderr);
    const target = addressOf((JSON.parse(r.stdout) as { context: { ipContext: { dstIpAddrs: string[] } } }).context.ipContext.dstIpAddrs[0]!);
    const ping = startProcess('ping', inNs(lab.ns('client'), ['ping', '-D', '-O', '-n', '-i', '0.1', '-W', '1', target]), lab.dir);
    const replies = () => ping.output().split('\n').flatMap((l) => { const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l); return m ? [Math.round(Number(m[1]) * 1000)] : []; });
    await sleep(2000);
    const killedAt = Date.now();
    await epA.kill();
    await sh(['ip', 'netns', 'del', lab.ns('ep-a')]);
    for (const until = Date.now() + 60_000; replies().filter((t) => t > killedAt).length < 10 && Date.now() < until; ) await sleep(200);
    await ping.stop();
    const t = replies();
    const window = [t.filter((x) => x <= killedAt).pop() ?? killedAt, ...t.filter((x) => x > killedAt)];
    let outage = 0;
    for (let i = 1; i < window.length; i++) outage = Math.max(outage, window[i]! - window[i - 1]!);
    process.stdout.write(`real dataplane: ping outage ${(outage / 1000).toFixed(1)} s when the endpoint's process and namespace were killed (expiry ${EXPIRATION} s, liveness every 0.5 s)\n`);
    return { pingOutageMs: outage, expirationSeconds: EXPIRATION, livenessIntervalMs: 500 };
  } finally {
    await lab.stop();
  }
};

const sim = await simulated();
const realDataplane = a.real ? await real() : undefined;
const svg = writeCdfSvg('heal', `Heal of ${sim.victims} connections vs setting them up`, [
  { label: 'setup from scratch (baseline)', samplesMs: sim.samples.setupMs },
  { label: 'repair: EndpointExpired -> healed', samplesMs: sim.samples.repairMs },
]);
const { samples: _s, ...figures } = sim;
const file = writeResult('heal', {
  parameters: { connections: N, endpoints: 3, nodes: 3, expirationSeconds: EXPIRATION, inflight: INFLIGHT, dataplane: 'simulated', controlPlane: 'separate process' },
  ...figures,
  ...(realDataplane ? { realDataplane } : { realDataplane: 'not run (pass --real as root)' }),
  chart: svg,
});
process.stdout.write(`\nwrote ${file} and ${svg}\n`);
