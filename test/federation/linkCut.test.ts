// The leafnode link is cut and restored: the leaf cluster's nats-server (b) is stopped and
// started again on the same data. Meanwhile a marks its connection to b's endpoint down, keeps
// serving its own connections, and the datapath itself keeps carrying packets (nothing tears it
// down); when b is back the connection is re-established on a new generation. No event is lost
// on either side: each domain's log before the cut is still there, commit for commit, and what
// each side registered is in the other's sourced copy.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { eventually } from '../lib/eventually.ts';
import { startFederationLab, type FederationLab } from '../lib/federationLab.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { addressOf, type ConnectionView, stopLabAndCheck } from '../lib/netns.ts';

interface Ctx {
  lab?: FederationLab;
  a?: MeshClient;
  b?: MeshClient;
}
const s = suite<Ctx>('e2e federation: the leafnode link is cut and restored', {});

s.before(async (ctx) => {
  const lab = (ctx.lab = await startFederationLab({
    domains: [
      { name: 'a', nodes: ['a1'], tunnelIds: { from: 0, to: 999 } },
      { name: 'b', nodes: ['b1'], tunnelIds: { from: 1000, to: 1999 } },
    ],
    federation: { peerTimeoutMs: 3000, heartbeatMs: 500 },
  }));
  ctx.a = await lab.client('a');
  ctx.b = await lab.client('b');
});
s.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

/** Every commit of a log, in order: what "nothing lost" is checked against. */
const logOf = async (store: EventStore): Promise<string[]> => {
  const out: string[] = [];
  for await (const c of store.readAll(0n)) out.push(`${c.position}:${c.commitId}:${c.hash}`);
  return out;
};

s('cut: a marks the cross-domain connection down and keeps working; restored: re-established, no event lost', async (ctx) => {
  const lab = ctx.lab!;
  must(await ctx.b!.send('service.register', { name: 'icmp' }));
  // A long expiration: the endpoint cannot refresh while its cluster's bus is down.
  await lab.startEndpoint({ domain: 'b', name: 'ep-b', service: 'icmp', node: 'b1', role: 'epb', prefix: '10.80.0.0/24', expiration: '120s' });
  await lab.addNamespace('client');
  const id = lab.connectionId('cut');
  const r = await lab.nsm('a', ['connect', 'icmp@b', '--node', 'a1', '--netns', lab.ns('client'), '--interface', 'nsm-cut', '--mechanism', 'wireguard', '--id', id, '--wait', '--json']);
  assert.is(r.code, 0, r.stderr + r.stdout);
  const before = JSON.parse(r.stdout) as ConnectionView & { generation: number };
  const dst = addressOf(before.context!.ipContext.dstIpAddrs[0]!);
  assert.is((await lab.ping('client', dst)).code, 0, 'ping before the cut');

  const storeA = lab.domains.get('a')!.cp.store;
  const storeB = lab.domains.get('b')!.cp.store;
  const logA = await logOf(storeA);
  const logB = await logOf(storeB);

  await lab.stopServer('b');
  const down = await eventually('the connection is down in a', async () => {
    const v = await ctx.a!.query<ConnectionView & { down?: { domain?: string } }>('connection', { id });
    return E.isRight(v) && v.right.state === 'down' ? v.right : undefined;
  }, { timeoutMs: 20000 });
  assert.is(down.down?.domain, 'b', 'down because domain b is unreachable');
  const peers = must(await ctx.a!.query<{ domain: string; status: string }[]>('peers'));
  assert.equal(peers.map((p) => `${p.domain}:${p.status}`), ['b:lost']);
  // Nothing tore the datapath down: packets still flow while the control planes cannot talk.
  assert.is((await lab.ping('client', dst)).code, 0, 'the datapath still carries packets during the cut');

  // a keeps working for its own connections.
  must(await ctx.a!.send('service.register', { name: 'local' }));
  await lab.startEndpoint({ domain: 'a', name: 'ep-a', service: 'local', node: 'a1', role: 'epa', prefix: '10.70.0.0/24', expiration: '120s' });
  await lab.addNamespace('client2');
  const local = await lab.nsm('a', ['connect', 'local', '--node', 'a1', '--netns', lab.ns('client2'), '--interface', 'nsm-loc', '--id', lab.connectionId('loc'), '--wait', '--json']);
  assert.is(local.code, 0, `a local connection during the cut: ${local.stderr}`);
  const localDst = addressOf((JSON.parse(local.stdout) as ConnectionView).context!.ipContext.dstIpAddrs[0]!);
  assert.is((await lab.ping('client2', localDst)).code, 0, 'a serves its own connections during the cut');

  await lab.startServer('b');
  const after = await eventually('established again in a', async () => {
    const v = await ctx.a!.query<ConnectionView & { generation: number; lastHeal?: { cause: string } }>('connection', { id });
    return E.isRight(v) && v.right.state === 'established' ? v.right : undefined;
  }, { timeoutMs: 60000, describe: () => ctx.a!.query('connection', { id }) });
  assert.ok(after.generation > before.generation, `re-planned on a new generation (${before.generation} -> ${after.generation})`);
  assert.is(after.lastHeal?.cause, 'peer-recovered');
  const ping = await lab.ping('client', dst);
  assert.is(ping.code, 0, `ping after the link is back: ${ping.stdout}${ping.stderr}`);

  // No event lost: each log before the cut is a prefix of the log after it.
  const logA2 = await logOf(storeA);
  const logB2 = await logOf(storeB);
  assert.equal(logA2.slice(0, logA.length), logA, "a's log kept every commit");
  assert.equal(logB2.slice(0, logB.length), logB, "b's log kept every commit");
  assert.ok(logA2.length > logA.length, 'a appended during and after the cut');
  // What a registered during the cut is sourced into b's copy once the link is back, and b's registrations into a's.
  must(await ctx.b!.send('endpoint.register', { name: 'ep-b-new', node: 'b1', networkServiceNames: ['icmp'], prefix: '10.81.0.0/24' }));
  await eventually("ep-a (registered during the cut) in b's copy of a's registry", async () => {
    const x = await ctx.b!.query<{ name: string }[]>('remote-endpoints', { domain: 'a' });
    return E.isRight(x) && x.right.some((e) => e.name === 'ep-a');
  }, { timeoutMs: 30000 });
  await eventually("ep-b-new in a's copy of b's registry", async () => {
    const x = await ctx.a!.query<{ name: string }[]>('remote-endpoints', { domain: 'b' });
    return E.isRight(x) && x.right.some((e) => e.name === 'ep-b-new') && x.right.some((e) => e.name === 'ep-b');
  }, { timeoutMs: 30000 });
  const h = must(await ctx.a!.query<{ events: { domain: string; event: { type: string; data: { cause?: string } } }[] }>('history', { id, allDomains: true }));
  assert.ok(h.events.some((e) => e.domain === 'a' && e.event.type === 'ConnectionDown'), 'the outage is in a\'s history');
  assert.ok(h.events.some((e) => e.domain === 'a' && e.event.type === 'ConnectionHealed' && e.event.data.cause === 'peer-recovered'));
});

s.run();
