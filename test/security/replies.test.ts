// Where answers go. NATS permissions say who may publish to a subject, not where an answer goes:
// a request's reply subject is whatever its sender wrote. A client asking a query with the reply
// subject "nsm.<d>.evt.x" had the control plane append its answer to the event log (after which
// the control plane's own subscription stopped on "message N in the event stream is not a
// commit"); a JetStream request answered, or a consumer delivering, to "nsm.<d>.hb.<node>" was
// taken for that node's heartbeat. The control plane now answers only into the asker's own
// inbox and takes as a heartbeat only what an agent sends.
import { randomUUID } from 'node:crypto';
import { AckPolicy, DeliverPolicy } from 'nats';
import * as assert from 'uvu/assert';
import { eventually, sleep } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const D = 'rp';
const enc = new TextEncoder();

type Ctx = { mesh?: SecureMesh };
const s = suite<Ctx>('answers go only to the asker, heartbeats come only from agents', {});

s.before(async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: D, nodes: ['n1'], clients: ['alice'] }));
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'svc' }));
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

const lastSeq = async (mesh: SecureMesh) => (await (await (await mesh.connectAs('control-plane')).jetstreamManager()).streams.info(`NSM_${D.toUpperCase()}_EVENTS`)).state.last_seq;

s("a query whose reply subject is the log is not answered there: the log does not move and the control plane keeps reading it", async (ctx) => {
  const mesh = ctx.mesh!;
  const before = await lastSeq(mesh);
  const alice = await mesh.connectAs('alice');
  alice.publish(`nsm.${D}.query.alice.services`, enc.encode('{}'), { reply: `nsm.${D}.evt.service.forged` });
  // Someone else's inbox is not the asker's either.
  alice.publish(`nsm.${D}.query.alice.services`, enc.encode('{}'), { reply: '_INBOX.operator.stolen' });
  await alice.flush();
  await sleep(1000);
  assert.is(await lastSeq(mesh), before, 'nothing was appended to the log');
  assert.not.ok(mesh.logs.some((l) => l.includes('event subscription stopped')), 'the control plane still reads the log');
  await eventually('the control plane to say it did not answer', () => mesh.logs.filter((l) => l.includes("query not answered: its reply subject is not the asker's inbox")).length >= 2);
  // Asked the normal way, it answers; and the log still folds.
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'svc2' }));
  assert.equal(must(await (await mesh.client('alice')).query<{ name: string }[]>('services')).map((x) => x.name).sort(), ['svc', 'svc2']);
});

s('JetStream answers and deliveries addressed to a heartbeat subject are not heartbeats', async (ctx) => {
  const mesh = ctx.mesh!;
  const hb = (node: string) => `nsm.${D}.hb.${node}`;
  // An agent's JetStream request (its own consumer's info) answered to another node's heartbeat subject.
  const agent = await mesh.connectAs('agent:n1');
  agent.publish(`$JS.API.CONSUMER.INFO.NSM_${D.toUpperCase()}_NODE.agent-n1`, enc.encode(''), { reply: hb('ghost1') });
  await agent.flush();
  await sleep(1000);
  assert.not.ok(mesh.cp!.heartbeats.has('ghost1'), "a JetStream answer to an agent's request is not node ghost1's heartbeat");
  // The auditor's read of the log: a direct get, and a consumer that pushes to a heartbeat subject.
  const auditor = await mesh.connectAs('auditor');
  auditor.publish(`$JS.API.DIRECT.GET.NSM_${D.toUpperCase()}_EVENTS`, enc.encode('{"seq":1}'), { reply: hb('ghost2') });
  const name = `push-${randomUUID().slice(0, 8)}`;
  const config = { name, deliver_subject: hb('ghost3'), filter_subject: `nsm.${D}.evt.>`, ack_policy: AckPolicy.None, deliver_policy: DeliverPolicy.All };
  await auditor.request(`$JS.API.CONSUMER.CREATE.NSM_${D.toUpperCase()}_EVENTS.${name}.nsm.${D}.evt.>`, enc.encode(JSON.stringify({ stream_name: `NSM_${D.toUpperCase()}_EVENTS`, config })), { timeout: 3000 });
  // The control plane's own answer to a query, were it still sent to a heartbeat subject.
  auditor.publish(`nsm.${D}.query.auditor.status`, enc.encode('{}'), { reply: hb('ghost4') });
  await auditor.flush();
  await sleep(1500);
  const known = [...mesh.cp!.heartbeats.keys()];
  assert.equal(known, ['n1'], `only the real agent's heartbeats count: ${known.join(', ')}`);
  assert.ok(mesh.logs.some((l) => l.includes('"msg":"heartbeat ignored"')), 'the control plane noticed');
});

s.run();
