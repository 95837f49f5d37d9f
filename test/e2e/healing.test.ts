// Healing on the real dataplane: a ping from the client keeps running while the things under
// the connection fail, and resumes once the mesh has healed it.
//   1. The endpoint's process is killed and its namespace deleted: the connection moves to the
//      other endpoint (same service prefix, so the same address answers) and the ping resumes.
//   2. The endpoint-side interface is deleted: the client's liveness probe notices, and the
//      connection is repaired in place on the same endpoint.
//   3. Traffic is dropped with nftables in the endpoint's namespace: re-programming does not
//      help, so the second failure moves the connection to the other endpoint.
import * as assert from 'uvu/assert';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { addressOf, exec, inNs, sh, startLab, startProcess, type ConnectionView, type Lab, type LabProcess, stopLabAndCheck } from '../lib/netns.ts';

type History = { event: { type: string; data: Record<string, unknown> } }[];

/** A ping that prints a timestamped line per reply (-D) and per missed reply (-O). */
const startPing = (lab: Lab, role: string, address: string): LabProcess =>
  startProcess(`ping-${role}-${Date.now()}`, inNs(lab.ns(role), ['ping', '-D', '-O', '-n', '-i', '0.2', '-W', '1', address]), lab.dir);

/** Reply times (ms since epoch) from a ping's output. */
const replies = (p: LabProcess): number[] =>
  p
    .output()
    .split('\n')
    .flatMap((l) => {
      const m = /^\[(\d+\.\d+)\] \d+ bytes from/.exec(l);
      return m ? [Math.round(Number(m[1]) * 1000)] : [];
    });

/** Waits until the ping has had `n` replies after `since`. */
const repliesAfter = async (p: LabProcess, since: number, n: number, timeoutMs: number): Promise<number[]> => {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const after = replies(p).filter((t) => t > since);
    if (after.length >= n) return after;
    if (Date.now() > deadline) throw new Error(`the ping did not resume within ${timeoutMs} ms:\n${p.output().split('\n').slice(-15).join('\n')}`);
    await new Promise((r) => setTimeout(r, 200));
  }
};

/** The longest silence between two consecutive replies from just before `at` on: the outage the workload saw. */
const outageMs = (p: LabProcess, at: number): number => {
  const t = replies(p);
  const from = t.filter((x) => x <= at).pop() ?? at;
  const window = [from, ...t.filter((x) => x > at)];
  let longest = 0;
  for (let i = 1; i < window.length; i++) longest = Math.max(longest, window[i]! - window[i - 1]!);
  return longest;
};

const connection = async (lab: Lab, id: string) => must(await (await lab.client()).query<ConnectionView & { generation: number; networkServiceEndpointName?: string }>('connection', { id }));
const history = async (lab: Lab, id: string) => must(await (await lab.client()).query<History>('history', { id }));

const setUp = async (): Promise<{ lab: Lab; epA: LabProcess }> => {
  const lab = await startLab({
    nodes: ['n1', 'n2'],
    healing: { tickMs: 200, nodeTimeoutMs: 60_000 },
    agentArgs: ['--liveness-interval', '500ms'],
  });
  const r = await lab.nsm(['service', 'register', 'icmp']);
  assert.is(r.code, 0, r.stderr);
  // Both endpoints hand out the same prefix, so the first connection gets the same address from
  // either: the ping's target survives the move.
  const epA = await lab.startEndpoint({ name: 'ep-a', service: 'icmp', node: 'n1', role: 'ep-a', prefix: '10.60.0.0/24', expiration: '3s' });
  await lab.startEndpoint({ name: 'ep-b', service: 'icmp', node: 'n2', role: 'ep-b', prefix: '10.60.0.0/24', expiration: '3s' });
  await lab.addNamespace('client');
  return { lab, epA };
};

const connectClient = async (lab: Lab, suffix: string): Promise<{ id: string; target: string }> => {
  const id = lab.connectionId(suffix);
  const r = await lab.nsm(['connect', 'icmp', '--node', 'n1', '--netns', lab.ns('client'), '--interface', `nsm-${suffix}`, '--id', id, '--wait', '--json']);
  assert.is(r.code, 0, r.stderr);
  const conn = JSON.parse(r.stdout) as ConnectionView & { networkServiceEndpointName?: string };
  assert.is(conn.networkServiceEndpointName, 'ep-a', 'the local endpoint is chosen first');
  return { id, target: addressOf(conn.context!.ipContext.dstIpAddrs[0]!) };
};

// ---------------------------------------------------------------------------------------------
const death = suite<{ lab?: Lab; epA?: LabProcess }>('e2e healing: the endpoint dies mid-ping', {});
death.before(async (ctx) => {
  Object.assign(ctx, await setUp());
});
death.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

death("the endpoint's process and namespace are killed: the client's ping resumes through the other endpoint", async (ctx) => {
  const lab = ctx.lab!;
  const { id, target } = await connectClient(lab, 'd1');
  const ping = startPing(lab, 'client', target);
  try {
    await repliesAfter(ping, 0, 5, 15_000);
    const killedAt = Date.now();
    await ctx.epA!.kill();
    await sh(['ip', 'netns', 'del', lab.ns('ep-a')]);
    await repliesAfter(ping, killedAt, 5, 60_000);
    const outage = outageMs(ping, killedAt);
    // Packets flow once both new sides are programmed; the agents report that afterwards, and the
    // connection is established (and the heal recorded) when both reports are in.
    const conn = await eventually('the healed connection established', async () => {
      const c = await connection(lab, id);
      return c.state === 'established' ? c : undefined;
    }, { describe: () => connection(lab, id) });
    assert.is(conn.state, 'established');
    assert.is(conn.networkServiceEndpointName, 'ep-b');
    const healed = (await history(lab, id)).filter((h) => h.event.type === 'ConnectionHealed').map((h) => h.event.data);
    assert.ok(healed.length >= 1, 'the heal is in the history');
    assert.is(healed[healed.length - 1]!.newEndpoint, 'ep-b');
    assert.is(healed[0]!.oldEndpoint, 'ep-a');
    process.stderr.write(`ping outage while healing away from a killed endpoint: ${(outage / 1000).toFixed(1)} s (causes: ${healed.map((h) => h.cause).join(', ')})\n`);
  } finally {
    await ping.stop();
  }
});
death.run();

// ---------------------------------------------------------------------------------------------
const cut = suite<{ lab?: Lab; id?: string; target?: string }>('e2e healing: a cut datapath', {});
cut.before(async (ctx) => {
  ctx.lab = (await setUp()).lab;
  Object.assign(ctx, await connectClient(ctx.lab, 'c1'));
});
cut.after(async (ctx) => {
  await exec(['ip', 'netns', 'exec', ctx.lab?.ns('ep-a') ?? 'none', 'nft', 'delete', 'table', 'inet', 'nsmtestdrop']);
  await stopLabAndCheck(ctx.lab);
});

cut('the endpoint-side interface is deleted: detected by the liveness probe and repaired in place', async (ctx) => {
  const lab = ctx.lab!;
  const before = await connection(lab, ctx.id!);
  const ping = startPing(lab, 'client', ctx.target!);
  try {
    await repliesAfter(ping, 0, 3, 15_000);
    const cutAt = Date.now();
    await sh(['ip', '-n', lab.ns('ep-a'), 'link', 'del', 'dev', before.interfaces!.endpoint]);
    await repliesAfter(ping, cutAt + 500, 5, 30_000);
    const after = await connection(lab, ctx.id!);
    assert.is(after.networkServiceEndpointName, 'ep-a', 'repaired on the same endpoint');
    assert.ok(after.generation > before.generation, 're-programmed on a new generation');
    const h = await history(lab, ctx.id!);
    assert.ok(h.some((x) => x.event.type === 'DatapathDown'), 'the broken datapath is in the history');
    const heal = h.filter((x) => x.event.type === 'ConnectionHealing').pop()!.event.data;
    assert.is(heal.cause, 'datapath');
    assert.is(heal.inPlace, true);
    process.stderr.write(`ping outage for a deleted interface, repaired in place: ${(outageMs(ping, cutAt) / 1000).toFixed(1)} s\n`);
  } finally {
    await ping.stop();
  }
});

cut('traffic dropped by nftables survives re-programming, so the connection moves to the other endpoint', async (ctx) => {
  const lab = ctx.lab!;
  const ping = startPing(lab, 'client', ctx.target!);
  try {
    await repliesAfter(ping, 0, 3, 15_000);
    const dropAt = Date.now();
    await sh(inNs(lab.ns('ep-a'), ['nft', '-f', '-']), {
      input: 'table inet nsmtestdrop {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    ip protocol icmp drop\n  }\n}\n',
    });
    await repliesAfter(ping, dropAt + 500, 5, 60_000);
    const after = await connection(lab, ctx.id!);
    assert.is(after.networkServiceEndpointName, 'ep-b', 'moved off the endpoint that drops traffic');
    const heals = (await history(lab, ctx.id!)).filter((x) => x.event.type === 'ConnectionHealing').map((x) => x.event.data);
    const last = heals[heals.length - 1]!;
    assert.is(last.inPlace, false);
    assert.is(last.oldEndpoint, 'ep-a');
    process.stderr.write(`ping outage for traffic dropped at the endpoint, moved to another endpoint: ${(outageMs(ping, dropAt) / 1000).toFixed(1)} s\n`);
  } finally {
    await ping.stop();
  }
});
cut.run();
