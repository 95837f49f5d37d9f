// The soak's rule for "grows without bound" (bench/lib/leak.ts), on series whose answer is known.
import * as assert from 'uvu/assert';
import { fitLine, HOUR_MS, judgeSeries, MIB, type Point, type SeriesSpec } from '../../bench/lib/leak.ts';
import { suite } from '../lib/harness.ts';

const memory: SeriesSpec = { key: 'p.heap', owner: 'p', what: 'heap', unit: 'bytes', kind: 'memory' };
const count: SeriesSpec = { key: 'p.fds', owner: 'p', what: 'fds', unit: 'count', kind: 'count', drainSlack: 0 };
/** n samples over `minutes`, value f(t in ms) plus deterministic noise of +-noise. */
const series = (minutes: number, n: number, f: (t: number) => number, noise = 0): Point[] =>
  Array.from({ length: n }, (_, i) => {
    const t = (i / (n - 1)) * minutes * 60_000;
    return { t, v: f(t) + noise * Math.sin(i * 12.9898) };
  });
const s = suite('soak: what grows without bound');
const warmupMs = 6 * 60_000;

s('least squares finds the slope and its standard error', () => {
  const f = fitLine([{ t: 0, v: 1 }, { t: 1, v: 3 }, { t: 2, v: 5 }, { t: 3, v: 7 }]);
  assert.is(f.slope, 2);
  assert.is(f.intercept, 1);
  assert.is(f.slopeSe, 0);
});

s('a heap that keeps growing 20 % of its size per hour leaks', () => {
  const j = judgeSeries(memory, series(30, 180, (t) => 100 * MIB * (1 + (0.2 * t) / HOUR_MS), 0.3 * MIB), { warmupMs });
  assert.ok(j.leak, j.reason);
  assert.ok(Math.abs(j.slopePerHour / MIB - 20) < 1, `${j.slopePerHour / MIB}`);
});

s('a heap that grows and levels off does not leak', () => {
  // Fills a cache until minute 15, flat after.
  const j = judgeSeries(memory, series(30, 180, (t) => 100 * MIB + Math.min(t, 15 * 60_000) * (30 * MIB / (15 * 60_000)), 0.3 * MIB), { warmupMs });
  assert.not.ok(j.leak, j.reason);
  assert.ok(j.significant && j.material && !j.sustained, j.reason);
});

s('noise without a trend does not leak, nor does a slow drift under the threshold', () => {
  assert.not.ok(judgeSeries(memory, series(30, 180, () => 100 * MIB, 5 * MIB), { warmupMs }).leak);
  const drift = judgeSeries(memory, series(30, 180, (t) => 100 * MIB * (1 + (0.05 * t) / HOUR_MS)), { warmupMs });
  assert.not.ok(drift.leak, drift.reason);
  assert.ok(drift.significant && !drift.material);
});

s('samples in the warm-up are not judged', () => {
  // Steep during the first 5 minutes, flat after.
  const j = judgeSeries(memory, series(30, 180, (t) => 100 * MIB + Math.min(t, 5 * 60_000) * 10, 0.1 * MIB), { warmupMs });
  assert.not.ok(j.leak, j.reason);
});

s('a count that keeps rising leaks; one that returns to its baseline after the drain does not', () => {
  const rising = judgeSeries(count, series(30, 180, (t) => 30 + Math.floor(t / 60_000)), { warmupMs, baseline: 30, afterDrain: 60 });
  assert.ok(rising.leak && rising.grows && rising.drain?.leftBehind, rising.reason);
  const steady = judgeSeries(count, series(30, 180, () => 30, 3), { warmupMs, baseline: 30, afterDrain: 30 });
  assert.not.ok(steady.leak, steady.reason);
});

s('a count left above its baseline after the drain leaks, however slowly it rose', () => {
  const j = judgeSeries(count, series(30, 180, () => 64, 8), { warmupMs, baseline: 4, afterDrain: 5 });
  assert.not.ok(j.grows);
  assert.ok(j.leak && j.drain?.leftBehind, j.reason);
  assert.match(j.reason, /left behind: 5 after the drain, 4 before/);
});

s('a count that moves with the work in flight is judged against its own floor', () => {
  // Ends high because work was in flight at the last samples: 26 most of the time, 31 at the end.
  const inFlight = { ...count, drainSlack: undefined, minRise: 10 };
  const pts = series(2, 12, (t) => (t > 90_000 ? 31 : 26));
  assert.not.ok(judgeSeries(inFlight, pts, { warmupMs: 20_000 }).leak);
  // One more descriptor every 5 s is still a leak.
  const ramp = judgeSeries(inFlight, series(2, 12, (t) => 26 + Math.floor(t / 5000)), { warmupMs: 20_000 });
  assert.ok(ramp.leak, ramp.reason);
});

s('kernel objects judged on their floor of each minute: setups lagging at the end are not growth, objects left by every heal are', () => {
  // The 10-minute Linux soak (bench/results/soak-real.json, before this rule): routes flat at
  // about 74 with 12 connections held, then 120 at the last sample (a sample every 10 s) while 11
  // setups lagged on a busy machine; every route was gone after the drain.
  const routes = [63, 75, 73, 74, 74, 75, 82, 74, 74, 68, 74, 74, 74, 89, 73, 75, 69, 75, 74, 75, 74, 74, 78, 73, 75, 75, 73, 74, 81, 80, 75, 74, 72, 74, 75, 74, 75, 89, 78, 74, 77, 75, 74, 74, 74, 74, 75, 77, 74, 74, 72, 89, 74, 76, 86, 86, 93, 92, 120];
  const at = (i: number) => 10_000 * (i + 1);
  const spec: SeriesSpec = { key: 'lab.routes', owner: 'lab', what: 'routes', unit: 'count', kind: 'count', drainSlack: 0, minRise: 12 };
  const warm = { warmupMs: 2 * 60_000, baseline: 0, afterDrain: 0 };
  const pts = routes.map((v, i) => ({ t: at(i), v }));
  assert.ok(judgeSeries(spec, pts, warm).leak, 'every sample: the lag reads as growth');
  const floor = judgeSeries({ ...spec, floorOf: 6 }, pts, warm);
  assert.not.ok(floor.leak, floor.reason);
  // Two routes left behind by every heal (two heals a minute) raise the floor: a leak.
  const leaking = judgeSeries({ ...spec, floorOf: 6 }, routes.map((v, i) => ({ t: at(i), v: v + 4 * Math.floor(at(i) / 60_000) })), warm);
  assert.ok(leaking.leak, leaking.reason);
  // And what the drain leaves is a leak whatever the floor did.
  assert.ok(judgeSeries({ ...spec, floorOf: 6 }, pts, { ...warm, afterDrain: 1 }).leak);
});

s('info series are reported, never judged', () => {
  const j = judgeSeries({ ...memory, kind: 'info', note: 'the log grows by design' }, series(30, 180, (t) => t), { warmupMs });
  assert.not.ok(j.leak);
  assert.ok(j.slopePerHour > 0);
  assert.is(j.reason, 'the log grows by design');
});

s.run();
