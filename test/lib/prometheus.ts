// A real Prometheus server for tests (Debian's `prometheus` package: /usr/bin/prometheus and
// /usr/bin/promtool), configured from infra/prometheus/ with the test's own targets, on a free
// loopback port, in a temp dir; it dies with the test process (infra/ownedChild.ts). Missing
// binaries are a failure that says how to install them, never a skip.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../infra/net.ts';
import { spawnOwned } from '../../infra/ownedChild.ts';
import { eventually } from './eventually.ts';

export const PROMETHEUS_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'infra', 'prometheus');

/** The binary's path; throws (the test fails) when the package is not installed. */
export const prometheusBinary = (name: 'prometheus' | 'promtool'): string => {
  for (const dir of [...(process.env.PATH ?? '').split(delimiter), '/usr/bin']) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  throw new Error(`${name} is not installed: apt-get install --no-install-recommends prometheus (Debian's package, in APT_PACKAGES of .ci/run)`);
};

/** Runs promtool with these arguments in infra/prometheus/. */
export const promtool = (...args: string[]): { code: number | null; output: string } => {
  const r = spawnSync(prometheusBinary('promtool'), args, { cwd: PROMETHEUS_DIR, encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { code: r.status, output: `${r.stdout}${r.stderr}` };
};

const replaceOnce = (text: string, from: string | RegExp, to: string, what: string): string => {
  const found = typeof from === 'string' ? text.includes(from) : from.test(text);
  if (!found) throw new Error(`infra/prometheus/prometheus.yml no longer has ${what} (${String(from)}): update test/lib/prometheus.ts`);
  return text.replace(from, to);
};

/**
 * infra/prometheus/prometheus.yml as shipped, for a test: its scrape and evaluation intervals,
 * its targets, the path of its rules; with `api`, the commented-out HTTPS job taken in too.
 */
export const scrapeConfigFor = (o: { interval: string; target: string; api?: { target: string; tokenFile: string; caFile: string } }): string => {
  let text = readFileSync(join(PROMETHEUS_DIR, 'prometheus.yml'), 'utf8');
  text = replaceOnce(text, /scrape_interval: \S+/, `scrape_interval: ${o.interval}`, 'a scrape interval');
  text = replaceOnce(text, /evaluation_interval: \S+/, `evaluation_interval: ${o.interval}`, 'an evaluation interval');
  text = replaceOnce(text, "- targets: ['127.0.0.1:9464']", `- targets: ['${o.target}']`, 'the nsm up target');
  text = replaceOnce(text, '  - alerts.yml', `  - ${join(PROMETHEUS_DIR, 'alerts.yml')}`, 'the rules file');
  if (o.api) {
    const block = /# BEGIN nsm-api[^\n]*\n(?:#[^\n]*\n)*?# END nsm-api/.exec(text);
    if (!block) throw new Error('infra/prometheus/prometheus.yml no longer has the commented nsm-api job between "# BEGIN nsm-api" and "# END nsm-api"');
    // The job is the commented YAML from its "- job_name" line to the end marker.
    const lines = block[0].split('\n');
    const from = lines.findIndex((l) => /^# {2}- job_name:/.test(l));
    const job = lines.slice(from, -1).map((l) => l.slice(1)).join('\n');
    let api = job;
    api = replaceOnce(api, '/etc/prometheus/nsm.token', o.api.tokenFile, 'the token file');
    api = replaceOnce(api, '/etc/prometheus/nsm-ca.pem', o.api.caFile, 'the CA file');
    api = replaceOnce(api, "['127.0.0.1:8080']", `['${o.api.target}']`, 'the HTTPS API target');
    text = replaceOnce(text, /\nscrape_configs:\n/, `\nscrape_configs:\n${api}\n`, 'scrape_configs');
  }
  return text;
};

export interface PromSample {
  readonly metric: Record<string, string>;
  readonly value: number;
}

export interface RunningPrometheus {
  readonly url: string;
  readonly dir: string;
  /** An instant query through GET /api/v1/query. */
  query(expr: string): Promise<PromSample[]>;
  /** The single value of a query that must answer exactly one series; undefined when it answers none. */
  scalar(expr: string): Promise<number | undefined>;
  /** GET /api/v1/<path>: the `data` of the answer. */
  api<T>(path: string): Promise<T>;
  /** Its log (stdout and stderr). */
  log(): string;
  stop(): Promise<void>;
}

export const startPrometheus = async (config: string): Promise<RunningPrometheus> => {
  const bin = prometheusBinary('prometheus');
  const dir = mkdtempSync(join(tmpdir(), 'nsm-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(configFile, config);
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const logFile = join(dir, 'prometheus.log');
  const { child } = spawnOwned(bin, [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], openSync(logFile, 'a'));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const log = () => {
    try {
      return readFileSync(logFile, 'utf8');
    } catch {
      return '';
    }
  };
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const api = async <T>(path: string): Promise<T> => {
    const res = await fetch(`${url}/api/v1/${path}`);
    const body = (await res.json()) as { status: string; data: T; error?: string };
    if (body.status !== 'success') throw new Error(`prometheus ${path}: ${body.error ?? res.status}`);
    return body.data;
  };
  const query = async (expr: string): Promise<PromSample[]> => {
    const data = await api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(`query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new Error(`prometheus: ${expr} answers a ${data.resultType}, expected a vector`);
    return data.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
  };
  try {
    await eventually('prometheus ready', async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}: ${log().slice(-2000)}`);
      return (await fetch(`${url}/-/ready`).then((r) => r.ok, () => false)) || undefined;
    }, { timeoutMs: 30_000, intervalMs: 200 });
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    url,
    dir,
    query,
    scalar: async (expr) => {
      const r = await query(expr);
      if (r.length > 1) throw new Error(`${expr} answers ${r.length} series: ${JSON.stringify(r)}`);
      return r[0]?.value;
    },
    api,
    log,
    stop,
  };
};

/** The samples of a /metrics text (the exposition format), as "name{labels}" -> value, for checks without a server. */
export const parseExposition = (text: string): Map<string, number> =>
  new Map(
    text
      .split('\n')
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => {
        const at = l.lastIndexOf(' ');
        return [l.slice(0, at), Number(l.slice(at + 1))] as const;
      }),
  );
