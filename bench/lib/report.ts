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
