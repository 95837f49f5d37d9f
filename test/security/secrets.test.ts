// Secrets never leave their owner. A full scenario, run the way people run it, as processes:
// `nsm init`, `nsm up` (authenticated and over TLS by default), a second node's `nsm agent`, an
// operator whose credentials the CLI finds without flags, two clients and the auditor with their
// own credentials files, the policy, connect / refresh / close, every listing and history, the
// HTTP API with a bearer token. Then every event in the log, every line any process wrote (at
// debug level), nats-server's log and every answer are searched for every private key and seed
// the deployment holds, in several encodings. None may appear.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, nkeys } from 'nats';
import * as assert from 'uvu/assert';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { freePort } from '../../infra/net.ts';
import { natsAuthOptions, readCredentials } from '../../src/security/credentials.ts';
import { suite } from '../lib/harness.ts';
import { httpsGet } from '../lib/https.ts';
import { runId } from '../lib/nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess, type NsmResult } from '../lib/nsmProcess.ts';

type Ctx = { tmp?: string; procs: NsmProcess[] };
const s = suite<Ctx>('secrets never leave their owner (full scenario, all processes)', { procs: [] });

s.after(async (ctx) => {
  for (const p of ctx.procs) await p.stop('SIGTERM', 10000);
  for (const p of ctx.procs) {
    const pid = p.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  if (ctx.tmp) rmSync(ctx.tmp, { recursive: true, force: true });
});

/** Every way a 32-byte ed25519 seed or a PEM private key could be written out. */
const encodings = (label: string, raw: Buffer): [string, string][] => [
  [`${label} (hex)`, raw.toString('hex')],
  [`${label} (base64)`, raw.toString('base64').replace(/=+$/, '')],
  [`${label} (base64url)`, raw.toString('base64url')],
];

s('a whole scenario leaves no private key or seed in any event, log line or answer', async (ctx) => {
  const tmp = (ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-secrets-')));
  const dir = join(tmp, 'deployment');
  const domain = `sec-${runId()}`;
  const natsPort = await freePort();
  const httpPort = await freePort();
  const url = `nats://127.0.0.1:${natsPort}`;
  // A private user config and data home: the CLI finds the operator there, and nothing of the
  // real user's is touched.
  const env = { XDG_CONFIG_HOME: join(tmp, 'config'), XDG_DATA_HOME: join(tmp, 'data'), NSM_DOMAIN: domain, NSM_LOG_LEVEL: 'debug', NSM_NATS_URL: '', NSM_CREDS: '', NSM_ACTOR: '' };
  const outputs: { what: string; text: string }[] = [];
  const nsm = async (args: string[], extra: Record<string, string> = {}, expectOk = true): Promise<NsmResult> => {
    const r = await runNsm(args, { ...env, ...extra });
    outputs.push({ what: `nsm ${args.join(' ')}`, text: r.stdout + r.stderr });
    if (expectOk) assert.is(r.code, 0, `nsm ${args.join(' ')}: ${r.stderr}`);
    return r;
  };
  const creds = (name: string) => join(dir, 'creds', `${name}.creds`);

  await nsm(['init', '--dir', dir, '--nodes', 'n1,n2', '--clients', 'alice,bob']);
  const up = startNsm(['up', '--data-dir', dir, '--nats-port', String(natsPort), '--http-port', String(httpPort), '--node', 'n1'], env);
  ctx.procs.push(up);
  await up.waitFor(`mesh "${domain}" is up`, 60000);
  assert.match(up.stderr(), /security  nkey authentication, TLS/);
  const agent = startNsm(['agent', '--node', 'n2', '--creds', creds('agent-n2'), '--server', url], env);
  ctx.procs.push(agent);
  await agent.waitFor('"msg":"node agent ready"', 60000);

  // The operator: no flags at all, found through the pointer nsm init/up left in the user config.
  await nsm(['service', 'register', 'web']);
  await nsm(['endpoint', 'register', 'ep-a', '--service', 'web', '--node', 'n2', '--prefix', '10.60.0.0/24', '--label', 'app=web']);
  await nsm(['policy', 'allow', '--client', 'alice', '--service', 'web', '--name', 'alice-web']);
  await nsm(['policy', 'deny', '--client', 'bob', '--service', 'web', '--name', 'no-bob']);
  // Alice through NSM_CREDS, bob through --creds.
  const alice = { NSM_CREDS: creds('alice') };
  const conn = JSON.parse((await nsm(['connect', 'web', '--node', 'n1', '--wait', '--expiration', '120s', '--json'], alice)).stdout) as { id: string; state: string; networkServiceEndpointName: string };
  assert.equal([conn.state, conn.networkServiceEndpointName], ['established', 'ep-a']);
  await nsm(['refresh', conn.id, '--expiration', '300s'], alice);
  const bob = await nsm(['connect', 'web', '--node', 'n1', '--wait', '--creds', creds('bob')], {}, false);
  assert.is(bob.code, 1);
  assert.match(bob.stderr, /failed: policy rule "no-bob" denies bob access to web/);
  const mine = JSON.parse((await nsm(['ls', 'connections', '--all', '--json'], alice)).stdout) as { id: string }[];
  assert.equal(mine.map((c) => c.id), [conn.id], 'alice sees her own connection only');
  await nsm(['history', conn.id, '--json'], alice);
  const denied = JSON.parse((await nsm(['ls', 'connections', '--state', 'denied', '--json'])).stdout) as { failure: { code: string } }[];
  assert.equal(denied.map((c) => c.failure.code), ['denied']);
  // The auditor reads everything.
  const auditor = { NSM_CREDS: creds('auditor') };
  for (const what of [['ls', 'connections', '--all'], ['ls', 'nodes'], ['ls', 'endpoints'], ['ls', 'services'], ['ls', 'addresses'], ['status'], ['history', conn.id], ['history', 'mesh'], ['policy', 'show']]) {
    await nsm([...what, '--json'], auditor);
  }
  const auditorWrite = await nsm(['service', 'register', 'nope'], auditor, false);
  assert.is(auditorWrite.code, 1);
  assert.match(auditorWrite.stderr, /Permissions Violation for Publish to "nsm\.[^.]+\.cmd\.service\.register\.auditor"/);
  // The HTTP API: nothing without a bearer token, the operator's view with one.
  const answers: string[] = [];
  const api = (path: string, token?: string) => httpsGet(`https://127.0.0.1:${httpPort}/api/v1/${path}`, { caFile: join(dir, 'tls', 'ca.pem'), headers: token ? { authorization: `Bearer ${token}` } : {} });
  const anonymous = await api('connections');
  assert.is(anonymous.status, 401);
  answers.push(anonymous.text);
  const token = (await nsm(['token', '--ttl', '5m'])).stdout.trim();
  for (const path of ['services', 'endpoints', 'connections', 'nodes', 'addresses', 'status', 'policy', `connections/${conn.id}`, `history/${conn.id}`, 'nodes/n1/desired', 'nodes/n2/desired']) {
    const r = await api(path, token);
    assert.is(r.status, 200, path);
    answers.push(r.text);
  }
  const aliceToken = (await nsm(['token'], alice)).stdout.trim();
  const aliceNodes = await api('nodes', aliceToken);
  assert.is(aliceNodes.status, 403);
  answers.push(aliceNodes.text);
  await nsm(['close', conn.id], alice);

  // Every event in the log, read with the control plane's own credentials.
  const cp = readCredentials(creds('control-plane'));
  if (E.isLeft(cp)) throw new Error(cp.left);
  const nc = await connect({ servers: url, ...natsAuthOptions(cp.right) });
  const store = await jetStreamEventStore(nc, domain);
  const events: string[] = [];
  for await (const c of store.readAll(0n)) events.push(JSON.stringify(c, (_k, v) => (typeof v === 'bigint' ? v.toString() : v)));
  await nc.close();
  await agent.stop('SIGTERM');
  await up.stop('SIGTERM');

  // What must not appear: every identity's seed, its raw ed25519 seed, its nkey private key, and
  // the TLS private keys, in several encodings.
  const needles: [string, string][] = [];
  for (const f of readdirSync(join(dir, 'creds'))) {
    const c = readCredentials(join(dir, 'creds', f));
    if (E.isLeft(c)) throw new Error(c.left);
    const kp = nkeys.fromSeed(new TextEncoder().encode(c.right.seed)) as { getPrivateKey(): Uint8Array; getRawSeed(): Uint8Array };
    needles.push([`${f} seed`, c.right.seed], [`${f} nkey private key`, new TextDecoder().decode(kp.getPrivateKey())], ...encodings(`${f} raw seed`, Buffer.from(kp.getRawSeed())));
  }
  for (const f of ['ca-key.pem', 'server-key.pem']) {
    const pem = readFileSync(join(dir, 'tls', f), 'utf8');
    const body = pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
    needles.push([`${f} (PEM body)`, body], ...pem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----')).map((l, i): [string, string] => [`${f} line ${i + 1}`, l]));
    needles.push(...encodings(`${f} (DER)`, Buffer.from(body, 'base64')));
  }
  const logs = [
    { what: 'nsm up (stdout+stderr)', text: up.stdout() + up.stderr() },
    { what: 'nsm agent n2 (stdout+stderr)', text: agent.stdout() + agent.stderr() },
    { what: 'nats-server.log', text: readFileSync(join(dir, 'nats-server.log'), 'utf8') },
  ];
  const haystacks = [...logs, ...outputs, { what: 'events', text: events.join('\n') }, { what: 'HTTP answers', text: answers.join('\n') }];
  const found: string[] = [];
  for (const h of haystacks) for (const [name, needle] of needles) if (needle.length >= 16 && h.text.includes(needle)) found.push(`${name} in ${h.what}`);

  const logLines = logs.reduce((n, l) => n + l.text.split('\n').filter(Boolean).length, 0);
  const outputLines = outputs.reduce((n, o) => n + o.text.split('\n').filter(Boolean).length, 0);
  process.stdout.write(
    `\nsearched ${events.length} commits, ${logLines} lines from nsm up, the agent and nats-server, ${outputs.length} CLI runs (${outputLines} lines) and ${answers.length} HTTP answers ` +
      `for ${needles.length} encodings of ${readdirSync(join(dir, 'creds')).length} identities' keys and 2 TLS keys: ${found.length} found\n`,
  );
  // The search is not vacuous: the scenario produced plenty, at debug level, and the needles are real.
  assert.ok(events.length >= 15, `events: ${events.length}`);
  assert.ok(logLines >= 40, `log lines: ${logLines}`);
  assert.ok(logs[0]!.text.includes('"msg":"side programmed"') && logs[1]!.text.includes('"msg":"side programmed"'), 'both agents logged their work');
  assert.ok(readFileSync(creds('alice'), 'utf8').includes(needles.find(([n]) => n === 'alice.creds seed')![1]), 'the seed is where it belongs');
  assert.equal(found, []);
});

s.run();
