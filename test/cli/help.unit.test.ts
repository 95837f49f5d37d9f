// The nsm command line in process (src/cli/main.ts): the overview, every command's help with its
// flags, the one argument scanner (global options before the command), and the one-line failures
// for an unknown option or command. Nothing here connects to a mesh: each case ends before a
// command's run would.
import { Writable } from 'node:stream';
import * as assert from 'uvu/assert';
import { locate } from '../../src/cli/args.ts';
import { ALL_COMMANDS, COMMANDS } from '../../src/cli/commands/index.ts';
import type { CliIo } from '../../src/cli/kit.ts';
import { main } from '../../src/cli/main.ts';
import { common, type Flag } from '../../src/cli/options.ts';
import { suite } from '../lib/harness.ts';

const s = suite('nsm CLI in process: help, options, one-line failures');

/** Runs main with stdout and stderr captured. */
const nsm = async (...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
  let stdout = '';
  let stderr = '';
  const sink = (add: (s: string) => void) =>
    new Writable({
      write(chunk, _enc, done) {
        add(String(chunk));
        done();
      },
    });
  const io: CliIo = { stdout: sink((t) => (stdout += t)), stderr: sink((t) => (stderr += t)) };
  const code = await main(argv, io);
  return { code, stdout, stderr };
};

const escape = (t: string) => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

s('nsm --help prints the overview: every command, in its group; nsm alone prints it with exit code 2', async () => {
  const r = await nsm('--help');
  assert.is(r.code, 0);
  assert.is(r.stderr, '');
  for (const heading of ['Set up identities', 'Run a mesh', 'Use it', 'Audit']) assert.match(r.stdout, new RegExp(`^${heading}`, 'm'));
  for (const c of ALL_COMMANDS) for (const line of c.usage) assert.ok(r.stdout.includes(`  ${line}\n`), `the overview shows "${line}"`);
  assert.match(r.stdout, /nsm <command> --help/);
  assert.equal(await nsm('-h'), r);
  assert.equal(await nsm('help'), r);
  const bare = await nsm();
  assert.is(bare.code, 2);
  assert.is(bare.stdout, r.stdout);
});

for (const c of ALL_COMMANDS) {
  s(`nsm ${c.name} --help: usage, every flag with its value, choices, default and environment variable; exit code 0`, async () => {
    const r = await nsm(...c.name.split(' '), '--help');
    assert.is(r.code, 0, r.stderr);
    assert.is(r.stderr, '');
    assert.ok(r.stdout.startsWith(`Usage:\n  nsm ${c.name}`), r.stdout.slice(0, 200));
    assert.ok(c.description.trim().length > 0 && r.stdout.includes(c.description.trim()), 'the description');
    // Its own flags, then the common options it reads (one it declares again shows its own help).
    const shown: [string, Flag][] = [...Object.entries(c.flags as Record<string, Flag>), ...c.common.filter((n) => !(n in c.flags)).map((n): [string, Flag] => [n, common[n]]), ['help', common.help]];
    for (const [name, f] of shown) {
      const label = `--${name}${f.value ? ` ${f.value}` : ''}${f.multiple ? '...' : ''}`;
      assert.match(r.stdout, new RegExp(`^  (-\\w, )?${escape(label)}( |$)`, 'm'), `--${name} with its value name`);
      if (f.choices) assert.ok(r.stdout.includes(`choices: ${f.choices.join(', ')}`), `--${name}: its choices`);
      if (f.defaultText) assert.ok(r.stdout.includes(`default: ${f.defaultText}`), `--${name}: its default`);
      if (f.env) assert.match(r.stdout, new RegExp(`^  ${f.env} +the default of --${name}$`, 'm'), `--${name}: its environment variable`);
    }
    // The same through `nsm help`, and with the global options before the command.
    assert.equal(await nsm('help', ...c.name.split(' ')), r);
    assert.equal(await nsm('--server', 'nats://127.0.0.1:1', '--json', ...c.name.split(' '), '--help'), r);
  });

  s(`nsm ${c.name} with an unknown option: one line on stderr, non-zero exit`, async () => {
    const r = await nsm(...c.name.split(' '), '--no-such-option');
    assert.is(r.code, 1);
    assert.is(r.stdout, '');
    assert.is(r.stderr, `nsm ${c.name.split(' ')[0]}: unknown option '--no-such-option'; see nsm ${c.name} --help\n`);
  });
}

s('the environment variables behind the defaults are all in the help', async () => {
  const all = (await Promise.all(ALL_COMMANDS.map((c) => nsm(...c.name.split(' '), '--help')))).map((r) => r.stdout).join('\n');
  for (const v of ['NSM_NATS_URL', 'NSM_DOMAIN', 'NSM_NODE', 'NSM_CREDS', 'NSM_TLS_CA', 'NSM_ACTOR', 'NSM_STORE', 'NSM_ESDB_URL', 'NSM_IDENTITIES', 'NSM_LOG_LEVEL']) {
    assert.ok(all.includes(v), v);
  }
});

s('an unknown command is one line and exit code 2; a missing value is one line and exit code 1', async () => {
  for (const argv of [['frobnicate'], ['--json', 'frobnicate'], ['help', 'frobnicate']]) {
    const r = await nsm(...argv);
    assert.is(r.code, 2);
    assert.is(r.stdout, '');
    assert.is(r.stderr, 'nsm: unknown command "frobnicate"; see nsm --help\n');
  }
  const missing = await nsm('ls', 'services', '--server');
  assert.is(missing.code, 1);
  assert.match(missing.stderr, /^nsm ls: [^\n]*--server[^\n]*; see nsm ls --help\n$/);
  const noId = await nsm('history');
  assert.equal([noId.code, noId.stderr], [1, 'nsm history: missing ID; see nsm history --help\n']);
});

s('the scanner finds the command behind global options, whichever take a value', () => {
  const at = (...argv: string[]) => {
    const f = locate(argv, COMMANDS);
    return f.kind === 'command' ? [f.path.join(' '), ...f.args] : [f.kind];
  };
  assert.equal(at('--server', 'nats://h:4222', 'ls', 'nodes'), ['ls', '--server', 'nats://h:4222', 'nodes']);
  assert.equal(at('--json', 'status'), ['status', '--json']);
  assert.equal(at('--server=nats://h:4222', '--json', 'ls', 'nodes'), ['ls', '--server=nats://h:4222', '--json', 'nodes']);
  assert.equal(at('--insecure', 'up', '--domain', 'a'), ['up', '--insecure', '--domain', 'a']);
  assert.equal(at('--domain', 'ls', 'ls', 'services'), ['ls', '--domain', 'ls', 'services'], 'a value is never the command');
  // A subcommand with options of its own, with options before its verb too.
  assert.equal(at('endpoint', 'run', 'icmp-responder', '--name', 'e'), ['endpoint run', 'icmp-responder', '--name', 'e']);
  assert.equal(at('endpoint', '--name', 'run', 'run', 'icmp-responder'), ['endpoint run', '--name', 'run', 'icmp-responder']);
  assert.equal(at('endpoint', 'register', 'run'), ['endpoint', 'register', 'run'], 'an endpoint named run');
  assert.equal(at('--json'), ['none']);
  assert.equal(at('frobnicate'), ['unknown']);
});

s.run();
