// Two authenticated domains, the way `nsm up` runs them by default: hub a made leaf credentials
// for peer b (nsm init --peers b); b joins over TLS with them. A cross-domain connection is
// established with signed paths checked by both domains' agents (simulated dataplanes), and b's
// registry is sourced through the link. A server joining without TLS, or with a wrong
// password, gets no link; one joining with b's credentials may send only b's interdomain
// commands and may read only the registry events of a. Each refusal is checked for its reason
// (the servers' own verdict), beside the same operation succeeding where it is allowed, so that
// a refusal cannot be an artefact of a broken setup.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, ErrorCode, StorageType, type NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { leafnodesConfig } from '../../infra/nats/leafnodes.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';
import { startNodeAgent } from '../../node-agent/agent.ts';
import { simulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { MeshClient } from '../../src/client/index.ts';
import { startControlPlane } from '../../src/runtime/controlPlane.ts';
import { natsAuthOptions, signerOf } from '../../src/security/credentials.ts';
import { DEFAULT_HEALING } from '../../src/workflows/healing.ts';
import { startSecureNatsServer } from '../../src/security/setup.ts';
import { readLeafCredentials, secureLeafnodesConfig, type LeafCredentials } from '../../src/security/leaf.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { peerDeployment, type PeerDomain } from '../lib/peerDeployment.ts';
import { must } from '../lib/mesh.ts';

type Domain = PeerDomain;
interface Ctx {
  a?: Domain;
  b?: Domain;
  leafPort?: number;
  leafB?: LeafCredentials;
  extra: RunningNatsServer[];
  conns: NatsConnection[];
  dirs: string[];
}
const s = suite<Ctx>('federation over an authenticated leafnode link', { extra: [], conns: [], dirs: [] });
const log = createLogger('secure-federation');

const deployment = (name: string, peers: string[], clients: string[] = []): Domain => peerDeployment('nsm-secfed', name, peers, clients);

const connectAs = async (ctx: Ctx, d: Domain, actor: string) => {
  const nc = await connect({ servers: d.server!.url, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...natsAuthOptions(d.creds(actor)) });
  ctx.conns.push(nc);
  return nc;
};
const clientOf = async (ctx: Ctx, d: Domain, actor = 'operator') => MeshClient.over(await connectAs(ctx, d, actor), { domain: d.name, actor, timeoutMs: 20000, signer: signerOf(d.creds(actor)) });

/** A plain server (domain m) that joins the hub with the given remote settings, and a client on it. */
const intruder = async (ctx: Ctx, remote: { url: string; caFile?: string }) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-secfed-m-'));
  ctx.dirs.push(dir);
  const r = await startNatsServer({ dataDir: dir, port: await freePort(), serverName: `m-${Date.now()}`, jetstreamDomain: 'm', extraConfig: leafnodesConfig({ remotes: [remote] }) });
  if (E.isLeft(r)) throw new Error(r.left);
  ctx.extra.push(r.right);
  // Replies across the link reach control planes' inboxes only: act like one.
  const nc = await connect({ servers: r.right.url, inboxPrefix: '_INBOX.control-plane' });
  ctx.conns.push(nc);
  return nc;
};
const hearsHub = async (nc: NatsConnection, ms = 3000) => {
  let heard = 0;
  const sub = nc.subscribe('nsm.a.fed.hb', { callback: () => heard++ });
  await new Promise((r) => setTimeout(r, ms));
  sub.unsubscribe();
  return heard > 0;
};

s.before(async (ctx) => {
  const a = (ctx.a = deployment('a', ['b'], ['alice']));
  const b = (ctx.b = deployment('b', []));
  ctx.leafPort = await freePort();
  ctx.leafB = must(E.mapLeft((message: string) => ({ message }))(readLeafCredentials(a.paths.leafCreds('b'))), 'leaf credentials of b');
  // As nsm up does: the setup step makes each domain's streams (the command stream for its peer), then only its identities remain.
  const start = async (d: Domain, leaf: string, peer: string) => {
    const r = await startSecureNatsServer({ dataDir: d.dir, port: await freePort(), serverName: `secfed-${d.name}`, jetstreamDomain: d.name, extraConfig: leaf, streams: { leaseTtlMs: DEFAULT_HEALING.leaseTtlMs, peers: [peer] } });
    if (E.isLeft(r)) throw new Error(r.left);
    d.server = r.right.server;
  };
  await start(a, secureLeafnodesConfig({ domain: 'a', hub: { port: ctx.leafPort, host: '127.0.0.1', tls: { certFile: a.paths.certFile, keyFile: a.paths.keyFile, caFile: a.paths.caFile } } }), 'b');
  const caFile = join(b.dir, 'hub-ca.pem');
  writeFileSync(caFile, ctx.leafB.ca);
  await start(b, secureLeafnodesConfig({ domain: 'b', joins: [{ url: `nats-leaf://127.0.0.1:${ctx.leafPort}`, creds: ctx.leafB, caFile }] }), 'a');
  for (const [d, peer, range] of [[a, 'b', { from: 0, to: 999 }], [b, 'a', { from: 1000, to: 1999 }]] as const) {
    d.cp = await startControlPlane({
      nc: await connectAs(ctx, d, 'control-plane'),
      domain: d.name,
      log: log.child({ domain: d.name }),
      security: { registry: d.registry, signer: signerOf(d.creds('control-plane')) },
      federation: { peers: [peer], tunnelIds: range, heartbeatMs: 300, peerTimeoutMs: 3000 },
    });
    d.agent = await startNodeAgent({
      nc: await connectAs(ctx, d, 'agent:n1'),
      domain: d.name,
      node: 'n1',
      dataplane: simulatedDataplane(),
      log: log.child({ domain: d.name, component: 'agent' }),
      heartbeatMs: 1000,
      livenessIntervalMs: 0,
      underlayAddress: d.name === 'a' ? '192.0.2.11' : '192.0.2.21',
      publicKeys: { wireguard: Buffer.from(`key of ${d.name}`.padEnd(32, '.')).toString('base64') },
      security: { registry: d.registry, signer: signerOf(d.creds('agent:n1')) },
    });
    await d.agent.ready;
  }
});

s.after(async (ctx) => {
  for (const d of [ctx.a, ctx.b]) await d?.agent?.stop().catch(() => undefined);
  for (const d of [ctx.a, ctx.b]) await d?.cp?.stop().catch(() => undefined);
  for (const c of ctx.conns) await c.close().catch(() => undefined);
  for (const x of ctx.extra) await x.stop().catch(() => undefined);
  for (const d of [ctx.a, ctx.b]) {
    await d?.server?.stop().catch(() => undefined);
    if (d) rmSync(d.dir, { recursive: true, force: true });
  }
  for (const dir of ctx.dirs) rmSync(dir, { recursive: true, force: true });
});

s('a cross-domain connection is established with signed paths checked by both agents', async (ctx) => {
  const ca = await clientOf(ctx, ctx.a!);
  const cb = await clientOf(ctx, ctx.b!);
  await eventually('a hears b over the TLS leaf link', async () => {
    const p = await ca.query<{ domain: string; status: string }[]>('peers');
    return E.isRight(p) && p.right.some((x) => x.domain === 'b' && x.status === 'reachable');
  });
  must(await cb.send('service.register', { name: 'icmp' }));
  must(await cb.send('endpoint.register', { name: 'ep1', node: 'n1', networkServiceNames: ['icmp'], prefix: '10.80.0.0/24' }));
  must(await ca.send('connection.request', { connectionId: 's1', networkService: 'icmp@b', clientNode: 'n1' }));
  const settled = must(await ca.waitForConnection('s1', 20000));
  assert.is(settled.state, 'established', settled.reason);
  type Path = { path: { pathSegments: { name: string; token?: string }[] } };
  const inA = must(await ca.query<Path>('connection', { id: 's1' }));
  const inB = await eventually('b established', async () => {
    const v = await cb.query<Path & { state: string }>('connection', { id: 's1' });
    return E.isRight(v) && v.right.state === 'established' ? v.right : undefined;
  });
  assert.equal(inA.path.pathSegments.map((x) => [x.name, x.token !== undefined]), [['operator', true], ['control-plane', true], ['agent:n1', true], ['ep1@b', false]], "a's path: its client, its control plane, its agent");
  assert.equal(inB.path.pathSegments.map((x) => [x.name, x.token !== undefined]), [['control-plane', true], ['control-plane', true], ['agent:n1@a', false], ['ep1', true]], "b's path: opened by b's control plane for domain a, signed by b's agent");
  const copy = await eventually("b's registry in a's sourced copy, through the link's permissions", async () => {
    const r = await ca.query<{ name: string }[]>('remote-endpoints', { domain: 'b' });
    return E.isRight(r) && r.right.some((e) => e.name === 'ep1') ? r.right : undefined;
  });
  assert.ok(copy.length >= 1);
});

s("a client's history across domains shows its connection's events only", async (ctx) => {
  const alice = await clientOf(ctx, ctx.a!, 'alice');
  const op = await clientOf(ctx, ctx.a!);
  // Alice names her connection like a's node: a's history of "n1" also holds the node's stream.
  must(await alice.send('connection.request', { connectionId: 'n1', networkService: 'icmp@b', clientNode: 'n1' }));
  assert.is(must(await alice.waitForConnection('n1', 20000)).state, 'established');
  type Hist = { events: { domain: string; stream: string; event: { type: string } }[]; domains: Record<string, string> };
  const seen = (h: Hist) => [...new Set(h.events.map((e) => `${e.domain}:${e.stream}`))].sort();
  // The operator sees everything named n1 in both domains (b's part arrives once b has it).
  const all = await eventually("n1's history in both domains", async () => {
    const h = must(await op.query<Hist>('history', { id: 'n1', allDomains: true }));
    return h.events.some((e) => e.domain === 'b' && e.stream === 'connection.n1') ? h : undefined;
  });
  assert.ok(seen(all).includes('a:node.n1'), `the operator's answer holds a's node n1: ${seen(all)}`);
  const mine = must(await alice.query<Hist>('history', { id: 'n1', allDomains: true }));
  assert.equal(seen(mine), ['a:connection.n1', 'b:connection.n1'], "alice's answer: her connection's stream in each domain");
  assert.ok(mine.events.some((e) => e.domain === 'a' && e.event.type === 'ConnectionEstablished'));
  assert.equal(Object.keys(mine.domains).sort(), ['a', 'b']);
  // Without allDomains: the same narrowing.
  const local = must(await alice.query<{ stream: string }[]>('history', { id: 'n1' }));
  assert.equal([...new Set(local.map((r) => r.stream))], ['connection.n1']);
});

/** The log of the intruder server started last (its own account of why its leaf link failed). */
const lastIntruderLog = (ctx: Ctx) => readFileSync(ctx.extra[ctx.extra.length - 1]!.logFile, 'utf8');

s('no TLS, or a wrong password: no link', async (ctx) => {
  const plain = await intruder(ctx, { url: `nats-leaf://${ctx.leafB!.user}:${ctx.leafB!.password}@127.0.0.1:${ctx.leafPort}` });
  assert.not.ok(await hearsHub(plain), 'a leaf connection without TLS is refused');
  // Refused for that reason: the hub insists on TLS, which a joiner without the hub's CA cannot complete.
  assert.match(lastIntruderLog(ctx), /TLS leafnode handshake error: x509: certificate signed by unknown authority/, 'refused at the TLS handshake');
  assert.not.match(lastIntruderLog(ctx), /Authorization Violation/, 'never got as far as authenticating');
  const caFile = join(ctx.b!.dir, 'hub-ca.pem');
  const wrong = await intruder(ctx, { url: `nats-leaf://${ctx.leafB!.user}:not-the-password@127.0.0.1:${ctx.leafPort}`, caFile });
  assert.not.ok(await hearsHub(wrong), 'a wrong password is refused');
  // Refused for that reason: TLS went through (the CA is right), the hub rejected the password.
  assert.match(lastIntruderLog(ctx), /Leafnode Error 'Authorization Violation'/, 'refused by authentication');
  assert.not.match(lastIntruderLog(ctx), /TLS leafnode handshake error/, 'the TLS handshake itself succeeded');
  // Positive control: the same join with the right password hears the hub (the last test does more with it).
  const right = await intruder(ctx, { url: `nats-leaf://${ctx.leafB!.user}:${ctx.leafB!.password}@127.0.0.1:${ctx.leafPort}`, caFile });
  await eventually('the right password joins', () => hearsHub(right, 500), { timeoutMs: 10000 });
});

const encode = (text: string) => new TextEncoder().encode(text);
/** How one JetStream publish ends: "stored", or "refused (<the client's error code>: <message>)". */
const tryPublish = async (nc: NatsConnection, subject: string) => {
  try {
    await nc.jetstream().publish(subject, encode('{}'), { timeout: 1500 });
    return 'stored';
  } catch (e) {
    return `refused (${(e as { code?: string }).code}: ${(e as Error).message})`;
  }
};
const tryRequest = async (nc: NatsConnection, subject: string) => {
  try {
    await nc.request(subject, encode('{}'), { timeout: 1500 });
    return 'answered';
  } catch (e) {
    return `refused (${(e as { code?: string }).code}: ${(e as Error).message})`;
  }
};
/** What b's leaf identity may not do on a: its own commands, another peer's, a's log, a's queries. */
const FORBIDDEN_PUBLISH = ['nsm.a.cmd.connection.request.operator', 'nsm.a.fed.c.cmd.close', 'nsm.a.evt.connection.forged'];
const FORBIDDEN_QUERY = 'nsm.a.query.operator.connections';

s("b's leaf identity carries b's interdomain commands and nothing else", async (ctx) => {
  const caFile = join(ctx.b!.dir, 'hub-ca.pem');
  const nc = await intruder(ctx, { url: `nats-leaf://${ctx.leafB!.user}:${ctx.leafB!.password}@127.0.0.1:${ctx.leafPort}`, caFile });
  await eventually('the link is up', () => hearsHub(nc, 500), { timeoutMs: 10000 });
  // Across the link: the hub tells a leaf only about subjects its identity may publish to, so a
  // forbidden subject has no responders on the leaf's side (503) at once, while b's own
  // interdomain command, sent the same way a moment before, is stored by a's stream.
  assert.is(await tryPublish(nc, 'nsm.a.fed.b.cmd.close'), 'stored', "b's own interdomain command gets through");
  for (const subject of FORBIDDEN_PUBLISH) {
    assert.match(await tryPublish(nc, subject), new RegExp(`^refused \\(${ErrorCode.NoResponders}: `), `${subject}: nothing across the link listens for it`);
  }
  assert.match(await tryRequest(nc, FORBIDDEN_QUERY), new RegExp(`^refused \\(${ErrorCode.NoResponders}: `), "a's queries are out of reach across the link");
  // Those subjects are served on a (its own identities reach them): the silence is the link's.
  const op = await connectAs(ctx, ctx.a!, 'operator');
  assert.is(await tryPublish(op, 'nsm.a.cmd.connection.request.operator'), 'stored', "a's operator reaches the same command subject");
  assert.is(await tryRequest(op, FORBIDDEN_QUERY), 'answered', "a's operator gets an answer to the same query");
  // The reason, in the server's own words: the same identity, logged in to a directly, is told
  // "Permissions Violation for Publish" for each subject (and may send b's command).
  const direct = await connect({ servers: ctx.a!.server!.url, user: ctx.leafB!.user, pass: ctx.leafB!.password, tls: { caFile }, inboxPrefix: '_INBOX.control-plane' });
  ctx.conns.push(direct);
  assert.is(await tryPublish(direct, 'nsm.a.fed.b.cmd.close'), 'stored', "b's identity may send b's interdomain command");
  for (const subject of [...FORBIDDEN_PUBLISH, FORBIDDEN_QUERY]) {
    const r = subject === FORBIDDEN_QUERY ? await tryRequest(direct, subject) : await tryPublish(direct, subject);
    assert.is(r, `refused (${ErrorCode.PermissionsViolation}: 'Permissions Violation for Publish to "${subject}"')`, subject);
  }
  // Sourcing from a: its registry (endpoint) events only. a gets an endpoint of its own to source.
  const ca = await clientOf(ctx, ctx.a!);
  must(await ca.send('service.register', { name: 'local' }));
  must(await ca.send('endpoint.register', { name: 'ep-a', node: 'n1', networkServiceNames: ['local'], prefix: '10.81.0.0/24' }));
  const jsm = await nc.jetstreamManager();
  const source = (name: string, filter: string) =>
    jsm.streams.add({ name, storage: StorageType.Memory, sources: [{ name: 'NSM_A_EVENTS', external: { api: '$JS.a.API', deliver: '' }, filter_subject: filter }] } as never);
  await source('STEAL_CONNECTIONS', 'nsm.a.evt.connection.>');
  await source('STEAL_NODES', 'nsm.a.evt.node.>');
  // Positive control: the same sourcing, made at the same time over the same link, of what b may read.
  await source('COPY_ENDPOINTS', 'nsm.a.evt.endpoint.>');
  await eventually("a's endpoint events sourced over b's link", async () => (await jsm.streams.info('COPY_ENDPOINTS')).state.messages > 0, { timeoutMs: 15000 });
  const a = await (await connectAs(ctx, ctx.a!, 'operator')).jetstreamManager();
  const inA = async (filter: string) => (await a.streams.info('NSM_A_EVENTS', { subjects_filter: filter })).state.subjects ?? {};
  assert.ok(Object.keys(await inA('nsm.a.evt.connection.>')).length > 0, 'a has connection events to steal');
  assert.ok(Object.keys(await inA('nsm.a.evt.node.>')).length > 0, 'a has node events to steal');
  await new Promise((r) => setTimeout(r, 1000));
  assert.is((await jsm.streams.info('STEAL_CONNECTIONS')).state.messages, 0, "a's connection events cannot be sourced over b's link");
  assert.is((await jsm.streams.info('STEAL_NODES')).state.messages, 0, "a's node events cannot be sourced over b's link");
});

s.run();
