// The log is append-only for every key, the control plane's included: on an authenticated mesh no
// identity may create, update, delete or purge any stream the mesh keeps (the log, its seals, the
// command streams, the KV buckets, the snapshot store), or delete a message. A stream update was
// enough to wipe the log (max_msgs: 1 kept the last of 23 events). The streams are made by the
// setup step of nsm up (test/lib/secureMesh.ts runs the same one) with a one-time identity
// that is gone once they exist.
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection, StreamInfo } from 'nats';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { startNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';
import { startControlPlane } from '../../src/runtime/controlPlane.ts';
import { natsAuthOptions, signerOf } from '../../src/security/credentials.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const D = 'str';
const enc = new TextEncoder();
const dec = new TextDecoder();
const VIOLATION = 'PERMISSIONS_VIOLATION';

/** Every stream an authenticated mesh keeps (named here, not imported: the test says what it expects). */
const STREAMS = ['NSM_STR_EVENTS', 'NSM_STR_SEALS', 'NSM_STR_COMMANDS', 'NSM_STR_NODE', 'KV_nsm_str_checkpoints', 'KV_nsm_str_lease', 'OBJ_nsm_str_snapshots'];
const ACTORS = ['control-plane', 'operator', 'auditor', 'agent:n1', 'alice'];
const OPS = ['UPDATE', 'DELETE', 'PURGE', 'MSG.DELETE', 'CREATE'] as const;

type Ctx = { mesh?: SecureMesh; cp?: NatsConnection; before?: Map<string, StreamInfo> };
const s = suite<Ctx>('no key may reshape, purge or delete the streams of the mesh', {});

const refused = async (p: Promise<unknown>, subject: string) => {
  const err = await p.then(
    (m) => new Error(`accepted: ${dec.decode((m as { data: Uint8Array }).data).slice(0, 200)}`),
    (e: { code?: string; message: string }) => e,
  );
  assert.is((err as { code?: string }).code, VIOLATION, `${subject}: ${err.message}`);
  assert.ok(err.message.includes(`Permissions Violation for Publish to "${subject}"`), err.message);
};

const infos = async (nc: NatsConnection) => {
  const jsm = await nc.jetstreamManager();
  const m = new Map<string, StreamInfo>();
  for (const name of STREAMS) m.set(name, await jsm.streams.info(name));
  return m;
};

s.before(async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: D, nodes: ['n1'], clients: ['alice'] }));
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'svc' }));
  must(await op.send('endpoint.register', { name: 'ep', node: 'n1', networkServiceNames: ['svc'], prefix: '10.81.0.0/24' }));
  const alice = await mesh.client('alice');
  must(await alice.send('connection.request', { connectionId: 'c1', networkService: 'svc', clientNode: 'n1' }));
  assert.equal(must(await alice.waitForConnection('c1', 15000)), { state: 'established' });
  // A restart leaves a snapshot in the object store and a checkpoint in KV; the sealer a seal.
  await mesh.cp!.stop();
  await mesh.startControlPlane();
  ctx.cp = await mesh.connectAs('control-plane');
  await eventually('a seal, a snapshot and a checkpoint', async () => {
    const m = await infos(ctx.cp!);
    return ['NSM_STR_SEALS', 'OBJ_nsm_str_snapshots', 'KV_nsm_str_checkpoints'].every((n) => m.get(n)!.state.messages > 0);
  });
  ctx.before = await infos(ctx.cp);
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s("the control plane's own key cannot shrink the log with a stream update (max_msgs 1, max_age, max_bytes)", async (ctx) => {
  const jsm = await ctx.cp!.jetstreamManager();
  const info = await jsm.streams.info('NSM_STR_EVENTS');
  assert.ok(info.state.messages >= 8, `a log to protect (${info.state.messages} messages)`);
  for (const limit of [{ max_msgs: 1 }, { max_age: 1_000_000_000 }, { max_bytes: 1024 }]) {
    await refused(ctx.cp!.request('$JS.API.STREAM.UPDATE.NSM_STR_EVENTS', enc.encode(JSON.stringify({ ...info.config, ...limit })), { timeout: 3000 }), '$JS.API.STREAM.UPDATE.NSM_STR_EVENTS');
  }
  // The same through the client library's own call.
  await refused(jsm.streams.update('NSM_STR_EVENTS', { ...info.config, max_msgs: 1 }), '$JS.API.STREAM.UPDATE.NSM_STR_EVENTS');
  const after = await jsm.streams.info('NSM_STR_EVENTS');
  assert.is(after.state.messages, info.state.messages, 'every event is still there');
  assert.is(after.config.max_msgs, -1);
});

for (const actor of ACTORS) {
  s(`${actor}: create, update, delete, purge and message delete of every stream are refused`, async (ctx) => {
    const nc = await ctx.mesh!.connectAs(actor);
    for (const stream of STREAMS) {
      const config = ctx.before!.get(stream)!.config;
      for (const op of OPS) {
        const subject = `$JS.API.STREAM.${op}.${stream}`;
        const body = op === 'UPDATE' || op === 'CREATE' ? { ...config, max_msgs: 1 } : op === 'MSG.DELETE' ? { seq: 1 } : op === 'PURGE' ? { keep: 1 } : {};
        // The one exception: the control plane drops a replaced snapshot's chunks (nats.js does
        // that on every put); tried here with a filter that matches nothing.
        if (actor === 'control-plane' && op === 'PURGE' && stream === 'OBJ_nsm_str_snapshots') {
          const r = JSON.parse(dec.decode((await nc.request(subject, enc.encode(JSON.stringify({ filter: '$O.nsm_str_snapshots.C.none' })), { timeout: 3000 })).data)) as { success?: boolean; purged?: number };
          assert.equal([r.success, r.purged], [true, 0], JSON.stringify(r));
          continue;
        }
        await refused(nc.request(subject, enc.encode(JSON.stringify(body)), { timeout: 3000 }), subject);
      }
    }
    // Nor the durable consumers the mesh runs on: an agent's, the control planes' shared one.
    for (const subject of ['$JS.API.CONSUMER.DELETE.NSM_STR_NODE.agent-n1', '$JS.API.CONSUMER.DELETE.NSM_STR_COMMANDS.control-plane']) {
      await refused(nc.request(subject, enc.encode(''), { timeout: 3000 }), subject);
    }
  });
}

s('every stream is as the setup step made it: same configuration, nothing removed from the log or the seals', async (ctx) => {
  const now = await infos(ctx.cp!);
  for (const name of STREAMS) {
    const was = ctx.before!.get(name)!;
    const is = now.get(name)!;
    assert.equal(is.config, was.config, `${name} configuration`);
    assert.is(is.state.first_seq, was.state.first_seq, `${name} first sequence`);
  }
  for (const name of ['NSM_STR_EVENTS', 'NSM_STR_SEALS']) assert.ok(now.get(name)!.state.messages >= ctx.before!.get(name)!.state.messages, name);
  // And the mesh still works on them.
  const alice = await ctx.mesh!.client('alice');
  must(await alice.send('connection.request', { connectionId: 'c2', networkService: 'svc', clientNode: 'n1' }));
  assert.equal(must(await alice.waitForConnection('c2', 15000)), { state: 'established' });
});

s('the setup identity is gone: the server runs with the deployment identities only', async (ctx) => {
  const mesh = ctx.mesh!;
  assert.not.ok(existsSync(join(mesh.dir, 'nats-setup.conf')), 'the setup configuration is removed');
  const conf = readFileSync(join(mesh.dir, 'nats-server.conf'), 'utf8');
  assert.match(conf, /include "nats-auth\.conf"/);
  assert.not.match(conf, /nats-setup/);
  const users = readFileSync(mesh.paths.natsConfig, 'utf8').match(/nkey: "U[A-Z2-7]{55}"/g) ?? [];
  assert.is(users.length, mesh.registry.identities.length, 'one nkey user per identity, and no other');
  const log = readFileSync(mesh.server.logFile, 'utf8');
  assert.match(log, /Reloaded server configuration/);
});

s('an authenticated control plane does not make the streams itself: without the setup step it says what is missing', async (ctx) => {
  const mesh = ctx.mesh!;
  const dir = join(mesh.dir, 'bare');
  // A server with the same users but no setup step: an empty JetStream.
  mkdirSync(dir, { recursive: true });
  copyFileSync(mesh.paths.natsConfig, join(dir, 'nats-auth.conf'));
  const started = await startNatsServer({ dataDir: dir, port: await freePort(), serverName: `bare-${D}`, extraConfig: 'include "nats-auth.conf"', probe: natsAuthOptions(mesh.creds('operator')) });
  if (E.isLeft(started)) throw new Error(started.left);
  try {
    const { connect } = await import('nats');
    const nc = await connect({ servers: started.right.url, reconnect: false, ...natsAuthOptions(mesh.creds('control-plane')) });
    try {
      const err = await startControlPlane({ nc, domain: D, log: createLogger('bare'), security: { registry: mesh.registry, signer: signerOf(mesh.creds('control-plane')) } }).then(
        async (cp) => (await cp.stop(), undefined),
        (e: Error) => e,
      );
      assert.ok(err, 'the control plane must not start');
      assert.match(err!.message, /^missing JetStream streams NSM_STR_EVENTS \(the event log\), NSM_STR_SEALS \(the seals of the log\), .*no identity may create them at run time; `nsm up` creates them in its setup step/);
      const names: string[] = [];
      for await (const n of (await nc.jetstreamManager()).streams.names()) names.push(n);
      assert.equal(names, [], 'and it created nothing');
    } finally {
      await nc.close();
    }
  } finally {
    await started.right.stop();
  }
});

s.run();
