// The federation protocol on simulated dataplanes (no packets: see test/federation/*.e2e for
// real ones): domains a (hub), b and floating (a registry only), each with its own nats-server,
// JetStream domain and control plane, joined by leafnodes on loopback.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import { eventually } from '../lib/eventually.ts';
import { startTestFederation, type TestFederation } from '../lib/federation.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { subjectsOverlap } from '../../src/contracts/subjects.ts';

interface Ctx {
  fed?: TestFederation;
  a?: MeshClient;
  b?: MeshClient;
  f?: MeshClient;
}
const s = suite<Ctx>('federation protocol (simulated dataplane)', {});

type View = { state: string; networkServiceEndpointName?: string; endpointNode?: string; clientNode?: string; generation: number; context?: { ipContext: { dstIpAddrs: string[] } }; down?: { domain?: string } };

s.before(async (ctx) => {
  ctx.fed = await startTestFederation({
    domains: [
      { name: 'a', nodes: ['n1'], tunnelIds: { from: 0, to: 999 }, underlay: () => '192.0.2.11', external: () => '198.51.100.11' },
      { name: 'b', nodes: ['n1', 'n2'], tunnelIds: { from: 1000, to: 1999 }, underlay: (n) => (n === 'n1' ? '192.0.2.21' : '192.0.2.22') },
      { name: 'floating', registryOnly: true },
    ],
    healing: { nodeTimeoutMs: 60_000 },
    federation: { peerTimeoutMs: 2000, heartbeatMs: 300 },
  });
  ctx.a = await ctx.fed.domain('a').client();
  ctx.b = await ctx.fed.domain('b').client();
  ctx.f = await ctx.fed.domain('floating').client();
  must(await ctx.b.send('service.register', { name: 'icmp' }));
  must(await ctx.b.send('endpoint.register', { name: 'ep1', node: 'n1', networkServiceNames: ['icmp'], prefix: '10.80.0.0/24' }));
  must(await ctx.f.send('service.register', { name: 'icmp' }));
});
s.after(async (ctx) => {
  await ctx.fed?.stop();
});

const connection = async (c: MeshClient, id: string): Promise<View | undefined> => {
  const r = await c.query<View>('connection', { id });
  return E.isRight(r) ? r.right : undefined;
};

s('svc@b from a: established in both logs, the client side on a, the endpoint side on b; close removes both', async (ctx) => {
  const fed = ctx.fed!;
  must(await ctx.a!.send('connection.request', { connectionId: 'x1', networkService: 'icmp@b', clientNode: 'n1' }));
  const settled = must(await ctx.a!.waitForConnection('x1', 20000));
  assert.is(settled.state, 'established', settled.reason);
  const inA = (await connection(ctx.a!, 'x1'))!;
  const inB = await eventually('b established', async () => ((await connection(ctx.b!, 'x1'))?.state === 'established' ? connection(ctx.b!, 'x1') : undefined));
  assert.is(inA.networkServiceEndpointName, 'ep1@b');
  assert.is(inA.endpointNode, 'n1@b');
  assert.is(inB!.clientNode, 'n1@a');
  const aSide = fed.domain('a').agents.get('n1')!.dataplane.programmed.get('x1/client')!;
  const bSide = fed.domain('b').agents.get('n1')!.dataplane.programmed.get('x1/endpoint')!;
  assert.ok(aSide && bSide, 'each domain programmed its own side');
  assert.is(fed.domain('a').agents.get('n1')!.dataplane.programmed.has('x1/endpoint'), false, "a's node n1 did not take b's side (same node name)");
  assert.equal(aSide.tunnel, bSide.tunnel, 'one tunnel, from the endpoint domain');
  assert.ok(aSide.tunnel!.id >= 1000 && aSide.tunnel!.id <= 1999, `tunnel id from b's range: ${aSide.tunnel!.id}`);
  assert.is(aSide.peer?.underlayAddress, '192.0.2.21', "a's side points at b's node");
  assert.is(bSide.peer?.underlayAddress, '198.51.100.11', "b's side points at a's node's external address (NAT), not its underlay");
  assert.equal(aSide.addresses, bSide.remoteAddresses);

  must(await ctx.a!.send('connection.close', { connectionId: 'x1' }));
  await eventually('closed in both, sides removed', async () => {
    const b = await connection(ctx.b!, 'x1');
    return b?.state === 'closed' && !fed.domain('a').agents.get('n1')!.dataplane.programmed.has('x1/client') && !fed.domain('b').agents.get('n1')!.dataplane.programmed.has('x1/endpoint');
  });
  // b's process manager sends the removal, then releases the pool: b's agent may be done first.
  const addresses = await eventually("b's addresses released", async () => {
    const r = must(await ctx.b!.query<unknown[]>('addresses'));
    return r.length === 0 ? r : undefined;
  }, { describe: async () => must(await ctx.b!.query<unknown[]>('addresses')) });
  assert.equal(addresses, [], "b released the connection's addresses");
});

s('the endpoint in b dies: b moves the connection, a re-plans its side (ConnectionHealed in both)', async (ctx) => {
  must(await ctx.b!.send('endpoint.register', { name: 'ep2', node: 'n2', networkServiceNames: ['icmp'], prefix: '10.81.0.0/24' }));
  must(await ctx.a!.send('connection.request', { connectionId: 'x2', networkService: 'icmp@b', clientNode: 'n1' }));
  assert.is(must(await ctx.a!.waitForConnection('x2', 20000)).state, 'established');
  const before = (await connection(ctx.a!, 'x2'))!;
  const dead = before.networkServiceEndpointName!.replace('@b', '');
  must(await ctx.b!.send('endpoint.unregister', { name: dead }));
  const after = await eventually('a healed onto the other endpoint', async () => {
    const v = await connection(ctx.a!, 'x2');
    return v?.state === 'established' && v.networkServiceEndpointName !== before.networkServiceEndpointName ? v : undefined;
  }, { describe: () => connection(ctx.a!, 'x2') });
  assert.ok(after.generation > before.generation);
  assert.not.equal(after.context!.ipContext.dstIpAddrs, before.context!.ipContext.dstIpAddrs, 'addresses from the new endpoint');
  // b ends its heal when a's report of the client side arrives, which a sends after its own
  // ConnectionHealed: b's may trail a's.
  const healedIn = async () =>
    must(await ctx.a!.query<{ events: { domain: string; event: { type: string } }[] }>('history', { id: 'x2', allDomains: true }))
      .events.filter((r) => r.event.type === 'ConnectionHealed').map((r) => r.domain).sort();
  const healed = await eventually('ConnectionHealed in both domains', async () => {
    const h = await healedIn();
    return h.includes('a') && h.includes('b') ? h : undefined;
  }, { describe: healedIn });
  assert.equal(healed, ['a', 'b'], 'healed in both domains');
  must(await ctx.a!.send('connection.close', { connectionId: 'x2' }));
});

s('svc@floating: the registry redirects to the endpoint\'s home domain', async (ctx) => {
  must(await ctx.b!.send('endpoint.register', { name: 'ep3', node: 'n2', networkServiceNames: ['icmp@floating'], prefix: '10.82.0.0/24' }));
  await eventually('ep3 registered in floating with its home domain', async () => {
    const eps = await ctx.f!.query<{ name: string; domain?: string }[]>('endpoints');
    return E.isRight(eps) && eps.right.some((e) => e.name === 'ep3' && e.domain === 'b');
  });
  must(await ctx.a!.send('connection.request', { connectionId: 'x3', networkService: 'icmp@floating', clientNode: 'n1' }));
  assert.is(must(await ctx.a!.waitForConnection('x3', 20000)).state, 'established');
  assert.is((await connection(ctx.a!, 'x3'))!.networkServiceEndpointName, 'ep3@b', "the floating registry's choice");
  const inFloating = must(await ctx.f!.query<{ state: string }>('connection', { id: 'x3' }));
  assert.is(inFloating.state, 'closed', 'done in the registry: redirected');
  must(await ctx.a!.send('connection.close', { connectionId: 'x3' }));
  must(await ctx.b!.send('endpoint.unregister', { name: 'ep3' }));
  await eventually('ep3 gone from floating', async () => {
    const eps = await ctx.f!.query<{ name: string }[]>('endpoints');
    return E.isRight(eps) && !eps.right.some((e) => e.name === 'ep3');
  });
});

s("the registries of other domains, from this domain's sourced copy", async (ctx) => {
  const rows = await eventually('b\'s endpoints in a\'s copy', async () => {
    const r = await ctx.a!.query<{ name: string; registry: string; domain: string }[]>('remote-endpoints', { domain: 'b' });
    return E.isRight(r) && r.right.some((e) => e.name === 'ep1') ? r.right : undefined;
  });
  assert.ok(rows.every((e) => e.registry === 'b'));
  // Seeing b's endpoints shows b was seen; floating's PeerSeen comes from its own heartbeats.
  const peerList = async () => must(await ctx.a!.query<{ domain: string; status: string }[]>('peers')).map((p) => `${p.domain}:${p.status}`);
  const peers = await eventually('both peers seen', async () => {
    const p = await peerList();
    return p.length === 2 ? p : undefined;
  }, { describe: peerList });
  assert.equal(peers, ['b:reachable', 'floating:reachable']);
});

s('link cut: b\'s server stops; a marks its connection down, keeps working alone; back: nothing lost, re-established', async (ctx) => {
  const fed = ctx.fed!;
  must(await ctx.a!.send('connection.request', { connectionId: 'x4', networkService: 'icmp@b', clientNode: 'n1' }));
  assert.is(must(await ctx.a!.waitForConnection('x4', 20000)).state, 'established');
  const ncA = await fed.domain('a').connect();
  const lastSeq = async (nc: typeof ncA, stream: string) => (await (await nc.jetstreamManager()).streams.info(stream)).state.last_seq;
  const aBefore = await lastSeq(ncA, 'NSM_A_EVENTS');
  const ncB0 = await fed.domain('b').connect();
  const bBefore = await lastSeq(ncB0, 'NSM_B_EVENTS');

  await fed.stopServer('b');
  const down = await eventually('x4 down in a', async () => {
    const v = await connection(ctx.a!, 'x4');
    return v?.state === 'down' ? v : undefined;
  }, { timeoutMs: 15000 });
  assert.is(down.down?.domain, 'b');
  // a keeps working for its own connections meanwhile.
  must(await ctx.a!.send('service.register', { name: 'local' }));
  must(await ctx.a!.send('endpoint.register', { name: 'ep-a', node: 'n1', networkServiceNames: ['local'], prefix: '10.90.0.0/24' }));
  must(await ctx.a!.send('connection.request', { connectionId: 'x5', networkService: 'local', clientNode: 'n1' }));
  assert.is(must(await ctx.a!.waitForConnection('x5', 20000)).state, 'established');

  await fed.startServer('b');
  const back = await eventually('x4 established again', async () => {
    const v = await connection(ctx.a!, 'x4');
    return v?.state === 'established' ? v : undefined;
  }, { timeoutMs: 30000, describe: () => connection(ctx.a!, 'x4') });
  assert.ok(back.generation > 1, 're-planned on a new generation');
  const ncB = await fed.domain('b').connect();
  assert.ok((await lastSeq(ncB, 'NSM_B_EVENTS')) >= bBefore, "b's log is whole");
  assert.ok((await lastSeq(ncA, 'NSM_A_EVENTS')) > aBefore, "a's log grew during the cut");
  // What a registered during the cut reaches b's copy of a's registry once the link is back.
  const bCopy = await eventually("ep-a in b's copy", async () => {
    const r = await ctx.b!.query<{ name: string }[]>('remote-endpoints', { domain: 'a' });
    return E.isRight(r) && r.right.some((e) => e.name === 'ep-a') ? r.right : undefined;
  }, { timeoutMs: 20000 });
  assert.ok(bCopy.length >= 1);
});

s("no stream subject of one domain overlaps another's; the registry copies have no subjects of their own", async (ctx) => {
  const subjectsOf = new Map<string, string[]>();
  for (const d of ['a', 'b', 'floating']) {
    const jsm = await (await ctx.fed!.domain(d).connect()).jetstreamManager();
    const all: string[] = [];
    for await (const si of jsm.streams.list()) {
      const own = si.config.subjects ?? [];
      if (si.config.name.endsWith('_REMOTE')) assert.equal(own, [], `${si.config.name} captures nothing: it only holds sourced copies`);
      const bucket = `nsm_${d.replace(/-/g, '_')}_`;
      for (const subj of own) assert.ok(subj.startsWith(`nsm.${d}.`) || subj.startsWith(`$KV.${bucket}`) || subj.startsWith(`$O.${bucket}`), `${si.config.name} of domain ${d} captures ${subj}`);
      all.push(...own);
    }
    subjectsOf.set(d, all);
  }
  for (const [d1, s1] of subjectsOf) for (const [d2, s2] of subjectsOf) {
    if (d1 >= d2) continue;
    const clash = s1.flatMap((x) => s2.filter((y) => subjectsOverlap(x, y)).map((y) => `${d1}:${x} / ${d2}:${y}`));
    assert.equal(clash, [], `subjects of ${d1} and ${d2} overlap`);
  }
  assert.ok(subjectsOverlap('nsm.a.>', 'nsm.*.evt.x') && !subjectsOverlap('nsm.a.>', 'nsm.b.>') && !subjectsOverlap('nsm.a', 'nsm.a.>'), 'the overlap check itself');
});

s.run();
