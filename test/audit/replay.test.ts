// Time travel and history on a live mesh: a scripted story (register, connect, heal, close), then the whole mesh replayed at three moments, by position and by time, through the
// library, the NATS query, the HTTP API and the CLI, checked field by field; and the history of
// each kind of id with actor, correlation and causation in log order.
import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { replayAt } from '../../src/read/replay.ts';
import type { MeshClient } from '../../src/client/index.ts';
import { startHttpApi } from '../../src/runtime/http.ts';
import { meshAtView } from '../../src/read/queries.ts';
import { waitForQuietLog } from '../lib/auditScenario.ts';
import { suite } from '../lib/harness.ts';
import { must, startTestMesh, type TestMesh } from '../lib/mesh.ts';
import { nsmEnv } from '../lib/nsmProcess.ts';

const NSM = fileURLToPath(new URL('../../bin/nsm', import.meta.url));
type View = ReturnType<typeof meshAtView>;
interface Moment {
  position: bigint;
  time: Date;
}
interface Ctx {
  mesh?: TestMesh;
  http?: Server;
  base?: string;
  op?: MeshClient;
  moments: Moment[];
  ids: { request1: string; request2: string; close1: string; unregister: string };
}

/** The CLI in a child process, awaited without blocking: the control plane it asks runs in this one. */
const nsm = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
  new Promise((resolve, reject) => {
    const child = spawn(NSM, args, { env: nsmEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('error', reject);
    child.once('close', (status) => resolve({ status, stdout, stderr }));
  });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const s = suite<Ctx>('replay at three moments, history of every kind of id', { moments: [], ids: { request1: 'req-c1-0001', request2: 'req-c2-0001', close1: 'close-c1-0001', unregister: 'unreg-ep-a-0001' } });

s.before(async (ctx) => {
  const mesh = (ctx.mesh = await startTestMesh({ nodes: ['n1', 'n2'] }));
  const store = mesh.cp!.store;
  ctx.http = await startHttpApi(0, '127.0.0.1', () => mesh.cp!.queryContext(), createLogger('test-http'));
  ctx.base = `http://127.0.0.1:${(ctx.http.address() as AddressInfo).port}/api/v1`;
  const op = (ctx.op = await mesh.client('operator'));
  const moment = async () => {
    const position = await waitForQuietLog(store);
    await sleep(30); // the moment lies strictly between two steps, to the millisecond
    ctx.moments.push({ position, time: new Date() });
    await sleep(30);
  };
  must(await op.send('service.register', { name: 'web' }));
  must(await op.send('endpoint.register', { name: 'ep-a', node: 'n1', prefix: '10.1.0.0/24', networkServiceNames: ['web'], networkServiceLabels: { web: { labels: { v: '1' } } }, expirationSeconds: 3600 }));
  must(await op.send('endpoint.register', { name: 'ep-b', node: 'n2', prefix: '10.2.0.0/24', networkServiceNames: ['web'], expirationSeconds: 3600 }));
  must(await op.send('connection.request', { connectionId: 'c1', networkService: 'web', clientNode: 'n1' }, { id: ctx.ids.request1 }));
  assert.is(must(await op.waitForConnection('c1', 20_000)).state, 'established');
  await moment(); // 1: c1 up on ep-a
  // The middle of the story is a heal: ep-a leaves, c1 moves onto ep-b; then c2 arrives on ep-b.
  must(await op.send('endpoint.unregister', { name: 'ep-a' }, { id: ctx.ids.unregister }));
  for (let i = 0; i < 200; i++) {
    const c1 = must(await op.query<{ state: string; networkServiceEndpointName?: string }>('connection', { id: 'c1' }));
    if (c1.state === 'established' && c1.networkServiceEndpointName === 'ep-b') break;
    await sleep(50);
  }
  must(await op.send('connection.request', { connectionId: 'c2', networkService: 'web', clientNode: 'n2' }, { id: ctx.ids.request2 }));
  assert.is(must(await op.waitForConnection('c2', 20_000)).state, 'established');
  await moment(); // 2: ep-a gone, c1 healed onto ep-b, c2 up on ep-b
  must(await op.send('connection.close', { connectionId: 'c1', reason: 'done' }, { id: ctx.ids.close1 }));
  await moment(); // 3: c1 closed, its addresses released
});
s.after(async (ctx) => {
  await new Promise((r) => (ctx.http ? ctx.http.close(r) : r(undefined)));
  await ctx.mesh?.stop();
});

const conn = (v: View, id: string) => v.connections.find((c) => c.id === id);

/** The expected mesh at each moment, field by field. */
const checkMoment = (v: View, n: number, where: string) => {
  const at = `${where}, moment ${n}`;
  assert.equal(v.services.map((x) => [x.name, x.payload, x.matches]), [['web', 'IP', []]], `${at}: services`);
  const eps = Object.fromEntries(v.endpoints.map((e) => [e.name, e]));
  assert.equal(Object.keys(eps).sort(), n === 1 ? ['ep-a', 'ep-b'] : ['ep-b'], `${at}: endpoints`);
  if (n === 1) {
    assert.equal(eps['ep-a']!.networkServiceLabels, { web: { labels: { v: '1' } } }, `${at}: ep-a labels`);
    assert.is(eps['ep-a']!.node, 'n1');
    assert.equal(eps['ep-a']!.prefixes, ['10.1.0.0/24']);
    assert.is(eps['ep-a']!.connections, 1, `${at}: ep-a load`);
  }
  assert.is(eps['ep-b']!.connections, [0, 2, 1][n - 1], `${at}: ep-b load`);
  assert.equal(v.nodes.map((x) => x.name).sort(), ['n1', 'n2'], `${at}: nodes`);
  const c1 = conn(v, 'c1')!;
  assert.is(c1.state, n === 3 ? 'closed' : 'established', `${at}: c1 state`);
  assert.is(c1.clientNode, 'n1');
  assert.is(c1.actor, 'operator');
  assert.equal(c1.context?.dnsContext, { configs: [] });
  if (n === 1) {
    assert.is(c1.networkServiceEndpointName, 'ep-a', `${at}: c1 endpoint`);
    assert.is(c1.endpointNode, 'n1');
    assert.equal(c1.mechanism, { local: 'kernel' });
    assert.equal(c1.context?.ipContext.srcIpAddrs, ['10.1.0.3/32'], `${at}: c1 client address`);
    assert.equal(c1.context?.ipContext.dstIpAddrs, ['10.1.0.2/32'], `${at}: c1 endpoint address`);
    assert.is(c1.heals, 0);
  } else {
    // Healed onto ep-b, across nodes, with ep-b's addresses: nothing stale from ep-a.
    assert.is(c1.networkServiceEndpointName, 'ep-b', `${at}: c1 endpoint after the heal`);
    assert.is(c1.endpointNode, 'n2');
    assert.equal(c1.mechanism, { local: 'kernel', remote: 'wireguard' });
    assert.equal(c1.context?.ipContext.srcIpAddrs, ['10.2.0.3/32'], `${at}: c1 client address after the heal`);
    assert.equal(c1.context?.ipContext.dstIpAddrs, ['10.2.0.2/32'], `${at}: c1 endpoint address after the heal`);
    assert.is(c1.heals, 1, `${at}: c1 healed once`);
    assert.is(c1.lastHeal?.cause, 'endpoint-unregistered');
  }
  assert.is(c1.closeReason, n === 3 ? 'done' : undefined);
  const c2 = conn(v, 'c2');
  if (n === 1) assert.is(c2, undefined, `${at}: c2 not yet requested`);
  else {
    assert.is(c2!.state, 'established', `${at}: c2 state`);
    assert.is(c2!.networkServiceEndpointName, 'ep-b');
    assert.equal(c2!.context?.ipContext.srcIpAddrs, ['10.2.0.5/32']);
    assert.equal(c2!.context?.ipContext.dstIpAddrs, ['10.2.0.4/32']);
  }
  const addresses = v.addresses.map((a) => `${a.endpoint}/${a.connectionId}/${a.src}/${a.dst}`).sort();
  const expected = [
    ...(n === 1 ? ['ep-a/c1/10.1.0.3/32/10.1.0.2/32'] : []),
    ...(n === 2 ? ['ep-b/c1/10.2.0.3/32/10.2.0.2/32'] : []),
    ...(n > 1 ? ['ep-b/c2/10.2.0.5/32/10.2.0.4/32'] : []),
  ];
  assert.equal(addresses, expected, `${at}: allocated addresses`);
};

s('replayed from the log alone, by position and by time: the expected mesh at each moment', async (ctx) => {
  const store = ctx.mesh!.cp!.store;
  for (const [i, m] of ctx.moments.entries()) {
    const byPosition = await replayAt(store, { position: m.position });
    const byTime = await replayAt(store, { time: m.time });
    if (E.isLeft(byPosition) || E.isLeft(byTime)) throw new Error('replay failed');
    assert.is(byPosition.right.model.position, Number(m.position));
    assert.is(byTime.right.model.position, Number(m.position), `moment ${i + 1}: the time resolves to the same position`);
    checkMoment(meshAtView(byPosition.right), i + 1, 'by position');
    checkMoment(meshAtView(byTime.right), i + 1, 'by time');
  }
  // Before anything happened, the mesh was empty; past the end it is the live model.
  const before = await replayAt(store, { time: new Date(Date.UTC(2001, 0, 1)) });
  assert.ok(E.isRight(before) && before.right.model.position === 0 && meshAtView(before.right).connections.length === 0);
});

s('the same through the NATS query, the HTTP API (?at=) and nsm replay --json', async (ctx) => {
  const mesh = ctx.mesh!;
  for (const [i, m] of ctx.moments.entries()) {
    const q = must(await ctx.op!.query<View>('replay', { until: m.time.toISOString() }));
    checkMoment(q, i + 1, 'NATS replay query');
    const cli = await nsm(['replay', '--until', m.time.toISOString(), '--all', '--json', '--server', mesh.nats.url, '--domain', mesh.domain]);
    assert.is(cli.status, 0, cli.stderr);
    checkMoment(JSON.parse(cli.stdout) as View, i + 1, 'nsm replay');
    const get = async (path: string) => {
      const r = await fetch(`${ctx.base}${path}`);
      assert.is(r.status, 200, `${path}: ${await r.clone().text()}`);
      return r.json() as Promise<unknown>;
    };
    const at = encodeURIComponent(m.time.toISOString());
    const http = {
      position: Number(m.position),
      until: m.position.toString(),
      services: await get(`/services?at=${at}`),
      endpoints: await get(`/endpoints?at=${at}`),
      connections: await get(`/connections?includeClosed=true&at=${at}`),
      nodes: await get(`/nodes?at=${m.position}`),
      addresses: await get(`/addresses?at=${m.position}`),
    } as View;
    checkMoment(http, i + 1, 'HTTP ?at=');
    // "Which endpoint served connection c1 at that moment?"
    const c1 = (await get(`/connections/c1?at=${at}`)) as { networkServiceEndpointName: string; state: string };
    assert.is(c1.networkServiceEndpointName, i === 0 ? 'ep-a' : 'ep-b');
    assert.is(c1.state, i === 2 ? 'closed' : 'established');
  }
  const bad = await fetch(`${ctx.base}/connections?at=yesterday`);
  assert.is(bad.status, 400);
  assert.match(((await bad.json()) as { error: string }).error, /params\.at "yesterday": expected a log position/);
  const human = await nsm(['replay', '--until', ctx.moments[0]!.position.toString(), '--server', mesh.nats.url, '--domain', mesh.domain]);
  assert.is(human.status, 0, human.stderr);
  assert.match(human.stdout, new RegExp(`^mesh as of position ${ctx.moments[0]!.position}`));
  assert.match(human.stdout, /c1 +web +established +ep-a +n1 +n1 +10\.1\.0\.3\/32 +10\.1\.0\.2\/32 +operator/);
});

type HistoryRow = { stream: string; position: string; event: { id: string; type: string; time: string; actor: string; correlationId: string; causationId: string } };

s('history of a connection: every event in log order with time, actor, correlation and causation', async (ctx) => {
  const rows = must(await ctx.op!.query<HistoryRow[]>('history', { id: 'c1' }));
  const positions = rows.map((r) => Number(r.position));
  assert.equal(positions, [...positions].sort((a, b) => a - b), 'log order');
  const types = rows.map((r) => r.event.type);
  const at = (r: HistoryRow) => `${r.stream.split('.')[0]}:${r.event.type}`;
  // 1. requested and established on ep-a.
  assert.equal(types.slice(0, 7), ['ConnectionRequested', 'EndpointSelected', 'AddressesAllocated', 'PathPlanned', 'DataplaneProgrammed', 'DataplaneProgrammed', 'ConnectionEstablished']);
  // 2. healed onto ep-b: addresses released from ep-a's pool, taken from ep-b's, re-planned, re-programmed.
  const healStart = types.indexOf('ConnectionHealing');
  const closeAt = types.indexOf('ConnectionClosed');
  assert.is(healStart, 7, 'the heal follows the establishment');
  assert.equal(
    rows.slice(healStart, closeAt).map(at).sort(),
    ['connection:ConnectionEstablished', 'connection:ConnectionHealed', 'connection:ConnectionHealing', 'connection:DataplaneProgrammed', 'connection:DataplaneProgrammed', 'connection:EndpointSelected', 'connection:PathPlanned', 'pool:AddressesAllocated', 'pool:AddressesReleased'],
  );
  assert.is(types[closeAt - 1], 'ConnectionHealed');
  // 3. closed: released from ep-b's pool, both sides removed.
  assert.equal(rows.slice(closeAt).map(at).sort(), ['connection:ConnectionClosed', 'connection:DataplaneRemoved', 'connection:DataplaneRemoved', 'pool:AddressesReleased']);
  const first = (t: string, from = 0) => rows.slice(from).find((r) => r.event.type === t)!;
  const by = (t: string) => first(t).event;
  assert.ok(rows.every((r) => !Number.isNaN(Date.parse(r.event.time))), 'every event has a time');
  // Who asked, and who acted on their behalf.
  assert.is(by('ConnectionRequested').actor, 'operator');
  assert.is(by('AddressesAllocated').actor, 'control-plane');
  assert.is(by('PathPlanned').actor, 'control-plane');
  assert.is(by('DataplaneProgrammed').actor, 'agent:n1');
  assert.is(by('ConnectionHealing').actor, 'control-plane');
  assert.is(by('ConnectionClosed').actor, 'operator');
  // Why: the request's id correlates its whole workflow; each step names its direct cause.
  const { request1, close1, unregister } = ctx.ids;
  for (const t of ['ConnectionRequested', 'EndpointSelected', 'AddressesAllocated', 'PathPlanned', 'DataplaneProgrammed', 'ConnectionEstablished']) assert.is(by(t).correlationId, request1, `${t} correlation`);
  assert.is(by('ConnectionRequested').causationId, request1);
  assert.is(by('AddressesAllocated').causationId, by('EndpointSelected').id, 'allocation caused by the selection');
  assert.is(by('PathPlanned').causationId, by('EndpointSelected').id, 'plan caused by the selection');
  assert.is(by('DataplaneProgrammed').causationId, by('PathPlanned').id, 'programming caused by the plan');
  // The heal is correlated with the unregistration that caused it, and caused by its event.
  const epHistory = must(await ctx.op!.query<HistoryRow[]>('history', { id: 'ep-a' }));
  const unregistered = epHistory.find((r) => r.event.type === 'EndpointUnregistered')!.event;
  assert.is(by('ConnectionHealing').correlationId, unregister, 'the heal belongs to the unregistration workflow');
  assert.is(by('ConnectionHealing').causationId, unregistered.id, 'the heal is caused by EndpointUnregistered');
  const healed = first('ConnectionHealed', healStart).event;
  assert.is(healed.correlationId, unregister);
  for (const t of ['ConnectionClosed', 'DataplaneRemoved']) assert.is(first(t, closeAt).event.correlationId, close1, `${t} correlation`);
  assert.is(first('AddressesReleased', closeAt).event.correlationId, close1);
  assert.is(first('AddressesReleased', closeAt).event.causationId, first('ConnectionClosed', closeAt).event.id, 'release caused by the close');
  assert.is(first('DataplaneRemoved', closeAt).event.causationId, first('ConnectionClosed', closeAt).event.id, 'removal caused by the close');
  assert.is(first('AddressesAllocated').stream, 'pool.ep-a', "the first addresses come from ep-a's pool");
  assert.is(first('AddressesAllocated', healStart).stream, 'pool.ep-b', "after the heal, from ep-b's pool");

  const cli = await nsm(['history', 'c1', '--wide', '--server', ctx.mesh!.nats.url, '--domain', ctx.mesh!.domain]);
  assert.is(cli.status, 0, cli.stderr);
  const [head, ...lines] = cli.stdout.trim().split('\n');
  assert.match(head!, /^POSITION +TIME +STREAM +V +EVENT +ACTOR +CORRELATION +CAUSATION +DETAIL/);
  assert.is(lines.length, rows.length);
  assert.match(lines[0]!, new RegExp(`ConnectionRequested +operator +${request1} +${request1} `));
});

s('history of an endpoint, a service and a node', async (ctx) => {
  const types = async (id: string) => must(await ctx.op!.query<HistoryRow[]>('history', { id })).map((r) => `${r.stream}:${r.event.type}:${r.event.actor}`);
  assert.equal(await types('ep-a'), [
    'endpoint.ep-a:EndpointRegistered:operator',
    'pool.ep-a:AddressesAllocated:control-plane',
    'endpoint.ep-a:EndpointUnregistered:operator',
    'pool.ep-a:AddressesReleased:control-plane',
  ]);
  assert.equal(await types('web'), ['service.web:NetworkServiceRegistered:operator']);
  assert.equal(await types('n2'), ['node.n2:NodeJoined:agent:n2']);
  const missing = await ctx.op!.query('history', { id: 'nothing-here' });
  assert.ok(E.isLeft(missing) && /nothing has happened to "nothing-here"/.test(missing.left.message));
});

s.run();
