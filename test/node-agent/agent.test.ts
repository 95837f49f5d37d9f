// The node agent on its own, with the test playing the control plane: it answers the agent's
// reconcile query and sends node commands itself, so that a command can be delivered again
// exactly as JetStream redelivers one whose ack was lost.
import { randomUUID } from 'node:crypto';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { subjectsFor } from '../../src/contracts/subjects.ts';
import { startNodeAgent, type NodeAgent } from '../../node-agent/agent.ts';
import { simulatedDataplane, type SimulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import type { NodeCommand, SideSpec } from '../../src/contracts/nodeCommands.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { startTestNats, type TestNats } from '../lib/nats.ts';

type Report = { connectionId: string; side: string; generation: number; result: string; error?: string };
const enc = new TextEncoder();
const dec = new TextDecoder();

const s = suite<{ nats?: TestNats; agent?: NodeAgent; dataplane?: SimulatedDataplane; reports: Report[] }>('node agent: a command delivered again', { reports: [] });
const domain = 'agentonly';
const subjects = subjectsFor(domain);

s.before(async (ctx) => {
  const nats = (ctx.nats = await startTestNats());
  const nc = await nats.connect();
  // The control plane's part: nothing is desired yet; the agent's reports are recorded.
  nc.subscribe(`nsm.${domain}.query.*.node-desired`, { callback: (_, m) => m.respond(enc.encode(JSON.stringify({ ok: true, result: { sides: [] } }))) });
  nc.subscribe(`nsm.${domain}.cmd.connection.report.>`, {
    callback: (_, m) => {
      const body = (JSON.parse(dec.decode(m.data)) as { body?: Report }).body;
      if (body) ctx.reports.push(body);
    },
  });
  ctx.dataplane = simulatedDataplane();
  ctx.agent = await startNodeAgent({ nc: await nats.connect(), domain, node: 'n1', dataplane: ctx.dataplane, log: createLogger('agent', { test: 'agent' }), heartbeatMs: 1000 });
  await ctx.agent.ready;
});
s.after(async (ctx) => {
  await ctx.agent?.stop();
  await ctx.nats?.stop();
});

s('a failed side delivered again is reported failed again, never programmed', async (ctx) => {
  const nc = await ctx.nats!.connect();
  const js = nc.jetstream();
  const connectionId = randomUUID();
  const spec: SideSpec = {
    connectionId,
    generation: 1,
    side: 'client',
    node: 'n1',
    desired: 'present',
    networkService: 'svc',
    payload: 'IP',
    interfaceName: 'nsm-t1',
    mechanism: { local: 'kernel' },
    addresses: ['10.7.0.1/32'],
    remoteAddresses: ['10.7.0.2/32'],
    routes: ['10.7.0.2/32'],
    mtu: 1500,
  };
  const send = (msgID: string) => js.publish(subjects.nodeCommands('n1'), enc.encode(JSON.stringify({ id: msgID, spec } satisfies NodeCommand)), { msgID });
  const ours = () => ctx.reports.filter((r) => r.connectionId === connectionId);

  ctx.dataplane!.failNext(connectionId, 'injected: no such device');
  await send('first-delivery');
  await eventually('the first report', () => ours().length >= 1 || undefined);
  assert.equal(ours().map((r) => [r.result, r.error]), [['failed', 'injected: no such device']]);

  // The same command again (a redelivery carries the same content); the dataplane would now succeed.
  await send('second-delivery');
  await eventually('the second report', () => ours().length >= 2 || undefined, { describe: ours });
  assert.equal(ours().map((r) => [r.result, r.error]), [['failed', 'injected: no such device'], ['failed', 'injected: no such device']]);
  assert.is(ctx.dataplane!.programmed.size, 0, 'the side was not programmed behind the control plane\'s back');

  // Heartbeats count the sides the node serves: not the failed one; a programmed one, yes.
  const nextHeartbeat = async () => {
    const sub = nc.subscribe(subjects.heartbeat('n1'), { max: 1 });
    for await (const m of sub) return (JSON.parse(dec.decode(m.data)) as { connections: number }).connections;
    throw new Error('no heartbeat');
  };
  assert.is(await nextHeartbeat(), 0, 'a failed side is not served');
  const other = randomUUID();
  await js.publish(subjects.nodeCommands('n1'), enc.encode(JSON.stringify({ id: 'other', spec: { ...spec, connectionId: other } } satisfies NodeCommand)), { msgID: 'other' });
  await eventually('the other side programmed', () => ctx.reports.some((r) => r.connectionId === other && r.result === 'programmed') || undefined);
  assert.is(await nextHeartbeat(), 1, 'the programmed side is');
});
s.run();
