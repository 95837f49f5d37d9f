// `nsm init`, and how `nsm up` and the CLI pick up (or do without) credentials: what init
// writes and with which modes, that running it again adds and never replaces, that `nsm up` is
// authenticated by default and says so loudly when it is not, and that a CLI without the right
// credentials gets one clear line.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { suite } from '../lib/harness.ts';
import { runId } from '../lib/nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

type Ctx = { tmp: string; procs: NsmProcess[] };
const s = suite<Ctx>('nsm init, secure by default, and finding credentials', { tmp: '', procs: [] });

s.before((ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-sec-cli-'));
});
s.after(async (ctx) => {
  for (const p of ctx.procs) await p.stop('SIGKILL');
  for (const p of ctx.procs) {
    const pid = p.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(ctx.tmp, { recursive: true, force: true });
});

const envOf = (ctx: Ctx) => ({ XDG_CONFIG_HOME: join(ctx.tmp, 'config'), XDG_DATA_HOME: join(ctx.tmp, 'data'), NSM_LOG_LEVEL: 'warn', NSM_CREDS: '', NSM_NATS_URL: '', NSM_ACTOR: '' });
const mode = (f: string) => (statSync(f).mode & 0o777).toString(8);

s('nsm init writes identities, credentials (0600), a CA, a server certificate and the NATS configuration', async (ctx) => {
  const dir = join(ctx.tmp, 'd1');
  const r = await runNsm(['init', '--dir', dir, '--domain', 'acme', '--nodes', 'n1', '--clients', 'alice', '--host', '127.0.0.1,mesh.example.org'], envOf(ctx));
  assert.is(r.code, 0, r.stderr);
  for (const who of ['control-plane', 'operator', 'auditor', 'agent-n1', 'alice']) {
    assert.match(r.stdout, new RegExp(`created .* ${join(dir, 'creds', `${who}.creds`).replace(/[.]/g, '\\.')}`));
    assert.is(mode(join(dir, 'creds', `${who}.creds`)), '600', `${who}.creds is private`);
  }
  for (const key of ['ca-key.pem', 'server-key.pem']) assert.is(mode(join(dir, 'tls', key)), '600');
  const identities = JSON.parse(readFileSync(join(dir, 'identities.json'), 'utf8')) as { domain: string; identities: { actor: string; role: string; publicKey: string }[] };
  assert.is(identities.domain, 'acme');
  assert.equal(identities.identities.map((i) => [i.actor, i.role]), [['control-plane', 'control-plane'], ['operator', 'operator'], ['auditor', 'auditor'], ['agent:n1', 'agent'], ['alice', 'client']]);
  assert.ok(identities.identities.every((i) => /^U[A-Z2-7]{55}$/.test(i.publicKey)));
  assert.not.match(readFileSync(join(dir, 'identities.json'), 'utf8'), /"seed"|SU[A-Z2-7]{56}/, 'public data only');
  const conf = readFileSync(join(dir, 'nats-auth.conf'), 'utf8');
  for (const i of identities.identities) assert.ok(conf.includes(`nkey: "${i.publicKey}"`), `${i.actor} is a NATS user`);
  assert.match(conf, /# agent agent:n1\n.*"\$JS\.API\.CONSUMER\.CREATE\.NSM_ACME_NODE\.agent-n1\.nsm\.acme\.node\.n1\.cmd"/);
  assert.match(conf, /tls \{\n  cert_file: ".*server\.pem"/);
  // The server certificate is for the hosts asked for.
  const cert = await import('node:crypto').then((c) => new c.X509Certificate(readFileSync(join(dir, 'tls', 'server.pem'))));
  assert.match(cert.subjectAltName ?? '', /IP Address:127\.0\.0\.1/);
  assert.match(cert.subjectAltName ?? '', /DNS:mesh\.example\.org/);
  assert.ok(cert.verify((await import('node:crypto')).createPublicKey(readFileSync(join(dir, 'tls', 'ca.pem')))), 'signed by the deployment CA');
  // The CLI on this host is pointed at the deployment.
  assert.equal(JSON.parse(readFileSync(join(ctx.tmp, 'config', 'nsm', 'acme.json'), 'utf8')), { deployment: dir });
});

s('running nsm init again adds what is missing and never replaces a key', async (ctx) => {
  const dir = join(ctx.tmp, 'd1');
  const before = readFileSync(join(dir, 'creds', 'alice.creds'), 'utf8');
  const ca = readFileSync(join(dir, 'tls', 'ca.pem'), 'utf8');
  const r = await runNsm(['init', '--dir', dir, '--domain', 'acme', '--nodes', 'n1,n2', '--clients', 'alice,bob'], envOf(ctx));
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /created  agent +agent:n2/);
  assert.match(r.stdout, /created  client +bob/);
  assert.match(r.stdout, /kept     client +alice +\(existing key, not replaced\)/);
  assert.is(readFileSync(join(dir, 'creds', 'alice.creds'), 'utf8'), before);
  assert.is(readFileSync(join(dir, 'tls', 'ca.pem'), 'utf8'), ca);
  assert.ok(readFileSync(join(dir, 'nats-auth.conf'), 'utf8').includes('# client bob'));
  // A key file whose identity is not in the registry is not overwritten.
  const ids = JSON.parse(readFileSync(join(dir, 'identities.json'), 'utf8')) as { identities: { actor: string }[] };
  writeFileSync(join(dir, 'identities.json'), JSON.stringify({ ...ids, identities: ids.identities.filter((i) => i.actor !== 'bob') }));
  const clobber = await runNsm(['init', '--dir', dir, '--domain', 'acme', '--clients', 'bob'], envOf(ctx));
  assert.is(clobber.code, 1);
  assert.match(clobber.stderr, /bob\.creds exists but bob is not in .*identities\.json: refusing to overwrite a key/);
  const other = await runNsm(['init', '--dir', dir, '--domain', 'other'], envOf(ctx));
  assert.is(other.code, 1);
  assert.match(other.stderr, /holds the deployment of domain "acme", not "other"/);
});

s('nsm up is authenticated by default; the CLI needs the credentials, and without them it is one line', async (ctx) => {
  const domain = `sc-${runId()}`;
  const natsPort = await freePort();
  const dir = join(ctx.tmp, 'up1');
  const env = { ...envOf(ctx), NSM_DOMAIN: domain, NSM_LOG_LEVEL: 'info' };
  const up = startNsm(['up', '--data-dir', dir, '--nats-port', String(natsPort), '--http-port', String(await freePort()), '--node', 'n1'], env);
  ctx.procs.push(up);
  await up.waitFor(`mesh "${domain}" is up`, 60000);
  assert.not.match(up.stderr(), /INSECURE/);
  assert.ok(existsSync(join(dir, 'creds', 'operator.creds')), 'nsm up ran nsm init for its single node');
  // Found without flags: URL and credentials come from the pointer nsm up wrote.
  const ok = await runNsm(['service', 'register', 'web'], env);
  assert.is(ok.code, 0, ok.stderr);
  // Elsewhere (another user config), with the URL but no credentials: refused by the server.
  const stranger = { ...env, XDG_CONFIG_HOME: join(ctx.tmp, 'elsewhere'), XDG_DATA_HOME: join(ctx.tmp, 'elsewhere') };
  const ca = join(dir, 'tls', 'ca.pem');
  const noCreds = await runNsm(['ls', 'services', '--server', `nats://127.0.0.1:${natsPort}`, '--tls-ca', ca], stranger);
  assert.is(noCreds.code, 1);
  assert.equal(noCreds.stderr.trim().split('\n'), [`nsm ls: NATS at nats://127.0.0.1:${natsPort} refused the credentials (authorization violation): wrong credentials for this mesh?`]);
  // Credentials, but a CA that did not sign the server's certificate.
  const wrongCa = join(ctx.tmp, 'wrong-ca.pem');
  writeFileSync(wrongCa, readFileSync(join(ctx.tmp, 'd1', 'tls', 'ca.pem')));
  const badTls = await runNsm(['ls', 'services', '--server', `nats://127.0.0.1:${natsPort}`, '--creds', join(dir, 'creds', 'operator.creds'), '--tls-ca', wrongCa], stranger);
  assert.is(badTls.code, 1);
  assert.match(badTls.stderr, /^nsm ls: cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+ over TLS: .*certificate/);
  // The right credentials from anywhere.
  const explicit = await runNsm(['ls', 'services', '--json', '--server', `nats://127.0.0.1:${natsPort}`, '--creds', join(dir, 'creds', 'operator.creds')], stranger);
  assert.is(explicit.code, 0, explicit.stderr);
  assert.equal((JSON.parse(explicit.stdout) as { name: string }[]).map((x) => x.name), ['web']);
  // Credentials of another identity cannot be used to claim another actor.
  const claim = await runNsm(['ls', 'services', '--actor', 'someone-else'], env);
  assert.is(claim.code, 1);
  assert.match(claim.stderr, /the credentials are operator's; they cannot act as someone-else/);
  // Credentials for another domain are recognised as such.
  const wrongDomain = await runNsm(['ls', 'services', '--domain', 'elsewhere', '--creds', join(dir, 'creds', 'operator.creds')], env);
  assert.is(wrongDomain.code, 1);
  assert.match(wrongDomain.stderr, new RegExp(`holds credentials for domain "${domain}", not "elsewhere"`));
  const stopped = await up.stop('SIGTERM', 20000);
  assert.is(stopped.code, 0);
  // Started again on the same data dir: the same deployment, nothing recreated.
  const again = startNsm(['up', '--data-dir', dir, '--nats-port', String(natsPort), '--http-port', String(await freePort()), '--node', 'n1'], env);
  ctx.procs.push(again);
  await again.waitFor(`mesh "${domain}" is up`, 60000);
  assert.is(again.logs('created the deployment: identities, credentials, CA and server certificate').length, 0);
  const listed = await runNsm(['ls', 'services', '--json'], env);
  assert.equal((JSON.parse(listed.stdout) as { name: string }[]).map((x) => x.name), ['web']);
  await again.stop('SIGTERM', 20000);
});

s('nsm up --insecure says so when it starts, and an agent or control plane without credentials must ask for it', async (ctx) => {
  const domain = `si-${runId()}`;
  const natsPort = await freePort();
  const env = { ...envOf(ctx), NSM_DOMAIN: domain };
  const up = startNsm(['up', '--insecure', '--data-dir', join(ctx.tmp, 'insecure'), '--nats-port', String(natsPort), '--http-port', String(await freePort()), '--node', 'n1'], env);
  ctx.procs.push(up);
  await up.waitFor(`mesh "${domain}" is up`, 60000);
  assert.match(up.stderr(), new RegExp(`INSECURE MODE: no authentication and no TLS\\. Anyone who can reach nats://127\\.0\\.0\\.1:${natsPort} can act as any identity`));
  assert.match(up.stderr(), /security  NONE \(--insecure\)/);
  assert.not.ok(existsSync(join(ctx.tmp, 'insecure', 'identities.json')), 'no deployment is created');
  const r = await runNsm(['service', 'register', 'x', '--server', `nats://127.0.0.1:${natsPort}`], env);
  assert.is(r.code, 0, r.stderr);
  const agent = await runNsm(['agent', '--node', 'n2', '--server', `nats://127.0.0.1:${natsPort}`], env, 20000);
  assert.is(agent.code, 1);
  assert.match(agent.stderr, /no credentials found for agent:n2: pass --creds FILE \(or NSM_CREDS\), or --insecure for a mesh without authentication/);
  await up.stop('SIGTERM', 20000);
});

s.run();
