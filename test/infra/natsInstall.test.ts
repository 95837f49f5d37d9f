// How `nsm up` finds nats-server (infra/natsServer.ts findNatsServer): NSM_NATS_SERVER, else the
// PATH, else the sbin directories Debian installs it in; missing and root: installed with apt-get;
// missing and not root: one line with the command to run. The machine's nats-server stays
// installed: the lookup is given a PATH without it (and no sbin directories), and a fake apt-get
// earlier on that PATH records its arguments and "installs" a stub into the same directory.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { APT_INSTALL_ARGS, findNatsServer, INSTALL_HINT, locateNatsServer } from '../../infra/natsServer.ts';
import { suite } from '../lib/harness.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const LOOKUP = path.join(ROOT, 'test/fixtures/natsInstall/lookup.ts');
/** Debian's PATH for users other than root: no sbin directory, so no nats-server. */
const USER_PATH = '/usr/local/bin:/usr/bin:/bin';

const FAKE_APT = `#!/bin/sh
# A fake apt-get: records its arguments, then acts as the file "mode" says.
dir=$(dirname "$0")
echo "$*" >> "$dir/apt-get.args"
mode=$(cat "$dir/mode" 2>/dev/null || echo ok)
case "$1" in
  update) touch "$dir/updated"; echo "Reading package lists... Done"; exit 0;;
  install)
    if [ "$mode" = locked ]; then
      echo "Reading package lists..."
      echo "E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)" >&2
      exit 100
    fi
    if [ "$mode" = needs-update ] && [ ! -e "$dir/updated" ]; then
      echo "Reading package lists..."
      echo "E: Unable to locate package nats-server" >&2
      exit 100
    fi
    printf '#!/bin/sh\\necho "nats-server: v2.9.10 (a stub the fake apt-get installed)"\\n' > "$dir/nats-server"
    chmod 755 "$dir/nats-server"
    echo "Setting up nats-server (2.9.10-1+b3) ..."
    exit 0;;
esac
echo "E: unexpected arguments: $*" >&2
exit 100
`;

interface Fake {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** apt-get's invocations, one string of arguments each. */
  calls(): string[];
}
type Ctx = { dirs: string[] };

const fakeApt = (ctx: Ctx, mode = 'ok'): Fake => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nsm-fake-apt-'));
  ctx.dirs.push(dir);
  chmodSync(dir, 0o755); // the user "nobody" runs from it too
  writeFileSync(path.join(dir, 'apt-get'), FAKE_APT, { mode: 0o755 });
  writeFileSync(path.join(dir, 'mode'), mode);
  const args = path.join(dir, 'apt-get.args');
  return {
    dir,
    env: { PATH: `${dir}:${USER_PATH}` },
    calls: () => (existsSync(args) ? readFileSync(args, 'utf8').trim().split('\n') : []),
  };
};

/** What findNatsServer said and what apt-get printed, in the order it happened. */
const recorder = () => {
  const events: string[] = [];
  return { events, say: (line: string) => events.push(`say: ${line}`), aptOutput: (chunk: string) => events.push(`apt: ${chunk.trim()}`) };
};

const s = suite<Ctx>('finding or installing nats-server', { dirs: [] });
s.after((ctx) => {
  for (const d of ctx.dirs) rmSync(d, { recursive: true, force: true });
});

s('precondition: the PATH the lookup is given holds no nats-server', () => {
  assert.is(locateNatsServer({ env: { PATH: USER_PATH }, sbinDirs: [] }), undefined, `a nats-server in ${USER_PATH} would make every case below vacuous`);
});

s("a user's PATH lacks the sbin directories: they are searched after it", (ctx) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'nsm-fake-sbin-'));
  ctx.dirs.push(dir);
  writeFileSync(path.join(dir, 'nats-server'), '#!/bin/sh\necho stub\n', { mode: 0o755 });
  assert.is(locateNatsServer({ env: { PATH: USER_PATH }, sbinDirs: [dir] }), path.join(dir, 'nats-server'));
  // Debian's package installs it in /usr/sbin: found there by default, whatever the PATH.
  if (existsSync('/usr/sbin/nats-server')) assert.is(locateNatsServer({ env: { PATH: USER_PATH } }), '/usr/sbin/nats-server');
});

s('root: says so, installs it with apt-get install -y --no-install-recommends nats-server, then finds it', async (ctx) => {
  const apt = fakeApt(ctx);
  const rec = recorder();
  const r = await findNatsServer({ env: apt.env, sbinDirs: [], uid: 0, say: rec.say, aptOutput: rec.aptOutput });
  assert.equal(r, E.right(path.join(apt.dir, 'nats-server')));
  assert.equal(apt.calls(), ['install -y --no-install-recommends nats-server']);
  assert.equal(APT_INSTALL_ARGS, ['install', '-y', '--no-install-recommends', 'nats-server']);
  assert.equal(rec.events, [
    'say: nats-server is not installed; installing it: apt-get install -y --no-install-recommends nats-server',
    'apt: Setting up nats-server (2.9.10-1+b3) ...',
    `say: nats-server installed: ${path.join(apt.dir, 'nats-server')}`,
  ]);
  // Installed: the next lookup finds it and runs no apt-get.
  assert.equal(await findNatsServer({ env: apt.env, sbinDirs: [], uid: 0, say: rec.say, aptOutput: rec.aptOutput }), r);
  assert.is(apt.calls().length, 1);
});

s('root, on a machine whose package lists are empty: apt-get update, then the install again', async (ctx) => {
  const apt = fakeApt(ctx, 'needs-update');
  const rec = recorder();
  const r = await findNatsServer({ env: apt.env, sbinDirs: [], uid: 0, say: rec.say, aptOutput: rec.aptOutput });
  assert.equal(r, E.right(path.join(apt.dir, 'nats-server')));
  assert.equal(apt.calls(), ['install -y --no-install-recommends nats-server', 'update', 'install -y --no-install-recommends nats-server']);
  assert.ok(rec.events.includes('say: apt-get does not know nats-server yet; running apt-get update, then installing again'), rec.events.join('\n'));
});

s("root, apt-get fails: the answer is apt's error line", async (ctx) => {
  const apt = fakeApt(ctx, 'locked');
  const rec = recorder();
  const r = await findNatsServer({ env: apt.env, sbinDirs: [], uid: 0, say: rec.say, aptOutput: rec.aptOutput });
  assert.equal(r, E.left('cannot install nats-server: E: Could not get lock /var/lib/dpkg/lock-frontend. It is held by process 4242 (apt-get)'));
  assert.ok(rec.events[0]!.startsWith('say: nats-server is not installed; installing it'), 'said before apt-get ran');
  assert.not.ok(existsSync(path.join(apt.dir, 'nats-server')));
});

s('not root: one line with the command to run, and no apt-get', async (ctx) => {
  const apt = fakeApt(ctx);
  const rec = recorder();
  const r = await findNatsServer({ env: apt.env, sbinDirs: [], uid: 1000, say: rec.say, aptOutput: rec.aptOutput });
  assert.ok(E.isLeft(r));
  const line = (r as E.Left<string>).left;
  assert.not.ok(line.includes('\n'), 'one line');
  assert.ok(line.includes('sudo apt-get install --no-install-recommends nats-server'), line);
  assert.ok(line.includes('NSM_NATS_SERVER'), line);
  assert.ok(line.includes(INSTALL_HINT), line);
  assert.equal(apt.calls(), []);
  assert.equal(rec.events, []);
});

s('NSM_NATS_SERVER: that binary and no other; a broken one is an error (with the hint), never an install', async (ctx) => {
  const apt = fakeApt(ctx);
  const stub = path.join(apt.dir, 'my-nats-server');
  writeFileSync(stub, '#!/bin/sh\necho "nats-server: v2.9.10"\n', { mode: 0o755 });
  assert.equal(await findNatsServer({ env: { ...apt.env, NSM_NATS_SERVER: stub }, sbinDirs: [], uid: 0 }), E.right(stub));
  const broken = await findNatsServer({ env: { ...apt.env, NSM_NATS_SERVER: '/nonexistent/nats-server' }, sbinDirs: [], uid: 0 });
  assert.equal(broken, E.left(`nats-server was not found: NSM_NATS_SERVER is "/nonexistent/nats-server", which does not run (ENOENT). ${INSTALL_HINT}`));
  assert.equal(apt.calls(), []);
});

/** The lookup in a process of its own, as root or as the user nobody (setpriv), with the fake apt-get's PATH. */
const lookupAs = (apt: Fake, user: 'root' | 'nobody') => {
  const node = [process.execPath, '--import', 'tsx', LOOKUP];
  const argv = user === 'root' ? node : ['setpriv', '--reuid', 'nobody', '--regid', 'nogroup', '--clear-groups', ...node];
  const r = spawnSync(argv[0]!, argv.slice(1), { cwd: ROOT, encoding: 'utf8', env: { ...apt.env, HOME: tmpdir(), NSM_LOG_LEVEL: 'warn' }, timeout: 60_000 });
  const out = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return { ...(JSON.parse(out) as { found?: string; error?: string }), stderr: r.stderr };
  } catch {
    throw new Error(`lookup as ${user} printed no result (status ${r.status}): ${r.stdout}${r.stderr}`);
  }
};

s("the process's own uid decides: root installs, nobody is told what to run", async (ctx) => {
  const apt = fakeApt(ctx);
  const asNobody = lookupAs(apt, 'nobody');
  assert.is(asNobody.found, undefined);
  assert.is(asNobody.error, `nats-server was not found (looked on the PATH). ${INSTALL_HINT}`);
  assert.equal(apt.calls(), [], 'nobody ran no apt-get');
  const asRoot = lookupAs(apt, 'root');
  assert.is(asRoot.found, path.join(apt.dir, 'nats-server'), asRoot.stderr);
  assert.match(asRoot.stderr, /^nats-server is not installed; installing it: apt-get install -y --no-install-recommends nats-server\n/);
  assert.equal(apt.calls(), ['install -y --no-install-recommends nats-server']);
});

s.run();
