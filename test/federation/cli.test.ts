// Federation from the command line, as separate processes, authenticated (the default): the hub
// `nsm up --domain a --leaf-port P --peer b` makes b's leaf credentials; the other cluster joins
// with `nsm up --config b.json` (the same options as flags: --domain b --join nats-leaf://...
// --leaf-creds ...). Then, from a: connect icmp@b, list peers, b's endpoints, the history in
// both domains. Simulated dataplanes (no packets; test/federation/twoClusters.test.ts has them).
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

interface Ctx {
  tmp?: string;
  procs: NsmProcess[];
  env?: NodeJS.ProcessEnv;
}
const s = suite<Ctx>('federation from the CLI (nsm up --leaf-port / --join)', { procs: [] });

s.before((ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-fed-cli-'));
  // The CLI finds each domain's credentials through pointers in this private config dir.
  ctx.env = { XDG_CONFIG_HOME: join(ctx.tmp, 'config'), XDG_DATA_HOME: join(ctx.tmp, 'data'), NSM_LOG_LEVEL: 'info', NSM_ACTOR: '' };
});
s.after(async (ctx) => {
  for (const p of ctx.procs) await p.stop('SIGTERM', 10000).catch(() => undefined);
  if (ctx.tmp) rmSync(ctx.tmp, { recursive: true, force: true });
});

s('bad federation options are one clear line each', async (ctx) => {
  const base = ['up', '--insecure', '--data-dir', join(ctx.tmp!, 'bad'), '--nats-port', String(await freePort()), '--http-port', String(await freePort())];
  const cases: [string[], RegExp][] = [
    [['--join', 'http://hub:7422'], /--join "http:\/\/hub:7422": the scheme must be nats-leaf:\/\//],
    [['--join', 'nats-leaf://hub:7422', '--tunnel-ids', '9-1'], /--tunnel-ids "9-1": the range is empty/],
    [['--leaf-port', '7422', '--tunnel-ids', '0-20000'], /tunnel ids go up to 19999/],
  ];
  for (const [args, message] of cases) {
    const r = await runNsm([...base, ...args], ctx.env);
    assert.is(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
  }
  const config = join(ctx.tmp!, 'bad.json');
  writeFileSync(config, JSON.stringify({ domain: 'x', 'leaf-prot': 7422 }));
  const r = await runNsm(['up', '--config', config], ctx.env);
  assert.is(r.code, 1);
  assert.match(r.stderr, /--config .*bad\.json: unknown option "leaf-prot"/);
});

s('a hub and a joining cluster, authenticated; a client in a reaches icmp@b', async (ctx) => {
  const leafPort = await freePort();
  const aNats = await freePort();
  const bNats = await freePort();
  const aDir = join(ctx.tmp!, 'a');
  const envA = { ...ctx.env, NSM_DOMAIN: 'a' };
  const envB = { ...ctx.env, NSM_DOMAIN: 'b' };
  const hub = startNsm(['up', '--domain', 'a', '--node', 'na1', '--data-dir', aDir, '--nats-port', String(aNats), '--http-port', String(await freePort()), '--leaf-port', String(leafPort), '--peer', 'b', '--tunnel-ids', '0-999', '--peer-timeout', '3s'], envA);
  ctx.procs.push(hub);
  await hub.waitFor('mesh "a" is up', 60000);
  assert.match(hub.stderr(), /federation tunnel ids 0-999; leafnodes on port \d+/);
  const leafCreds = join(aDir, 'peers', 'b.leaf');
  assert.is(statSync(leafCreds).mode & 0o777, 0o600, "b's leaf credentials are secret");

  const config = join(ctx.tmp!, 'b.json');
  writeFileSync(config, JSON.stringify({ domain: 'b', node: 'nb1', 'data-dir': join(ctx.tmp!, 'b'), 'nats-port': bNats, 'http-port': await freePort(), join: `nats-leaf://127.0.0.1:${leafPort}`, 'leaf-creds': leafCreds, 'tunnel-ids': '1000-1999', 'peer-timeout': '3s' }));
  const joiner = startNsm(['up', '--config', config], envB);
  ctx.procs.push(joiner);
  await joiner.waitFor('mesh "b" is up', 60000);
  assert.match(joiner.stderr(), /joined nats-leaf:\/\/127\.0\.0\.1:\d+/);
  const password = (JSON.parse(readFileSync(leafCreds, 'utf8')) as { password: string }).password;
  for (const [what, text] of <[string, string][]>[['hub output', hub.stderr() + hub.stdout()], ['joiner output', joiner.stderr() + joiner.stdout()], ["joiner's nats-server log", readFileSync(join(ctx.tmp!, 'b', 'nats-server.log'), 'utf8')]]) {
    assert.not.ok(text.includes(password), `the leaf password is not in the ${what}`);
  }
  assert.is(statSync(join(ctx.tmp!, 'b', 'nats-server.conf')).mode & 0o777, 0o600, "the joiner's server configuration holds the password: 0600");

  const nsm = async (env: NodeJS.ProcessEnv, ...args: string[]) => {
    const r = await runNsm(args, env);
    assert.is(r.code, 0, `nsm ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await nsm(envB, 'service', 'register', 'icmp');
  await nsm(envB, 'endpoint', 'register', 'ep1', '--service', 'icmp', '--node', 'nb1', '--prefix', '10.80.0.0/24');
  await eventually('a hears b', async () => (await runNsm(['ls', 'peers'], envA)).stdout.match(/^b\s+reachable/m) !== null, { timeoutMs: 20000 });
  const connected = JSON.parse(await nsm(envA, 'connect', 'icmp@b', '--node', 'na1', '--id', 'cli-x1', '--wait', '--json')) as { state: string; networkServiceEndpointName: string };
  assert.equal([connected.state, connected.networkServiceEndpointName], ['established', 'ep1@b']);
  // a is established once b's side and its own are programmed; b only once a's report of its
  // side has crossed over, which a sends after that.
  type Row = { id: string; clientNode: string; state: string };
  const inB = await eventually('cli-x1 established in b', async () => {
    const rows = JSON.parse(await nsm(envB, 'ls', 'connections', '--json')) as Row[];
    return rows.some((c) => c.id === 'cli-x1' && c.state === 'established') ? rows : undefined;
  }, { describe: async () => (await runNsm(['ls', 'connections', '--json'], envB)).stdout });
  assert.equal(inB.map((c) => [c.id, c.clientNode, c.state]), [['cli-x1', 'na1@a', 'established']]);
  const eps = await eventually("b's endpoints from a's copy", async () => {
    const r = await runNsm(['ls', 'endpoints', '--domain', 'b'], envA);
    return r.code === 0 && /ep1/.test(r.stdout) ? r.stdout : undefined;
  });
  assert.match(eps, /^b\s+ep1\s+icmp\s+b\s+nb1\s+10\.80\.0\.0\/24/m);
  const hist = await nsm(envA, 'history', 'cli-x1', '--all-domains');
  assert.match(hist, /^a\s+\S+\s+connection\.cli-x1\s+1\s+ConnectionRequested/m);
  assert.match(hist, /^b\s+\S+\s+connection\.cli-x1\s+1\s+ConnectionRequested/m);
  assert.match(hist, /domains: a ok; b ok/);
  await nsm(envA, 'close', 'cli-x1');
  await eventually('closed in b', async () => /"state": "closed"/.test((await runNsm(['ls', 'connections', '--all', '--json'], envB)).stdout));
});

s('two clusters with default tunnel ids: the overlap is said as soon as they see each other', async (ctx) => {
  const leafPort = await freePort();
  const cDir = join(ctx.tmp!, 'c');
  const envC = { ...ctx.env, NSM_DOMAIN: 'c' };
  const envD = { ...ctx.env, NSM_DOMAIN: 'd' };
  const hub = startNsm(['up', '--domain', 'c', '--node', 'nc1', '--data-dir', cDir, '--nats-port', String(await freePort()), '--http-port', String(await freePort()), '--leaf-port', String(leafPort), '--peer', 'd', '--peer-timeout', '3s'], envC);
  ctx.procs.push(hub);
  await hub.waitFor('mesh "c" is up', 60000);
  const joiner = startNsm(['up', '--domain', 'd', '--node', 'nd1', '--data-dir', join(ctx.tmp!, 'd'), '--nats-port', String(await freePort()), '--http-port', String(await freePort()), '--join', `nats-leaf://127.0.0.1:${leafPort}`, '--leaf-creds', join(cDir, 'peers', 'd.leaf'), '--peer-timeout', '3s'], envD);
  ctx.procs.push(joiner);
  await joiner.waitFor('mesh "d" is up', 60000);
  const problem = /tunnel ids of domain d \(0-19999\) and domain c \(0-19999\) overlap; give each domain a disjoint range \(nsm up --tunnel-ids FROM-TO\)/;
  // Each side's nsm up says it in its log, and nsm ls peers shows it, once the peers meet.
  await hub.waitFor('cross-domain connections with this peer will be refused', 20000);
  assert.match(JSON.stringify(hub.logs('cross-domain connections with this peer will be refused')[0]), problem);
  await joiner.waitFor('cross-domain connections with this peer will be refused', 20000);
  const listed = await runNsm(['ls', 'peers'], envC);
  assert.is(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /^d\s+reachable\s+.*0-19999\s+cluster\s+CONFLICT: tunnel ids of domain d/m);
  const rows = JSON.parse((await runNsm(['ls', 'peers', '--json'], envD)).stdout) as { domain: string; conflict?: string }[];
  assert.equal(rows.map((r) => r.domain), ['c']);
  assert.match(rows[0]!.conflict ?? '', /tunnel ids of domain c \(0-19999\) and domain d \(0-19999\) overlap/);
});

s.run();
