// Two clusters, each its own NATS JetStream domain with its own control plane and log, joined by
// a leafnode link on loopback; their nodes are namespaces on one underlay. A workload in a
// connects to icmp@b with `nsm connect`, pings the endpoint in b over WireGuard and over VXLAN;
// b's registry is listed from a; the history joins both logs; an endpoint dying in b moves the
// connection, seen from a; `nsm close` removes both sides.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import { eventually } from '../lib/eventually.ts';
import { startFederationLab, type FederationLab } from '../lib/federationLab.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { addressOf, interfacesOf, linksIn, rootLinksWith, rulesIn, wireguardLeft, type ConnectionView, type LabProcess, stopLabAndCheck } from '../lib/netns.ts';

interface Ctx {
  lab?: FederationLab;
  endpoints?: Map<string, LabProcess>;
  a?: MeshClient;
  b?: MeshClient;
}
const s = suite<Ctx>('e2e federation: two clusters', {});

s.before(async (ctx) => {
  const lab = (ctx.lab = await startFederationLab({
    domains: [
      { name: 'a', nodes: ['a1'], tunnelIds: { from: 0, to: 999 } },
      { name: 'b', nodes: ['b1', 'b2'], tunnelIds: { from: 1000, to: 1999 } },
    ],
    federation: { peerTimeoutMs: 3000, heartbeatMs: 500 },
  }));
  ctx.a = await lab.client('a');
  ctx.b = await lab.client('b');
  must(await ctx.b.send('service.register', { name: 'icmp' }));
  ctx.endpoints = new Map([['ep-b1', await lab.startEndpoint({ domain: 'b', name: 'ep-b1', service: 'icmp', node: 'b1', role: 'epb1', prefix: '10.80.0.0/24', expiration: '3s' })]]);
  await lab.addNamespace('client');
});
s.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

const connectFromA = async (lab: FederationLab, id: string, mechanism: string, iface: string): Promise<ConnectionView & { networkServiceEndpointName: string }> => {
  const r = await lab.nsm('a', ['connect', 'icmp@b', '--node', 'a1', '--netns', lab.ns('client'), '--interface', iface, '--mechanism', mechanism, '--id', id, '--wait', '--json']);
  assert.is(r.code, 0, `nsm connect icmp@b: ${r.stderr}${r.stdout}\n--- agent a1:\n${lab.nodes.get('a1')!.agent!.output().slice(-2000)}\n--- agent b1:\n${lab.nodes.get('b1')!.agent!.output().slice(-2000)}`);
  const view = JSON.parse(r.stdout) as ConnectionView & { networkServiceEndpointName: string };
  assert.is(view.state, 'established');
  return view;
};

/** Nothing of the connection on any node or namespace of either cluster. */
const nothingLeft = async (lab: FederationLab, id: string, iface: string) => {
  const idPart = id.toLowerCase().slice(0, 12);
  const names = new Map([...lab.nodes.entries()].map(([n, node]) => [n, interfacesOf(node, id)]));
  const mine = async () => [
    ...(await Promise.all([...names].map(async ([n, ours]) => (await linksIn(lab.ns(n))).filter((l) => ours.includes(l.ifname)).map((l) => `${n}:${l.ifname}`)))).flat(),
    ...(await Promise.all([...names].map(async ([n, ours]) => (await rulesIn(lab.ns(n))).filter((r) => r.iif !== undefined && ours.includes(r.iif)).map((r) => `${n} rule iif ${r.iif}`)))).flat(),
    ...(await linksIn(lab.ns('client'))).filter((l) => l.ifname === iface).map((l) => `client:${l.ifname}`),
    ...rootLinksWith(idPart).map((l) => `interface ${l} in the root namespace`),
    ...wireguardLeft([...names.values()].flat()),
  ];
  let left = await mine();
  for (let i = 0; i < 100 && left.length > 0; i++) {
    await new Promise((r) => setTimeout(r, 100));
    left = await mine();
  }
  assert.equal(left, [], `nothing of connection ${id} is left after close`);
};

s('a client in a pings an endpoint in b over WireGuard and VXLAN; close removes both sides', async (ctx) => {
  const lab = ctx.lab!;
  for (const [mechanism, suffix] of [['wireguard', 'wg'], ['vxlan', 'vx']] as const) {
    const id = lab.connectionId(suffix);
    const iface = `nsm-${suffix}`;
    const view = await connectFromA(lab, id, mechanism, iface);
    assert.equal(view.mechanism, { local: 'kernel', remote: mechanism });
    assert.is(view.networkServiceEndpointName, 'ep-b1@b');
    const dst = addressOf(view.context!.ipContext.dstIpAddrs[0]!);
    const ping = await lab.ping('client', dst);
    assert.is(ping.code, 0, `ping ${dst} from a's workload to b's endpoint over ${mechanism}: ${ping.stdout}${ping.stderr}`);
    // a is established once b's side is programmed and its own is; b only once a's report of
    // its side has crossed over, which a sends after that.
    const inB = await eventually(`${id} established in b`, async () => {
      const r = must(await ctx.b!.query<{ state: string; clientNode: string }>('connection', { id }));
      return r.state === 'established' ? r : undefined;
    }, { describe: () => ctx.b!.query('connection', { id }) });
    assert.equal([inB.state, inB.clientNode], ['established', 'a1@a'], "b's half of the same connection id");

    const closed = await lab.nsm('a', ['close', id]);
    assert.is(closed.code, 0, closed.stderr);
    await eventually(`${id} closed in b`, async () => {
      const r = await ctx.b!.query<{ state: string }>('connection', { id });
      return E.isRight(r) && r.right.state === 'closed';
    });
    await nothingLeft(lab, id, iface);
  }
});

s("b's registry from a (sourced copy) and the connection's history across both domains", async (ctx) => {
  const lab = ctx.lab!;
  const ls = await eventually('ep-b1 in a\'s copy of b\'s registry', async () => {
    const r = await lab.nsm('a', ['ls', 'endpoints', '--domain', 'b', '--json']);
    return r.code === 0 && (JSON.parse(r.stdout) as { name: string }[]).some((e) => e.name === 'ep-b1') ? (JSON.parse(r.stdout) as { name: string; registry: string }[]) : undefined;
  });
  assert.ok(ls.every((e) => e.registry === 'b'));
  const all = await lab.nsm('a', ['ls', 'endpoints', '--all-domains']);
  assert.is(all.code, 0, all.stderr);
  assert.match(all.stdout, /\bb\s+ep-b1\s+icmp\s+b\s+b1\b/);

  const id = lab.connectionId('wg');
  const h = await lab.nsm('a', ['history', id, '--all-domains', '--json']);
  assert.is(h.code, 0, h.stderr);
  const hist = JSON.parse(h.stdout) as { events: { domain: string; event: { type: string } }[]; domains: Record<string, string> };
  assert.equal(hist.domains, { a: 'ok', b: 'ok' });
  const types = (d: string) => hist.events.filter((e) => e.domain === d).map((e) => e.event.type);
  for (const d of ['a', 'b']) for (const t of ['ConnectionRequested', 'PathPlanned', 'ConnectionEstablished', 'ConnectionClosed']) assert.ok(types(d).includes(t), `${t} in ${d}'s history: ${types(d).join(' ')}`);
  assert.ok(types('b').includes('AddressesAllocated'), "the addresses were allocated in b, the endpoint's domain");
});

s('the endpoint in b dies: b moves the connection to another endpoint; from a, ping reaches the new one', async (ctx) => {
  const lab = ctx.lab!;
  ctx.endpoints!.set('ep-b2', await lab.startEndpoint({ domain: 'b', name: 'ep-b2', service: 'icmp', node: 'b2', role: 'epb2', prefix: '10.81.0.0/24', expiration: '3s' }));
  const id = lab.connectionId('heal');
  const before = await connectFromA(lab, id, 'wireguard', 'nsm-heal');
  const victim = before.networkServiceEndpointName.replace('@b', '');
  // SIGKILL: no unregister; its registration lapses (3 s) and b heals the connection.
  await ctx.endpoints!.get(victim)!.kill();
  const after = await eventually('a\'s half re-established on the other endpoint', async () => {
    const v = await ctx.a!.query<ConnectionView & { networkServiceEndpointName: string }>('connection', { id });
    return E.isRight(v) && v.right.state === 'established' && v.right.networkServiceEndpointName !== before.networkServiceEndpointName ? v.right : undefined;
  }, {
    timeoutMs: 30000,
    // Both halves and b's account of the heal (a failed programming names its error there).
    describe: async () => ({
      a: await ctx.a!.query('connection', { id }),
      b: await ctx.b!.query('connection', { id }),
      historyInB: E.getOrElse(() => [] as { event: { type: string; data: Record<string, unknown> } }[])(await ctx.b!.query<{ event: { type: string; data: Record<string, unknown> } }[]>('history', { id }))
        .map((h) => `${h.event.type}${h.event.data.error ? ` (${String(h.event.data.error)})` : ''}${h.event.data.reason ? ` (${String(h.event.data.reason)})` : ''}`),
    }),
  });
  const dst = addressOf(after.context!.ipContext.dstIpAddrs[0]!);
  const ping = await lab.ping('client', dst);
  assert.is(ping.code, 0, `ping the new endpoint ${dst}: ${ping.stdout}${ping.stderr}`);
  // b ends its heal when a's report of the client side arrives, sent after a's own ConnectionHealed.
  type Hist = { events: { domain: string; event: { type: string; data: { cause?: string } } }[] };
  const healedIn = async () => must(await ctx.a!.query<Hist>('history', { id, allDomains: true })).events.filter((e) => e.event.type === 'ConnectionHealed');
  const healed = await eventually('ConnectionHealed in both domains', async () => {
    const h = await healedIn();
    return h.some((e) => e.domain === 'a') && h.some((e) => e.domain === 'b') ? h : undefined;
  }, { describe: async () => (await healedIn()).map((e) => e.domain) });
  assert.equal(healed.map((e) => e.domain).sort(), ['a', 'b'], 'healed in both domains');
  assert.ok(healed.some((e) => e.domain === 'a' && e.event.data.cause === 'remote'), "a's heal names the endpoint domain as its cause");
  must(await ctx.a!.send('connection.close', { connectionId: id }));
  await nothingLeft(lab, id, 'nsm-heal');
});

s.run();
