// What every benchmark needs: percentiles, the machine it ran on, a table on stdout, and a JSON
// file under bench/results/ holding parameters and every figure, so a number in the README can
// be traced to the run that produced it.
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, freemem, totalmem, release, hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';

export const RESULTS_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'results');

export interface Distribution {
  readonly n: number;
  readonly min: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
  readonly mean: number;
}

export const distribution = (samples: readonly number[]): Distribution => {
  if (samples.length === 0) return { n: 0, min: NaN, p50: NaN, p90: NaN, p99: NaN, max: NaN, mean: NaN };
  const s = [...samples].sort((a, b) => a - b);
  const at = (p: number) => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  return { n: s.length, min: s[0]!, p50: at(50), p90: at(90), p99: at(99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
};

const version = (cmd: string, args: string[]): string => {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim().split('\n')[0]!;
  } catch {
    return 'not found';
  }
};

export const machine = () => ({
  hostname: hostname(),
  cpus: cpus().length,
  cpuModel: cpus()[0]?.model ?? 'unknown',
  memoryGiB: +(totalmem() / 2 ** 30).toFixed(1),
  freeMemoryGiB: +(freemem() / 2 ** 30).toFixed(1),
  kernel: release(),
  node: process.version,
  natsServer: version(process.env.NSM_NATS_SERVER ?? 'nats-server', ['--version']),
  date: new Date().toISOString(),
});

export const fmt = (n: number, digits = 2): string =>
  !Number.isFinite(n) ? '-' : Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(digits);

export const printTable = (title: string, headers: readonly string[], rows: readonly (readonly (string | number)[])[]): void => {
  const cells = rows.map((r) => r.map((c) => (typeof c === 'number' ? fmt(c) : c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => String(r[i] ?? '').length)));
  const line = (r: readonly string[]) => r.map((c, i) => String(c).padEnd(widths[i]!)).join('  ');
  process.stdout.write(`\n${title}\n${line(headers)}\n${widths.map((w) => '-'.repeat(w)).join('  ')}\n${cells.map(line).join('\n')}\n`);
};

/** Writes bench/results/<name>.json and returns its path. */
export const writeResult = (name: string, result: Record<string, unknown>): string => {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(file, JSON.stringify({ benchmark: name, machine: machine(), ...result }, (_k, v) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
  return file;
};

/**
 * An SVG of empirical CDFs (one curve per series, log-scaled x axis in ms): the latency
 * distributions side by side, baseline included, so tails are visible and not just p50/p99.
 */
export const writeCdfSvg = (name: string, title: string, series: readonly { label: string; samplesMs: readonly number[] }[]): string => {
  const W = 760;
  const H = 420;
  const M = { l: 60, r: 20, t: 40, b: 50 };
  const all = series.flatMap((s) => s.samplesMs).filter((v) => v > 0);
  const lo = Math.max(1e-3, Math.min(...all));
  const hi = Math.max(...all);
  const lx = (v: number) => M.l + ((Math.log10(Math.max(v, lo)) - Math.log10(lo)) / Math.max(1e-9, Math.log10(hi) - Math.log10(lo))) * (W - M.l - M.r);
  const ly = (p: number) => H - M.b - p * (H - M.t - M.b);
  const colors = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
  const paths = series.map((s, i) => {
    const sorted = [...s.samplesMs].sort((a, b) => a - b);
    const step = Math.max(1, Math.floor(sorted.length / 400));
    const pts: string[] = [];
    for (let k = 0; k < sorted.length; k += step) pts.push(`${lx(sorted[k]!).toFixed(1)},${ly((k + 1) / sorted.length).toFixed(1)}`);
    pts.push(`${lx(sorted[sorted.length - 1]!).toFixed(1)},${ly(1).toFixed(1)}`);
    return `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${pts.join(' ')}"/>` +
      `<text x="${M.l + 10}" y="${M.t + 16 + i * 16}" fill="${colors[i % colors.length]}" font-size="12">${escapeXml(s.label)} (n=${s.samplesMs.length})</text>`;
  });
  const ticks: string[] = [];
  for (let e = Math.floor(Math.log10(lo)); e <= Math.ceil(Math.log10(hi)); e++) {
    const v = 10 ** e;
    if (v < lo / 1.0001 || v > hi * 1.0001) continue;
    ticks.push(`<line x1="${lx(v)}" y1="${H - M.b}" x2="${lx(v)}" y2="${M.t}" stroke="#ddd"/><text x="${lx(v)}" y="${H - M.b + 16}" font-size="11" text-anchor="middle">${v >= 1 ? v : v.toPrecision(1)} ms</text>`);
  }
  for (const p of [0, 0.5, 0.9, 0.99, 1]) ticks.push(`<line x1="${M.l}" y1="${ly(p)}" x2="${W - M.r}" y2="${ly(p)}" stroke="#eee"/><text x="${M.l - 6}" y="${ly(p) + 4}" font-size="11" text-anchor="end">${p}</text>`);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" font-size="14" text-anchor="middle">${escapeXml(title)}</text>
${ticks.join('\n')}
<line x1="${M.l}" y1="${H - M.b}" x2="${W - M.r}" y2="${H - M.b}" stroke="black"/><line x1="${M.l}" y1="${H - M.b}" x2="${M.l}" y2="${M.t}" stroke="black"/>
<text x="${W / 2}" y="${H - 12}" font-size="12" text-anchor="middle">latency (log scale)</text>
<text x="16" y="${H / 2}" font-size="12" transform="rotate(-90 16 ${H / 2})" text-anchor="middle">fraction of samples</text>
${paths.join('\n')}
</svg>
`;
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.svg`);
  writeFileSync(file, svg);
  return file;
};

const escapeXml = (s: string) => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** The verdict printed beside a goal: measured against the target, never asserted. */
export const goal = (what: string, measured: number, target: number, better: 'lower' | 'higher', unit = ''): { goal: string; measured: number; target: number; met: boolean } => {
  const met = better === 'lower' ? measured <= target : measured >= target;
  process.stdout.write(`goal: ${what} ${better === 'lower' ? '<=' : '>='} ${target}${unit}: measured ${fmt(measured)}${unit} -> ${met ? 'met' : 'MISSED'}\n`);
  return { goal: what, measured, target, met };
};

/** The value of a step that must succeed; a benchmark stops on the first failure, with its message. */
export const ok = <T>(r: E.Either<{ message: string }, T>): T => {
  if (E.isLeft(r)) throw new Error(r.left.message);
  return r.right;
};

/**
 * An SVG of time series as small multiples, one panel per series, each normalized over time to
 * its own range (min at the bottom, max at the top; a flat series is drawn flat in the middle),
 * with its start and end values beside it: how each quantity moved during a long run, whatever
 * its unit. A shaded band marks the warm-up; a series flagged is drawn in red.
 */
export const writeSeriesSvg = (
  name: string,
  title: string,
  series: readonly { label: string; points: readonly { t: number; v: number }[]; caption?: string; flagged?: boolean; warmupMs?: number }[],
  o: { warmupMs?: number; columns?: number } = {},
): string => {
  const cols = o.columns ?? 4;
  const PW = 230;
  const PH = 92;
  const GAP = 14;
  const TOP = 40;
  const rows = Math.max(1, Math.ceil(series.length / cols));
  const W = cols * PW + (cols + 1) * GAP;
  const H = TOP + rows * (PH + 36) + GAP;
  const tMax = Math.max(1, ...series.flatMap((s) => s.points.map((p) => p.t)));
  const panels = series.map((s, i) => {
    const x0 = GAP + (i % cols) * (PW + GAP);
    const y0 = TOP + Math.floor(i / cols) * (PH + 36) + 14;
    const vs = s.points.map((p) => p.v).filter(Number.isFinite);
    const lo = vs.length ? Math.min(...vs) : 0;
    const hi = vs.length ? Math.max(...vs) : 1;
    const px = (t: number) => x0 + (t / tMax) * PW;
    const py = (v: number) => (hi === lo ? y0 + PH / 2 : y0 + PH - ((v - lo) / (hi - lo)) * PH);
    const step = Math.max(1, Math.floor(s.points.length / 300));
    const pts = s.points.filter((p, k) => Number.isFinite(p.v) && (k % step === 0 || k === s.points.length - 1)).map((p) => `${px(p.t).toFixed(1)},${py(p.v).toFixed(1)}`);
    const color = s.flagged ? '#d62728' : '#1f77b4';
    const w = s.warmupMs ?? o.warmupMs;
    const warm = w ? `<rect x="${x0}" y="${y0}" width="${((Math.min(w, tMax) / tMax) * PW).toFixed(1)}" height="${PH}" fill="#f0f0f0"/>` : '';
    return `<g>${warm}<rect x="${x0}" y="${y0}" width="${PW}" height="${PH}" fill="none" stroke="#bbb"/>` +
      `<text x="${x0}" y="${y0 - 4}" font-size="10" fill="${color}">${escapeXml(s.label)}</text>` +
      `<polyline fill="none" stroke="${color}" stroke-width="1.5" points="${pts.join(' ')}"/>` +
      `<text x="${x0}" y="${y0 + PH + 12}" font-size="9" fill="#444">${escapeXml(s.caption ?? '')}</text></g>`;
  });
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="18" font-size="14" text-anchor="middle">${escapeXml(title)}</text>
<text x="${W / 2}" y="32" font-size="10" text-anchor="middle" fill="#555">each panel: time (0 to ${(tMax / 60_000).toFixed(1)} min) across, the series between its own minimum and maximum up; grey: before the series is judged (warm-up, caches filling); red: judged a leak</text>
${panels.join('\n')}
</svg>
`;
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${name}.svg`);
  writeFileSync(file, svg);
  return file;
};
