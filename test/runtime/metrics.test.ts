// Metrics end to end: `nsm up` as the README runs it (authenticated, TLS) with --metrics-port, a
// real Prometheus (Debian's package) scraping it every second with the scrape configuration of
// infra/prometheus/ (both the plaintext listener and, with a token file, the HTTPS API), and a
// scenario driven with bin/nsm: an endpoint process and a static endpoint, connections from a
// client, the endpoint process killed (SIGKILL) so its registration lapses and its connections heal
// onto the other. The
// series are checked through Prometheus's query API against what the mesh itself says (nsm ls,
// nsm history, nsm status). Also: who may read /metrics on the HTTPS API, and what the plaintext
// listener shows (no connection id, no actor).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { httpsGet } from '../lib/https.ts';
import { startNsm, type NsmProcess, type NsmResult } from '../lib/nsmProcess.ts';
import { prometheusBinary, scrapeConfigFor, startPrometheus, type RunningPrometheus } from '../lib/prometheus.ts';
import { startSecureUp, type SecureUp } from '../lib/secureUp.ts';

interface Ctx {
  mesh?: SecureUp;
  metricsPort?: number;
  prom?: RunningPrometheus;
  endpoints: NsmProcess[];
  operatorToken?: string;
}
const s = suite<Ctx>('metrics: nsm up scraped by a real Prometheus through a connect, kill and heal scenario', { endpoints: [] });

const ok = async (m: SecureUp, who: string, args: string[]): Promise<NsmResult> => {
  const r = await m.nsm(who, args);
  assert.is(r.code, 0, `nsm ${args.join(' ')} as ${who}: ${r.stderr}`);
  return r;
};
const json = async <T>(m: SecureUp, who: string, args: string[]): Promise<T> => JSON.parse((await ok(m, who, [...args, '--json'])).stdout) as T;

interface Row {
  readonly id: string;
  readonly state: string;
  readonly networkServiceEndpointName?: string;
}
interface HistoryRow {
  readonly event: { readonly type: string; readonly time: string; readonly data: { readonly durationMs?: number } };
}

const CONNECTIONS = 6;

s.before(async (ctx) => {
  // Fails here, loudly, without Debian's prometheus package.
  prometheusBinary('prometheus');
  ctx.metricsPort = await freePort();
  ctx.mesh = await startSecureUp({ clients: ['alice'], upArgs: ['--metrics-port', String(ctx.metricsPort)] });
  const m = ctx.mesh;
  const token = (await ok(m, 'operator', ['token', '--ttl', '30m'])).stdout.trim();
  ctx.operatorToken = token;
  const tokenFile = join(m.dataDir, 'prometheus.token');
  writeFileSync(tokenFile, token, { mode: 0o600 });
  ctx.prom = await startPrometheus(
    scrapeConfigFor({ interval: '1s', target: `127.0.0.1:${ctx.metricsPort}`, api: { target: m.httpUrl.replace('https://', ''), tokenFile, caFile: m.caFile } }),
  );
});

s.after(async (ctx) => {
  for (const ep of ctx.endpoints) await ep.stop('SIGKILL', 2000);
  await ctx.prom?.stop();
  await ctx.mesh?.stop();
});

s('both scrape jobs are up: the plaintext listener, and the HTTPS API with a token file', async (ctx) => {
  const prom = ctx.prom!;
  await eventually('both targets up', async () => (await prom.query('up == 1')).length === 2, {
    timeoutMs: 30_000,
    describe: async () => (await prom.api<{ activeTargets: unknown[] }>('targets')).activeTargets,
  });
  assert.equal((await prom.query('up')).map((r) => r.metric.job).sort(), ['nsm', 'nsm-api']);
  const rules = await prom.api<{ groups: { name: string; rules: { name: string }[] }[] }>('rules');
  assert.equal(rules.groups.map((g) => [g.name, g.rules.length]), [['nsm', 8]], 'the alerting rules of infra/prometheus are loaded');
});

s('connect, kill an endpoint, heal: the series agree with the mesh', async (ctx) => {
  const m = ctx.mesh!;
  const prom = ctx.prom!;
  await ok(m, 'operator', ['service', 'register', 'web']);
  // ep-a runs as a process that refreshes its registration; ep-b is static, so that once ep-a is
  // gone and its connections healed nothing appends to the log any more.
  ctx.endpoints.push(startNsm(['endpoint', 'run', 'icmp-responder', '--dataplane', 'simulated', '--name', 'ep-a', '--service', 'web', '--node', 'n1', '--prefix', '10.60.0.0/24', '--expiration', '3s'], m.env('operator')));
  await ok(m, 'operator', ['endpoint', 'register', 'ep-b', '--service', 'web', '--node', 'n1', '--prefix', '10.61.0.0/24']);
  await eventually('both endpoints registered', async () => (await json<{ name: string }[]>(m, 'operator', ['ls', 'endpoints'])).length === 2, { timeoutMs: 30_000 });

  const ids: string[] = [];
  for (let i = 0; i < CONNECTIONS; i++) {
    const c = await json<Row>(m, 'alice', ['connect', 'web', '--node', 'n1', '--wait']);
    assert.is(c.state, 'established');
    ids.push(c.id);
  }
  const onA = (await json<Row[]>(m, 'operator', ['ls', 'connections'])).filter((c) => c.networkServiceEndpointName === 'ep-a').map((c) => c.id);
  assert.ok(onA.length > 0 && onA.length < CONNECTIONS, `least loaded first spreads them over both endpoints (${onA.length} on ep-a)`);

  // A command the control plane refuses: closing a connection that does not exist.
  const refused = await m.nsm('operator', ['close', 'no-such-connection']);
  assert.is(refused.code, 1, refused.stdout);

  // The endpoint process dies without unregistering: its registration lapses, its connections heal.
  await ctx.endpoints[0]!.stop('SIGKILL', 2000);
  const rows = await eventually(
    'every connection established on ep-b',
    async () => {
      const r = await json<Row[]>(m, 'operator', ['ls', 'connections']);
      return r.length === CONNECTIONS && r.every((c) => c.state === 'established' && c.networkServiceEndpointName === 'ep-b') ? r : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 500 },
  );
  assert.is(rows.length, CONNECTIONS);

  // What the log says: the heals, with their durations, and each setup from request to first establishment.
  let heals = 0;
  let healSeconds = 0;
  let setupSeconds = 0;
  for (const id of ids) {
    const events = (await json<HistoryRow[]>(m, 'auditor', ['history', id])).map((r) => r.event);
    const requested = Date.parse(events.find((e) => e.type === 'ConnectionRequested')!.time);
    setupSeconds += (Date.parse(events.find((e) => e.type === 'ConnectionEstablished')!.time) - requested) / 1000;
    for (const e of events.filter((x) => x.type === 'ConnectionHealed')) {
      heals++;
      healSeconds += e.data.durationMs! / 1000;
    }
  }
  assert.is(heals, onA.length, 'each connection of the dead endpoint healed once');
  const status = await json<{ position: number; connections: number; endpoints: number }>(m, 'operator', ['status']);

  // Prometheus, once it has scraped after all of that (the log does not move any more).
  const q = (expr: string) => prom.scalar(expr);
  await eventually('a scrape after the heals', async () => (await q('sum(nsm_connection_heal_duration_seconds_count{job="nsm"})')) === heals && (await q('nsm_live_view_position{job="nsm"}')) === status.position, {
    timeoutMs: 20_000,
    describe: async () => ({ heals: await q('sum(nsm_connection_heal_duration_seconds_count{job="nsm"})'), position: await q('nsm_live_view_position{job="nsm"}'), want: { heals, position: status.position } }),
  });
  const established = (await json<Row[]>(m, 'operator', ['ls', 'connections', '--state', 'established'])).length;
  assert.is(await q('sum(nsm_connections{job="nsm",state="established"})'), established, 'established connections: as nsm ls says');
  assert.is(await q('sum(nsm_connections{job="nsm"})'), status.connections, 'all states add up to nsm status');
  assert.is(await q('nsm_connections{job="nsm",state="established",service="web",node="n1"}'), CONNECTIONS);
  assert.is(await q('sum(nsm_connection_heal_duration_seconds_count{job="nsm",cause="endpoint-expired"})'), heals, 'the heals, by their cause');
  assert.ok(Math.abs((await q('sum(nsm_connection_heal_duration_seconds_sum{job="nsm"})'))! - healSeconds) < 1e-6, 'heal durations: the sum of the events\' durationMs');
  assert.is(await q('nsm_connection_setup_duration_seconds_count{job="nsm"}'), CONNECTIONS, 'every setup, once; a heal is no setup');
  assert.ok(Math.abs((await q('nsm_connection_setup_duration_seconds_sum{job="nsm"}'))! - setupSeconds) < 1e-6, 'setup durations: request to first establishment, by the events\' times');
  assert.is(await q('sum(nsm_commits_appended_total{job="nsm"})'), status.position, 'this process appended every commit of the log');
  assert.is(await q('nsm_commands_handled_total{job="nsm",kind="connection.request"}'), CONNECTIONS);
  assert.is(await q('nsm_commands_refused_total{job="nsm",kind="connection.close",reason="not-found"}'), 1);
  assert.is(await q('sum(nsm_endpoints{job="nsm"})'), status.endpoints);
  assert.is(await q('nsm_endpoints{job="nsm",service="web",node="n1"}'), 1, 'ep-a expired: ep-b is left');
  assert.is(await q('nsm_node_ready{job="nsm",node="n1"}'), 1);
  assert.is(await q('nsm_nodes{job="nsm",status="lost"}'), 0);
  assert.is(await q('nsm_live_view_lag_commits{job="nsm"}'), 0);
  assert.is(await q('nsm_node_command_consumer_pending_messages{job="nsm",node="n1"}'), 0, 'the agent has taken every node command');
  assert.is(await q('nsm_command_consumer_pending_messages{job="nsm"}'), 0);
  assert.is(await q('nsm_leader{job="nsm"}'), 1);
  // Two sides per connection, and again for each healed one (a new plan generation).
  assert.ok((await q('sum(nsm_dataplane_program_duration_seconds_count{job="nsm",mechanism="kernel"})'))! >= 2 * (CONNECTIONS + heals));
  assert.is(await q('sum(nsm_dataplane_program_failures_total{job="nsm"})'), undefined, 'nothing failed to program');
  assert.ok((await q('process_resident_memory_bytes{job="nsm"}'))! > 10 * 1024 * 1024);
  assert.ok((await q('nodejs_eventloop_lag_seconds{job="nsm"}')) !== undefined, 'event-loop lag is exported');
  // The same registry through the HTTPS API.
  assert.is(await q('sum(nsm_connections{job="nsm-api",state="established"})'), established);

  process.stderr.write(`metrics scenario: ${CONNECTIONS} connections, ${heals} heals (mean ${(healSeconds / heals).toFixed(2)} s), setup mean ${((setupSeconds / CONNECTIONS) * 1000).toFixed(1)} ms, log position ${status.position}\n`);
});

s('/metrics on the HTTPS API: 401 without a token, 403 for a client, 200 for the operator and the auditor', async (ctx) => {
  const m = ctx.mesh!;
  const url = `${m.httpUrl}/metrics`;
  const none = await httpsGet(url, { caFile: m.caFile });
  assert.is(none.status, 401, none.text);
  assert.is(none.headers['www-authenticate'], 'Bearer');
  const alice = (await ok(m, 'alice', ['token', '--ttl', '5m'])).stdout.trim();
  const forbidden = await httpsGet(url, { caFile: m.caFile, headers: { authorization: `Bearer ${alice}` } });
  assert.is(forbidden.status, 403, forbidden.text);
  assert.match((JSON.parse(forbidden.text) as { error: string }).error, /^\/metrics is for the roles that may ask "status" \(operator, auditor\): forbidden: alice \(client\)/);
  for (const token of [ctx.operatorToken!, (await ok(m, 'auditor', ['token', '--ttl', '5m'])).stdout.trim()]) {
    const r = await httpsGet(url, { caFile: m.caFile, headers: { authorization: `Bearer ${token}` } });
    assert.is(r.status, 200, r.text);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    assert.match(r.text, /^nsm_connections\{state="established",service="web",node="n1"\} \d+$/m);
  }
});

s('the plaintext listener: /metrics without a token, nothing else, and no connection id or actor in it', async (ctx) => {
  const m = ctx.mesh!;
  const base = `http://127.0.0.1:${ctx.metricsPort}`;
  const r = await fetch(`${base}/metrics`);
  assert.is(r.status, 200);
  const text = await r.text();
  assert.match(text, /^# TYPE nsm_connection_heal_duration_seconds histogram$/m);
  const ids = (await json<Row[]>(m, 'operator', ['ls', 'connections', '--all'])).map((c) => c.id);
  assert.ok(ids.length >= CONNECTIONS);
  for (const id of ids) assert.not.ok(text.includes(id), `connection id ${id} in /metrics`);
  assert.not.ok(/alice/.test(text), 'no actor in /metrics');
  assert.is((await fetch(`${base}/api/v1/status`)).status, 404, 'the listener serves /metrics only');
  assert.is((await fetch(`${base}/metrics`, { method: 'POST' })).status, 405);
});

s.run();
