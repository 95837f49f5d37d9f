// Foreign messages in the mesh's streams. On nats-server 2.9 the JetStream API answers to the
// reply subject its requester wrote, with the account's rights, so any key with a JetStream right
// (an agent's, the auditor's, the operator's) can have the server store an API answer on a log
// subject, the seal subject or a checkpoint key; the stream denies deletes, so it stays there.
// Permissions cannot stop that (docs/security.md, "What a stolen key can do"). What they must not
// do is stop the mesh: before, the control plane stopped reading the log at such a message, and
// could not start again (the sealer refused an unreadable last seal). Now readers step over
// them, the control plane logs each one, the sealer chains on from the newest readable seal,
// the process manager starts over from a checkpoint that is not a position, and `nsm audit
// verify` reports every one instead of failing.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { jetStreamSealStore } from '../../infra/nats/seals.ts';
import { verifyStore } from '../../src/audit/audit.ts';
import { eventually, sleep } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const D = 'fo';
const enc = new TextEncoder();

type Ctx = { mesh?: SecureMesh; foreign: number[] };
const s = suite<Ctx>('foreign messages in the streams do not stop the mesh, and verify reports them', { foreign: [] });

const eventsInfo = async (mesh: SecureMesh) => (await (await (await mesh.connectAs('control-plane')).jetstreamManager()).streams.info('NSM_FO_EVENTS')).state;

s.before(async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: D, nodes: ['n1'], clients: ['alice'] }));
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'svc' }));
  must(await op.send('endpoint.register', { name: 'ep', node: 'n1', networkServiceNames: ['svc'], prefix: '10.83.0.0/24' }));
  // Let a seal land first, so that the foreign one comes after a real one.
  await eventually('a first seal', () => (mesh.cp!.audit.sealer()?.sealedUpTo() ?? 0n) >= 2n);
  // An agent's and the auditor's JetStream requests, answered to subjects of the streams.
  const agent = await mesh.connectAs('agent:n1');
  const auditor = await mesh.connectAs('auditor');
  const before = (await eventsInfo(mesh)).last_seq;
  agent.publish(`$JS.API.CONSUMER.INFO.NSM_FO_NODE.agent-n1`, enc.encode(''), { reply: `nsm.${D}.evt.service.svc` });
  await agent.flush();
  await sleep(300);
  auditor.publish('$JS.API.INFO', enc.encode(''), { reply: `nsm.${D}.evt.connection.forged` });
  await auditor.flush();
  await sleep(300);
  agent.publish(`$JS.API.CONSUMER.INFO.NSM_FO_NODE.agent-n1`, enc.encode(''), { reply: `nsm.${D}.seal` });
  auditor.publish('$JS.API.INFO', enc.encode(''), { reply: `$KV.nsm_fo_checkpoints.process-manager` });
  await agent.flush();
  await auditor.flush();
  await sleep(500);
  const after = (await eventsInfo(mesh)).last_seq;
  ctx.foreign = [before + 1, before + 2];
  assert.is(after, before + 2, 'the server stored both answers in the log (permissions cannot prevent it)');
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s('the control plane steps over them, says so, and keeps working on the same aggregate', async (ctx) => {
  const mesh = ctx.mesh!;
  await eventually('the control plane to log the foreign messages', () =>
    ctx.foreign.every((p) => mesh.logs.some((l) => l.includes('a message in the event log is not a commit: stepped over') && l.includes(`"position":${p}`))),
  );
  assert.not.ok(mesh.logs.some((l) => l.includes('event subscription stopped')), 'it still reads the log');
  const op = await mesh.client('operator');
  // The aggregate whose subject holds a foreign message: its next append expects past it.
  must(await op.send('service.register', { name: 'svc', matches: [] }));
  const alice = await mesh.client('alice');
  must(await alice.send('connection.request', { connectionId: 'c1', networkService: 'svc', clientNode: 'n1' }));
  assert.equal(must(await alice.waitForConnection('c1', 15000)), { state: 'established' });
});

s('a restarted control plane starts: the sealer chains on from the newest readable seal, the process manager from the start', async (ctx) => {
  const mesh = ctx.mesh!;
  await mesh.cp!.stop();
  // A checkpoint that is not a position, written after the stop.
  const auditor = await mesh.connectAs('auditor');
  auditor.publish('$JS.API.INFO', enc.encode(''), { reply: `$KV.nsm_fo_checkpoints.process-manager` });
  await auditor.flush();
  await sleep(300);
  // Bounded: with an unreadable last seal the start used to fail, with a foreign commit it never caught up.
  const cp = await Promise.race([
    mesh.startControlPlane(),
    new Promise<never>((_, reject) => setTimeout(() => reject(new Error('the control plane did not start within 30 s')), 30_000).unref()),
  ]);
  assert.ok(mesh.logs.some((l) => l.includes('the seal stream holds messages that are not seals')), 'the sealer says so');
  await eventually('the process manager to say so', () => mesh.logs.some((l) => l.includes('a checkpoint holds something that is not a log position')));
  await eventually('the process manager to run', () => mesh.logs.some((l) => l.includes('"msg":"process manager running"') && l.includes('"resumeFrom":0')));
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'svc3' }));
  const last = (await eventsInfo(mesh)).last_seq;
  await eventually('the sealer to seal past the foreign seal', () => (cp.audit.sealer()?.sealedUpTo() ?? 0n) >= BigInt(last));
});

s('verify reports each foreign message, and nothing else, instead of failing', async (ctx) => {
  const mesh = ctx.mesh!;
  const nc = await mesh.connectAs('auditor');
  const seen: bigint[] = [];
  const store = await jetStreamEventStore(nc, D, { create: false, onForeign: (f) => seen.push(f.position) });
  const report = await verifyStore(store, await jetStreamSealStore(nc, D, { create: false }), { foreign: () => seen.map((position) => ({ position, reason: 'not a commit' })) });
  assert.ok(E.isRight(report), JSON.stringify(report));
  if (E.isLeft(report)) return;
  assert.is(report.right.ok, false);
  const kinds = report.right.findings.map((f) => [f.kind, f.position]);
  assert.equal(
    kinds.filter(([k]) => k === 'inserted'),
    ctx.foreign.map((p) => ['inserted', String(p)]),
    JSON.stringify(report.right.findings),
  );
  assert.equal(report.right.findings.filter((f) => f.kind === 'seal-broken').map((f) => f.message.replace(/#\d+/, '#N')), ['seal #N is unreadable: seal.type: unknown field']);
  assert.is(report.right.findings.length, 3, JSON.stringify(report.right.findings));
});

s.run();
