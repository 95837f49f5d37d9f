// Least privilege, attempted for real against nats-server with nkey authentication and TLS: each
// identity tries what its role must not do, and the server (or, for what the server cannot know,
// the control plane) refuses it. Unauthenticated and plaintext connections are refused too.
import { connect as netConnect } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import { AckPolicy, connect, type NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { natsAuthOptions } from '../../src/security/credentials.ts';
import { createUserKey } from '../../src/security/keys.ts';
import { MeshClient } from '../../src/client/index.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const enc = new TextEncoder();
const D = 'perm';

type Ctx = { mesh?: SecureMesh; alice?: MeshClient; bob?: MeshClient; op?: MeshClient };
const s = suite<Ctx>('least privilege on nats-server (nkeys + TLS)', {});

const VIOLATION = 'PERMISSIONS_VIOLATION';

/** A request or JetStream publish the server refuses: the client's promise rejects with the violation. */
const refusedPublish = async (p: Promise<unknown>, subject: string) => {
  const err = await p.then(() => undefined, (e: { code?: string; message: string }) => e);
  assert.ok(err, `publishing to ${subject} should be refused`);
  assert.is(err!.code, VIOLATION, err!.message);
  assert.ok(err!.message.includes(`Permissions Violation for Publish to "${subject}"`), err!.message);
};

/** A subscription the server refuses: iterating it throws the violation. */
const refusedSubscribe = async (nc: NatsConnection, subject: string) => {
  const sub = nc.subscribe(subject);
  const outcome = await Promise.race([
    (async () => {
      try {
        for await (const _m of sub) return 'a message arrived';
        return 'closed without error';
      } catch (e) {
        return e as { code?: string; message: string };
      }
    })(),
    new Promise<string>((r) => setTimeout(() => r('not refused within 5 s'), 5000)),
  ]);
  assert.ok(typeof outcome !== 'string', `subscribing to ${subject}: ${String(outcome)}`);
  if (typeof outcome !== 'string') {
    assert.is(outcome.code, VIOLATION);
    assert.ok(outcome.message.includes(`Permissions Violation for Subscription to "${subject}"`), outcome.message);
  }
};

/** A core publish the server refuses: the violation arrives as an async error on the connection. */
const refusedCorePublish = async (nc: NatsConnection, subject: string) => {
  const seen = (async () => {
    for await (const st of nc.status()) {
      const ctx = (st as { permissionContext?: { operation: string; subject: string } }).permissionContext;
      if (st.type === 'error' && ctx?.operation === 'publish' && ctx.subject === subject) return true;
    }
    return false;
  })();
  nc.publish(subject, enc.encode('{}'));
  await nc.flush();
  const ok = await Promise.race([seen, new Promise<boolean>((r) => setTimeout(() => r(false), 5000))]);
  assert.ok(ok, `the server should refuse a publish to ${subject}`);
};

s.before(async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: D, nodes: ['n1', 'n2'], clients: ['alice', 'bob'] }));
  ctx.op = await mesh.client('operator');
  must(await ctx.op.send('service.register', { name: 'svc' }));
  must(await ctx.op.send('endpoint.register', { name: 'ep', node: 'n2', networkServiceNames: ['svc'], prefix: '10.80.0.0/24' }));
  ctx.alice = await mesh.client('alice');
  ctx.bob = await mesh.client('bob');
  for (const [c, id] of [[ctx.alice, 'conn-alice'], [ctx.bob, 'conn-bob']] as const) {
    must(await c.send('connection.request', { connectionId: id, networkService: 'svc', clientNode: 'n1' }));
    assert.equal(must(await c.waitForConnection(id, 15000)), { state: 'established' });
  }
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s("a node agent cannot subscribe to another node's commands, or consume them", async (ctx) => {
  const nc = await ctx.mesh!.connectAs('agent:n1');
  const js = await nc.jetstreamManager({ checkAPI: false });
  await refusedSubscribe(nc, `nsm.${D}.node.n2.cmd`);
  await refusedSubscribe(nc, `nsm.${D}.node.*.cmd`);
  await refusedPublish(nc.request(`$JS.API.CONSUMER.MSG.NEXT.NSM_PERM_NODE.agent-n2`, enc.encode('{"batch":1}'), { timeout: 3000 }), '$JS.API.CONSUMER.MSG.NEXT.NSM_PERM_NODE.agent-n2');
  await refusedPublish(
    js.consumers.add('NSM_PERM_NODE', { durable_name: 'agent-n2', filter_subject: `nsm.${D}.node.n2.cmd`, ack_policy: AckPolicy.Explicit }),
    `$JS.API.CONSUMER.CREATE.NSM_PERM_NODE.agent-n2.nsm.${D}.node.n2.cmd`,
  );
  // Its own consumer's subject with another node's filter in the body: the server checks they agree.
  const sneaky = await nc.request(
    `$JS.API.CONSUMER.CREATE.NSM_PERM_NODE.agent-n1.nsm.${D}.node.n1.cmd`,
    enc.encode(JSON.stringify({ stream_name: 'NSM_PERM_NODE', config: { durable_name: 'agent-n1', name: 'agent-n1', filter_subject: `nsm.${D}.node.n2.cmd`, ack_policy: 'explicit' } })),
    { timeout: 3000 },
  );
  const answer = JSON.parse(new TextDecoder().decode(sneaky.data)) as { error?: { err_code: number; description: string } };
  assert.is(answer.error?.err_code, 10131, JSON.stringify(answer));
  // Nor snoop on other identities' inboxes and replies.
  await refusedSubscribe(nc, '_INBOX.>');
  await refusedSubscribe(nc, `nsm.${D}.reply.>`);
});

s('a node agent cannot publish to the event stream, node commands, or as another node', async (ctx) => {
  const nc = await ctx.mesh!.connectAs('agent:n1');
  const js = nc.jetstream();
  await refusedPublish(js.publish(`nsm.${D}.evt.connection.conn-alice`, enc.encode('{}')), `nsm.${D}.evt.connection.conn-alice`);
  await refusedCorePublish(nc, `nsm.${D}.evt.node.n2`);
  await refusedPublish(js.publish(`nsm.${D}.node.n2.cmd`, enc.encode('{}')), `nsm.${D}.node.n2.cmd`);
  await refusedPublish(js.publish(`nsm.${D}.cmd.connection.report.agent:n2`, enc.encode('{}')), `nsm.${D}.cmd.connection.report.agent:n2`);
  await refusedPublish(js.publish(`nsm.${D}.cmd.node.join.agent:n2`, enc.encode('{}')), `nsm.${D}.cmd.node.join.agent:n2`);
  await refusedPublish(js.publish(`nsm.${D}.cmd.service.register.agent:n1`, enc.encode('{}')), `nsm.${D}.cmd.service.register.agent:n1`);
  await refusedCorePublish(nc, `nsm.${D}.hb.n2`);
  // Through its own subject, a report that speaks for n2 is refused by the control plane (the
  // agent may not read replies, so the refusal is seen in the control plane's log).
  const asN1 = MeshClient.over(nc, { domain: D, actor: 'agent:n1' });
  const forged = await asN1.send('connection.report', { connectionId: 'conn-alice', node: 'n2', side: 'endpoint', generation: 1, result: 'failed', error: 'forged' }, { wait: false });
  assert.ok(E.isRight(forged), 'the agent may publish on its own subject');
  const refusal = 'connection.report for node \\"n2\\" must come from its agent (\\"agent:n2\\"), not \\"agent:n1\\"';
  await eventually('the control plane to log the refusal', () => ctx.mesh!.logs.some((l) => l.includes('"msg":"command rejected"') && l.includes(refusal)));
  // Queries: only its own node's desired state.
  await refusedPublish(nc.request(`nsm.${D}.query.agent:n1.connections`, enc.encode('{}'), { timeout: 3000 }), `nsm.${D}.query.agent:n1.connections`);
  const other = await asN1.query('node-desired', { node: 'n2' });
  assert.ok(E.isLeft(other) && other.left.message === 'forbidden: agent:n1 may read only its own node\'s desired state', JSON.stringify(other));
  const own = await asN1.query<{ sides: unknown[] }>('node-desired', { node: 'n1' });
  assert.ok(E.isRight(own) && own.right.sides.length === 2, JSON.stringify(own));
  // The forged report changed nothing: both connections are still established.
  for (const id of ['conn-alice', 'conn-bob']) assert.is(must(await ctx.op!.query<{ state: string }>('connection', { id })).state, 'established');
});

s("a client cannot close or read another client's connection, or listen to its notifications", async (ctx) => {
  const { alice, bob } = ctx;
  const close = await alice!.send('connection.close', { connectionId: 'conn-bob' });
  assert.ok(E.isLeft(close) && close.left.code === 'forbidden' && close.left.message === `connection "conn-bob" is not one of alice's connections`, JSON.stringify(close));
  const refresh = await alice!.send('connection.refresh', { connectionId: 'conn-bob', expirationSeconds: 60 });
  assert.ok(E.isLeft(refresh) && refresh.left.code === 'forbidden', JSON.stringify(refresh));
  const read = await alice!.query('connection', { id: 'conn-bob' });
  assert.ok(E.isLeft(read) && read.left.message === 'connection "conn-bob" does not exist', JSON.stringify(read));
  const history = await alice!.query('history', { id: 'conn-bob' });
  assert.ok(E.isLeft(history) && /forbidden/.test(history.left.message), JSON.stringify(history));
  const listOthers = await alice!.query('connections', { actor: 'bob' });
  assert.ok(E.isLeft(listOthers) && /forbidden: alice may list only its own connections/.test(listOthers.left.message), JSON.stringify(listOthers));
  const mine = must(await alice!.query<{ id: string; actor: string }[]>('connections', { includeClosed: true }));
  assert.equal(mine.map((r) => [r.id, r.actor]), [['conn-alice', 'alice']]);
  const ownHistory = must(await alice!.query<{ stream: string }[]>('history', { id: 'conn-alice' }));
  assert.ok(ownHistory.length >= 5 && ownHistory.every((h) => h.stream === 'connection.conn-alice'));
  // Bob's notifications, replies and inbox are closed to alice at the server.
  await refusedSubscribe(alice!.nc, `nsm.${D}.notify.bob.>`);
  await refusedSubscribe(alice!.nc, `nsm.${D}.reply.bob.>`);
  await refusedSubscribe(alice!.nc, '_INBOX.bob.>');
  await refusedPublish(alice!.nc.request(`nsm.${D}.query.bob.connections`, enc.encode('{}'), { timeout: 3000 }), `nsm.${D}.query.bob.connections`);
  await refusedPublish(alice!.nc.jetstream().publish(`nsm.${D}.cmd.connection.close.bob`, enc.encode('{}')), `nsm.${D}.cmd.connection.close.bob`);
  assert.is(must(await bob!.query<{ state: string }>('connection', { id: 'conn-bob' })).state, 'established');
});

s('a client cannot publish events or reach queries and commands outside its scope', async (ctx) => {
  const nc = ctx.alice!.nc;
  await refusedPublish(nc.jetstream().publish(`nsm.${D}.evt.connection.conn-bob`, enc.encode('{}')), `nsm.${D}.evt.connection.conn-bob`);
  await refusedCorePublish(nc, `nsm.${D}.evt.service.svc`);
  for (const q of ['nodes', 'node-desired', 'endpoints', 'addresses', 'status', 'policy']) {
    await refusedPublish(nc.request(`nsm.${D}.query.alice.${q}`, enc.encode('{}'), { timeout: 3000 }), `nsm.${D}.query.alice.${q}`);
  }
  for (const k of ['service.register', 'endpoint.register', 'node.leave', 'connection.report', 'policy.set']) {
    await refusedPublish(nc.jetstream().publish(`nsm.${D}.cmd.${k}.alice`, enc.encode('{}')), `nsm.${D}.cmd.${k}.alice`);
  }
  // Reading the event stream directly needs a consumer: the JetStream API is closed to clients.
  await refusedPublish(nc.request('$JS.API.STREAM.INFO.NSM_PERM_EVENTS', enc.encode(''), { timeout: 3000 }), '$JS.API.STREAM.INFO.NSM_PERM_EVENTS');
  await refusedSubscribe(nc, `nsm.${D}.evt.>`);
  await refusedSubscribe(nc, `nsm.${D}.node.n1.cmd`);
});

s('the auditor reads everything and writes nothing', async (ctx) => {
  const auditor = await ctx.mesh!.client('auditor');
  const all = must(await auditor.query<{ id: string }[]>('connections'));
  assert.equal(all.map((r) => r.id).sort(), ['conn-alice', 'conn-bob']);
  for (const q of ['nodes', 'endpoints', 'status', 'policy', 'addresses']) assert.ok(E.isRight(await auditor.query(q)), `auditor reads ${q}`);
  assert.ok(must(await auditor.query<unknown[]>('history', { id: 'conn-bob' })).length >= 5);
  const nc = auditor.nc;
  for (const k of ['service.register', 'connection.request', 'connection.close', 'policy.set']) {
    await refusedPublish(nc.jetstream().publish(`nsm.${D}.cmd.${k}.auditor`, enc.encode('{}')), `nsm.${D}.cmd.${k}.auditor`);
  }
  await refusedPublish(nc.jetstream().publish(`nsm.${D}.evt.service.x`, enc.encode('{}')), `nsm.${D}.evt.service.x`);
  await refusedSubscribe(nc, `nsm.${D}.notify.alice.>`);
  await refusedSubscribe(nc, `nsm.${D}.evt.>`);
  await refusedCorePublish(nc, `nsm.${D}.hb.n1`);
});

s('only the control plane writes the event stream, and not even it may delete or purge it', async (ctx) => {
  const op = await ctx.mesh!.connectAs('operator');
  await refusedPublish(op.jetstream().publish(`nsm.${D}.evt.service.svc`, enc.encode('{}')), `nsm.${D}.evt.service.svc`);
  await refusedPublish(op.jetstream().publish(`nsm.${D}.node.n1.cmd`, enc.encode('{}')), `nsm.${D}.node.n1.cmd`);
  const cp = await ctx.mesh!.connectAs('control-plane');
  const jsm = await cp.jetstreamManager();
  await refusedPublish(jsm.streams.purge('NSM_PERM_EVENTS'), '$JS.API.STREAM.PURGE.NSM_PERM_EVENTS');
  await refusedPublish(jsm.streams.delete('NSM_PERM_EVENTS'), '$JS.API.STREAM.DELETE.NSM_PERM_EVENTS');
  const info = await jsm.streams.info('NSM_PERM_EVENTS');
  assert.ok(info.state.messages > 0, 'the log is intact');
});

s('unauthenticated, unknown-key, wrong-CA and plaintext connections are refused', async (ctx) => {
  const mesh = ctx.mesh!;
  const ca = mesh.creds('operator').ca!;
  const anonymous = await connect({ servers: mesh.url, tls: { ca }, reconnect: false, timeout: 3000 }).then((nc) => nc.close().then(() => 'connected'), (e: { code?: string }) => e.code);
  assert.is(anonymous, 'AUTHORIZATION_VIOLATION');
  const stranger = createUserKey();
  const unknown = await connect({
    servers: mesh.url,
    reconnect: false,
    timeout: 3000,
    ...natsAuthOptions({ domain: D, name: 'x', role: 'operator', actor: 'operator', seed: stranger.seed, ca }),
  }).then((nc) => nc.close().then(() => 'connected'), (e: { code?: string }) => e.code);
  assert.is(unknown, 'AUTHORIZATION_VIOLATION');
  // The operator's key, but trusting the system CAs instead of the deployment's: the certificate is refused.
  const wrongCa = await connect({ ...natsAuthOptions(mesh.creds('operator')), tls: {}, servers: mesh.url, reconnect: false, timeout: 3000 }).then(
    (nc) => nc.close().then(() => 'connected'),
    (e: Error) => e.message,
  );
  assert.match(wrongCa, /certificate/i);
  // Plaintext, speaking the protocol by hand: the server announces that TLS is required and
  // drops the connection instead of accepting a plaintext CONNECT.
  const port = Number(new URL(mesh.url).port);
  const transcript = await new Promise<string>((resolve) => {
    let text = '';
    const sock = netConnect(port, '127.0.0.1', () => {
      sock.write('CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"plain"}\r\nPING\r\n');
    });
    sock.setEncoding('utf8');
    sock.on('data', (d: string) => (text += d));
    sock.on('close', () => resolve(text));
    sock.on('error', () => resolve(text));
    setTimeout(() => sock.destroy(), 5000);
  });
  assert.match(transcript, /^INFO .*"tls_required":true/);
  assert.not.match(transcript, /PONG/, 'a plaintext client never gets a PONG');
});

s.run();
