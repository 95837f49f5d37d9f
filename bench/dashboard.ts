// The dashboard at size: the page in headless Chromium (Debian's, as in the tests) against a
// control plane's HTTP API, with the mesh grown to each size in turn on simulated dataplanes:
// the time to the first picture (navigation to the first render, and to the frame that shows
// it), the browser's memory with the page loaded, and how long a connection established while
// the page is open takes to be on it, and how long the slider takes to show an earlier moment
// (a replay of the log up to it). Every figure is also given as a ratio to the smallest
// size, measured in the same run. At the largest size the graph is aggregated (DRAW_LIMIT in
// src/dashboard/graph.ts); it is also loaded once with every connection drawn one by one, which
// is what the aggregation avoids.
// Usage: npm run bench:dashboard [-- --sizes 100,1000,10000 --loads 3 --updates 20 --screenshot FILE]
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { Page } from 'playwright-core';
import { freePort } from '../infra/net.ts';
import { DRAW_LIMIT } from '../src/dashboard/graph.ts';
import { launchChromium, type Chromium } from '../test/lib/browser.ts';
import { startBenchMesh, type BenchMesh } from './lib/mesh.ts';
import { distribution, fmt, ok, printTable, writeResult, type Distribution } from './lib/report.ts';

const { values: a } = parseArgs({
  options: {
    sizes: { type: 'string', default: '100,1000,10000' },
    nodes: { type: 'string', default: '10' },
    services: { type: 'string', default: '5' },
    endpoints: { type: 'string', default: '20' },
    loads: { type: 'string', default: '3' },
    updates: { type: 'string', default: '20' },
    inflight: { type: 'string', default: '128' },
    'skip-unaggregated': { type: 'boolean', default: false },
    screenshot: { type: 'string' },
  },
});
const SIZES = a.sizes!.split(',').map(Number).sort((x, y) => x - y);
const NODES = Number(a.nodes);
const SERVICES = Number(a.services);
const ENDPOINTS = Number(a.endpoints);
const LOADS = Number(a.loads);
const UPDATES = Number(a.updates);
const INFLIGHT = Number(a.inflight);
const log = (msg: string) => process.stderr.write(`[dashboard] ${msg}\n`);

interface Shown {
  readonly connections: number;
  readonly aggregated: boolean;
  readonly drawnEdges: number;
  readonly firstRenderMs?: number;
  readonly firstFrameMs?: number;
}

interface Measured {
  readonly connections: number;
  readonly drawLimit: number;
  readonly aggregated: boolean;
  readonly drawnEdges: number;
  /** Navigation start to the first picture laid out and handed to cytoscape, per load. */
  readonly firstRenderMs: Distribution;
  /** Navigation start to two animation frames later (the canvas drawn), per load. */
  readonly firstFrameMs: Distribution;
  /** The page's JS heap after a forced GC, with the page loaded. */
  readonly jsHeapBytes: number;
  /** Proportional set size of every Chromium process, with this page the only one open. */
  readonly browserPssBytes: number;
  /** ConnectionEstablished's time in the log to the next animation frame after the page rendered it. */
  readonly liveUpdateMs: Distribution;
  /** The slider set to a past position (a quarter, half and three quarters of the log) to that picture shown, the page's 250 ms debounce included. */
  readonly timeTravelMs: Distribution;
  /** The log position at the end (what a replay folds up to). */
  readonly logPosition: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const until = async <T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, intervalMs = 20): Promise<T> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
};

/** The PSS of this process's Chromium descendants (/proc: shared pages counted once, split among their users). */
const chromiumPss = (): number => {
  const parent = new Map<number, number>();
  const name = new Map<number, string>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      name.set(Number(d), stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')));
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      // Gone meanwhile.
    }
  }
  const mine = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  let total = 0;
  for (const [pid, comm] of name) {
    if (!/chrom/i.test(comm) || !mine(pid)) continue;
    try {
      total += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))?.[1] ?? 0) * 1024;
    } catch {
      // Gone meanwhile.
    }
  }
  return total;
};

const shownOf = (page: Page): Promise<Shown> => page.evaluate(() => (window as unknown as { nsmDashboard: { state(): Shown } }).nsmDashboard.state());

let mesh: BenchMesh | undefined;
let browser: Chromium | undefined;
const cleanup = async () => {
  await browser?.close().catch(() => undefined);
  browser = undefined;
  await mesh?.stop().catch(() => undefined);
  mesh = undefined;
};
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => void cleanup().finally(() => process.exit(130)));
}

try {
  const httpPort = await freePort();
  mesh = await startBenchMesh({ domain: 'dashboard', controlPlaneArgs: ['--http-port', String(httpPort), '--http-host', '127.0.0.1'] });
  const base = `http://127.0.0.1:${httpPort}`;
  await until('the HTTP API', async () => ((await fetch(`${base}/healthz`).catch(() => undefined))?.ok ? true : undefined), 30_000, 200);
  const nodes = Array.from({ length: NODES }, (_, i) => `n${i}`);
  await mesh.addAgents(nodes);
  const c = await mesh.client('bench');
  const services = Array.from({ length: SERVICES }, (_, i) => `svc-${String.fromCharCode(97 + i)}`);
  for (const s of services) ok(await c.send('service.register', { name: s }));
  for (let i = 0; i < ENDPOINTS; i++) {
    ok(await c.send('endpoint.register', { name: `ep${i}`, node: nodes[i % NODES]!, prefix: `10.${64 + i}.0.0/16`, networkServiceNames: [services[i % SERVICES]!] }));
  }
  let made = 0;
  const connect = async (i: number): Promise<string> => {
    const id = randomUUID();
    ok(await c.send('connection.request', { connectionId: id, networkService: services[i % SERVICES]!, clientNode: nodes[Math.floor(i / SERVICES) % NODES]! }));
    const s = ok(await c.waitForConnection(id, 300_000));
    if (s.state !== 'established') throw new Error(`connection ${id} ${s.state}: ${s.reason}`);
    return id;
  };
  const growTo = async (n: number) => {
    const t0 = Date.now();
    const start = made;
    let next = start;
    await Promise.all(
      Array.from({ length: Math.min(INFLIGHT, n - start) }, async () => {
        while (next < n) await connect(next++);
      }),
    );
    made = n;
    log(`${n} connections (${n - start} set up in ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  };

  browser = await launchChromium({ screenshots: '/tmp', viewport: { width: 1280, height: 800 } });
  const b = browser;

  /** Loads the page; the page once its first picture is on screen, and what it shows. */
  const load = async (hash: string, expected: number): Promise<{ page: Page; shown: Shown }> => {
    const page = await b.page();
    await page.goto(`${base}/${hash}`, { waitUntil: 'load', timeout: 600_000 });
    const shown = await until('the first picture on screen', async () => {
      const s = await shownOf(page);
      return s.firstFrameMs !== undefined ? s : undefined;
    }, 600_000, 50);
    if (shown.connections !== expected) throw new Error(`the page shows ${shown.connections} connections, the mesh has ${expected}`);
    return { page, shown };
  };

  /** `updates` connections set up one after another while the page is open: how long each takes to be on it. */
  const liveUpdates = async (page: Page, updates: number): Promise<number[]> => {
    await page.evaluate(`(() => {
      window.watch = new Set();
      window.shownAt = {};
      document.addEventListener('nsm:rendered', () => requestAnimationFrame(() => {
        const now = Date.now();
        for (const id of [...window.watch]) if (window.nsmDashboard.connectionState(id) === 'established') { window.shownAt[id] = now; window.watch.delete(id); }
      }));
    })()`);
    const out: number[] = [];
    for (let k = 0; k < updates; k++) {
      const id = randomUUID();
      await page.evaluate(`window.watch.add(${JSON.stringify(id)})`);
      ok(await c.send('connection.request', { connectionId: id, networkService: services[made % SERVICES]!, clientNode: nodes[Math.floor(made / SERVICES) % NODES]! }));
      const s = ok(await c.waitForConnection(id, 60_000));
      if (s.state !== 'established') throw new Error(`connection ${id} ${s.state}: ${s.reason}`);
      made++;
      const rows = ok(await c.query<{ event: { type: string; time: string } }[]>('history', { id }));
      const establishedAt = Date.parse(rows.find((r) => r.event.type === 'ConnectionEstablished')!.event.time);
      const shownAt = await until(`connection ${id} on the page`, async () => (await page.evaluate(`window.shownAt[${JSON.stringify(id)}]`)) as number | undefined, 60_000);
      out.push(shownAt - establishedAt);
      // Apart, so that each is a render of its own and not one of a burst.
      await sleep(250);
    }
    return out;
  };

  /** The slider moved to earlier positions: how long until the page shows the mesh as of each. */
  const timeTravel = async (page: Page): Promise<{ ms: number[]; position: number }> => {
    const position = (await page.evaluate(`window.nsmDashboard.state().livePosition`)) as number;
    const out: number[] = [];
    for (const f of [0.25, 0.5, 0.75]) {
      const at = Math.max(1, Math.floor(position * f));
      const t0 = Date.now();
      await page.locator('#slider').fill(String(at));
      await until(`the picture as of ${at}`, async () => ((await page.evaluate(`window.nsmDashboard.state().shownPosition`)) === at ? true : undefined), 600_000);
      out.push(Date.now() - t0);
    }
    await page.locator('#live').click();
    await until('live again', async () => ((await page.evaluate(`window.nsmDashboard.state().live`)) ? true : undefined), 60_000);
    return { ms: out, position };
  };

  /** Memory with this one page open: its JS heap after a GC, and every Chromium process's PSS. */
  const memory = async (page: Page): Promise<{ jsHeapBytes: number; browserPssBytes: number }> => {
    const cdp = await page.context().newCDPSession(page);
    await cdp.send('HeapProfiler.enable');
    await cdp.send('HeapProfiler.collectGarbage');
    await cdp.send('Performance.enable');
    const { metrics } = await cdp.send('Performance.getMetrics');
    await cdp.detach();
    await sleep(500);
    return { jsHeapBytes: metrics.find((m) => m.name === 'JSHeapUsedSize')?.value ?? NaN, browserPssBytes: chromiumPss() };
  };

  const measure = async (hash: string, drawLimit: number, loads: number, updates: number, screenshot?: string): Promise<Measured> => {
    const expected = made;
    const renders: number[] = [];
    const frames: number[] = [];
    let last: { page: Page; shown: Shown } | undefined;
    for (let i = 0; i < loads; i++) {
      if (last) await last.page.close();
      last = await load(hash, expected);
      renders.push(last.shown.firstRenderMs!);
      frames.push(last.shown.firstFrameMs!);
    }
    const { page, shown } = last!;
    const mem = await memory(page);
    if (screenshot) await page.screenshot({ path: screenshot });
    const live = await liveUpdates(page, updates);
    const travel = await timeTravel(page);
    await page.close();
    log(`${expected} connections${hash ? ` (${hash})` : ''}: first frame p50 ${fmt(distribution(frames).p50)} ms, live update p50 ${fmt(distribution(live).p50)} ms`);
    return {
      connections: expected,
      drawLimit,
      aggregated: shown.aggregated,
      drawnEdges: shown.drawnEdges,
      firstRenderMs: distribution(renders),
      firstFrameMs: distribution(frames),
      ...mem,
      liveUpdateMs: distribution(live),
      timeTravelMs: distribution(travel.ms),
      logPosition: travel.position,
    };
  };

  // A first load builds the page's bundle on the server (esbuild, once per process): not measured.
  await growTo(SIZES[0]!);
  await (await load('', made)).page.close();

  const results: Measured[] = [];
  for (const size of SIZES) {
    await growTo(size);
    results.push(await measure('', DRAW_LIMIT, LOADS, UPDATES, size === SIZES[SIZES.length - 1] ? a.screenshot : undefined));
  }
  const largest = results[results.length - 1]!;
  let unaggregated: Measured | undefined;
  if (!a['skip-unaggregated'] && largest.aggregated) {
    // The same mesh drawn one edge per connection: what DRAW_LIMIT spares the browser.
    const limit = made * 2;
    unaggregated = await measure(`#draw-limit=${limit}`, limit, 1, Math.min(5, UPDATES));
  }

  const baseline = results[0]!;
  const row = (r: Measured, label: string) => [
    label,
    r.aggregated ? `aggregated, ${r.drawnEdges} edges` : `${r.drawnEdges} edges`,
    r.firstRenderMs.p50,
    r.firstFrameMs.p50,
    r.firstFrameMs.p50 / baseline.firstFrameMs.p50,
    r.jsHeapBytes / 2 ** 20,
    r.jsHeapBytes / baseline.jsHeapBytes,
    r.browserPssBytes / 2 ** 20,
    r.browserPssBytes / baseline.browserPssBytes,
    r.liveUpdateMs.p50,
    r.liveUpdateMs.p99,
    r.liveUpdateMs.p50 / baseline.liveUpdateMs.p50,
    r.timeTravelMs.p50,
    r.timeTravelMs.p50 / baseline.timeTravelMs.p50,
  ];
  printTable(
    `Dashboard in headless Chromium (${NODES} nodes, ${SERVICES} services, ${ENDPOINTS} endpoints, simulated dataplane; draw limit ${DRAW_LIMIT}); ratios to ${baseline.connections} connections`,
    ['connections', 'graph', 'first render p50 ms', 'first frame p50 ms', 'ratio', 'JS heap MiB', 'ratio', 'browser PSS MiB', 'ratio', 'live update p50 ms', 'p99 ms', 'ratio', 'time travel p50 ms', 'ratio'],
    [...results.map((r) => row(r, String(r.connections))), ...(unaggregated ? [row(unaggregated, `${unaggregated.connections}, one edge each`)] : [])],
  );
  const file = writeResult('dashboard', {
    parameters: { sizes: SIZES, nodes: NODES, services: SERVICES, endpoints: ENDPOINTS, loads: LOADS, updates: UPDATES, drawLimit: DRAW_LIMIT, dataplane: 'simulated', browser: 'Debian chromium, headless, 1280x800', controlPlane: 'separate process, --insecure (no TLS, no token)' },
    results,
    unaggregated,
    ratiosToBaseline: results.map((r) => ({
      connections: r.connections,
      firstFrame: r.firstFrameMs.p50 / baseline.firstFrameMs.p50,
      jsHeap: r.jsHeapBytes / baseline.jsHeapBytes,
      browserPss: r.browserPssBytes / baseline.browserPssBytes,
      liveUpdate: r.liveUpdateMs.p50 / baseline.liveUpdateMs.p50,
      timeTravel: r.timeTravelMs.p50 / baseline.timeTravelMs.p50,
    })),
  });
  process.stdout.write(`\nwrote ${file}${a.screenshot ? ` and ${a.screenshot}` : ''}\n`);
} finally {
  await cleanup();
}
