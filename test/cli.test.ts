// The nsm CLI end to end, as separate processes the way a user runs it: `nsm up` in the
// background (simulated dataplane), then the everyday commands, the HTTP API, and a clean stop.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { INSTALL_HINT } from '../infra/natsServer.ts';
import { freePort } from '../infra/net.ts';
import { suite } from './lib/harness.ts';
import { runId } from './lib/nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess } from './lib/nsmProcess.ts';

interface Mesh {
  readonly up: NsmProcess;
  readonly domain: string;
  readonly node: string;
  readonly natsUrl: string;
  readonly http: string;
  readonly dataDir: string;
  /** What a user would export after reading the "is up" banner. */
  readonly env: NodeJS.ProcessEnv;
}

type Ctx = { meshes: Mesh[]; tmp: string[]; connectionId?: string };
const s = suite<Ctx>('nsm CLI end to end (nsm up with the simulated dataplane)', { meshes: [], tmp: [] });

const tempDir = (ctx: Ctx) => {
  const d = mkdtempSync(join(tmpdir(), 'nsm-cli-test-'));
  ctx.tmp.push(d);
  return d;
};

const startUp = async (ctx: Ctx, domain: string, node: string, dataDir = tempDir(ctx)): Promise<Mesh> => {
  const natsPort = await freePort();
  const httpPort = await freePort();
  // Info logs: the nats-server pid is read from them.
  // Insecure on purpose: this file covers the everyday commands; test/security/cli.test.ts runs them authenticated.
  const up = startNsm(['up', '--insecure', '--data-dir', dataDir, '--nats-port', String(natsPort), '--http-port', String(httpPort), '--domain', domain, '--node', node], { NSM_LOG_LEVEL: 'info' });
  const mesh: Mesh = {
    up,
    domain,
    node,
    dataDir,
    natsUrl: `nats://127.0.0.1:${natsPort}`,
    http: `http://127.0.0.1:${httpPort}`,
    env: { NSM_NATS_URL: `nats://127.0.0.1:${natsPort}`, NSM_DOMAIN: domain, NSM_NODE: node, NSM_ACTOR: 'cli-test' },
  };
  ctx.meshes.push(mesh);
  await up.waitFor(`mesh "${domain}" is up`, 60000);
  return mesh;
};

/** Runs one nsm command against the mesh and insists that it succeeded. */
const nsm = async (m: Mesh, ...args: string[]): Promise<string> => {
  const r = await runNsm(args, m.env);
  assert.is(r.code, 0, `nsm ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return r.stdout;
};
const nsmJson = async <T>(m: Mesh, ...args: string[]): Promise<T> => JSON.parse(await nsm(m, ...args, '--json')) as T;

const httpGet = async (m: Mesh, path: string): Promise<{ status: number; body: any }> => {
  const r = await fetch(`${m.http}${path}`);
  return { status: r.status, body: await r.json() };
};

/** Rows of a table printed for people: the header line, then one line per row. */
const tableRows = (text: string): string[][] => text.trim().split('\n').map((l) => l.trim().split(/\s{2,}/));

/** Pids whose parent is `pid`, from /proc. */
const childrenOf = (pid: number): number[] =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        // Field 4 of stat is the parent pid; the command name (field 2) may hold spaces, so split after it.
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);

s.after(async (ctx) => {
  for (const m of ctx.meshes) await m.up.stop('SIGKILL');
  // Its nats-server dies with it (test/cli/children.test.ts); should one still run, stop it by its logged pid.
  for (const m of ctx.meshes) {
    const pid = m.up.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  for (const d of ctx.tmp) rmSync(d, { recursive: true, force: true });
});

s('nsm up starts a mesh; register, connect --wait, list, history, status, close', async (ctx) => {
  const id = runId();
  const m = await startUp(ctx, `cli-${id}`, 'node-1');

  assert.match(await nsm(m, 'service', 'register', 'web-svc'), /^service web-svc registered\n$/);
  assert.match(await nsm(m, 'endpoint', 'register', 'ep-1', '--service', 'web-svc', '--label', 'app=web', '--label', 'tier=gold', '--prefix', '10.50.0.0/24'), /^endpoint ep-1 registered\n$/);

  const connected = (await nsm(m, 'connect', 'web-svc', '--label', 'app=web', '--wait')).trim();
  const match = /^(\S+) established via ep-1 \((10\.50\.0\.\d+\/32) -> (10\.50\.0\.\d+\/32)\)$/.exec(connected);
  assert.ok(match, `connect --wait prints the id and addresses, got: ${connected}`);
  const connectionId = (ctx.connectionId = match![1]!);

  // Tables for people.
  const services = tableRows(await nsm(m, 'ls', 'services'));
  assert.equal(services[0], ['NAME', 'PAYLOAD', 'FAMILIES', 'MATCHES', 'UPDATED']);
  assert.equal(services.slice(1).map((r) => r.slice(0, 4)), [['web-svc', 'IP', 'any', '0']]);
  const endpoints = tableRows(await nsm(m, 'ls', 'endpoints'));
  assert.equal(endpoints[0], ['NAME', 'SERVICES', 'LABELS', 'NODE', 'PREFIXES', 'CONNECTIONS', 'EXPIRES']);
  assert.equal(endpoints[1]!.slice(0, 6), ['ep-1', 'web-svc', 'app=web,tier=gold', 'node-1', '10.50.0.0/24', '1']);
  const connections = tableRows(await nsm(m, 'ls', 'connections'));
  assert.equal(connections[0]!.slice(0, 4), ['ID', 'SERVICE', 'STATE', 'ENDPOINT']);
  assert.equal(connections[1]!.slice(0, 5), [connectionId, 'web-svc', 'established', 'ep-1', 'node-1']);
  assert.ok(connections[1]!.includes(match![2]!) && connections[1]!.includes(match![3]!), 'the table shows both addresses');
  const nodes = tableRows(await nsm(m, 'ls', 'nodes'));
  assert.equal(nodes[0], ['NAME', 'STATUS', 'DATAPLANE', 'MECHANISMS', 'MTU', 'UNDERLAY', 'HEARTBEAT']);
  assert.equal(nodes[1]!.slice(0, 3), ['node-1', 'ready', 'simulated']);

  // --json for scripts.
  const jServices = await nsmJson<{ name: string; payload: string }[]>(m, 'ls', 'services');
  assert.equal(jServices.map((x) => [x.name, x.payload]), [['web-svc', 'IP']]);
  const jEndpoints = await nsmJson<{ name: string; node: string; prefixes: string[]; connections: number; networkServiceLabels: Record<string, { labels: Record<string, string> }> }[]>(m, 'ls', 'endpoints');
  assert.is(jEndpoints.length, 1);
  assert.equal(jEndpoints[0]!.networkServiceLabels, { 'web-svc': { labels: { app: 'web', tier: 'gold' } } });
  // One prefix per family the endpoint offers (here IPv4 only).
  assert.equal([jEndpoints[0]!.node, jEndpoints[0]!.prefixes, jEndpoints[0]!.connections], ['node-1', ['10.50.0.0/24'], 1]);
  const jConnections = await nsmJson<{ id: string; state: string; networkServiceEndpointName: string; labels: Record<string, string>; context: { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] } } }[]>(m, 'ls', 'connections');
  assert.is(jConnections.length, 1);
  assert.equal(
    [jConnections[0]!.id, jConnections[0]!.state, jConnections[0]!.networkServiceEndpointName, jConnections[0]!.labels],
    [connectionId, 'established', 'ep-1', { app: 'web' }],
  );
  assert.equal(jConnections[0]!.context.ipContext.srcIpAddrs, [match![2]]);
  assert.equal(jConnections[0]!.context.ipContext.dstIpAddrs, [match![3]]);
  const jNodes = await nsmJson<{ name: string; dataplane: string; lastHeartbeat?: string }[]>(m, 'ls', 'nodes');
  assert.equal(jNodes.map((n) => [n.name, n.dataplane]), [['node-1', 'simulated']]);
  assert.ok(jNodes[0]!.lastHeartbeat, 'the node heartbeats');
  const filtered = await nsmJson<unknown[]>(m, 'ls', 'connections', '--state', 'failed');
  assert.equal(filtered, []);
  for (const f of [['--node', 'node-1'], ['--endpoint', 'ep-1'], ['--service', 'web-svc'], ['--client', 'cli-test'], ['--state', 'established']]) {
    const rows = await nsmJson<{ id: string }[]>(m, 'ls', 'connections', ...f);
    assert.equal(rows.map((r) => r.id), [connectionId], `ls connections ${f.join(' ')}`);
  }
  assert.equal(await nsmJson<unknown[]>(m, 'ls', 'connections', '--client', 'someone-else'), []);

  // History of the connection, in log order.
  const history = tableRows(await nsm(m, 'history', connectionId));
  assert.equal(history[0]!.slice(0, 5), ['POSITION', 'TIME', 'STREAM', 'V', 'EVENT']);
  const events = history.slice(1).map((r) => r[4]);
  // The connection's own events, with its address allocation from the endpoint's pool in between.
  assert.equal(events.slice(0, 4), ['ConnectionRequested', 'EndpointSelected', 'AddressesAllocated', 'PathPlanned']);
  assert.equal(events.filter((e) => e === 'DataplaneProgrammed').length, 2);
  assert.is(events[events.length - 1], 'ConnectionEstablished');
  const jHistory = await nsmJson<{ event: { type: string; actor: string } }[]>(m, 'history', connectionId);
  assert.is(jHistory[0]!.event.actor, 'cli-test', 'the actor is recorded');

  const status = await nsm(m, 'status');
  assert.match(status, /^services: 1$/m);
  assert.match(status, /^endpoints: 1$/m);
  assert.match(status, /^nodes: 1$/m);
  assert.match(status, /^connections: 1$/m);

  // The HTTP API serves the same read model.
  const h = async (path: string, status = 200) => {
    const r = await httpGet(m, path);
    assert.is(r.status, status, `GET ${path}: ${JSON.stringify(r.body)}`);
    return r.body;
  };
  assert.equal(await h('/healthz'), { ok: true });
  assert.equal((await h('/api/v1/services')).map((x: { name: string }) => x.name), ['web-svc']);
  assert.equal((await h('/api/v1/endpoints')).map((x: { name: string }) => x.name), ['ep-1']);
  assert.equal((await h('/api/v1/nodes')).map((x: { name: string }) => x.name), ['node-1']);
  assert.is((await h(`/api/v1/connections/${connectionId}`)).state, 'established');
  assert.equal((await h('/api/v1/connections?state=established')).map((x: { id: string }) => x.id), [connectionId]);
  assert.equal((await h('/api/v1/connections?node=node-1')).map((x: { id: string }) => x.id), [connectionId]);
  assert.equal((await h('/api/v1/connections?endpoint=ep-1')).map((x: { id: string }) => x.id), [connectionId]);
  assert.equal((await h('/api/v1/connections?actor=cli-test')).map((x: { id: string }) => x.id), [connectionId]);
  assert.equal(await h('/api/v1/connections?state=failed'), []);
  assert.is((await h(`/api/v1/history/${connectionId}`)).length, history.length - 1);
  assert.equal((await h('/api/v1/addresses')).map((x: { connectionId: string }) => x.connectionId), [connectionId]);
  assert.is((await h(`/api/v1/nodes/node-1/desired`)).sides.length, 2);
  assert.is((await h('/api/v1/status')).connections, 1);
  assert.match((await h('/api/v1/connections/nope', 404)).error, /connection "nope" does not exist/);
  assert.match((await h('/api/v1/connections?state=sleeping', 400)).error, /params\.state: expected one of/);
  assert.match((await h('/api/v1/widgets', 404)).error, /no such resource/);
  const post = await fetch(`${m.http}/api/v1/services`, { method: 'POST', body: '{}' });
  assert.is(post.status, 405);

  // Close, and the connection is gone from the default listing but kept with --all.
  assert.match(await nsm(m, 'close', connectionId), new RegExp(`^connection ${connectionId} closed\\n$`));
  let open: unknown[] = [{}];
  for (let i = 0; i < 50 && open.length > 0; i++) {
    open = await nsmJson<unknown[]>(m, 'ls', 'connections');
    if (open.length > 0) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(open, []);
  const all = await nsmJson<{ id: string; state: string }[]>(m, 'ls', 'connections', '--all');
  assert.equal(all.map((c) => [c.id, c.state]), [[connectionId, 'closed']]);
});

s('SIGTERM stops nsm up with exit code 0 and takes its nats-server with it', async (ctx) => {
  const m = ctx.meshes[0]!;
  const natsPid = m.up.logs('nats-server started')[0]?.pid as number | undefined;
  assert.ok(typeof natsPid === 'number', 'nsm up logged the nats-server pid');
  assert.ok(childrenOf(m.up.pid).includes(natsPid!), 'nats-server runs as a child of nsm up');
  const t0 = Date.now();
  const r = await m.up.stop('SIGTERM', 20000);
  const ms = Date.now() - t0;
  assert.is(r.signal, null, `exited by itself, not by a signal (${r.signal})`);
  assert.is(r.code, 0, r.stderr.slice(-2000));
  assert.ok(ms < 10000, `stopped in ${ms} ms`);
  assert.not.ok(isAlive(natsPid!), `nats-server (pid ${natsPid}) is gone`);
  assert.equal(childrenOf(m.up.pid), [], 'no process left behind');
});

s('nsm up again on the same data dir finds the mesh as it was left', async (ctx) => {
  const before = ctx.meshes[0]!;
  const m = await startUp(ctx, before.domain, before.node, before.dataDir);
  assert.equal((await nsmJson<{ name: string }[]>(m, 'ls', 'services')).map((x) => x.name), ['web-svc']);
  const all = await nsmJson<{ id: string; state: string }[]>(m, 'ls', 'connections', '--all');
  assert.equal(all.map((c) => [c.id, c.state]), [[ctx.connectionId, 'closed']]);
  const again = (await nsm(m, 'connect', 'web-svc', '--wait')).trim();
  assert.match(again, /established via ep-1 \(10\.50\.0\.\d+\/32 -> 10\.50\.0\.\d+\/32\)$/);
  const r = await m.up.stop('SIGTERM', 20000);
  assert.is(r.code, 0, r.stderr.slice(-2000));
});

s('two nsm up side by side on different ports and domains', async (ctx) => {
  const id = runId();
  const [a, b] = await Promise.all([startUp(ctx, `left-${id}`, 'left-node'), startUp(ctx, `right-${id}`, 'right-node')]);
  await nsm(a!, 'service', 'register', 'only-left');
  await nsm(b!, 'service', 'register', 'only-right');
  await nsm(a!, 'endpoint', 'register', 'ep-l', '--service', 'only-left', '--prefix', '10.61.0.0/24');
  await nsm(b!, 'endpoint', 'register', 'ep-r', '--service', 'only-right', '--prefix', '10.62.0.0/24');
  const ca = (await nsm(a!, 'connect', 'only-left', '--wait')).trim();
  const cb = (await nsm(b!, 'connect', 'only-right', '--wait')).trim();
  assert.match(ca, /established via ep-l \(10\.61\.0\.\d+\/32 -> 10\.61\.0\.\d+\/32\)$/);
  assert.match(cb, /established via ep-r \(10\.62\.0\.\d+\/32 -> 10\.62\.0\.\d+\/32\)$/);
  const cj = await nsmJson<{ id: string; state: string; networkServiceEndpointName: string }>(a!, 'connect', 'only-left', '--wait');
  assert.equal([cj.state, cj.networkServiceEndpointName], ['established', 'ep-l'], 'connect --wait --json prints the established connection');
  assert.equal((await nsmJson<{ name: string }[]>(a!, 'ls', 'services')).map((x) => x.name), ['only-left']);
  assert.equal((await nsmJson<{ name: string }[]>(b!, 'ls', 'services')).map((x) => x.name), ['only-right']);
  assert.equal((await httpGet(b!, '/api/v1/nodes')).body.map((x: { name: string }) => x.name), ['right-node']);
  for (const m of [a!, b!]) {
    const r = await m.up.stop('SIGTERM', 20000);
    assert.is(r.code, 0, r.stderr.slice(-2000));
  }
});

s('nsm up without nats-server fails with exit code 1 and the install hint', async (ctx) => {
  const r = await runNsm(['up', '--data-dir', tempDir(ctx), '--nats-port', String(await freePort()), '--http-port', String(await freePort()), '--domain', 'nobin'], {
    NSM_NATS_SERVER: '/nonexistent/nats-server',
  });
  assert.is(r.code, 1);
  assert.ok(r.stderr.includes(INSTALL_HINT), r.stderr);
});

s('a NATS port in use is one line and exit code 1', async (ctx) => {
  const busy = startNsm(['up', '--insecure', '--data-dir', tempDir(ctx), '--nats-port', String(await freePort()), '--http-port', String(await freePort()), '--domain', `busy-${runId()}`]);
  await busy.waitFor('is up', 60000);
  const natsPort = /NATS\s+nats:\/\/127\.0\.0\.1:(\d+)/.exec(busy.stderr())![1]!;
  const r = await runNsm(['up', '--insecure', '--data-dir', tempDir(ctx), '--nats-port', natsPort, '--http-port', String(await freePort()), '--domain', 'busy2'], { NSM_LOG_LEVEL: 'error' });
  await busy.stop('SIGTERM', 20000);
  assert.is(r.code, 1);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.equal(r.stderr, `nsm up: cannot start nats-server: 127.0.0.1:${natsPort} is already in use (another nsm up or nats-server?)\n`);
});

s('an unreachable --server is one line and a non-zero exit', async () => {
  const port = await freePort();
  const r = await runNsm(['ls', 'services', '--server', `nats://127.0.0.1:${port}`]);
  assert.ok(r.code !== 0, `exit code ${r.code}`);
  assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^nsm ls: cannot reach NATS at nats://127\\.0\\.0\\.1:${port}`));
  const r2 = await runNsm(['service', 'register', 'x', '--server', `nats://127.0.0.1:${port}`]);
  assert.ok(r2.code !== 0 && r2.stderr.trim().split('\n').length === 1, r2.stderr);
});

s('nsm connect to an unknown service is one line and a non-zero exit', async (ctx) => {
  const m = await startUp(ctx, `unk-${runId()}`, 'node-u');
  const r = await runNsm(['connect', 'no-such-service', '--wait'], m.env);
  assert.ok(r.code !== 0, `exit code ${r.code}`);
  assert.equal(r.stderr.trim().split('\n'), ['nsm connect: network service "no-such-service" is not registered']);
  assert.is(r.stdout, '');
  const stopped = await m.up.stop('SIGTERM', 20000);
  assert.is(stopped.code, 0);
});

s.run();
