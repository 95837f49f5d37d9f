// Rotating and revoking keys on a running mesh, the way an operator does it: `nsm up` (secure by
// default) and a second node's `nsm agent` as processes, `nsm init --rotate` and `nsm revoke` from
// the command line, each identity's CLI with its own credentials file. What must hold:
//   - a rotated client's old key logs in during the grace period and not after; what it signs
//     after the rotation is refused; what it signed before (a connection's path) stays valid;
//   - a rotated agent, and the control plane itself, carry on with the new key without a restart,
//     also after nats-server has dropped the old key's connection;
//   - a revoked client is cut off at once, and its connections are closed; a revoked agent's node
//     is lost; the control plane cannot be revoked;
//   - every change is in the log (nsm history identities).
import { copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect } from 'nats';
import * as assert from 'uvu/assert';
import { natsAuthOptions, readCredentials } from '../../src/security/credentials.ts';
import { eventually, sleep } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { runNsm, startNsm, type NsmProcess, type NsmResult } from '../lib/nsmProcess.ts';
import { startSecureUp, type SecureUp } from '../lib/secureUp.ts';

type Ctx = { mesh?: SecureUp; agent?: NsmProcess };
const s = suite<Ctx>('key rotation and revocation on a running mesh', {});

s.before(async (ctx) => {
  ctx.mesh = await startSecureUp({ clients: ['alice', 'bob'], nodes: ['n1', 'n2'], upArgs: ['--node-timeout', '4s', '--heartbeat', '1s'] });
  const m = ctx.mesh;
  ctx.agent = startNsm(['agent', '--node', 'n2', '--creds', credsOf(m, 'agent-n2'), '--server', m.natsUrl, '--heartbeat', '1s'], { ...m.env('operator'), NSM_LOG_LEVEL: 'info' });
  await ctx.agent.waitFor('"msg":"node agent ready"', 60000);
  for (const args of [
    ['service', 'register', 'web'],
    ['endpoint', 'register', 'ep-1', '--service', 'web', '--node', 'n1', '--prefix', '10.62.0.0/24'],
    ['service', 'register', 'db'],
    ['endpoint', 'register', 'ep-2', '--service', 'db', '--node', 'n2', '--prefix', '10.63.0.0/24'],
  ]) await ok(m, 'operator', args);
});
s.after(async (ctx) => {
  await ctx.agent?.stop('SIGTERM', 10000);
  await ctx.mesh?.stop();
});

const credsOf = (m: SecureUp, file: string) => join(m.dataDir, 'creds', `${file}.creds`);
const ok = async (m: SecureUp, who: string, args: string[]): Promise<NsmResult> => {
  const r = await m.nsm(who, args);
  assert.is(r.code, 0, `nsm ${args.join(' ')} as ${who}: ${r.stderr}`);
  return r;
};
/** The CLI with a given credentials file (an old copy, kept by whoever held it). */
const withCreds = (m: SecureUp, file: string, args: string[]) => runNsm(args, { ...m.env('operator'), NSM_CREDS: file });
const rotate = async (m: SecureUp, actor: string, grace: string) =>
  JSON.parse((await ok(m, 'operator', ['init', '--dir', m.dataDir, '--domain', m.domain, '--rotate', actor, '--grace', grace, '--json'])).stdout) as {
    publicKey: string;
    previousKey: string;
    loginUntil: string;
    server: { status: string };
  };
const connected = async (m: SecureUp, who: string, args: string[]) => JSON.parse((await ok(m, who, ['connect', ...args, '--wait', '--json'])).stdout) as { id: string; state: string };
const nodeStates = async (m: SecureUp) =>
  Object.fromEntries((JSON.parse((await ok(m, 'operator', ['ls', 'nodes', '--json'])).stdout) as { name: string; status: string }[]).map((n) => [n.name, n.status]));
const meshHistory = async (m: SecureUp) =>
  (JSON.parse((await ok(m, 'auditor', ['history', 'identities', '--json'])).stdout) as { event: { type: string; actor: string; data: Record<string, unknown> } }[]).map((r) => r.event.data);

s('a rotated client: the old key logs in during the grace period only, signs nothing new, and its earlier connection stays', async (ctx) => {
  const m = ctx.mesh!;
  const c1 = await connected(m, 'alice', ['web', '--node', 'n1', '--id', 'a1']);
  assert.is(c1.state, 'established');
  const old = join(m.dataDir, 'alice-old.creds');
  copyFileSync(credsOf(m, 'alice'), old);

  const r = await rotate(m, 'alice', '6s');
  assert.is(r.server.status, 'reloaded', 'nsm up runs nats-server on this data dir: reloaded at once');
  assert.is.not(r.publicKey, r.previousKey);
  assert.is.not(readFileSync(credsOf(m, 'alice'), 'utf8'), readFileSync(old, 'utf8'), 'the credentials file holds the new key');

  // The new key works at once: the control plane follows identities.json.
  assert.is((await connected(m, 'alice', ['web', '--node', 'n1', '--id', 'a2'])).state, 'established');
  // The old key still logs in, but a token it signs now is refused, with the reason.
  const list = await withCreds(m, old, ['ls', 'connections', '--json']);
  assert.is(list.code, 0, `in the grace period the old key logs in: ${list.stderr}`);
  const late = await withCreds(m, old, ['connect', 'web', '--node', 'n1', '--id', 'a3', '--wait']);
  assert.is(late.code, 1);
  assert.match(late.stderr, /signed with a key of alice retired at .*, after it was retired/);
  // What the old key signed before the rotation stays valid: a1 is still established.
  const rows = JSON.parse((await ok(m, 'alice', ['ls', 'connections', '--json'])).stdout) as { id: string; state: string }[];
  assert.equal(rows.filter((c) => c.id.startsWith('a')).map((c) => [c.id, c.state]).sort(), [['a1', 'established'], ['a2', 'established']]);

  // After the grace period nats-server refuses the old key (nsm up reloads it when the period ends).
  await sleep(Math.max(0, Date.parse(r.loginUntil) - Date.now()));
  const after = await eventually('the old key to be refused', async () => {
    const r = await withCreds(m, old, ['ls', 'connections']);
    return r.code !== 0 && r;
  }, { timeoutMs: 10000 });
  assert.match(after.stderr, /refused the credentials \(authorization violation\)/);
  assert.is((await ok(m, 'alice', ['ls', 'connections', '--json'])).code, 0, 'the new key does');
  assert.ok(m.up.stderr().includes("a rotated-out key's grace period ended"), 'nsm up reloaded nats-server when the grace period ended');

  const events = await meshHistory(m);
  assert.ok(events.some((e) => e.type === 'IdentityKeyRotated' && e.actor === 'alice' && e.previousKey === r.previousKey && e.publicKey === r.publicKey && e.loginUntil === r.loginUntil), JSON.stringify(events));
});

s('a rotated agent and a rotated control plane carry on without a restart, past the end of the grace period', async (ctx) => {
  const m = ctx.mesh!;
  // A connection whose path the old control plane key signs, and whose endpoint side n2 programs.
  assert.is((await connected(m, 'alice', ['db', '--node', 'n1', '--id', 'k0'])).state, 'established');
  const agentKey = await rotate(m, 'agent:n2', '3s');
  await ctx.agent!.waitFor('own key rotated', 10000);
  const cpKey = await rotate(m, 'control-plane', '3s');
  await m.up.waitFor('own key rotated', 10000);
  // Past both grace periods: nats-server closed the old keys' connections, both logged in again with the new keys.
  await sleep(Math.max(0, Date.parse(cpKey.loginUntil) - Date.now()) + 3000);
  // A new connection to n2's endpoint: the control plane signs its segment with its new key, the
  // agent on n2 verifies it and signs its own with its new key, and the control plane verifies that.
  const c = await connected(m, 'alice', ['db', '--node', 'n1', '--id', 'k1']);
  assert.is(c.state, 'established');
  assert.equal(await nodeStates(m), { n1: 'ready', n2: 'ready' }, 'no node was lost on the way');
  // The old keys' connections were in fact closed, and both logged in again (with their new keys: the old ones no longer may).
  for (const [who, p] of [['agent on n2', ctx.agent!], ['nsm up', m.up]] as const) {
    const reconnected = p.logs('reconnected to NATS');
    assert.ok(reconnected.length > 0 && p.logs('disconnected from NATS; reconnecting').length > 0, `${who}: ${p.stderr().slice(-2000)}`);
  }
  // The agent on n2 restarts and checks its sides again: k0's path, signed by the control plane's
  // old key before the rotation, is still valid until it expires.
  await ctx.agent!.stop('SIGTERM', 10000);
  ctx.agent = startNsm(['agent', '--node', 'n2', '--creds', credsOf(m, 'agent-n2'), '--server', m.natsUrl, '--heartbeat', '1s'], { ...m.env('operator'), NSM_LOG_LEVEL: 'info' });
  await ctx.agent.waitFor('"msg":"node agent ready"', 60000);
  await sleep(2000);
  assert.not.ok(ctx.agent.stderr().includes('refusing to act on a side'), ctx.agent.stderr().slice(-3000));
  const k0 = (JSON.parse((await ok(m, 'alice', ['ls', 'connections', '--json'])).stdout) as { id: string; state: string }[]).find((c) => c.id === 'k0');
  assert.is(k0?.state, 'established');
  const events = await meshHistory(m);
  for (const [actor, key] of [['agent:n2', agentKey], ['control-plane', cpKey]] as const) {
    assert.ok(events.some((e) => e.type === 'IdentityKeyRotated' && e.actor === actor && e.publicKey === key.publicKey), `${actor}: ${JSON.stringify(events)}`);
  }
});

s('a revoked client is cut off and its connections are closed; the control plane is rotated, not revoked', async (ctx) => {
  const m = ctx.mesh!;
  const b1 = await connected(m, 'bob', ['web', '--node', 'n1', '--id', 'b1']);
  assert.is(b1.state, 'established');
  const old = join(m.dataDir, 'bob-old.creds');
  copyFileSync(credsOf(m, 'bob'), old);
  const r = await ok(m, 'operator', ['revoke', 'bob', '--dir', m.dataDir, '--domain', m.domain]);
  assert.match(r.stdout, /^bob \(client\) revoked at \S+\n {2}nats-server on .* reloaded/);
  assert.ok(!existsSync(credsOf(m, 'bob')), 'its credentials file is removed');
  const refused = await withCreds(m, old, ['ls', 'connections']);
  assert.is(refused.code, 1);
  assert.match(refused.stderr, /refused the credentials \(authorization violation\)/);
  await eventually('b1 closed because bob was revoked', async () => /"reason": ?"its owner bob was revoked at [^"]+"/.test((await ok(m, 'operator', ['history', 'b1', '--json'])).stdout), {
    timeoutMs: 15000,
    describe: () => m.up.stderr().split('\n').filter((l) => /revok|registry|timer|b1/.test(l)).slice(-10),
  });
  const again = await m.nsm('operator', ['revoke', 'bob', '--dir', m.dataDir, '--domain', m.domain]);
  assert.is(again.code, 1);
  assert.match(again.stderr, /^nsm revoke: bob was already revoked at /);
  const cp = await m.nsm('operator', ['revoke', 'control-plane', '--dir', m.dataDir, '--domain', m.domain]);
  assert.is(cp.code, 1);
  assert.match(cp.stderr, /cannot be revoked .* nsm init --rotate control-plane/);
  const events = await meshHistory(m);
  assert.ok(events.some((e) => e.type === 'IdentityRevoked' && e.actor === 'bob'), JSON.stringify(events));
});

s('a revoked agent is disconnected and its node is lost; a new key lets it act again', async (ctx) => {
  const m = ctx.mesh!;
  const agentCreds = readCredentials(credsOf(m, 'agent-n2'));
  if (E.isLeft(agentCreds)) throw new Error(agentCreds.left);
  await ok(m, 'operator', ['revoke', 'agent:n2', '--dir', m.dataDir, '--domain', m.domain]);
  // Its key cannot log in at all: it can neither publish nor subscribe.
  const revokedCreds = readCredentials(credsOf(m, 'agent-n2'));
  assert.ok(E.isLeft(revokedCreds), 'its credentials file is gone');
  const login = await connect({ servers: m.natsUrl, reconnect: false, timeout: 5000, ...natsAuthOptions(agentCreds.right) }).then(
    async (nc) => (await nc.close(), 'connected'),
    (e: { code?: string }) => e.code,
  );
  assert.is(login, 'AUTHORIZATION_VIOLATION');
  // Cut off for good, the agent stops with the reason rather than run on.
  const exit = await ctx.agent!.exited;
  assert.is(exit.code, 1, exit.stderr.slice(-2000));
  assert.match(exit.stderr, /the NATS connection nsm-agent-n2 was closed for good: .*was it revoked, or rotated and its grace period is over\?/);
  await eventually('n2 lost', async () => (await nodeStates(m)).n2 === 'lost', { timeoutMs: 20000, describe: () => nodeStates(m) });
  // Reinstated with a new key, the node's agent (restarted with its new credentials) joins again.
  await rotate(m, 'agent:n2', '0s');
  ctx.agent = startNsm(['agent', '--node', 'n2', '--creds', credsOf(m, 'agent-n2'), '--server', m.natsUrl, '--heartbeat', '1s'], { ...m.env('operator'), NSM_LOG_LEVEL: 'info' });
  await ctx.agent.waitFor('"msg":"node agent ready"', 60000);
  await eventually('n2 up again', async () => (await nodeStates(m)).n2 === 'ready', { timeoutMs: 20000, describe: () => nodeStates(m) });
  const events = await meshHistory(m);
  assert.ok(events.some((e) => e.type === 'IdentityRevoked' && e.actor === 'agent:n2'));
  assert.ok(events.some((e) => e.type === 'IdentityReinstated' && e.actor === 'agent:n2'));
});

s.run();
