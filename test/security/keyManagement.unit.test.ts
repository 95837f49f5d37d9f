// Rotation and revocation as functions and files (src/security/keyManagement.ts, identities.ts,
// live.ts): which keys log in to nats-server and when, which tokens count, what the files hold
// afterwards, and how running processes follow the files. The same on a running mesh, through the
// CLI: test/security/keyRotation.test.ts.
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { apiToken, verifyApiToken } from '../../src/security/apiToken.ts';
import { readCredentials, signerOf } from '../../src/security/credentials.ts';
import { keyProblem, loadRegistry, loginKeys, nextLoginChange } from '../../src/security/identities.ts';
import { initDeployment } from '../../src/security/init.ts';
import { rotateKey, revokeIdentity } from '../../src/security/keyManagement.ts';
import { liveCredentials, liveRegistry, registryChanges } from '../../src/security/live.ts';
import type { Logger } from '../../src/ports/logger.ts';
import { suite } from '../lib/harness.ts';

type Ctx = { tmp: string };
const s = suite<Ctx>('key rotation and revocation (files and functions)', { tmp: '' });
s.before((ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-keys-'));
});
s.after((ctx) => rmSync(ctx.tmp, { recursive: true, force: true }));

const must = <T>(r: E.Either<string, T>): T => {
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
};
const deployment = (ctx: Ctx, name: string) => {
  const dir = join(ctx.tmp, name);
  must(initDeployment({ dir, domain: 'acme', nodes: ['n1'], clients: ['alice', 'bob'] }));
  return dir;
};
const registryIn = (dir: string) => must(loadRegistry(join(dir, 'identities.json')));
const credsIn = (dir: string, file: string) => must(readCredentials(join(dir, 'creds', `${file}.creds`)));
const lines: { level: string; msg: string; fields?: Record<string, unknown> }[] = [];
const log: Logger = {
  debug: (msg, fields) => void lines.push({ level: 'debug', msg, ...(fields ? { fields } : {}) }),
  info: (msg, fields) => void lines.push({ level: 'info', msg, ...(fields ? { fields } : {}) }),
  warn: (msg, fields) => void lines.push({ level: 'warn', msg, ...(fields ? { fields } : {}) }),
  error: (msg, fields) => void lines.push({ level: 'error', msg, ...(fields ? { fields } : {}) }),
  child: () => log,
};

const T0 = new Date('2026-01-06T10:00:00.000Z');
const plus = (ms: number) => new Date(T0.getTime() + ms);

s('a rotation: a new key in the credentials file, the old one retired with its grace period, both in nats-auth.conf until it ends', (ctx) => {
  const dir = deployment(ctx, 'rotate');
  const before = credsIn(dir, 'alice');
  const r = must(rotateKey({ dir, actor: 'alice', graceMs: 3600_000, now: T0 }));
  const after = credsIn(dir, 'alice');
  assert.is.not(after.seed, before.seed);
  assert.is(signerOf(after).publicKey, r.identity.publicKey);
  assert.is(r.previousKey, signerOf(before).publicKey);
  assert.is(after.ca, readFileSync(join(dir, 'tls', 'ca.pem'), 'utf8'), 'the new file carries the CA');
  assert.is((statSync(join(dir, 'creds', 'alice.creds')).mode & 0o777).toString(8), '600');
  const alice = registryIn(dir).byActor('alice')!;
  assert.equal(alice.retiredKeys, [{ publicKey: r.previousKey, retiredAt: T0.toISOString(), loginUntil: plus(3600_000).toISOString() }]);
  assert.equal(loginKeys(alice, plus(1000)), [alice.publicKey, r.previousKey], 'in the grace period both log in');
  assert.equal(loginKeys(alice, plus(3600_000)), [alice.publicKey], 'after it only the new one');
  assert.equal(nextLoginChange(registryIn(dir).identities, plus(1000)), plus(3600_000));
  // nats-auth.conf is written for the moment it is written at (T0 is in the past: the grace period is over).
  const conf = readFileSync(join(dir, 'nats-auth.conf'), 'utf8');
  assert.ok(conf.includes(`nkey: "${alice.publicKey}"`) && !conf.includes(r.previousKey));
  const inGrace = must(rotateKey({ dir, actor: 'bob', graceMs: 3600_000, now: new Date() }));
  const conf2 = readFileSync(join(dir, 'nats-auth.conf'), 'utf8');
  assert.ok(conf2.includes(`# client bob (rotated-out key, in its grace period)\n    { nkey: "${inGrace.previousKey}"`), conf2);
  assert.ok(conf2.includes(`nkey: "${inGrace.identity.publicKey}"`));
  assert.equal(registryIn(dir).identities.filter((i) => i.actor !== 'alice' && i.actor !== 'bob').map((i) => i.retiredKeys), [undefined, undefined, undefined, undefined], 'every other identity is as it was');
});

s('tokens: the old key counts for what it signed before it was retired, not after; a revoked identity for nothing', async (ctx) => {
  const dir = deployment(ctx, 'tokens');
  const old = signerOf(credsIn(dir, 'alice'));
  const r = must(rotateKey({ dir, actor: 'alice', graceMs: 60_000, now: T0 }));
  const reg = registryIn(dir);
  const before = Math.floor(T0.getTime() / 1000) - 10;
  const afterwards = Math.floor(T0.getTime() / 1000) + 10;
  assert.is(keyProblem(reg, r.previousKey, before), undefined);
  assert.match(keyProblem(reg, r.previousKey, afterwards)!, /signed with a key of alice retired at 2026-01-06T10:00:00\.000Z, after it was retired/);
  assert.is(keyProblem(reg, r.identity.publicKey, afterwards), undefined);
  // The HTTP API: a token the old key signs now is refused; one it signed before counts.
  const at = plus(20_000);
  const refused = await verifyApiToken(`Bearer ${apiToken(old, 'alice', at, 600)}`, reg, at);
  assert.ok(E.isLeft(refused) && /after it was retired/.test(refused.left), JSON.stringify(refused));
  assert.equal(await verifyApiToken(`Bearer ${apiToken(old, 'alice', plus(-30_000), 600)}`, reg, at), E.right('alice'));
  assert.equal(await verifyApiToken(`Bearer ${apiToken(signerOf(credsIn(dir, 'alice')), 'alice', at, 600)}`, reg, at), E.right('alice'));

  const v = must(revokeIdentity({ dir, actor: 'alice', now: plus(30_000) }));
  assert.is(v.removedCreds, join(dir, 'creds', 'alice.creds'));
  assert.ok(!existsSync(v.removedCreds!));
  const revoked = registryIn(dir);
  assert.match(keyProblem(revoked, r.identity.publicKey, before)!, /signed by alice, revoked at 2026-01-06T10:00:30\.000Z/);
  assert.match(keyProblem(revoked, r.previousKey, before)!, /revoked at/, 'its retired keys too');
  assert.equal(loginKeys(revoked.byActor('alice')!, plus(31_000)), [], 'no key of a revoked identity logs in');
  const conf = readFileSync(join(dir, 'nats-auth.conf'), 'utf8');
  assert.match(conf, /# client alice: revoked at 2026-01-06T10:00:30\.000Z\n/);
  assert.not.ok(conf.includes(r.identity.publicKey) || conf.includes(r.previousKey), 'no user for any of its keys');
});

s('refusals: an unknown identity (with a hint), revoking twice, revoking the control plane, a negative grace period', (ctx) => {
  const dir = deployment(ctx, 'refusals');
  assert.equal(rotateKey({ dir, actor: 'n1', graceMs: 0, now: T0 }), E.left(`${join(dir, 'identities.json')} has no identity "n1" (did you mean agent:n1?)`));
  assert.equal(revokeIdentity({ dir, actor: 'mallory', now: T0 }), E.left(`${join(dir, 'identities.json')} has no identity "mallory"; its identities are: control-plane, operator, auditor, agent:n1, alice, bob`));
  must(revokeIdentity({ dir, actor: 'bob', now: T0 }));
  assert.equal(revokeIdentity({ dir, actor: 'bob', now: T0 }), E.left('bob was already revoked at 2026-01-06T10:00:00.000Z'));
  assert.equal(revokeIdentity({ dir, actor: 'control-plane', now: T0 }), E.left('the control plane cannot be revoked (the mesh does not run without it); give it a new key instead: nsm init --rotate control-plane'));
  assert.equal(rotateKey({ dir, actor: 'alice', graceMs: -1, now: T0 }), E.left('the grace period must be 0 or more'));
});

s('reinstating a revoked identity: a new key, and its earlier keys stay refused for good', (ctx) => {
  const dir = deployment(ctx, 'reinstate');
  const first = signerOf(credsIn(dir, 'agent-n1')).publicKey;
  must(revokeIdentity({ dir, actor: 'agent:n1', now: T0 }));
  const r = must(rotateKey({ dir, actor: 'agent:n1', graceMs: 3600_000, now: plus(60_000) }));
  assert.ok(r.reinstated);
  const reg = registryIn(dir);
  const id = reg.byActor('agent:n1')!;
  assert.is(id.revokedAt, undefined);
  assert.equal(loginKeys(id, plus(61_000)), [r.identity.publicKey], 'no grace period for a key of a revoked identity');
  assert.match(keyProblem(reg, first, Math.floor(T0.getTime() / 1000) - 100)!, /that was revoked at 2026-01-06T10:00:00\.000Z/, 'even what it signed before the revocation');
  assert.is(keyProblem(reg, r.identity.publicKey, Math.floor(plus(61_000).getTime() / 1000)), undefined);
  assert.is(credsIn(dir, 'agent-n1').ca, readFileSync(join(dir, 'tls', 'ca.pem'), 'utf8'), 'a new credentials file with the CA, though the revoked one was removed');
});

s('a running process follows identities.json: changes taken, a broken file not, an unknown key looked up at once', async (ctx) => {
  const dir = deployment(ctx, 'live');
  const file = join(dir, 'identities.json');
  const live = liveRegistry(file, registryIn(dir), log, { pollMs: 3_600_000 });
  const changes: string[] = [];
  live.onChange((_r, c) => changes.push(...c.map((x) => `${x.actor}: ${x.change}`)));
  try {
    const r = must(rotateKey({ dir, actor: 'alice', graceMs: 1000, now: new Date() }));
    // Not polled yet, but a token naming the new key makes the registry look at its file again.
    assert.is(live.byKey(r.identity.publicKey)?.actor, 'alice');
    assert.equal(changes, ['alice: key rotated']);
    const good = readFileSync(file, 'utf8');
    writeFileSync(file, good.slice(0, good.length / 2));
    assert.is(live.refresh(), false, 'a half-written file is not taken');
    assert.ok(lines.some((l) => l.level === 'error' && l.msg === 'the identity registry changed but cannot be read; the previous one stays in force'));
    assert.is(live.byActor('alice')?.publicKey, r.identity.publicKey, 'the last good registry stays');
    writeFileSync(file, good.replace('"acme"', '"other"'));
    assert.is(live.refresh(), false, 'nor one of another domain');
    writeFileSync(file, good);
    must(revokeIdentity({ dir, actor: 'bob', now: new Date() }));
    assert.is(live.refresh(), true);
    assert.ok(live.byActor('bob')?.revokedAt);
    assert.equal(changes, ['alice: key rotated', 'bob: revoked']);
  } finally {
    live.stop();
  }
});

s("a process's own key follows its credentials file: it signs with the new key, and its next login uses it", (ctx) => {
  const dir = deployment(ctx, 'own');
  const file = join(dir, 'creds', 'control-plane.creds');
  const own = liveCredentials(file, credsIn(dir, 'control-plane'), log, { pollMs: 3_600_000 });
  try {
    const before = own.signer.publicKey;
    const r = must(rotateKey({ dir, actor: 'control-plane', graceMs: 1000, now: new Date() }));
    // The next login reads the file: the seed it gets is the new one, and the signer follows.
    assert.equal(new TextDecoder().decode(own.seed()), credsIn(dir, 'control-plane').seed);
    assert.is(own.signer.publicKey, r.identity.publicKey);
    assert.is.not(own.signer.publicKey, before);
    assert.ok(lines.some((l) => l.msg === 'own key rotated: signing with the new key; the next login uses it'));
  } finally {
    own.stop();
  }
});

s('registryChanges: added, removed, rotated, revoked', () => {
  const k = (c: string) => `U${c.repeat(55)}`;
  const id = (actor: string, key: string, revokedAt?: string) => ({ name: actor, role: 'client' as const, actor, publicKey: key, ...(revokedAt ? { revokedAt } : {}) });
  assert.equal(
    registryChanges([id('a', k('A')), id('b', k('B')), id('c', k('C'))], [id('a', k('D')), id('b', k('B'), T0.toISOString()), id('e', k('E'))]),
    [
      { actor: 'a', change: 'key rotated' },
      { actor: 'b', change: 'revoked' },
      { actor: 'e', change: 'added' },
      { actor: 'c', change: 'removed' },
    ],
  );
});

s.run();
