// Read-model checkpoints and rebuilds: a restarted control plane resumes from its snapshot
// instead of folding the log again; a snapshot of another projection version is refused and the
// model folded afresh; a rebuild beside the live model swaps in while queries keep answering.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { natsSnapshotStore } from '../../infra/nats/snapshots.ts';
import { MESH_PROJECTION_VERSION } from '../../projections/mesh.ts';
import { replayAt } from '../../src/read/replay.ts';
import type { RebuildMessage } from '../../src/runtime/audit.ts';
import type { RebuildStart } from '../../src/read/snapshots.ts';
import { natsCheckpoints } from '../../infra/nats/checkpoints.ts';
import { MESH_SNAPSHOT } from '../../src/read/snapshots.ts';
import { waitForQuietLog } from '../lib/auditScenario.ts';
import { suite } from '../lib/harness.ts';
import { EVENTS_PER_CONNECTION, writeLifecycleLog } from '../lib/lifecycleLog.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';
import { nsmEnv } from '../lib/nsmProcess.ts';

const NSM = fileURLToPath(new URL('../../bin/nsm', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const s = suite<{ mesh?: TestMesh }>('read-model snapshots: resume, version change, rebuild beside live', {});
s.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['n1'], audit: { snapshotIntervalMs: 200 } });
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

const replayed = async (mesh: TestMesh, position: number) => {
  const r = await replayAt(mesh.cp!.store, { position: BigInt(position) });
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right.model;
};

s('a restarted control plane resumes from its snapshot and folds only what came after', async (ctx) => {
  const mesh = ctx.mesh!;
  const c = await mesh.client('operator');
  must(await c.send('service.register', { name: 'web' }));
  must(await c.send('endpoint.register', { name: 'ep', networkServiceNames: ['web'], node: 'n1', prefix: '10.9.0.0/24' }));
  must(await c.send('connection.request', { connectionId: 'r1', networkService: 'web', clientNode: 'n1' }));
  assert.is(must(await c.waitForConnection('r1', 20_000)).state, 'established');
  const before = Number(await waitForQuietLog(mesh.cp!.store));
  const foldedFirst = mesh.cp!.view.folded;
  assert.ok(foldedFirst >= before - 1, `the first control plane folded the log (${foldedFirst} of ${before})`);
  await mesh.cp!.stop(); // saves the snapshot

  const cp = await mesh.startControlPlane();
  assert.equal(cp.audit.resumed, { from: 'snapshot', position: before });
  assert.is(cp.view.folded, 0, 'nothing refolded: the snapshot was at the end of the log');
  assert.equal(cp.view.current, await replayed(mesh, before), 'the resumed model is the one the log folds into');

  must(await c.send('connection.request', { connectionId: 'r2', networkService: 'web', clientNode: 'n1' }));
  assert.is(must(await c.waitForConnection('r2', 20_000)).state, 'established');
  const after = Number(await waitForQuietLog(cp.store));
  assert.is(cp.view.folded, after - before, 'only the commits after the snapshot were folded');
  assert.equal(cp.view.current, await replayed(mesh, after));
});

s('a snapshot of another projection version is not loaded: the model is folded from the log and saved anew', async (ctx) => {
  const mesh = ctx.mesh!;
  const last = Number(await waitForQuietLog(mesh.cp!.store));
  await mesh.cp!.stop();
  const snapshots = await natsSnapshotStore(await mesh.nats.connect(), mesh.domain);
  const saved = (await snapshots.load(MESH_SNAPSHOT))!;
  assert.is(saved.version, MESH_PROJECTION_VERSION);
  assert.is(saved.position, last);
  await snapshots.save(MESH_SNAPSHOT, { ...saved, version: MESH_PROJECTION_VERSION - 1, model: { shape: 'of an older projection' } });

  const cp = await mesh.startControlPlane();
  assert.is(cp.audit.resumed.from, 'log');
  assert.match(cp.audit.resumed.reason ?? '', new RegExp(`projection version ${MESH_PROJECTION_VERSION - 1}, code is at ${MESH_PROJECTION_VERSION}`));
  assert.is(cp.view.folded, last, 'the whole log folded');
  assert.equal(cp.view.current, await replayed(mesh, last));
  for (let i = 0; i < 100 && (await snapshots.load(MESH_SNAPSHOT))!.version !== MESH_PROJECTION_VERSION; i++) await sleep(20);
  assert.is((await snapshots.load(MESH_SNAPSHOT))!.version, MESH_PROJECTION_VERSION, 'a snapshot of the current version replaces it');
});

s('rebuild beside the live model: queries keep answering, new commits are not lost, the swap lands at the same position', async (ctx) => {
  const mesh = ctx.mesh!;
  // A long history of finished connections, written while the control plane is down and
  // marked as handled for the process manager (it would otherwise react to it).
  await mesh.cp!.stop();
  const nc = await mesh.nats.connect();
  const store = await jetStreamEventStore(nc, mesh.domain);
  const connections = 1500;
  await writeLifecycleLog({ store, connections, endpoints: 32, prefix: 'rb' });
  const written = await store.lastPosition()();
  if (E.isLeft(written)) throw new Error(written.left.message);
  await (await natsCheckpoints(nc, mesh.domain)).write('process-manager', Number(written.right));
  const cp = await mesh.startControlPlane();
  const last = Number(await waitForQuietLog(cp.store));
  await cp.view.waitFor(last, 30_000);
  const c = await mesh.client('operator');

  const id = 'rebuild-test-1';
  const messages: RebuildMessage[] = [];
  const sub = c.nc.subscribe(c.subjects.progress(id), { callback: (_e, m) => messages.push(JSON.parse(new TextDecoder().decode(m.data)) as RebuildMessage) });
  const foldedBefore = cp.view.folded;
  const start = must(await c.query<RebuildStart>('projections-rebuild', { id }));
  assert.equal(start, { id, started: true, target: last });
  const again = must(await c.query<RebuildStart>('projections-rebuild', { id: 'a-second-one' }));
  assert.equal(again.id, id, 'a second request follows the running rebuild');
  assert.is(again.started, false);

  // While it runs: queries answer, and a command lands in the live model.
  const answers: { position: number; ms: number; during: boolean }[] = [];
  const done = () => messages.some((m) => m.kind !== 'progress');
  const registering = c.send('service.register', { name: 'added-during-rebuild' });
  while (!done()) {
    const t = Date.now();
    const r = must(await c.query<{ position: number }>('status', {}));
    answers.push({ position: r.position, ms: Date.now() - t, during: !done() });
    await sleep(2);
  }
  must(await registering);
  sub.unsubscribe();
  const final = messages[messages.length - 1]!;
  if (final.kind !== 'done') throw new Error(`rebuild ${final.kind}: ${JSON.stringify(final)}`);
  assert.ok(messages.some((m) => m.kind === 'progress'), 'progress was reported');
  assert.ok(final.events >= connections * EVENTS_PER_CONNECTION, `rebuilt ${final.events} events`);
  assert.ok(final.eventsPerSecond > 0);
  const during = answers.filter((a) => a.during);
  assert.ok(during.length >= 3, `queries answered while the rebuild ran (${during.length})`);
  assert.ok(answers.every((a, i) => i === 0 || a.position >= answers[i - 1]!.position), 'the answered position never went back');
  assert.ok(Math.max(...during.map((a) => a.ms)) < 2000, `slowest query during the rebuild: ${Math.max(...during.map((a) => a.ms))} ms`);

  const end = Number(await waitForQuietLog(cp.store));
  await cp.view.waitFor(end);
  assert.ok(cp.view.current.registry.services['added-during-rebuild'], 'the command made during the rebuild is in the swapped-in model');
  assert.equal(cp.view.current, await replayed(mesh, end), 'the swapped-in model is what the log folds into');
  assert.is(cp.view.folded - foldedBefore, end - last, 'the live view folded only the new commits; the rebuild folded the rest beside it');

  // The CLI: progress on a terminal, a final rate line always.
  const cli = await new Promise<{ status: number | null; out: string; err: string }>((resolve) => {
    const p = spawn(NSM, ['projections', 'rebuild', '--server', mesh.nats.url, '--domain', mesh.domain], { env: nsmEnv() });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.once('close', (status) => resolve({ status, out, err }));
  });
  assert.is(cli.status, 0, cli.err);
  assert.match(cli.out, /^rebuilt \d+ events \(\d+ commits\) in \d+\.\d\d s, \d+ events\/s; swapped in at position \d+\n$/);
});

s.run();
