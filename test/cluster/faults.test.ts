// The mesh on a 3-server NATS cluster (secure default: TLS routes with certificates both ways,
// the same per-role permissions on every server), 2 control-plane replicas and 2 agents
// (simulated dataplane), all bin/nsm processes, under faults (docs/operations.md):
//   1. the event stream leader's server SIGKILLed in the middle of 500 connection requests;
//   2. the lease holder's control plane SIGKILLed during a heal of the 500 connections;
//   3. (test/cluster/partition.test.ts);
//   4. an agent's server SIGKILLed: the agent reconnects to another and keeps its sides;
//   5. the whole cluster stopped and restarted: the read model as before, field by field, and
//      the agents reconcile without re-programming a side.
// "Exactly once" is counted on the event log; `nsm audit verify` runs after each fault.
// Each prints the window it measured (timing is reported, never asserted).
import { spawnSync } from 'node:child_process';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { eventsOf, notOnce, startSecureCluster, type SecureCluster } from '../lib/secureCluster.ts';

// 100 by default, to keep the file near 2 min; NSM_CLUSTER_TEST_CONNECTIONS=500 for the issue's
// figure. A heal on this cluster plans about 5 connections a second, every connection's new path
// before the first is established (measured: about 470 of 500 planned in 97 s), so the heal's waits
// grow with N.
const N = Number(process.env.NSM_CLUSTER_TEST_CONNECTIONS ?? 100);
const HEAL_STARTS_MS = Math.max(120_000, N * 500);
const HEAL_ENDS_MS = Math.max(240_000, N * 1200);
const IN_FLIGHT = 25;

type Ctx = { cl?: SecureCluster; ids: string[] };
const s = suite<Ctx>('a 3-server NATS cluster, 2 control planes, 2 agents: faults', { ids: [] });

// NSM_CLUSTER_NATS_SERVER (.ci/run builds 2.15.3 with Go) is this file's nats-server, whatever
// NSM_NATS_SERVER says for the rest of the suite (Debian's 2.9 there).
if (process.env.NSM_CLUSTER_NATS_SERVER) process.env.NSM_NATS_SERVER = process.env.NSM_CLUSTER_NATS_SERVER;

/**
 * The nats-server nsm up will run (NSM_CLUSTER_NATS_SERVER or NSM_NATS_SERVER, else the PATH's). These faults were made to
 * pass on 2.15.3; on Debian's 2.9.10 a run passed cases 1, 2, 4 and failed 5 (a control plane
 * exited at start: the streams did not answer yet; it waits for them now), and the next run
 * stalled a heal for minutes (not understood): below 2.10 the file says so and is skipped.
 */
const serverVersion = spawnSync(process.env.NSM_NATS_SERVER || 'nats-server', ['--version'], { encoding: 'utf8' }).stdout?.match(/v(\d+)\.(\d+)\.(\d+)/);
const skipWhy =
  !serverVersion
    ? 'no nats-server found (set NSM_NATS_SERVER)'
    : Number(serverVersion[1]) === 2 && Number(serverVersion[2]) < 10
      ? `nats-server ${serverVersion[0]} is older than 2.10: the cluster faults are shown on 2.15.3 (set NSM_CLUSTER_NATS_SERVER; .ci/run builds it; docs/operations.md)`
      : undefined;
if (skipWhy) {
  s.skip(`skipped: ${skipWhy}`);
  process.stderr.write(`\n  SKIP  test/cluster/faults.test.ts: ${skipWhy}\n\n`);
}

const say = (line: string) => process.stdout.write(`    ${line}\n`);

/** A test that, when it fails, prints what the processes warned of meanwhile (the last 60 lines). */
const test = (name: string, fn: (ctx: Ctx) => Promise<void>) =>
  skipWhy ? undefined : s(name, async (ctx) => {
    const since = Date.now();
    try {
      await fn(ctx);
    } catch (e) {
      for (const line of ctx.cl?.problems(since).slice(-60) ?? []) say(line);
      throw e;
    }
  });

if (!skipWhy) s.before(async (ctx) => {
  ctx.cl = await startSecureCluster({ nodes: ['n1', 'n2'], clients: ['web'], controlPlanes: 2, cpArgs: ['--node-timeout', '60s'] });
  const cl = ctx.cl;
  // The default limits (20 requests a second, 32 being set up) would refuse part of a burst of
  // requests held back by a fault and let through all at once: what is measured here is the fault.
  for (const args of [
    ['limits', 'set', '--client', 'web', '--connections', '100000', '--pending', '100000', '--rate', '100000'],
    ['service', 'register', 'svc'],
    ['endpoint', 'register', 'ep-a', '--service', 'svc', '--node', 'n2', '--prefix', '10.70.0.0/16'],
  ]) {
    const r = await cl.nsm('operator', args);
    assert.is(r.code, 0, r.stderr);
  }
});
if (!skipWhy) s.after(async (ctx) => {
  await ctx.cl?.stop();
});

const auditVerify = async (cl: SecureCluster, after: string) => {
  const r = await cl.nsm('operator', ['audit', 'verify'], 180_000);
  assert.is(r.code, 0, `nsm audit verify after ${after}: ${r.stdout}\n${r.stderr}`);
  say(`nsm audit verify after ${after}: ${r.stdout.trim().split('\n').pop()}`);
};

/** Waits until every stream has a leader and all 3 replicas current again. */
const healthy = (cl: SecureCluster) =>
  eventually('every stream led, with 3 current replicas', async () => {
    const st = await cl.status().catch(() => undefined);
    return st && st.streams.every((x) => x.leader && x.peers.length === 3 && x.peers.every((p) => p.current && !p.offline)) ? st : undefined;
  }, { timeoutMs: 120_000, intervalMs: 1000 });

const states = async (c: MeshClient, ids: readonly string[]) => {
  const all = await c.queryAll<{ id: string; state: string; networkServiceEndpointName?: string }>('connections');
  if (E.isLeft(all)) return undefined;
  const want = new Set(ids);
  return all.right.filter((x) => want.has(x.id));
};

test('1. the event stream leader\'s server SIGKILLed in the middle of 500 requests: each established exactly once, none lost', async (ctx) => {
  const cl = ctx.cl!;
  await healthy(cl);
  const before = await cl.status();
  const leader = before.streams.find((x) => x.stream.endsWith('_EVENTS'))!.leader!;
  const victim = cl.indexOf(leader);
  const retries: number[] = [];
  const web = await cl.client('web', { onPublishRetry: () => retries.push(Date.now()) });
  const ids = Array.from({ length: N }, (_, i) => `k1-${i}`);
  ctx.ids = ids;
  const answered: { sent: number; at: number }[] = [];
  const failed: string[] = [];
  const unanswered: { id: string; sent: number }[] = [];
  let killAt = 0;
  let killed: Promise<void> = Promise.resolve();
  let next = 0;
  const worker = async () => {
    for (let i = next++; i < ids.length; i = next++) {
      const sent = Date.now();
      const r = await web.send('connection.request', { connectionId: ids[i]!, networkService: 'svc', clientNode: 'n1' });
      if (E.isRight(r)) answered.push({ sent, at: Date.now() });
      // No answer in time is not a loss: the command is stored and runs (checked on the log below).
      else if (r.left.code === 'timeout') unanswered.push({ id: ids[i]!, sent });
      else failed.push(`${ids[i]}: ${r.left.code} ${r.left.message}`);
      if (answered.length >= Math.floor(N * 0.3) && killAt === 0) {
        killAt = Date.now();
        killed = cl.killServer(victim);
      }
    }
  };
  // The killed server is started again whatever happens, so that the next tests have 3 servers.
  try {
    const t0 = Date.now();
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const t1 = Date.now();
    assert.equal(failed, [], 'no request refused');
    assert.ok(killAt > 0, 'the server was killed mid-run');
    const operator = await cl.client('operator');
    const settled = await eventually('all connections established', async () => {
      const st = await states(operator, ids);
      return st && st.length === ids.length && st.every((x) => x.state === 'established') ? st : undefined;
    }, { timeoutMs: 180_000, intervalMs: 1000, describe: async () => (await states(operator, ids))?.filter((x) => x.state !== 'established').slice(0, 5) });
    assert.is(settled.length, N);

    const log = await cl.log();
    const idOf = (stream: string) => stream.slice('connection.'.length);
    const requested = notOnce(eventsOf(log, 'ConnectionRequested').map((e) => idOf(e.stream)).filter((id) => id.startsWith('k1-')), ids);
    const established = notOnce(eventsOf(log, 'ConnectionEstablished').map((e) => idOf(e.stream)).filter((id) => id.startsWith('k1-')), ids);
    assert.equal(requested, { missing: [], repeated: [] }, 'one ConnectionRequested per connection');
    assert.equal(established, { missing: [], repeated: [] }, 'one ConnectionEstablished per connection');
    assert.equal(notOnce(log.map((c) => c.commitId), []).repeated, [], 'no commit stored twice');

    const firstFail = retries.find((t) => t >= killAt);
    const firstOkAfter = firstFail === undefined ? undefined : answered.map((a) => a.at).filter((t) => t > firstFail).sort((a, b) => a - b)[0];
    const sorted = answered.map((a) => a.at).sort((a, b) => a - b);
    let gap = 0;
    for (let i = 1; i < sorted.length; i++) if (sorted[i]! >= killAt) gap = Math.max(gap, sorted[i]! - sorted[i - 1]!);
    const latencies = answered.map((a) => a.at - a.sent).sort((a, b) => a - b);
    const requestedAt = new Map(eventsOf(log, 'ConnectionRequested').map((e) => [idOf(e.stream), Date.parse(e.time)]));
    const lateRun = unanswered.map((u) => (requestedAt.get(u.id) ?? NaN) - u.sent).sort((a, b) => a - b);
    say(`killed ${leader} (leader of the event stream) after ${Math.floor(N * 0.3)} answers; ${N} requests in ${t1 - t0} ms, ${IN_FLIGHT} in flight`);
    say(`publish attempts retried after the kill: ${retries.filter((t) => t >= killAt).length}; first failed attempt ${firstFail ? firstFail - killAt : '-'} ms after the kill; first answer after it ${firstFail && firstOkAfter ? firstOkAfter - firstFail : '-'} ms later`);
    const at = (xs: number[], q: number) => xs[Math.min(xs.length - 1, Math.floor(xs.length * q))];
    say(`longest time without an answer after the kill: ${gap} ms; answered requests' latency p50 ${at(latencies, 0.5)} ms, p99 ${at(latencies, 0.99)} ms, max ${at(latencies, 1)} ms`);
    say(`requests with no answer within the client's 60 s (stored, and carried out once all the same): ${unanswered.length}${unanswered.length ? `; the control plane decided them ${at(lateRun, 0)} to ${at(lateRun, 1)} ms after they were sent` : ''}`);
  } finally {
    await killed;
    if (killAt > 0) await cl.restartServer(victim);
  }
  await healthy(cl);
  await auditVerify(cl, 'the leader\'s server was killed');
});

test('2. the lease holder\'s control plane SIGKILLed during a heal of 500 connections: the other takes over, each healed exactly once', async (ctx) => {
  const cl = ctx.cl!;
  const ids = ctx.ids;
  assert.is(ids.length, N, 'test 1 made the connections');
  const r = await cl.nsm('operator', ['endpoint', 'register', 'ep-b', '--service', 'svc', '--node', 'n2', '--prefix', '10.71.0.0/16']);
  assert.is(r.code, 0, r.stderr);
  const st = await cl.status();
  assert.ok(st.lease, 'a control plane holds the lease');
  const holderPid = Number(st.lease!.replica.split(':')[1]);
  const holder = cl.controlPlanes.find((p) => p.pid === holderPid);
  assert.ok(holder, `the lease holder ${st.lease!.replica} is one of the control planes (${cl.controlPlanes.map((p) => p.pid).join(', ')})`);
  const other = cl.controlPlanes.find((p) => p !== holder)!;
  const operator = await cl.client('operator');
  const unregistered = Date.now();
  const u = await cl.nsm('operator', ['endpoint', 'unregister', 'ep-a']);
  assert.is(u.code, 0, u.stderr);
  await eventually('the heal under way', async () => {
    const x = await states(operator, ids);
    const moved = x?.filter((c) => c.networkServiceEndpointName === 'ep-b' && c.state === 'established').length ?? 0;
    return moved >= N * 0.1 && moved < N ? moved : undefined;
  }, { timeoutMs: HEAL_STARTS_MS, intervalMs: 50 });
  const killAt = Date.now();
  holder!.child.kill('SIGKILL');
  await holder!.exited;
  const moved = await eventually('every connection healed to ep-b', async () => {
    const x = await states(operator, ids);
    return x && x.length === N && x.every((c) => c.state === 'established' && c.networkServiceEndpointName === 'ep-b') ? x : undefined;
  }, { timeoutMs: HEAL_ENDS_MS, intervalMs: 1000, describe: async () => (await states(operator, ids))?.filter((c) => c.networkServiceEndpointName !== 'ep-b' || c.state !== 'established').slice(0, 5) });
  assert.is(moved.length, N);

  const log = await cl.log();
  const idOf = (stream: string) => stream.slice('connection.'.length);
  const healed = eventsOf(log, 'ConnectionHealed').filter((e) => idOf(e.stream).startsWith('k1-'));
  assert.equal(notOnce(healed.map((e) => idOf(e.stream)), ids), { missing: [], repeated: [] }, 'one ConnectionHealed per connection');
  assert.equal(notOnce(eventsOf(log, 'ConnectionHealing').map((e) => idOf(e.stream)).filter((id) => id.startsWith('k1-')), ids), { missing: [], repeated: [] }, 'one ConnectionHealing per connection');
  assert.equal(notOnce(log.map((c) => c.commitId), []).repeated, [], 'no commit stored twice');
  const times = healed.map((e) => Date.parse(e.time)).sort((a, b) => a - b);
  const resumed = times.find((t) => t > killAt);
  const took = other.logs('became leader: running timers and death detection').map((l) => Date.parse(String(l.time))).filter((t) => t > killAt)[0];
  say(`killed the lease holder ${st.lease!.replica} with ${times.filter((t) => t <= killAt).length} of ${N} healed; the other replica led ${took ? took - killAt : '-'} ms later; the next heal ${resumed ? resumed - killAt : '-'} ms after the kill; all healed ${times[times.length - 1]! - unregistered} ms after the unregister`);
  await cl.startControlPlane();
  await auditVerify(cl, 'the lease holder was killed');
});

/** The cluster server (1-based) an agent process is connected to, from the kernel's socket table. */
const serverOfProcess = (cl: SecureCluster, pid: number): number | undefined => {
  const ss = spawnSync('ss', ['-tnpH', 'state', 'established'], { encoding: 'utf8' });
  for (const line of ss.stdout.split('\n')) {
    if (!line.includes(`pid=${pid},`)) continue;
    const peer = line.trim().split(/\s+/)[3] ?? '';
    const port = Number(peer.slice(peer.lastIndexOf(':') + 1));
    const k = cl.servers.find((x) => x.clientPort === port)?.index;
    if (k !== undefined) return k;
  }
  return undefined;
};

test("4. an agent's server SIGKILLed: the agent reconnects to another server and keeps its connections", async (ctx) => {
  const cl = ctx.cl!;
  await healthy(cl);
  const agent = cl.agents.get('n1')!;
  const k = serverOfProcess(cl, agent.pid);
  assert.ok(k, 'the agent is connected to one of the servers');
  const programmedBefore = agent.logs('side programmed').length;
  const reconciledBefore = agent.logs('reconciled').length;
  const killAt = Date.now();
  await cl.killServer(k!);
  try {
    await eventually('the agent reconnected', () => agent.logs('reconnected to NATS').map((l) => Date.parse(String(l.time))).find((t) => t > killAt), { timeoutMs: 60_000 });
    const reconnectAt = agent.logs('reconnected to NATS').map((l) => Date.parse(String(l.time))).find((t) => t > killAt)!;
    const now = serverOfProcess(cl, agent.pid);
    assert.ok(now !== undefined && now !== k, `the agent is on another server now (${now})`);
    const reconciled = await eventually('the agent reconciled after reconnecting', () => agent.logs('reconciled').slice(reconciledBefore).find((l) => l.afterReconnect === true), { timeoutMs: 60_000 });
    assert.is(reconciled.created, 0, 'nothing re-programmed');
    assert.is(reconciled.removed, 0, 'nothing removed');
    assert.is(reconciled.unchanged, reconciled.desired, 'every side left as it was');
    assert.is(agent.logs('side programmed').length, programmedBefore, 'no side programmed again');
    const web = await cl.client('web');
    const id = 'k4-after';
    const req = await web.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n1' });
    assert.ok(E.isRight(req), JSON.stringify(req));
    assert.equal(E.map((x: { state: string }) => x.state)(await web.waitForConnection(id, 60_000)), E.right('established'), 'a new connection through the agent');
    say(`killed server ${k} under agent n1: reconnected to server ${now} ${reconnectAt - killAt} ms later; reconciled ${reconciled.desired} sides, ${reconciled.unchanged} unchanged, 0 programmed`);
  } finally {
    await cl.restartServer(k!);
  }
  await healthy(cl);
  await auditVerify(cl, "an agent's server was killed");
});

/** The read model as the operator sees it: every list query, with what changes by itself (heartbeats, ages) left out. */
const readModel = async (c: MeshClient) => {
  const out: Record<string, unknown> = {};
  for (const q of ['services', 'endpoints', 'connections', 'nodes', 'addresses', 'policy', 'limits']) {
    const r = q === 'connections' || q === 'endpoints' ? await c.queryAll(q) : await c.query(q);
    if (E.isLeft(r)) throw new Error(`${q}: ${r.left.message}`);
    out[q] = JSON.parse(JSON.stringify(r.right, (k, v) => (/heartbeat|lastSeen|lastHeard|age/i.test(k) ? undefined : v)));
  }
  return out;
};

test('5. the whole cluster stopped and restarted: the read model as before, and the agents program nothing again', async (ctx) => {
  const cl = ctx.cl!;
  await healthy(cl);
  const operator = await cl.client('operator');
  const before = await readModel(operator);
  const status = must(await operator.query<{ position: number }>('status'));
  const agents = [...cl.agents.values()];
  const programmed = agents.map((a) => a.logs('side programmed').length);
  const reconciled = agents.map((a) => a.logs('reconciled').length);
  const { downAt, upAt } = await cl.restartCluster();
  const fresh = await cl.client('operator');
  const after = await eventually('the read model back', async () => {
    const st = await fresh.query<{ position: number }>('status');
    return E.isRight(st) && st.right.position >= status.position ? readModel(fresh) : undefined;
  }, { timeoutMs: 120_000, intervalMs: 500 });
  for (const k of Object.keys(before)) assert.equal(after[k], before[k], `${k} as before the restart`);
  for (const [i, a] of agents.entries()) {
    const r = await eventually('the agent reconciled after the restart', () => a.logs('reconciled').slice(reconciled[i]).find((l) => l.afterReconnect === true), { timeoutMs: 120_000 });
    assert.is(r.created, 0, 'nothing re-programmed');
    assert.is(r.removed, 0, 'nothing removed');
    assert.is(a.logs('side programmed').length, programmed[i], 'no side programmed again');
  }
  const conns = (before.connections as unknown[]).length;
  say(`whole cluster down at ${new Date(downAt).toISOString()}; servers and control planes up again ${upAt - downAt} ms later; ${conns} connections, services, endpoints, nodes, pools and policy as before; the agents reprogrammed nothing`);
  await auditVerify(cl, 'the whole cluster was restarted');
});

const must = <T>(r: E.Either<{ message: string }, T>): T => {
  if (E.isLeft(r)) throw new Error(r.left.message);
  return r.right;
};

if (!skipWhy) s.run();
