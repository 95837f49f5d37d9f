// DNS context on real namespaces: an endpoint registered with `--dns-server endpoint --dns-search
// svc.test` (through `nsm endpoint run`) hands its clients its own address of each family as name
// server, and its service adds the search domain cluster.test (`nsm service register
// --dns-server endpoint --dns-search cluster.test`); a small resolver in the endpoint's namespace
// answers. The client's namespace gets /etc/netns/<ns>/resolv.conf while connected, `getent
// ahosts` there resolves short names through both search domains over the connection, and close
// removes the file. A resolv.conf the
// user wrote is neither overwritten nor deleted: the connection fails saying so.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { suite } from '../lib/harness.ts';
import { closeAndCheck, connectCli } from '../lib/dualStack.ts';
import { exec, inNs, startLab, startProcess, stopLabAndCheck, type Lab, type LabProcess } from '../lib/netns.ts';

const RESPONDER = join(dirname(fileURLToPath(import.meta.url)), '..', 'lib', 'dnsResponder.mjs');

const s = suite<{ lab?: Lab; responder?: LabProcess; hadEtcNetns?: boolean }>('e2e: DNS context for the client namespace', {});

s.before(async (ctx) => {
  // The agent creates /etc/netns for the first resolv.conf; the test removes it again if it did.
  ctx.hadEtcNetns = existsSync('/etc/netns');
  const lab = (ctx.lab = await startLab({ nodes: ['n1'] }));
  for (const args of [['service', 'register', 'named', '--dns-server', 'endpoint', '--dns-search', 'cluster.test']]) {
    const r = await lab.nsm(args);
    assert.is(r.code, 0, r.stderr);
  }
  await lab.startEndpoint({ name: 'ep-dns', service: 'named', node: 'n1', role: 'ep', prefixes: ['fd00:15::/64', '10.66.0.0/24'], args: ['--dns-server', 'endpoint', '--dns-search', 'svc.test'] });
  const responder = (ctx.responder = startProcess('dns-responder', [...inNs(lab.ns('ep'), [process.execPath, RESPONDER, 'web.svc.test=10.66.0.99', 'web.svc.test=fd00:15::99', 'db.cluster.test=10.66.0.98'])], lab.dir));
  await responder.waitFor(/^listening$/, 10000);
  await lab.addNamespace('client');
  await lab.addNamespace('client2');
});
s.after(async (ctx) => {
  await ctx.responder?.stop(2000);
  await stopLabAndCheck(ctx.lab);
  if (ctx.hadEtcNetns === false && existsSync('/etc/netns') && readdirSync('/etc/netns').length === 0) rmdirSync('/etc/netns');
});

const resolvConf = (lab: Lab, role: string) => join('/etc/netns', lab.ns(role), 'resolv.conf');

s('the client namespace resolves names through the endpoint while connected; close removes its resolv.conf', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('d1');
  const conn = await connectCli(lab, id, 'named', 'kernel', 'nsm-d1');
  const dns = (conn.context as unknown as { dnsContext: unknown }).dnsContext;
  // The endpoint's config first, then the service's.
  assert.equal(dns, {
    configs: [
      { dnsServerIps: ['fd00:15::2', '10.66.0.2'], searchDomains: ['svc.test'] },
      { dnsServerIps: ['fd00:15::2', '10.66.0.2'], searchDomains: ['cluster.test'] },
    ],
  });
  const file = readFileSync(resolvConf(lab, 'client'), 'utf8');
  assert.equal(file.split('\n').filter((l) => !l.startsWith('#') && l !== ''), ['nameserver fd00:15::2', 'nameserver 10.66.0.2', 'search svc.test cluster.test']);
  // The short name goes through the search domain to the endpoint's resolver, over the connection.
  const r = await exec(inNs(lab.ns('client'), ['getent', 'ahosts', 'web']));
  assert.is(r.code, 0, `getent ahosts web in the client namespace: ${r.stderr}`);
  const addrs = [...new Set(r.stdout.trim().split('\n').map((l) => l.split(/\s+/)[0]))].sort();
  assert.equal(addrs, ['10.66.0.99', 'fd00:15::99']);
  // A name only the service's search domain completes (svc.test is tried first and is NXDOMAIN).
  const db = await exec(inNs(lab.ns('client'), ['getent', 'ahosts', 'db']));
  assert.is(db.code, 0, `getent ahosts db in the client namespace: ${db.stderr}`);
  assert.match(db.stdout, /^10\.66\.0\.98\s/m);
  await closeAndCheck(lab, id, 'nsm-d1', 'ep');
  assert.not.ok(existsSync(resolvConf(lab, 'client')), 'resolv.conf removed on close');
  assert.not.ok(existsSync(dirname(resolvConf(lab, 'client'))), '/etc/netns/<ns> removed with it');
  const after = await exec(inNs(lab.ns('client'), ['getent', 'ahosts', 'web.svc.test']));
  assert.is.not(after.code, 0, `after close the name no longer resolves: ${after.stdout}`);
});

s("a resolv.conf the user wrote is left alone: connecting with the endpoint's DNS fails saying so", async (ctx) => {
  const lab = ctx.lab!;
  const file = resolvConf(lab, 'client2');
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, 'nameserver 192.0.2.53\n');
  const id = lab.connectionId('d2');
  const r = await lab.nsm(['connect', 'named', '--node', 'n1', '--netns', lab.ns('client2'), '--interface', 'nsm-d2', '--mechanism', 'kernel', '--id', id, '--wait']);
  assert.is(r.code, 1, r.stdout);
  assert.match(r.stderr, new RegExp(`connection ${id} failed: .*${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} exists and was not written by this mesh`), r.stderr);
  assert.is(readFileSync(file, 'utf8'), 'nameserver 192.0.2.53\n', 'the file is unchanged');
});

s.run();
