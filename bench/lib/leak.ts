// What the soak calls "grows without bound", as pure functions over sampled series so that the
// rule can be read, tested (test/bench/leak.unit.test.ts) and argued with.
//
// A series is judged on the samples after the warm-up (the first part of the run, when caches,
// JIT, pools and connections are still filling). A least-squares line through them gives the
// slope per hour. A series LEAKS when all three hold:
//
//   1. significant: the slope is more than 3 standard errors above zero (not noise);
//   2. material:    the slope is above the series' threshold:
//                     memory (RSS, heap after GC): 10 % of its level per hour, and at least
//                       1 MiB per hour (it would grow by 2.4 times its size in a day), and a
//                       rise of at least 256 KiB over the window (in a short window, JIT code
//                       and inline caches settling would pass for a leak);
//                     counts (file descriptors, NATS subscriptions and consumers, interfaces,
//                       routes, rules, nft objects, namespaces, processes): a rise over the
//                       window of more than max(2, 5 % of the level) objects, whatever the
//                       run's length (a discrete object left behind once per minute or once per
//                       hour is a leak alike); counts that move with the work in flight take a
//                       larger floor (SeriesSpec.minRise: descriptors 10, subscriptions twice
//                       the requests in flight, kernel objects the connections held);
//   3. sustained:   the line through the last half of those samples alone still rises at half
//                   the threshold or more: a series that grew and levelled off (a cache that
//                   filled, a heap that found its size) is not a leak.
//
// Kernel objects rise for seconds while setups lag on a busy machine or a heal holds both paths:
// their trend is judged on their floor, the least of every minute's samples (SeriesSpec.floorOf),
// which objects left behind raise too; after the drain their exact counts are checked.
//
// Counts of kernel objects, consumers and subscriptions are also checked after the drain: once
// every connection is closed and the mesh is quiet, they must be back at their value before the
// churn (exactly, or within a stated slack for counts that include a client's transient
// subscriptions). A count that ends above its baseline has left something behind, however
// slowly it grew.

export type SeriesKind = 'memory' | 'count' | 'info';

export interface SeriesSpec {
  /** Unique key, e.g. "control-plane.heapAfterGc". */
  readonly key: string;
  /** Which process or place it belongs to ("control-plane", "agent-n1", "nats-server", "lab"). */
  readonly owner: string;
  /** What it measures, for people ("heap used after GC"). */
  readonly what: string;
  readonly unit: 'bytes' | 'count' | 'percent';
  /** memory and count are judged; info is printed and plotted only (grows by design, or too noisy to judge). */
  readonly kind: SeriesKind;
  /** Why an info series is not judged. */
  readonly note?: string;
  /** After the drain the value must be at most baseline + slack (counts only; absent: no drain check). */
  readonly drainSlack?: number;
  /**
   * Counts only: the smallest rise over the window that is material, when the count moves with
   * the work in flight (descriptors of child processes, subscriptions of requests waiting, the
   * interfaces of connections being set up); default Thresholds.countMinRise.
   */
  readonly minRise?: number;
  /**
   * Counts only: judge the floor of the series, the least value of each run of this many
   * consecutive samples, instead of every sample. For counts that spike while work is in flight
   * (a heal holds the old and the new path's kernel objects for a few seconds): a spike in the
   * last samples would otherwise pass for growth, while what a leak leaves behind raises the
   * floor too. The drain check still compares exact values.
   */
  readonly floorOf?: number;
}

export interface Point {
  /** Milliseconds since the churn started. */
  readonly t: number;
  readonly v: number;
}

export interface LineFit {
  readonly n: number;
  /** Per millisecond. */
  readonly slope: number;
  readonly intercept: number;
  /** Standard error of the slope (per millisecond); Infinity with fewer than 3 points. */
  readonly slopeSe: number;
}

export const HOUR_MS = 3_600_000;
export const MIB = 2 ** 20;

/** Ordinary least squares of v over t. */
export const fitLine = (pts: readonly Point[]): LineFit => {
  const n = pts.length;
  if (n === 0) return { n, slope: 0, intercept: NaN, slopeSe: Infinity };
  const mt = pts.reduce((a, p) => a + p.t, 0) / n;
  const mv = pts.reduce((a, p) => a + p.v, 0) / n;
  let stt = 0;
  let stv = 0;
  for (const p of pts) {
    stt += (p.t - mt) ** 2;
    stv += (p.t - mt) * (p.v - mv);
  }
  if (n < 2 || stt === 0) return { n, slope: 0, intercept: mv, slopeSe: Infinity };
  const slope = stv / stt;
  const intercept = mv - slope * mt;
  if (n < 3) return { n, slope, intercept, slopeSe: Infinity };
  const sse = pts.reduce((a, p) => a + (p.v - (intercept + slope * p.t)) ** 2, 0);
  return { n, slope, intercept, slopeSe: Math.sqrt(sse / (n - 2) / stt) };
};

const median = (xs: readonly number[]): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** Each point's value replaced by the least of it and the k - 1 points before it (the first k - 1 points dropped). */
export const floorOf = (pts: readonly Point[], k: number): Point[] =>
  pts.slice(k - 1).map((p, i) => ({ t: p.t, v: Math.min(...pts.slice(i, i + k).map((q) => q.v)) }));

export interface Thresholds {
  /** Memory: slope per hour above this fraction of the level is material. */
  readonly memoryPerHourOfLevel: number;
  /** Memory: and above this many bytes per hour. */
  readonly memoryMinBytesPerHour: number;
  /** Memory: and a rise over the window above this many bytes (JIT code and caches settling in a short window). */
  readonly memoryMinRise: number;
  /** Counts: a rise over the window above max(countMinRise, countOfLevel x level) is material. */
  readonly countMinRise: number;
  readonly countOfLevel: number;
  /** How many standard errors the slope must be above zero. */
  readonly significance: number;
  /** The last half's slope must be at least this fraction of the threshold slope. */
  readonly sustainedFraction: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  memoryPerHourOfLevel: 0.1,
  memoryMinBytesPerHour: MIB,
  memoryMinRise: MIB / 4,
  countMinRise: 2,
  countOfLevel: 0.05,
  significance: 3,
  sustainedFraction: 0.5,
};

export interface Judgement {
  readonly key: string;
  readonly owner: string;
  readonly what: string;
  readonly unit: SeriesSpec['unit'];
  readonly kind: SeriesKind;
  /** Samples used: those from this moment of the churn on (its warm-up's end). */
  readonly fromMs: number;
  readonly n: number;
  /** First and last sampled values after the warm-up. */
  readonly start: number;
  readonly end: number;
  readonly level: number;
  readonly slopePerHour: number;
  /** slopePerHour / level. */
  readonly slopePerHourOfLevel: number;
  /** The threshold the slope was held against, per hour (undefined for info series). */
  readonly thresholdPerHour?: number;
  readonly lastHalfSlopePerHour: number;
  readonly significant: boolean;
  readonly material: boolean;
  readonly sustained: boolean;
  /** The trend rule: significant, material and sustained. */
  readonly grows: boolean;
  /** Drain check: the value before the churn and after the drain. */
  readonly drain?: { readonly baseline: number; readonly after: number; readonly slack: number; readonly leftBehind: boolean };
  readonly leak: boolean;
  /** One line: why it is or is not a leak. */
  readonly reason: string;
  readonly note?: string;
}

/**
 * Judges one series. `points` are all samples taken during the churn (t from its start);
 * those before `warmupMs` are left out.
 */
export const judgeSeries = (
  spec: SeriesSpec,
  points: readonly Point[],
  o: {
    readonly warmupMs: number;
    readonly baseline?: number;
    readonly afterDrain?: number;
    readonly thresholds?: Thresholds;
    /**
     * Not judged on its trend, and why: the process's bounded caches were still filling when the
     * run ended, so growth and a leak cannot be told apart (the drain check still applies).
     */
    readonly trendNotJudged?: string;
  },
): Judgement => {
  const th = o.thresholds ?? DEFAULT_THRESHOLDS;
  const kept = points.filter((p) => p.t >= o.warmupMs && Number.isFinite(p.v));
  const post = spec.kind === 'count' && spec.floorOf && spec.floorOf > 1 ? floorOf(kept, spec.floorOf) : kept;
  const fit = fitLine(post);
  const windowMs = post.length > 1 ? post[post.length - 1]!.t - post[0]!.t : 0;
  const half = post.length >= 6 ? fitLine(post.slice(Math.floor(post.length / 2))) : fit;
  const level = median(post.map((p) => p.v));
  const slopePerHour = fit.slope * HOUR_MS;
  const lastHalfSlopePerHour = half.slope * HOUR_MS;
  const base = {
    key: spec.key,
    owner: spec.owner,
    what: spec.what,
    unit: spec.unit,
    kind: spec.kind,
    fromMs: o.warmupMs,
    n: post.length,
    start: post[0]?.v ?? NaN,
    end: post[post.length - 1]?.v ?? NaN,
    level,
    slopePerHour,
    slopePerHourOfLevel: level !== 0 ? slopePerHour / Math.abs(level) : slopePerHour === 0 ? 0 : Infinity,
    lastHalfSlopePerHour,
    ...(spec.note ? { note: spec.note } : {}),
  };
  if (spec.kind === 'info') {
    return { ...base, significant: false, material: false, sustained: false, grows: false, leak: false, reason: spec.note ?? 'not judged' };
  }
  const thresholdPerHour =
    spec.kind === 'memory'
      ? Math.max(th.memoryPerHourOfLevel * Math.abs(level), th.memoryMinBytesPerHour)
      : windowMs > 0
        ? (Math.max(spec.minRise ?? th.countMinRise, th.countOfLevel * Math.abs(level)) / windowMs) * HOUR_MS
        : Infinity;
  const enough = post.length >= 6 && o.trendNotJudged === undefined;
  const significant = enough && fit.slope > th.significance * fit.slopeSe;
  const material = enough && slopePerHour > thresholdPerHour && (spec.kind !== 'memory' || fit.slope * windowMs > th.memoryMinRise);
  const sustained = enough && lastHalfSlopePerHour >= th.sustainedFraction * thresholdPerHour;
  const grows = significant && material && sustained;
  const drain =
    spec.drainSlack !== undefined && o.baseline !== undefined && o.afterDrain !== undefined && Number.isFinite(o.baseline) && Number.isFinite(o.afterDrain)
      ? { baseline: o.baseline, after: o.afterDrain, slack: spec.drainSlack, leftBehind: o.afterDrain > o.baseline + spec.drainSlack }
      : undefined;
  const leak = grows || (drain?.leftBehind ?? false);
  const fmtRate = (v: number) => (spec.unit === 'bytes' ? `${(v / MIB).toFixed(2)} MiB/h` : `${v.toFixed(1)}/h`);
  const reason = grows
      ? `grows ${fmtRate(slopePerHour)} (threshold ${fmtRate(thresholdPerHour)}), still ${fmtRate(lastHalfSlopePerHour)} over the last half`
      : drain?.leftBehind
        ? `left behind: ${drain.after} after the drain, ${drain.baseline} before the churn (slack ${drain.slack})`
        : o.trendNotJudged !== undefined
          ? `trend not judged: ${o.trendNotJudged}`
          : !enough
          ? `only ${post.length} samples after the warm-up: trend not judged`
          : !significant
          ? `no significant trend (${fmtRate(slopePerHour)} +- ${fmtRate(fit.slopeSe * HOUR_MS)})`
          : !material
            ? slopePerHour > thresholdPerHour
              ? `trend ${fmtRate(slopePerHour)}, but a rise of only ${((fit.slope * windowMs) / 1024).toFixed(0)} KiB over the window (at least ${(th.memoryMinRise / 1024).toFixed(0)} KiB)`
              : `trend ${fmtRate(slopePerHour)} below the threshold ${fmtRate(thresholdPerHour)}`
            : `levelled off: ${fmtRate(lastHalfSlopePerHour)} over the last half (threshold ${fmtRate(thresholdPerHour)})`;
  return { ...base, thresholdPerHour, significant, material, sustained, grows, ...(drain ? { drain } : {}), leak, reason };
};
