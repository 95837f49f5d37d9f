// --metrics-port of the processes run apart from `nsm up` on an authenticated mesh: a lone
// `nsm agent` (no HTTP API) reports its dataplane and its own command consumer's backlog, read
// with its own narrow JetStream rights; a second `nsm control-plane` replica reports the read
// model from its own view, and the lease: exactly one of the two control planes leads.
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { startNsm, type NsmProcess } from '../lib/nsmProcess.ts';
import { parseExposition } from '../lib/prometheus.ts';
import { startSecureUp, type SecureUp } from '../lib/secureUp.ts';

interface Ctx {
  mesh?: SecureUp;
  procs: NsmProcess[];
  ports: { up: number; agent: number; replica: number };
}
const s = suite<Ctx>('metrics of nsm agent and nsm control-plane (--metrics-port)', { procs: [], ports: { up: 0, agent: 0, replica: 0 } });

const scrape = async (port: number): Promise<Map<string, number>> => {
  const r = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.is(r.status, 200);
  return parseExposition(await r.text());
};

s.before(async (ctx) => {
  ctx.ports = { up: await freePort(), agent: await freePort(), replica: await freePort() };
  ctx.mesh = await startSecureUp({ clients: ['alice'], nodes: ['n1', 'n2'], upArgs: ['--metrics-port', String(ctx.ports.up)] });
  const m = ctx.mesh;
  const creds = (name: string) => join(m.dataDir, 'creds', `${name}.creds`);
  const env = { ...m.env('operator'), NSM_LOG_LEVEL: 'info' };
  const agent = startNsm(['agent', '--node', 'n2', '--creds', creds('agent-n2'), '--server', m.natsUrl, '--heartbeat', '1s', '--metrics-port', String(ctx.ports.agent)], env);
  ctx.procs.push(agent);
  const replica = startNsm(['control-plane', '--creds', creds('control-plane'), '--server', m.natsUrl, '--metrics-port', String(ctx.ports.replica)], env);
  ctx.procs.push(replica);
  await agent.waitFor('metrics listening', 60_000);
  await replica.waitFor('metrics listening', 60_000);
});

s.after(async (ctx) => {
  for (const p of ctx.procs) await p.stop('SIGTERM', 15_000);
  await ctx.mesh?.stop();
});

s('the agent: its programming by mechanism, its sides, its own consumer backlog; the replica: its view and no lease', async (ctx) => {
  const m = ctx.mesh!;
  const ok = async (who: string, args: string[]) => {
    const r = await m.nsm(who, args);
    assert.is(r.code, 0, r.stderr);
    return r.stdout;
  };
  await ok('operator', ['service', 'register', 'web']);
  await ok('operator', ['endpoint', 'register', 'ep-2', '--service', 'web', '--node', 'n2', '--prefix', '10.62.0.0/24']);
  const c = JSON.parse(await ok('alice', ['connect', 'web', '--node', 'n2', '--wait', '--json'])) as { id: string; state: string };
  assert.is(c.state, 'established');

  const agent = await eventually('the agent programmed both sides', async () => {
    const x = await scrape(ctx.ports.agent);
    return x.get('nsm_dataplane_sides{node="n2"}') === 2 ? x : undefined;
  });
  assert.is(agent.get('nsm_dataplane_program_duration_seconds_count{node="n2",mechanism="kernel"}'), 2);
  assert.is(agent.get('nsm_node_command_consumer_pending_messages{node="n2"}'), 0, 'read with the agent\'s own rights (CONSUMER.INFO of its durable)');
  assert.is(agent.get('nsm_node_command_consumer_ack_pending_messages{node="n2"}'), 0);
  assert.ok((agent.get('process_resident_memory_bytes') ?? 0) > 0);
  assert.not.ok([...agent.keys()].some((k) => k.startsWith('nsm_connections')), 'an agent has no read model');
  assert.not.ok([...agent.keys()].some((k) => k.includes(c.id)));

  const replica = await eventually('the replica folded the connection', async () => {
    const x = await scrape(ctx.ports.replica);
    return x.get('nsm_connections{state="established",service="web",node="n2"}') === 1 ? x : undefined;
  });
  const up = await scrape(ctx.ports.up);
  assert.is((replica.get('nsm_leader') ?? NaN) + (up.get('nsm_leader') ?? NaN), 1, 'one control plane holds the lease');
  assert.is(replica.get('nsm_node_ready{node="n2"}'), 1);
  assert.is(replica.get('nsm_node_command_consumer_pending_messages{node="n2"}'), 0, "the control plane reads every agent's consumer backlog");
  assert.is(replica.get('nsm_node_command_consumer_pending_messages{node="n1"}'), 0);
  // The agent in nsm up reports n1's dataplane; the lone agent n2's.
  assert.not.ok([...up.keys()].some((k) => k.startsWith('nsm_dataplane_sides{node="n2"}')));
});

s.run();
