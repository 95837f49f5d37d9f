// A workload's namespace is the client's to name, but only among named namespaces: a client
// identity on the default secure mesh cannot aim its side at the host's namespace or another
// process's (the agent, as root, would create interfaces and routes there). Refused with a clear
// line, before anything is recorded; a named namespace still works.
import * as assert from 'uvu/assert';
import { suite } from '../lib/harness.ts';
import { startSecureUp, type SecureUp } from '../lib/secureUp.ts';

const s = suite<{ mesh?: SecureUp }>('workload namespaces on the default secure mesh', {});

s.before(async (ctx) => {
  ctx.mesh = await startSecureUp({ clients: ['alice'] });
  for (const args of [['service', 'register', 'web'], ['endpoint', 'register', 'ep-1', '--service', 'web', '--node', 'n1', '--prefix', '10.60.0.0/24']]) {
    const r = await ctx.mesh.nsm('operator', args);
    assert.is(r.code, 0, r.stderr);
  }
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s('a client cannot name the host\'s or another process\'s namespace; nothing is recorded', async (ctx) => {
  const m = ctx.mesh!;
  for (const netns of ['/proc/1/ns/net', '/proc/self/ns/net', '../../proc/1/ns/net', 'x/y', '/run/netns/../../proc/1/ns/net']) {
    const r = await m.nsm('alice', ['connect', 'web', '--node', 'n1', '--netns', netns, '--wait', '--id', `evil-${netns.length}`]);
    assert.is(r.code, 1, `${netns}: ${r.stdout}`);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, r.stderr);
    assert.match(lines[0]!, new RegExp(`^nsm connect: connection\\.request: body\\.clientNetns: network namespace ${JSON.stringify(netns).replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: only named namespaces \\(ip netns add NAME\\) are accepted`));
  }
  const listed = await m.nsm('operator', ['ls', 'connections', '--all', '--json']);
  assert.is(listed.code, 0, listed.stderr);
  assert.equal(JSON.parse(listed.stdout), [], 'no connection was recorded');
});

s('an operator cannot register an endpoint in such a namespace either', async (ctx) => {
  const r = await ctx.mesh!.nsm('operator', ['endpoint', 'register', 'ep-evil', '--service', 'web', '--node', 'n1', '--netns', '/proc/1/ns/net']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /^nsm endpoint: endpoint\.register: body\.netns: network namespace "\/proc\/1\/ns\/net": only named namespaces/);
  const eps = JSON.parse((await ctx.mesh!.nsm('operator', ['ls', 'endpoints', '--json'])).stdout) as { name: string }[];
  assert.equal(eps.map((e) => e.name), ['ep-1']);
});

s('a named namespace, or its path in /run/netns, is accepted', async (ctx) => {
  for (const [id, netns] of [['good-1', 'ns1'], ['good-2', '/run/netns/ns2']] as const) {
    const r = await ctx.mesh!.nsm('alice', ['connect', 'web', '--node', 'n1', '--netns', netns, '--wait', '--id', id, '--json']);
    assert.is(r.code, 0, r.stderr);
    assert.is((JSON.parse(r.stdout) as { state: string }).state, 'established');
  }
});

s.run();
