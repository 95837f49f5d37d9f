// Three clusters and a floating registry, each its own NATS JetStream domain on loopback, the
// registry the hub of the leafnodes: an endpoint in cluster c registers as icmp@floating; a
// workload in a and one in b ask for icmp@floating, the registry names c, and both ping the
// endpoint in c. Tunnel ids of both connections come from c's range, distinct on c's node.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { eventually } from '../lib/eventually.ts';
import { startFederationLab, type FederationLab } from '../lib/federationLab.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { addressOf, type ConnectionView, stopLabAndCheck } from '../lib/netns.ts';

const s = suite<{ lab?: FederationLab }>('e2e federation: three clusters and a floating registry', {});

s.before(async (ctx) => {
  ctx.lab = await startFederationLab({
    domains: [
      { name: 'floating', registryOnly: true, hub: true },
      { name: 'a', nodes: ['a1'], tunnelIds: { from: 0, to: 999 } },
      { name: 'b', nodes: ['b1'], tunnelIds: { from: 1000, to: 1999 } },
      { name: 'c', nodes: ['c1'], tunnelIds: { from: 2000, to: 2999 } },
    ],
    federation: { peerTimeoutMs: 3000, heartbeatMs: 500 },
  });
});
s.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

s('clients in a and b reach the endpoint of c through icmp@floating', async (ctx) => {
  const lab = ctx.lab!;
  for (const d of ['floating', 'c']) {
    const r = await lab.nsm(d, ['service', 'register', 'icmp']);
    assert.is(r.code, 0, r.stderr);
  }
  await lab.startEndpoint({ domain: 'c', name: 'ep-c', service: 'icmp@floating', node: 'c1', role: 'epc', prefix: '10.90.0.0/24' });
  const inRegistry = await eventually('ep-c in the floating registry, naming its home domain', async () => {
    const r = await lab.nsm('floating', ['ls', 'endpoints', '--json']);
    const rows = r.code === 0 ? (JSON.parse(r.stdout) as { name: string; domain?: string; node: string }[]) : [];
    return rows.find((e) => e.name === 'ep-c');
  });
  assert.equal([inRegistry.domain, inRegistry.node], ['c', 'c1@c']);

  const tunnels: number[] = [];
  for (const [domain, node] of [['a', 'a1'], ['b', 'b1']] as const) {
    const role = `client-${domain}`;
    await lab.addNamespace(role);
    const id = lab.connectionId(domain);
    const r = await lab.nsm(domain, ['connect', 'icmp@floating', '--node', node, '--netns', lab.ns(role), '--interface', 'nsm-f', '--mechanism', 'wireguard', '--id', id, '--wait', '--json']);
    assert.is(r.code, 0, `${domain}: ${r.stderr}${r.stdout}`);
    const view = JSON.parse(r.stdout) as ConnectionView & { networkServiceEndpointName: string };
    assert.is(view.networkServiceEndpointName, 'ep-c@c', `${domain} was sent to c by the registry`);
    const dst = addressOf(view.context!.ipContext.dstIpAddrs[0]!);
    const ping = await lab.ping(role, dst);
    assert.is(ping.code, 0, `ping from ${domain} to c's endpoint ${dst}: ${ping.stdout}${ping.stderr}`);
    const desired = must(await (await lab.client(domain)).query<{ sides: { connectionId: string; tunnel?: { id: number } }[] }>('node-desired', { node }));
    tunnels.push(desired.sides.find((x) => x.connectionId === id)!.tunnel!.id);
    // c, the endpoint's domain, is established only once the client domain's report of its side
    // has crossed over, which that domain sends after its own ConnectionEstablished.
    type Hist = { events: { domain: string; event: { type: string } }[] };
    const allDomains = async (): Promise<Hist> => {
      const h = await lab.nsm(domain, ['history', id, '--all-domains', '--json']);
      assert.is(h.code, 0, h.stderr);
      return JSON.parse(h.stdout) as Hist;
    };
    const hist = await eventually(`${id} established in c's history`, async () => {
      const x = await allDomains();
      return x.events.some((e) => e.domain === 'c' && e.event.type === 'ConnectionEstablished') ? x : undefined;
    }, { describe: async () => (await allDomains()).events.map((e) => `${e.domain}:${e.event.type}`) });
    // The registry's log holds the redirect under the same connection id.
    assert.ok(hist.events.some((e) => e.domain === 'floating' && e.event.type === 'ConnectionRedirected'), `the redirect is in floating's history: ${JSON.stringify(hist.events.map((e) => `${e.domain}:${e.event.type}`))}`);
    assert.ok(hist.events.some((e) => e.domain === 'c' && e.event.type === 'ConnectionEstablished'));
  }
  assert.ok(tunnels.every((t) => t >= 2000 && t <= 2999), `tunnel ids from c's range: ${tunnels}`);
  assert.not.equal(tunnels[0], tunnels[1], 'two tunnels on c1, two ids');
  const inC = must(await (await lab.client('c')).query<{ clientNode: string; state: string }[]>('connections'));
  assert.equal(inC.map((x) => x.clientNode).sort(), ['a1@a', 'b1@b']);
  for (const d of ['a', 'b']) {
    const r = await lab.nsm(d, ['close', lab.connectionId(d)]);
    assert.is(r.code, 0, r.stderr);
  }
  await eventually("c's halves closed", async () => {
    const r = await (await lab.client('c')).query<unknown[]>('connections');
    return E.isRight(r) && r.right.length === 0;
  });
});

s.run();
