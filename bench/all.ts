// `npm run bench`: every benchmark one after another (each in its own process, so none inherits
// another's heap), then one summary of the headline figures from bench/results/*.json.
// The dataplane benchmark and the real-dataplane part of the heal benchmark need root; without
// it they are left out, and the summary says so.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { printTable, RESULTS_DIR } from './lib/report.ts';

const here = dirname(fileURLToPath(import.meta.url));
const root = typeof process.getuid === 'function' && process.getuid() === 0;
const runs: { name: string; args: string[]; needsRoot?: boolean }[] = [
  { name: 'setup', args: [] },
  { name: 'heal', args: root ? ['--real'] : [] },
  { name: 'rebuild', args: [] },
  { name: 'federation', args: [] },
  { name: 'scale', args: [] },
  { name: 'dashboard', args: [] },
  { name: 'dataplane', args: [], needsRoot: true },
];

const outcome: Record<string, string> = {};
for (const r of runs) {
  if (r.needsRoot && !root) {
    outcome[r.name] = 'not run: needs root';
    continue;
  }
  process.stdout.write(`\n===== bench/${r.name}.ts ${r.args.join(' ')}\n`);
  const p = spawnSync(process.execPath, ['--import', 'tsx', join(here, `${r.name}.ts`), ...r.args], { stdio: 'inherit' });
  outcome[r.name] = p.status === 0 ? 'ok' : `failed (exit ${p.status ?? p.signal})`;
}

const read = (name: string): Record<string, any> | undefined => {
  const f = join(RESULTS_DIR, `${name}.json`);
  return existsSync(f) ? JSON.parse(readFileSync(f, 'utf8')) : undefined;
};
const rows: (string | number)[][] = [];
const setup = read('setup');
if (setup) {
  rows.push(['setup p50 / p99 ms (simulated)', `${setup.setupLatencyMs.p50.toFixed(1)} / ${setup.setupLatencyMs.p99.toFixed(1)}`, `request/reply p50 ${setup.baseline.requestReplyMs.p50.toFixed(2)} ms, ratio ${setup.ratios.p50.toFixed(1)}`]);
  rows.push(['connections established / s', setup.sustained.connectionsPerSec.toFixed(0), `${setup.parameters.inflight} in flight`]);
  rows.push(['appends / s vs raw JetStream', setup.sustained.commitsPerSec.toFixed(0), `raw ${setup.baseline.rawJetStreamPublishesPerSec.toFixed(0)}/s, ratio ${setup.ratios.appendsToRaw.toFixed(2)}`]);
}
const heal = read('heal');
if (heal) {
  rows.push([`heal of ${heal.victims} connections p50 / p99 ms`, `${heal.repairMs.p50.toFixed(0)} / ${heal.repairMs.p99.toFixed(0)}`, `detection ${heal.detectionMs} ms; setup under the same load p50 ${heal.setupMs.p50.toFixed(0)} ms`]);
  if (typeof heal.realDataplane === 'object') rows.push(['real dataplane ping outage, s', (heal.realDataplane.pingOutageMs / 1000).toFixed(1), `endpoint killed, expiry ${heal.realDataplane.expirationSeconds} s`]);
}
const rebuild = read('rebuild');
if (rebuild?.figures) rows.push([`projection rebuild of ${rebuild.parameters.events} events, events/s`, rebuild.figures.rebuildEventsPerSecond.toFixed(0), `raw ordered read ${rebuild.figures.rawEventsPerSecond.toFixed(0)}/s, ratio ${rebuild.figures.ratio.toFixed(2)}`]);
const federation = read('federation');
if (federation) rows.push(['cross-domain setup p50 ms (simulated)', federation.crossDomainSetupMs.p50.toFixed(1), `same-domain ${federation.sameDomainSetupMs.p50.toFixed(1)} ms, ratio ${federation.ratios.p50.toFixed(2)}`]);
const scale = read('scale');
if (scale) {
  const last = scale.bytesPerConnection[scale.bytesPerConnection.length - 1];
  rows.push([`scale: ${scale.parameters.connections} connections, ${scale.parameters.endpoints} endpoints, ${scale.parameters.nodes} nodes`, `${scale.timesSeconds.toScale.toFixed(0)} s`, `${scale.connectionsPerSecond.toFixed(0)} connections/s`]);
  rows.push(['control-plane memory per connection', `${(last.bytesPerConnection / 1024).toFixed(1)} KiB RSS`, `${(last.retainedBytesPerConnection / 1024).toFixed(1)} KiB retained heap`]);
  rows.push(['query connection by id at that size p50 ms', scale.queryLatencyMs.connectionById.p50.toFixed(2), `request/reply ${scale.queryLatencyMs.baselineRequestReply.p50.toFixed(2)} ms`]);
}
const dashboard = read('dashboard');
if (dashboard) {
  const [first, ...rest] = dashboard.results;
  const last = rest[rest.length - 1] ?? first;
  rows.push([`dashboard first frame at ${last.connections} connections p50 ms`, last.firstFrameMs.p50.toFixed(0), `${first.connections}: ${first.firstFrameMs.p50.toFixed(0)} ms; live update p50 ${last.liveUpdateMs.p50.toFixed(0)} ms (${first.liveUpdateMs.p50.toFixed(0)} ms)`]);
}
printTable('Summary (bench/results/*.json)', ['figure', 'value', 'beside'], rows);
printTable('Runs', ['benchmark', 'outcome'], Object.entries(outcome));
process.exitCode = Object.values(outcome).some((o) => o.startsWith('failed')) ? 1 : 0;
