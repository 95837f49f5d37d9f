// A mesh comes back after a restart with a snapshot large enough that reading it needs flow
// control (past about 2 MiB nats-server waits for the reader's answer on $JS.FC.<stream>.>
// before it sends more; the control plane's permissions lacked that subject, so `nsm up` hung
// after "nats-server started", reading the snapshot forever). `bin/nsm up`, secure by default, on
// the simulated dataplane: 1000 connections through an operator's SDK (a snapshot of about 4 MB),
// then a restart with SIGTERM and one with SIGKILL on the same data dir; each time it comes
// back, resumes from the snapshot and answers. And a snapshot read that stalls (an identity that
// may not answer flow control, a store that never answers) is given up within its bound and
// the model folded from the log instead, with a warning that says why.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect } from 'nats';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { natsSnapshotStore } from '../../infra/nats/snapshots.ts';
import { freePort } from '../../infra/net.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { MeshClient } from '../../src/client/index.ts';
import { startControlPlane } from '../../src/runtime/controlPlane.ts';
import { loadMeshSnapshot, MESH_SNAPSHOT } from '../../src/read/snapshots.ts';
import type { SnapshotStore } from '../../src/ports/snapshotStore.ts';
import type { Snapshot } from '../../src/contracts/snapshot.ts';
import { MESH_PROJECTION_VERSION } from '../../projections/mesh.ts';
import { readCredentials } from '../../src/security/credentials.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { runId, startTestNats, type TestNats } from '../lib/nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

const CONNECTIONS = 1000;

type Ctx = { tmp: string; procs: NsmProcess[]; nats: TestNats[]; servers: RunningNatsServer[] };
const s = suite<Ctx>('a restart with a large snapshot, and a snapshot read that stalls', { tmp: '', procs: [], nats: [], servers: [] });

s.before((ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-large-snapshot-'));
});
s.after(async (ctx) => {
  for (const p of ctx.procs) await p.stop('SIGKILL');
  for (const p of ctx.procs) {
    const pid = p.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  for (const n of ctx.nats) await n.stop().catch(() => undefined);
  for (const x of ctx.servers) await x.stop().catch(() => undefined);
  rmSync(ctx.tmp, { recursive: true, force: true });
});

/** The promise's value, or a failure naming what did not happen in time: a test never waits forever. */
const within = <T>(ms: number, what: string, p: Promise<T>): Promise<T> =>
  Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} did not happen within ${ms / 1000} s`)), ms).unref())]);

const caughtUp = (p: NsmProcess) => p.logs('control plane caught up').pop() as { model?: string; position?: number; folded?: number } | undefined;

s(`nsm up with ${CONNECTIONS} connections comes back after SIGTERM and after SIGKILL, resuming from its snapshot`, async (ctx) => {
  const domain = `ls-${runId()}`;
  const dir = join(ctx.tmp, 'mesh');
  const natsPort = await freePort();
  const env = { XDG_CONFIG_HOME: join(ctx.tmp, 'config'), XDG_DATA_HOME: join(ctx.tmp, 'data'), NSM_DOMAIN: domain, NSM_LOG_LEVEL: 'info', NSM_CREDS: '', NSM_NATS_URL: '', NSM_ACTOR: '' };
  const start = async () => {
    const up = startNsm(['up', '--data-dir', dir, '--nats-port', String(natsPort), '--http-port', String(await freePort()), '--node', 'n1'], env);
    ctx.procs.push(up);
    await up.waitFor(`mesh "${domain}" is up`, 45_000);
    return up;
  };
  const first = await start();
  const creds = readCredentials(join(dir, 'creds', 'operator.creds'));
  if (E.isLeft(creds)) throw new Error(creds.left);
  const op = must(await MeshClient.connect(`nats://127.0.0.1:${natsPort}`, { domain, credentials: creds.right, timeoutMs: 30_000 }));
  try {
    must(await op.send('service.register', { name: 'web' }));
    must(await op.send('endpoint.register', { name: 'ep-1', networkServiceNames: ['web'], node: 'n1', prefix: '10.64.0.0/16' }));
    const ids = Array.from({ length: CONNECTIONS }, (_, i) => `c${i}`);
    for (let i = 0; i < ids.length; i += 100) {
      await Promise.all(ids.slice(i, i + 100).map(async (id) => must(await op.send('connection.request', { connectionId: id, networkService: 'web', clientNode: 'n1' }), id)));
    }
    const deadline = Date.now() + 60_000;
    for (;;) {
      // Pages of 200: a page of 1000 connections with their signed paths is more than one NATS message.
      const established = must(await op.queryAll<{ id: string }>('connections', { state: 'established' }, 200));
      if (established.length === CONNECTIONS) break;
      if (Date.now() > deadline) throw new Error(`${established.length} of ${CONNECTIONS} connections established`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await op.close();
  }
  const before = JSON.parse((await runNsm(['status', '--json'], env)).stdout) as { position: number; connections: number };
  assert.is(before.connections, CONNECTIONS);
  // A clean stop saves the snapshot.
  assert.is((await first.stop('SIGTERM', 30_000)).code, 0);

  const second = await start();
  const resumed = caughtUp(second);
  assert.is(resumed?.model, 'snapshot', `resumed from the snapshot: ${JSON.stringify(resumed)}`);
  assert.ok((resumed?.position ?? 0) >= before.position);
  const afterTerm = JSON.parse((await runNsm(['status', '--json'], env)).stdout) as { connections: number };
  assert.is(afterTerm.connections, CONNECTIONS);
  const snapshotSize = readFileSync(join(dir, 'nats-server.log'), 'utf8');
  assert.not.match(snapshotSize, /Publish Violation.*\$JS\.FC\./, 'flow control is answered');

  // SIGKILL: nsm up and its nats-server die at once; the snapshot of the clean stop is still there.
  const natsPid = second.logs('nats-server started')[0]?.pid as number;
  await second.stop('SIGKILL');
  if (isAlive(natsPid)) process.kill(natsPid, 'SIGKILL');
  for (let i = 0; i < 50 && isAlive(natsPid); i++) await new Promise((r) => setTimeout(r, 100));
  const third = await start();
  assert.is(caughtUp(third)?.model, 'snapshot');
  const afterKill = JSON.parse((await runNsm(['status', '--json'], env)).stdout) as { connections: number };
  assert.is(afterKill.connections, CONNECTIONS);
  // The agent reconciled its node's 2000 sides (page by page) before nsm up said it was up.
  assert.equal(third.logs('reconciled').map((l) => l.desired), [2 * CONNECTIONS]);
  const listed = await runNsm(['ls', 'connections', '--state', 'established', '--json'], env);
  assert.is(listed.code, 0, listed.stderr);
  assert.is((JSON.parse(listed.stdout) as unknown[]).length, CONNECTIONS);
  assert.is(third.logs('read model folded from the log').length, 0);
  await third.stop('SIGTERM', 30_000);
});

/** A snapshot of a few MB, written by an identity with all rights. */
const bigSnapshot = (position: number): Snapshot => ({ version: MESH_PROJECTION_VERSION, position, savedAt: new Date().toISOString(), model: { position, filler: 'x'.repeat(3 * 1024 * 1024) } });
const oneCommitStore = { lastPosition: () => async () => E.right(10n) } as unknown as Parameters<typeof loadMeshSnapshot>[1];

s('a snapshot read by an identity that may not answer flow control is given up within the bound', async (ctx) => {
  // Everything allowed but the flow-control answers: what the control plane's permissions were.
  const started0 = await startNatsServer({
    dataDir: join(ctx.tmp, 'nofc'),
    port: await freePort(),
    extraConfig: 'authorization { users: [ { user: "all", password: "all" }, { user: "nofc", password: "nofc", permissions: { publish: { allow: [">"], deny: ["$JS.FC.>"] }, subscribe: { allow: [">"] } } } ] }',
    probe: { user: 'all', pass: 'all' },
  });
  if (E.isLeft(started0)) throw new Error(started0.left);
  const server = started0.right;
  ctx.servers.push(server);
  const writer = await connect({ servers: server.url, user: 'all', pass: 'all' });
  const reader = await connect({ servers: server.url, user: 'nofc', pass: 'nofc' });
  try {
    await (await natsSnapshotStore(writer, 'stall')).save(MESH_SNAPSHOT, bigSnapshot(10));
    // With the right to answer, it reads (the same snapshot, the same code).
    const fine = await loadMeshSnapshot(await natsSnapshotStore(writer, 'stall'), oneCommitStore, { stallMs: 5000 });
    assert.is(fine.kind, 'resume', JSON.stringify(fine).slice(0, 300));
    const started = Date.now();
    const verdict = await within(20_000, 'giving up the stalled snapshot read', loadMeshSnapshot(await natsSnapshotStore(reader, 'stall'), oneCommitStore, { stallMs: 1500 }));
    const took = Date.now() - started;
    assert.is(verdict.kind, 'fold');
    assert.match((verdict as { reason: string }).reason, /^snapshot read stalled: nothing arrived for 1\.5 s after \d+ bytes$/);
    assert.ok(took < 6000, `given up after ${took} ms`);
  } finally {
    await writer.close();
    await reader.close();
  }
});

s('a control plane whose snapshot store never answers folds the log instead, and warns why', async (ctx) => {
  const nats = await startTestNats();
  ctx.nats.push(nats);
  const lines: string[] = [];
  const log = createLogger('control-plane', { domain: 'stall2' }, (l) => lines.push(l), 'debug');
  const first = await startControlPlane({ nc: await nats.connect(), domain: 'stall2', log, audit: { snapshots: false } });
  const c = MeshClient.over(await nats.connect(), { domain: 'stall2', actor: 'op' });
  must(await c.send('service.register', { name: 'web' }));
  await first.stop();
  let aborted = false;
  const stalling: SnapshotStore = {
    // Never answers, and ignores the abort: the control plane must not depend on the store to let go.
    load: (_name, o) => {
      o?.signal?.addEventListener('abort', () => (aborted = true));
      return new Promise(() => undefined);
    },
    save: async () => undefined,
  };
  const started = Date.now();
  const cp = await within(20_000, 'the control plane starting without its snapshot', startControlPlane({ nc: await nats.connect(), domain: 'stall2', log, audit: { snapshots: stalling, snapshotStallMs: 1000 } }));
  try {
    const took = Date.now() - started;
    assert.ok(took < 8000, `started in ${took} ms`);
    assert.ok(aborted, 'the read was abandoned');
    assert.equal(cp.audit.resumed, { from: 'log', position: 0, reason: 'snapshot read stalled: nothing arrived for 1 s' });
    const warning = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.msg === 'read model folded from the log');
    assert.equal([warning?.level, warning?.reason], ['warn', 'snapshot read stalled: nothing arrived for 1 s']);
    assert.is(cp.view.current.registry.services.web?.name, 'web', 'the model was folded from the log');
  } finally {
    await cp.stop();
  }
});

s.run();
