// Bad commands against a running mesh: raw messages on the command subjects, the SDK, and the
// CLI. Each gets an error that names the problem, and the event log does not move.
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import { headers, type NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { COMMAND_MAX_BYTES } from '../../infra/nats/streams.ts';
import { MeshClient } from '../../src/client/index.ts';
import type { CommandReply } from '../../src/contracts/replies.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';
import { runNsm } from '../lib/nsmProcess.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

type Ctx = { mesh?: TestMesh; admin?: MeshClient; nc?: NatsConnection; positionBefore?: bigint };
const s = suite<Ctx>('bad input changes nothing and says what is wrong', {});

const lastPosition = async (ctx: Ctx): Promise<bigint> => {
  const r = await ctx.mesh!.cp!.store.lastPosition()();
  if (E.isLeft(r)) throw new Error(r.left.message);
  return r.right;
};

s.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ domain: 'bad', nodes: ['n1'] });
  ctx.admin = await ctx.mesh.client('admin');
  ctx.nc = await ctx.mesh.nats.connect();
  must(await ctx.admin.send('service.register', { name: 'svc' }));
  must(await ctx.admin.send('endpoint.register', { name: 'ep', node: 'n1', networkServiceNames: ['svc'], prefix: '10.9.0.0/24' }));
  ctx.positionBefore = await lastPosition(ctx);
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

/**
 * Publishes raw bytes onto a command subject (nsm.<domain>.cmd.<kind>.<actor>) with a msgID, as
 * any NATS client could, and returns the control plane's answer on nsm.<domain>.reply.<actor>.<msgID>.
 */
const raw = async (ctx: Ctx, subjectTail: string, payload: string | Uint8Array | ((id: string) => string), actor = 'tester'): Promise<CommandReply> => {
  const id = randomUUID();
  const bytes = typeof payload === 'function' ? enc.encode(payload(id)) : typeof payload === 'string' ? enc.encode(payload) : payload;
  const sub = ctx.nc!.subscribe(`nsm.bad.reply.${actor}.${id}`, { max: 1, timeout: 10000 });
  await ctx.nc!.jetstream().publish(`nsm.bad.cmd.${subjectTail}.${actor}`, bytes, { msgID: id });
  for await (const m of sub) return JSON.parse(dec.decode(m.data)) as CommandReply;
  throw new Error(`no reply to ${subjectTail}`);
};

/** A command envelope around the body, with the id the answer will carry. */
const envelope = (body: unknown, extra: Record<string, unknown> = {}) => (id: string) => JSON.stringify({ id, actor: 'tester', body, ...extra });

const rejected = (r: CommandReply, code: string, ...mentions: (string | RegExp)[]) => {
  assert.is(r.ok, false, `expected a rejection, got ${JSON.stringify(r)}`);
  if (r.ok) return;
  assert.is(r.error.code, code, r.error.message);
  for (const m of mentions) {
    if (typeof m === 'string') assert.ok(r.error.message.includes(m), `"${r.error.message}" should mention ${m}`);
    else assert.match(r.error.message, m);
  }
};

s('missing fields are named by their path', async (ctx) => {
  rejected(await raw(ctx, 'service.register', envelope({})), 'invalid', 'service.register', 'body.name: is required');
  rejected(await raw(ctx, 'endpoint.register', envelope({ name: 'ep2', node: 'n1' })), 'invalid', 'body.networkServiceNames: is required');
  rejected(await raw(ctx, 'connection.request', envelope({ connectionId: 'c1', networkService: 'svc' })), 'invalid', 'body.clientNode: is required');
  rejected(await raw(ctx, 'service.register', (id) => JSON.stringify({ id, actor: 'someone-else', body: { name: 'x' } })), 'invalid', 'actor: "someone-else" differs from the sender named in the subject, "tester"');
  rejected(await raw(ctx, 'service.register', (id) => JSON.stringify({ id, actor: 'tester' })), 'invalid', 'body: is required');
});

s('wrong types are named by their path', async (ctx) => {
  rejected(await raw(ctx, 'service.register', envelope({ name: 42 })), 'invalid', 'body.name: expected a string, got number');
  rejected(await raw(ctx, 'service.register', envelope({ name: 'x', payload: 'PPP' })), 'invalid', 'body.payload: expected one of IP, ETHERNET');
  rejected(await raw(ctx, 'connection.request', envelope({ connectionId: 'c1', networkService: 'svc', clientNode: 'n1', labels: { app: 7 } })), 'invalid', 'body.labels.app: expected a string, got number');
  rejected(await raw(ctx, 'endpoint.register', envelope({ name: 'ep2', node: 'n1', networkServiceNames: 'svc' })), 'invalid', 'body.networkServiceNames: expected an array, got "svc"');
  rejected(await raw(ctx, 'endpoint.register', envelope({ name: 'ep2', node: 'n1', networkServiceNames: ['svc'], expirationSeconds: 1.5 })), 'invalid', 'body.expirationSeconds: expected an integer');
  // An id that is not a string: the answer still arrives, on the msgID.
  rejected(await raw(ctx, 'service.register', JSON.stringify({ id: 12, actor: 'tester', body: { name: 'x' } })), 'invalid', 'id: expected a string, got number');
});

s('unknown fields are refused, not ignored', async (ctx) => {
  rejected(await raw(ctx, 'service.register', envelope({ name: 'x', colour: 'red' })), 'invalid', 'body.colour: unknown field');
  rejected(await raw(ctx, 'service.register', envelope({ name: 'x' }, { priority: 1 })), 'invalid', 'priority: unknown field');
  rejected(
    await raw(ctx, 'service.register', envelope({ name: 'x', matches: [{ routes: [{ destinationSelector: {}, wieght: 2 }] }] })),
    'invalid',
    'body.matches[0].routes[0].wieght: unknown field',
  );
});

s('an unknown service is refused by the domain, with its name', async (ctx) => {
  rejected(await raw(ctx, 'connection.request', envelope({ connectionId: randomUUID(), networkService: 'no-such-svc', clientNode: 'n1' })), 'not-found', 'network service "no-such-svc" is not registered');
  const viaSdk = await ctx.admin!.send('connection.request', { connectionId: randomUUID(), networkService: 'no-such-svc', clientNode: 'n1' });
  assert.ok(E.isLeft(viaSdk) && viaSdk.left.code === 'not-found' && viaSdk.left.message.includes('no-such-svc'), JSON.stringify(viaSdk));
});

s('bad CIDRs and bad names', async (ctx) => {
  const ep = (prefix: unknown) => envelope({ name: 'ep2', node: 'n1', networkServiceNames: ['svc'], prefix });
  rejected(await raw(ctx, 'endpoint.register', ep('10.0.0.0/33')), 'invalid', 'body.prefix', 'is not a CIDR prefix');
  rejected(await raw(ctx, 'endpoint.register', ep('10.0.0.1/24')), 'invalid', 'body.prefix', 'host bits set; did you mean 10.0.0.0/24?');
  rejected(await raw(ctx, 'endpoint.register', ep('banana')), 'invalid', 'body.prefix', 'is not a CIDR prefix');
  rejected(await raw(ctx, 'endpoint.register', envelope({ name: 'ep2', node: 'n1', networkServiceNames: ['svc'], excludedPrefixes: ['10.0.0.0/8', '300.0.0.0/8'] })), 'invalid', 'body.excludedPrefixes[1]');
  rejected(await raw(ctx, 'service.register', envelope({ name: 'Bad Name!' })), 'invalid', 'body.name: invalid value "Bad Name!"');
  rejected(await raw(ctx, 'service.register', envelope({ name: '' })), 'invalid', 'body.name: must not be empty');
  rejected(await raw(ctx, 'service.register', envelope({ name: 'x'.repeat(64) })), 'invalid', 'body.name: too long (64 characters, at most 63)');
  rejected(await raw(ctx, 'connection.request', envelope({ connectionId: 'has space', networkService: 'svc', clientNode: 'n1' })), 'invalid', 'body.connectionId: invalid value');
});

s('a command that speaks for a node must come from that node\'s agent', async (ctx) => {
  const report = envelope({ connectionId: 'c1', node: 'n1', side: 'client', generation: 1, result: 'programmed' });
  rejected(await raw(ctx, 'connection.report', report), 'forbidden', 'connection.report for node "n1" must come from its agent ("agent:n1"), not "tester"');
  const reportWithoutActor = (id: string) => JSON.stringify({ id, body: { connectionId: 'c1', node: 'n1', side: 'client', generation: 1, result: 'programmed' } });
  rejected(await raw(ctx, 'connection.report', reportWithoutActor, 'agent:n2'), 'forbidden', 'not "agent:n2"');
  rejected(await raw(ctx, 'node.join', envelope({ name: 'n9', mechanisms: ['kernel'], dataplane: 'simulated' })), 'forbidden', 'node.join for node "n9"');
});

s('an unknown command verb or aggregate', async (ctx) => {
  rejected(await raw(ctx, 'service.explode', envelope({ name: 'x' })), 'unknown-command', 'unknown command "service.explode"', 'service.register');
  rejected(await raw(ctx, 'widget.register', envelope({ name: 'x' })), 'unknown-command', 'unknown command "widget.register"');
});

s('invalid JSON and JSON that is not an object', async (ctx) => {
  rejected(await raw(ctx, 'service.register', '{"id": "x", "actor":'), 'invalid', 'service.register: not valid JSON');
  rejected(await raw(ctx, 'service.register', new Uint8Array([0xff, 0xfe, 0x00])), 'invalid', 'not valid JSON');
  rejected(await raw(ctx, 'service.register', ''), 'invalid', 'not valid JSON');
  rejected(await raw(ctx, 'service.register', '[1, 2, 3]'), 'invalid', 'expected an object, got array');
  rejected(await raw(ctx, 'service.register', '"register me"'), 'invalid', 'expected an object, got "register me"');
  rejected(await raw(ctx, 'service.register', '42'), 'invalid', 'expected an object, got number');
  rejected(await raw(ctx, 'service.register', 'null'), 'invalid', 'expected an object, got null');
  rejected(await raw(ctx, 'service.register', envelope([{ name: 'x' }])), 'invalid', 'body: expected an object, got array');
});

s('an oversize command is refused when it is published', async (ctx) => {
  const big = { name: 'x', matches: [{ sourceSelector: { k: 'v'.repeat(63) }, routes: [{ destinationSelector: { pad: 'x'.repeat(COMMAND_MAX_BYTES) } }] }] };
  // The SDK says so before anything is sent.
  const viaSdk = await ctx.admin!.send('service.register', big as never);
  assert.ok(E.isLeft(viaSdk), 'the SDK refuses it');
  if (E.isLeft(viaSdk)) {
    assert.is(viaSdk.left.code, 'invalid');
    assert.match(viaSdk.left.message, /service\.register: command too large \(\d+ bytes, at most 65536\)/);
  }
  // A raw JetStream publish is refused by the command stream's max_msg_size.
  const id = randomUUID();
  const err = await ctx
    .nc!.jetstream()
    .publish('nsm.bad.cmd.service.register.tester', enc.encode(envelope(big)(id)), { msgID: id })
    .then(() => undefined, (e: Error) => e);
  assert.ok(err, 'the server refuses the publish');
  assert.match(err!.message, /message size exceeds maximum allowed/);
  // A core NATS publish gets no ack and is not stored: nothing reaches the control plane.
  const h = headers();
  h.set('Nats-Msg-Id', randomUUID());
  ctx.nc!.publish('nsm.bad.cmd.service.register.tester', enc.encode(envelope(big)(randomUUID())), { headers: h });
  await ctx.nc!.flush();
});

s('a client whose NATS connection is closed gets an answer, not an exception', async (ctx) => {
  const nc = await ctx.mesh!.nats.connect();
  const c = MeshClient.over(nc, { domain: 'bad', actor: 'closed-one' });
  await nc.close();
  const r = await c.send('service.register', { name: 'never' });
  assert.ok(E.isLeft(r), 'refused');
  if (E.isLeft(r)) {
    assert.is(r.left.code, 'unavailable');
    assert.match(r.left.message, /not connected to NATS/);
  }
  const q = await c.query('services');
  assert.ok(E.isLeft(q) && q.left.code === 'unavailable', 'queries too');
});

s('a control plane whose HTTP port is taken says so and stops', async (ctx) => {
  const taken = createServer();
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r));
  const port = (taken.address() as AddressInfo).port;
  try {
    // Its own domain: it must not take part in this suite's mesh.
    const r = await runNsm(['control-plane', '--insecure', '--server', ctx.mesh!.nats.url, '--domain', 'badhttp', '--http-port', String(port)], {}, 30_000);
    assert.is(r.signal, null, 'it stopped by itself');
    assert.ok(r.code !== 0, `exited ${r.code}`);
    assert.match(r.stderr, new RegExp(`HTTP API cannot listen on 127\\.0\\.0\\.1:${port}`));
  } finally {
    taken.close();
  }
});

s('the event log did not move', async (ctx) => {
  // Everything above was answered, so nothing is still on its way to the log.
  assert.is(await lastPosition(ctx), ctx.positionBefore!);
  const services = must(await ctx.admin!.query<{ name: string }[]>('services'));
  assert.equal(services.map((x) => x.name), ['svc']);
  const endpoints = must(await ctx.admin!.query<{ name: string }[]>('endpoints'));
  assert.equal(endpoints.map((x) => x.name), ['ep']);
});

s('bad CLI invocations exit non-zero with one line saying why', async (ctx) => {
  const at = ['--server', ctx.mesh!.nats.url, '--domain', 'bad'];
  const cases: { args: string[]; says: string | RegExp }[] = [
    { args: ['service', 'register', 'Bad Name!', ...at], says: 'service name "Bad Name!": use 1-63 letters, digits, "-" or "_"' },
    { args: ['endpoint', 'register', 'ep2', '--service', 'svc', '--node', 'n1', '--prefix', '10.0.0.0/33', ...at], says: 'body.prefix: "10.0.0.0/33" is not a CIDR prefix' },
    { args: ['endpoint', 'register', 'ep2', ...at], says: 'endpoint register needs at least one --service' },
    { args: ['connect', 'no-such-svc', '--node', 'n1', ...at], says: 'network service "no-such-svc" is not registered' },
    { args: ['service', 'register', 'x', '--payload', 'PPP', ...at], says: '--payload "PPP": expected IP or ETHERNET' },
    { args: ['endpoint', 'register', 'ep2', '--service', 'svc', '--label', 'novalue', ...at], says: '--label "novalue": expected key=value' },
    { args: ['ls', 'widgets', ...at], says: 'expected services, endpoints, connections, nodes, addresses or peers' },
    { args: ['service', 'register', 'x', '--colour', 'red', ...at], says: /unknown option '--colour'/ },
    { args: ['frobnicate'], says: 'unknown command "frobnicate"' },
    { args: ['history', 'nothing-here', ...at], says: 'nothing has happened to "nothing-here"' },
  ];
  for (const c of cases) {
    const r = await runNsm(c.args);
    assert.ok(r.code !== 0, `nsm ${c.args.join(' ')} should fail, exited ${r.code}`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, `one line for nsm ${c.args.join(' ')}, got:\n${r.stderr}`);
    if (typeof c.says === 'string') assert.ok(lines[0]!.includes(c.says), `"${lines[0]}" should say ${c.says}`);
    else assert.match(lines[0]!, c.says);
  }
  assert.is(await lastPosition(ctx), ctx.positionBefore!, 'the CLI changed nothing either');
});

s.run();
