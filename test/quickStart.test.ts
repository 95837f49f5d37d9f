// The README's quick start is true: its "run it" and "use it" commands, read from README.md and
// run as written, by a user who is not root (the user nobody, with Debian's PATH for users,
// which has no /usr/sbin, where Debian installs nats-server), in a HOME of their own. Only what a
// test must change is changed: the data dir is a temp dir, the ports are free ones (the
// documented --nats-port/--http-port; other meshes may hold 4222 and 8080), and `npm ci` is not
// run again (the checkout under test is already installed; reinstalling would pull
// node_modules from under other tests). "Test it" (bash .ci/run, npm test) is what runs this.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { freePort } from '../infra/net.ts';
import { suite } from './lib/harness.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const USER_PATH = '/usr/local/bin:/usr/bin:/bin';
const NOBODY = { uid: 65534, gid: 65534 };

/** The sh blocks of the README's "Quick start" section, each as its command lines (comments kept apart). */
const quickStart = (): { command: string; comment: string }[][] => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Quick start\n');
  assert.ok(start >= 0, 'README.md has a "## Quick start" section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  return [...section.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) =>
    m[1]!
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => {
        const hash = l.search(/\s#\s/);
        return hash === -1 ? { command: l.trim(), comment: '' } : { command: l.slice(0, hash).trim(), comment: l.slice(hash).replace(/^\s*#\s*/, '').trim() };
      }),
  );
};

interface Ctx {
  dir?: string;
  up?: ChildProcess;
}

const s = suite<Ctx>('the README quick start, as a user who is not root', {});
s.after(async (ctx) => {
  if (ctx.up && ctx.up.exitCode === null && ctx.up.signalCode === null) {
    ctx.up.kill('SIGTERM');
    await new Promise((r) => ctx.up!.once('exit', r));
  }
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
});

s('run it, then use it', async (ctx) => {
  const blocks = quickStart();
  const [runIt, useIt] = blocks;
  assert.ok(runIt && useIt, `the quick start's first two sh blocks: ${JSON.stringify(blocks)}`);
  assert.equal(runIt.map((l) => l.command.split(' ')[0]), ['npm', 'bin/nsm'], 'run it: npm ci, then bin/nsm up');
  assert.is(runIt[0]!.command, 'npm ci');

  const dir = (ctx.dir = mkdtempSync(path.join(tmpdir(), 'nsm-quickstart-')));
  chmodSync(dir, 0o755);
  const home = path.join(dir, 'home');
  mkdirSync(home);
  chownSync(home, NOBODY.uid, NOBODY.gid);
  const env: NodeJS.ProcessEnv = { HOME: home, PATH: USER_PATH, LANG: 'C.UTF-8', NSM_LOG_LEVEL: 'warn' };
  const words = (command: string) => command.split(/\s+/);

  // Run it.
  const upArgs = words(runIt[1]!.command);
  assert.is(upArgs[0], 'bin/nsm');
  const dataDirAt = upArgs.indexOf('--data-dir');
  assert.ok(dataDirAt > 0, 'nsm up is given a data dir');
  upArgs[dataDirAt + 1] = path.join(home, 'mesh');
  upArgs.push('--nats-port', String(await freePort()), '--http-port', String(await freePort()));
  let upErr = '';
  const up = (ctx.up = spawn(path.join(ROOT, upArgs[0]!), upArgs.slice(1), { cwd: ROOT, env, ...NOBODY, stdio: ['ignore', 'ignore', 'pipe'] }));
  up.stderr!.setEncoding('utf8').on('data', (d: string) => (upErr += d));
  const domain = upArgs[upArgs.indexOf('--domain') + 1];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nsm up did not say it is up within 60 s:\n${upErr}`)), 60_000);
    const check = () => {
      if (upErr.includes(`mesh "${domain}" is up`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    up.stderr!.on('data', check);
    up.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`nsm up exited (${code}) before it was up:\n${upErr}`));
    });
  });

  // Use it, from "another shell": the exports, then each command; <id> is what connect printed.
  const [exports, ...commands] = useIt;
  assert.match(exports!.command, /^export /);
  for (const pair of words(exports!.command).slice(1)) {
    const [k, v] = pair.split('=');
    env[k!] = v;
  }
  let id: string | undefined;
  for (const { command, comment } of commands) {
    const args = words(command).map((w) => (w === '<id>' ? id ?? '<id>' : w));
    assert.is(args[0], 'bin/nsm', command);
    const r = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(path.join(ROOT, args[0]!), args.slice(1), { cwd: ROOT, env, ...NOBODY, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
      child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
      child.once('close', (code) => resolve({ code, stdout, stderr }));
    });
    assert.is(r.code, 0, `${args.join(' ')}: exit ${r.code}\n${r.stderr}`);
    if (args[1] === 'connect') {
      // The README shows what it prints: "<id> established via ep-1 (10.50.0.3/32 -> 10.50.0.2/32)".
      const shown = new RegExp(`^${comment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace('<id>', '(\\S+)')}$`);
      const m = shown.exec(r.stdout.trim());
      assert.ok(m, `connect printed "${r.stdout.trim()}", the README shows "${comment}"`);
      id = m![1];
    }
    if (args[1] === 'ls') assert.ok(id !== undefined && r.stdout.includes(id), `ls connections lists ${id}:\n${r.stdout}`);
    if (args[1] === 'history') assert.match(r.stdout, 'ConnectionEstablished');
  }
  assert.ok(id, 'connect ran and printed the id');

  up.kill('SIGTERM');
  const code = await new Promise((r) => up.once('exit', r));
  assert.is(code, 0, `nsm up stopped cleanly:\n${upErr.slice(-2000)}`);
});

s.run();
