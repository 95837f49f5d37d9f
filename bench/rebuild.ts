// Projection rebuild against a raw read of the same log, in the same run.
//
//   npm run bench:rebuild                      1,000,000 events
//   npm run bench:rebuild -- --events 200000 --rounds 3 --batch 1000
//
// Writes a log of connection lifecycles (11 events in 9 commits each, chained, as the control
// plane writes them) into a private nats-server, then alternates, `rounds` times each:
//   raw      an ordered consumer over the whole events stream, consume({max_messages: 1000}),
//            JSON.parse of every message and a count of its events: the least any rebuild must do;
//   store    the store adapter's readAll without folding (diagnostic: the adapter's share);
//   rebuild  foldLog(store.readAll(...)): the store's ordered read and commit decoding, upcasting,
//            and the pure projections folded in place (projections/mesh.ts meshBuilder),
//            yielding to the event loop every 250 commits: what `nsm projections rebuild` runs.
// Rates are events per second (not commits). The headline ratio is the median of the per-round
// ratios rebuild/raw (each pair measured back to back, so a busy machine skews both alike); the
// ratio of the median rates is reported too.
// Results: bench/results/rebuild.json.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import { DeliverPolicy } from 'nats';
import { jetStreamEventStore } from '../infra/eventstore/jetstream.ts';
import { subjectsFor } from '../src/contracts/subjects.ts';
import { exitWhenFlushed } from '../infra/stdio.ts';
import { foldLog } from '../src/read/replay.ts';
import { COMMITS_PER_CONNECTION, EVENTS_PER_CONNECTION, writeLifecycleLog } from '../test/lib/lifecycleLog.ts';
import { startTestNats } from '../test/lib/nats.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { events: { type: 'string' }, rounds: { type: 'string' }, batch: { type: 'string' } } });
const targetEvents = Number(args.events ?? 1_000_000);
const rounds = Number(args.rounds ?? 5);
const batch = Number(args.batch ?? 250);
const connections = Math.ceil(targetEvents / EVENTS_PER_CONNECTION);
const say = (s: string) => process.stderr.write(s + '\n');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Other work on the machine moves every figure: recorded at the start and the end.
const loadAtStart = loadavg();
const nats = await startTestNats();
try {
  const domain = 'bench';
  const subjects = subjectsFor(domain);
  const nc = await nats.connect();
  const store = await jetStreamEventStore(nc, domain);

  say(`writing ${connections} connection lifecycles (${connections * EVENTS_PER_CONNECTION} events)...`);
  const w0 = Date.now();
  let shown = 0;
  const written = await writeLifecycleLog({
    store,
    connections,
    endpoints: 256,
    onProgress: (n) => {
      if (process.stderr.isTTY && Date.now() - shown > 500) {
        shown = Date.now();
        process.stderr.write(`\r  ${n} events, ${Math.round(n / ((Date.now() - w0) / 1000))}/s   `);
      }
    },
  });
  const writeSeconds = (Date.now() - w0) / 1000;
  say(`\nwrote ${written.events} events in ${written.commits} commits in ${writeSeconds.toFixed(1)} s`);
  const last = await store.lastPosition()();
  if (E.isLeft(last)) throw new Error(last.left.message);
  const lastSeq = Number(last.right);

  const raw = async () => {
    const consumer = await nc.jetstream().consumers.get(subjects.streams.events, { filterSubjects: subjects.allEvents, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 });
    const t = process.hrtime.bigint();
    const messages = await consumer.consume({ max_messages: 1000 });
    let events = 0;
    const dec = new TextDecoder();
    for await (const m of messages) {
      events += (JSON.parse(dec.decode(m.data)) as { events: unknown[] }).events.length;
      if (m.seq >= lastSeq) break;
    }
    messages.stop();
    return { events, seconds: Number(process.hrtime.bigint() - t) / 1e9 };
  };
  // Diagnostic, between the two: the store adapter's read (ordered consumer, decode into commits)
  // with no fold, to tell the adapter's share of the gap from the projection's.
  const storeRead = async () => {
    const t = process.hrtime.bigint();
    let events = 0;
    for await (const c of store.readAll(0n, last.right)) events += c.events.length;
    return { events, seconds: Number(process.hrtime.bigint() - t) / 1e9 };
  };
  const rebuild = async () => {
    const t = process.hrtime.bigint();
    const r = await foldLog(store.readAll(0n, last.right), { batch });
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    if (r.model.position !== lastSeq) throw new Error(`rebuild ended at ${r.model.position}, not ${lastSeq}`);
    return { events: r.events, seconds, connections: Object.keys(r.model.connections.byId).length };
  };

  const rawRates: number[] = [];
  const readRates: number[] = [];
  const rebuildRates: number[] = [];
  const runs: unknown[] = [];
  for (let i = 1; i <= rounds; i++) {
    const a = await raw();
    const r = await storeRead();
    const b = await rebuild();
    if (a.events !== written.events || b.events !== written.events) throw new Error(`read ${a.events} / folded ${b.events} events, wrote ${written.events}`);
    rawRates.push(a.events / a.seconds);
    readRates.push(r.events / r.seconds);
    rebuildRates.push(b.events / b.seconds);
    runs.push({ round: i, raw: { seconds: a.seconds, eventsPerSecond: a.events / a.seconds }, storeRead: { seconds: r.seconds, eventsPerSecond: r.events / r.seconds }, rebuild: { seconds: b.seconds, eventsPerSecond: b.events / b.seconds, connectionsInModel: b.connections } });
    say(`round ${i}: raw ${Math.round(a.events / a.seconds)} events/s (${a.seconds.toFixed(2)} s), store read ${Math.round(r.events / r.seconds)} events/s, rebuild ${Math.round(b.events / b.seconds)} events/s (${b.seconds.toFixed(2)} s), ratio ${(b.seconds > 0 ? a.seconds / b.seconds : 0).toFixed(2)}`);
  }
  const rawRate = median(rawRates);
  const readRate = median(readRates);
  const rebuildRate = median(rebuildRates);
  const ratio = median(rebuildRates.map((r, i) => r / rawRates[i]!));
  const ratioOfMedians = rebuildRate / rawRate;
  say(`\nmedian of ${rounds}: raw ordered read ${Math.round(rawRate)} events/s, store read ${Math.round(readRate)} events/s, projection rebuild ${Math.round(rebuildRate)} events/s`);
  say(`ratio rebuild/raw: ${ratio.toFixed(2)} (median of per-round ratios; goal >= 0.5), ${ratioOfMedians.toFixed(2)} (ratio of median rates)`);

  const pkg = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  const result = {
    benchmark: 'projection rebuild vs raw ordered-consumer read',
    date: new Date().toISOString(),
    machine: { cpu: cpus()[0]?.model, cores: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), kernel: release(), loadAverage1m: { start: loadAtStart[0], end: loadavg()[0] } },
    versions: { node: process.version, natsServer: execFileSync('nats-server', ['--version'], { encoding: 'utf8' }).trim(), nats: pkg('nats'), immer: pkg('immer') },
    parameters: { events: written.events, commits: written.commits, connections, eventsPerConnection: EVENTS_PER_CONNECTION, commitsPerConnection: COMMITS_PER_CONNECTION, endpoints: 256, foldBatchCommits: batch, rawConsumeMaxMessages: 1000, rawParsesJson: true, rounds, rates: 'events per second, median of rounds', ratio: 'median of per-round rebuild/raw ratios' },
    write: { seconds: writeSeconds, eventsPerSecond: written.events / writeSeconds },
    figures: { rawEventsPerSecond: rawRate, storeReadEventsPerSecond: readRate, rebuildEventsPerSecond: rebuildRate, ratio, ratioOfMedianRates: ratioOfMedians },
    runs,
  };
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'rebuild.json'), JSON.stringify(result, null, 2) + '\n');
  say('wrote bench/results/rebuild.json');
  await nc.close();
} finally {
  await nats.stop();
}
// Flushed first: piped output (`npm run bench:rebuild | tee`) would lose all but 64 KiB.
await exitWhenFlushed(0);
