// The README's own sequence: `nsm up --domain demo` (which leaves a pointer for domain demo in
// the user's config: its deployment, credentials and CA), then another server of domain demo
// (what `sudo npm run demo` starts). The CLI pointed at that other server must not bring the
// first one's credentials and CA to it (it failed with "cannot reach NATS ... over TLS"): a
// pointer written for another server, or whose deployment is gone, is passed over, in one line.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { suite } from '../lib/harness.ts';
import { isAlive, runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

type Ctx = { tmp: string; procs: NsmProcess[]; user: NodeJS.ProcessEnv; secure?: { dir: string; url: string; up: NsmProcess }; other?: { url: string } };
const s = suite<Ctx>("the CLI uses a domain's pointer only for the server it was written for", { tmp: '', procs: [], user: {} });

s.before((ctx) => {
  ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-cli-pointers-'));
  // The user's home: where the quick start's `nsm up` leaves its pointer.
  ctx.user = { XDG_CONFIG_HOME: join(ctx.tmp, 'home', 'config'), XDG_DATA_HOME: join(ctx.tmp, 'home', 'data'), NSM_DOMAIN: '', NSM_CREDS: '', NSM_NATS_URL: '', NSM_ACTOR: '', NSM_TLS_CA: '', NSM_LOG_LEVEL: 'warn' };
});
s.after(async (ctx) => {
  for (const p of ctx.procs) await p.stop('SIGKILL');
  for (const p of ctx.procs) {
    const pid = p.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(ctx.tmp, { recursive: true, force: true });
});

const pointerFile = (ctx: Ctx) => join(ctx.user.XDG_CONFIG_HOME!, 'nsm', 'demo.json');

s('nsm up --domain demo, then the CLI against another server of domain demo: it works, and says why it ignored the pointer', async (ctx) => {
  // The quick start: `bin/nsm up --data-dir /tmp/mesh --domain demo --node n1` (authenticated, TLS).
  const dir = join(ctx.tmp, 'mesh');
  const port = await freePort();
  const up = startNsm(['up', '--data-dir', dir, '--domain', 'demo', '--node', 'n1', '--nats-port', String(port), '--http-port', String(await freePort())], { ...ctx.user, NSM_LOG_LEVEL: 'info' });
  ctx.procs.push(up);
  await up.waitFor('mesh "demo" is up', 90_000);
  ctx.secure = { dir, url: `nats://127.0.0.1:${port}`, up };
  assert.equal(JSON.parse(readFileSync(pointerFile(ctx), 'utf8')), { deployment: dir, url: ctx.secure.url });

  // Another mesh of domain demo on this host (the demo's lab: its own server, no authentication).
  // It runs from elsewhere: an insecure `nsm up` forgets the pointer of its domain in its own config.
  const otherPort = await freePort();
  const other = startNsm(['up', '--insecure', '--data-dir', join(ctx.tmp, 'other'), '--domain', 'demo', '--node', 'lab', '--nats-port', String(otherPort), '--http-port', String(await freePort())], {
    ...ctx.user,
    XDG_CONFIG_HOME: join(ctx.tmp, 'lab', 'config'),
    XDG_DATA_HOME: join(ctx.tmp, 'lab', 'data'),
  });
  ctx.procs.push(other);
  await other.waitFor('mesh "demo" is up', 90_000);
  ctx.other = { url: `nats://127.0.0.1:${otherPort}` };

  // What the demo's CLI calls are: --server <its server> --domain demo, with the user's config.
  const note = `nsm: ignoring ${pointerFile(ctx)}: it points at ${ctx.secure.url}, not the server in use ${ctx.other.url}`;
  const reg = await runNsm(['service', 'register', 'icmp', '--server', ctx.other.url, '--domain', 'demo'], ctx.user);
  assert.is(reg.code, 0, reg.stderr);
  assert.not.match(reg.stderr, /over TLS/);
  assert.equal(reg.stderr.trim().split('\n'), [note]);
  assert.is(reg.stdout, 'service icmp registered\n');
  // NSM_NATS_URL names the server in use just the same.
  const ls = await runNsm(['ls', 'services', '--json'], { ...ctx.user, NSM_NATS_URL: ctx.other.url, NSM_DOMAIN: 'demo' });
  assert.is(ls.code, 0, ls.stderr);
  assert.equal(ls.stderr.trim().split('\n'), [note]);
  assert.equal((JSON.parse(ls.stdout) as { name: string }[]).map((x) => x.name), ['icmp']);

  // The pointer still serves the server it was written for: without --server, or naming it.
  for (const extra of [[], ['--server', ctx.secure.url], ['--server', `tls://localhost:${port}`]]) {
    const mine = await runNsm(['ls', 'services', '--json', '--domain', 'demo', ...extra], ctx.user);
    assert.is(mine.code, 0, `${extra.join(' ')}: ${mine.stderr}`);
    assert.is(mine.stderr, '', `no note with ${extra.join(' ') || 'no --server'}`);
    assert.equal(JSON.parse(mine.stdout), [], 'the quick start mesh has no service: icmp went to the other one');
  }
});

s('a pointer whose deployment directory is gone is ignored, with one line saying so', async (ctx) => {
  const { dir, up } = ctx.secure!;
  const stopped = await up.stop('SIGTERM', 20_000);
  assert.is(stopped.code, 0, stopped.stderr.slice(-2000));
  rmSync(dir, { recursive: true, force: true });
  const r = await runNsm(['ls', 'services', '--json'], { ...ctx.user, NSM_NATS_URL: ctx.other!.url, NSM_DOMAIN: 'demo' });
  assert.is(r.code, 0, r.stderr);
  assert.equal(r.stderr.trim().split('\n'), [`nsm: ignoring ${pointerFile(ctx)}: its deployment ${dir} is gone`]);
  assert.equal((JSON.parse(r.stdout) as { name: string }[]).map((x) => x.name), ['icmp']);
  // An agent or control plane is told the same.
  const agent = await runNsm(['agent', '--node', 'n9', '--domain', 'demo', '--server', ctx.other!.url], ctx.user, 30_000);
  assert.is(agent.code, 1);
  assert.equal(agent.stderr.trim().split('\n'), [
    `nsm: ignoring ${pointerFile(ctx)}: its deployment ${dir} is gone`,
    'nsm agent: no credentials found for agent:n9: pass --creds FILE (or NSM_CREDS), or --insecure for a mesh without authentication',
  ]);
});

s.run();
