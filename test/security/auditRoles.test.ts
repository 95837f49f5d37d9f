// Audit on the default mesh: `bin/nsm up` (authenticated, TLS), then every documented audit
// command (nsm replay --until, nsm audit verify, nsm audit export, nsm history, nsm status,
// nsm ls ...) run by the roles it is meant for, the operator and the auditor, as processes with
// their output piped, the way a person or a script runs them. Then the JetStream rights these
// commands need are tried for writing, and refused: publishing to the log or the seals, reshaping
// or deleting a stream, deleting a consumer of the log, writing a bucket.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, DeliverPolicy, type NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { subjectsFor } from '../../src/contracts/subjects.ts';
import { freePort } from '../../infra/net.ts';
import { natsAuthOptions, readCredentials } from '../../src/security/credentials.ts';
import { suite } from '../lib/harness.ts';
import { runId } from '../lib/nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

type Ctx = { tmp: string; dir: string; domain: string; url: string; env: NodeJS.ProcessEnv; up?: NsmProcess; conns: NatsConnection[]; midTime?: string; midPosition?: string };
const s = suite<Ctx>('audit commands on the default mesh, for the operator and the auditor', { tmp: '', dir: '', domain: '', url: '', env: {}, conns: [] });

const ROLES = ['operator', 'auditor'] as const;
const credsOf = (ctx: Ctx, role: string) => join(ctx.dir, 'creds', `${role}.creds`);
/** The CLI as this role: the operator's credentials are found through the pointer nsm up wrote; the auditor's are named. */
const as = (ctx: Ctx, role: string, args: string[]) => runNsm(args, { ...ctx.env, NSM_CREDS: role === 'operator' ? '' : credsOf(ctx, role) });
const ok = async (ctx: Ctx, role: string, args: string[]) => {
  const r = await as(ctx, role, args);
  assert.is(r.code, 0, `nsm ${args.join(' ')} as ${role} exited ${r.code}: ${r.stderr}`);
  assert.not.match(r.stderr, /Permissions Violation/, `nsm ${args.join(' ')} as ${role}`);
  return r;
};

s.before(async (ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-audit-roles-'));
  ctx.dir = join(ctx.tmp, 'mesh');
  ctx.domain = `ar-${runId()}`;
  const natsPort = await freePort();
  ctx.url = `nats://127.0.0.1:${natsPort}`;
  ctx.env = { XDG_CONFIG_HOME: join(ctx.tmp, 'config'), XDG_DATA_HOME: join(ctx.tmp, 'data'), NSM_DOMAIN: ctx.domain, NSM_LOG_LEVEL: 'info', NSM_CREDS: '', NSM_NATS_URL: '', NSM_ACTOR: '' };
  ctx.up = startNsm(['up', '--data-dir', ctx.dir, '--nats-port', String(natsPort), '--http-port', String(await freePort()), '--node', 'n1'], ctx.env);
  await ctx.up.waitFor(`mesh "${ctx.domain}" is up`, 60_000);
  // A small history, made by the operator through the CLI.
  for (const args of [
    ['service', 'register', 'web'],
    ['endpoint', 'register', 'ep-1', '--service', 'web', '--node', 'n1', '--prefix', '10.61.0.0/24'],
    ['connect', 'web', '--id', 'c1', '--node', 'n1', '--wait'],
  ]) {
    const r = await runNsm(args, ctx.env);
    assert.is(r.code, 0, `nsm ${args.join(' ')}: ${r.stderr}`);
  }
  await new Promise((r) => setTimeout(r, 50));
  ctx.midTime = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 50));
  for (const args of [
    ['connect', 'web', '--id', 'c2', '--node', 'n1', '--wait'],
    ['close', 'c2'],
  ]) {
    const r = await runNsm(args, ctx.env);
    assert.is(r.code, 0, `nsm ${args.join(' ')}: ${r.stderr}`);
  }
  const status = JSON.parse((await runNsm(['status', '--json'], ctx.env)).stdout) as { position: number };
  ctx.midPosition = String(status.position);
  // Let the sealer cover what there is (it seals within a second).
  await new Promise((r) => setTimeout(r, 1500));
});

s.after(async (ctx) => {
  for (const c of ctx.conns) await c.close().catch(() => undefined);
  if (ctx.up) {
    await ctx.up.stop('SIGTERM', 20_000);
    const pid = ctx.up.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  if (ctx.tmp) rmSync(ctx.tmp, { recursive: true, force: true });
});

for (const role of ROLES) {
  s(`${role}: nsm replay --until a position and a time, table and --json`, async (ctx) => {
    const atPosition = await ok(ctx, role, ['replay', '--until', ctx.midPosition!]);
    assert.match(atPosition.stdout, new RegExp(`^mesh as of position ${ctx.midPosition}`));
    assert.match(atPosition.stdout, /\nc1 +web +established +ep-1/);
    const atTime = await ok(ctx, role, ['replay', '--until', ctx.midTime!, '--json']);
    const view = JSON.parse(atTime.stdout) as { connections: { id: string; state: string }[]; services: { name: string }[] };
    assert.equal(view.services.map((x) => x.name), ['web']);
    assert.equal(view.connections.map((c) => [c.id, c.state]), [['c1', 'established']], 'c2 came after the moment asked for');
  });

  s(`${role}: nsm audit verify`, async (ctx) => {
    const r = await ok(ctx, role, ['audit', 'verify']);
    assert.match(r.stdout, /^audit verify: OK: \d+ commits \(\d+ events\) in \d+ streams, positions 1\.\.\d+; \d+ sealed by \d+ seals?/);
    const report = JSON.parse((await ok(ctx, role, ['audit', 'verify', '--json'])).stdout) as { ok: boolean; counts: { commits: number; sealed: number } };
    assert.ok(report.ok && report.counts.commits >= 8 && report.counts.sealed > 0, JSON.stringify(report.counts));
  });

  s(`${role}: nsm audit export, to stdout and to a file that verifies offline`, async (ctx) => {
    const piped = await ok(ctx, role, ['audit', 'export', '--since', '1', '--format', 'jsonl']);
    const lines = piped.stdout.trim().split('\n').map((l) => JSON.parse(l) as { type: string; stream?: string });
    assert.is(lines[0]!.type, 'nsm-audit-export');
    assert.is(lines[lines.length - 1]!.type, 'end');
    assert.ok(lines.some((l) => l.type === 'event' && l.stream === 'connection.c1'));
    assert.ok(lines.some((l) => l.type === 'seal'));
    assert.match(piped.stderr, /exported \d+ commits/);
    const file = join(ctx.tmp, `export-${role}.jsonl`);
    await ok(ctx, role, ['audit', 'export', '--output', file]);
    assert.match(readFileSync(file, 'utf8'), /"type":"end"/);
    const offline = await ok(ctx, role, ['audit', 'verify', '--file', file]);
    assert.match(offline.stdout, /^audit verify: OK/);
  });

  s(`${role}: nsm history, nsm status and nsm ls through the control plane`, async (ctx) => {
    const history = await ok(ctx, role, ['history', 'c2']);
    for (const event of ['ConnectionRequested', 'ConnectionEstablished', 'ConnectionClosed']) assert.match(history.stdout, new RegExp(event));
    const status = JSON.parse((await ok(ctx, role, ['status', '--json'])).stdout) as { connections: number; services: number };
    assert.is(status.services, 1);
    const connections = JSON.parse((await ok(ctx, role, ['ls', 'connections', '--all', '--json'])).stdout) as { id: string }[];
    assert.equal(connections.map((c) => c.id).sort(), ['c1', 'c2']);
    for (const what of ['services', 'endpoints', 'nodes', 'addresses']) {
      const rows = JSON.parse((await ok(ctx, role, ['ls', what, '--json'])).stdout) as unknown[];
      assert.ok(rows.length >= 1, `nsm ls ${what} as ${role}`);
    }
  });
}

const enc = new TextEncoder();
const VIOLATION = 'PERMISSIONS_VIOLATION';

/** A request the server refuses with a permission violation naming the subject. */
const refused = async (p: Promise<unknown>, subject: string) => {
  const err = await p.then(() => undefined, (e: { code?: string; message: string }) => e);
  assert.ok(err, `${subject} should be refused`);
  assert.is(err!.code, VIOLATION, `${subject}: ${err!.message}`);
  assert.ok(err!.message.includes(`Permissions Violation for Publish to "${subject}"`), err!.message);
};

for (const role of ROLES) {
  s(`${role}: the JetStream rights of the audit commands read and cannot write`, async (ctx) => {
    const c = readCredentials(credsOf(ctx, role));
    if (E.isLeft(c)) throw new Error(c.left);
    const nc = await connect({ servers: ctx.url, reconnect: false, ...natsAuthOptions(c.right) });
    ctx.conns.push(nc);
    const s = subjectsFor(ctx.domain);
    const { events, seals, commands } = s.streams;
    const jsm = await nc.jetstreamManager();
    const before = (await jsm.streams.info(events)).state;
    // Reading works: an ordered consumer of the log, as replay and verify use.
    const consumer = await nc.jetstream().consumers.get(events, { filterSubjects: s.allEvents, deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: 1 });
    const first = await consumer.next({ expires: 5000 });
    assert.is(first?.seq, 1, 'the first commit is read');
    const js = nc.jetstream();
    await refused(js.publish(s.event('service.forged'), enc.encode('{}')), s.event('service.forged'));
    await refused(js.publish(s.seal, enc.encode('{}')), s.seal);
    // A command neither role may send (an agent's report).
    await refused(js.publish(s.command('connection', 'report', role), enc.encode('{}')), s.command('connection', 'report', role));
    const req = (subject: string, body: unknown = {}) => nc.request(subject, enc.encode(JSON.stringify(body)), { timeout: 3000 });
    const cfg = (await jsm.streams.info(events)).config;
    for (const stream of [events, seals]) {
      await refused(req(`$JS.API.STREAM.UPDATE.${stream}`, { ...cfg, name: stream, max_msgs: 1 }), `$JS.API.STREAM.UPDATE.${stream}`);
      await refused(req(`$JS.API.STREAM.DELETE.${stream}`), `$JS.API.STREAM.DELETE.${stream}`);
      await refused(req(`$JS.API.STREAM.PURGE.${stream}`), `$JS.API.STREAM.PURGE.${stream}`);
      await refused(req(`$JS.API.STREAM.MSG.DELETE.${stream}`, { seq: 1 }), `$JS.API.STREAM.MSG.DELETE.${stream}`);
    }
    // Not even the consumer it just made to read with may be deleted by it, nor another one's.
    const mine = (await consumer.info(true)).name;
    await refused(req(`$JS.API.CONSUMER.DELETE.${events}.${mine}`), `$JS.API.CONSUMER.DELETE.${events}.${mine}`);
    await refused(req(`$JS.API.CONSUMER.DELETE.${commands}.control-plane`), `$JS.API.CONSUMER.DELETE.${commands}.control-plane`);
    // No other stream's API, no bucket.
    await refused(req(`$JS.API.STREAM.INFO.${commands}`), `$JS.API.STREAM.INFO.${commands}`);
    await refused(js.publish(`$KV.${s.checkpointBucket}.process-manager`, enc.encode('0')), `$KV.${s.checkpointBucket}.process-manager`);
    await refused(js.publish(`$O.${s.snapshotBucket}.M.bWVzaA==`, enc.encode('{}')), `$O.${s.snapshotBucket}.M.bWVzaA==`);
    const after = (await jsm.streams.info(events)).state;
    assert.is(after.messages, before.messages, 'the log did not change');
    assert.is(after.last_seq, before.last_seq);
    const verify = await ok(ctx, role, ['audit', 'verify']);
    assert.match(verify.stdout, /^audit verify: OK/);
  });
}

s.run();
