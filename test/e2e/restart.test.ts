// The agent of a node is killed (SIGKILL) while its connections are up, and started again:
// - connections keep carrying packets while it is down, and are not rebuilt when it returns
//   (same interfaces, same wireguard-go process);
// - a connection closed while it was down is torn down on its side when it comes back;
// - drift made while it was down (a route deleted in a workload) is repaired and logged.
import * as assert from 'uvu/assert';
import type { MeshClient } from '../../src/client/index.ts';
import { wireguardGoPids } from '../../node-agent/linux/tunnels.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { addressOf, interfacesOf, linksIn, sh, startLab, type ConnectionView, type Lab, stopLabAndCheck } from '../lib/netns.ts';

interface Ctx {
  lab?: Lab;
  c?: MeshClient;
  conns: Map<string, ConnectionView>;
}
const s = suite<Ctx>('e2e: agent killed and restarted with connections up', { conns: new Map() });

const idPart = (id: string) => id.toLowerCase().slice(0, 12);
/** The connection's interfaces on a node: by exact name (WireGuard names also depend on the node). */
const ofConnection = (lab: Lab, node: string, id: string) => {
  const names = interfacesOf(lab.nodes.get(node)!, id);
  return (l: { ifname: string }) => names.includes(l.ifname);
};

s.before(async (ctx) => {
  const lab = (ctx.lab = await startLab({ nodes: ['n1', 'n2'] }));
  const c = (ctx.c = await lab.client());
  must(await c.send('service.register', { name: 'local' }));
  must(await c.send('service.register', { name: 'remote' }));
  await lab.startEndpoint({ name: 'ep-local', service: 'local', node: 'n1', role: 'ep1', prefix: '10.80.0.0/24' });
  await lab.startEndpoint({ name: 'ep-remote', service: 'remote', node: 'n2', role: 'ep2', prefix: '10.81.0.0/24' });
  await lab.addNamespace('client');
  const want: [string, string, 'kernel' | 'wireguard' | 'vxlan'][] = [
    ['c1', 'local', 'kernel'],
    ['c2', 'remote', 'wireguard'],
    ['c3', 'remote', 'vxlan'],
  ];
  for (const [name, service, mechanism] of want) {
    const id = lab.connectionId(name);
    must(await c.send('connection.request', { connectionId: id, networkService: service, clientNode: 'n1', clientNetns: lab.ns('client'), clientInterface: `nsm-${name}`, mechanismPreferences: [mechanism] }));
    const settled = must(await c.waitForConnection(id, 30000));
    assert.is(settled.state, 'established', `${name}: ${settled.reason ?? ''}`);
    ctx.conns.set(name, must(await c.query<ConnectionView>('connection', { id })));
  }
});
s.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

const pingOk = async (ctx: Ctx, name: string) => {
  const conn = ctx.conns.get(name)!;
  const r = await ctx.lab!.ping('client', addressOf(conn.context!.ipContext.dstIpAddrs[0]!), { count: 2 });
  return r.code === 0;
};

s('connections survive the agent, closed ones are removed and drift is repaired when it returns', async (ctx) => {
  const lab = ctx.lab!;
  const c = ctx.c!;
  const n1 = lab.nodes.get('n1')!;
  const id = (name: string) => lab.connectionId(name);
  for (const name of ['c1', 'c2', 'c3']) assert.ok(await pingOk(ctx, name), `${name} pings before the restart`);
  const before = new Map((await linksIn(lab.ns('n1'))).map((l) => [l.ifname, l.ifindex]));
  const wgName = interfacesOf(n1, id('c2')).find((n) => n.startsWith('nwc'))!;
  const wgPids = wireguardGoPids(wgName);
  assert.is(wgPids.length, 1, 'one wireguard-go serves the client side of c2');

  await n1.agent!.kill();
  for (const name of ['c1', 'c2', 'c3']) assert.ok(await pingOk(ctx, name), `${name} still pings while the agent is down`);

  // Closed while the agent of n1 is down: n2 removes its side at once, n1's side stays for now.
  must(await c.send('connection.close', { connectionId: id('c3') }));
  const c3OnN2 = ofConnection(lab, 'n2', id('c3'));
  for (let i = 0; i < 100 && (await linksIn(lab.ns('n2'))).some(c3OnN2); i++) await new Promise((r) => setTimeout(r, 100));
  assert.not.ok((await linksIn(lab.ns('n2'))).some(c3OnN2), 'n2 removed its side of c3');
  assert.ok((await linksIn(lab.ns('n1'))).some((l) => l.ifname === `nxc${idPart(id('c3'))}`), "n1's side of c3 is still there while its agent is down");

  // Drift while the agent is down: c1's route in the workload goes missing.
  const c1Dst = ctx.conns.get('c1')!.context!.ipContext.dstIpAddrs[0]!;
  await sh(['ip', '-n', lab.ns('client'), 'route', 'del', c1Dst, 'dev', 'nsm-c1']);
  assert.not.ok(await pingOk(ctx, 'c1'), 'c1 is broken by the deleted route');

  const agent = await lab.startAgent('n1');
  await agent.waitFor(/"msg":"reconciled"/, 30000);

  const after = await linksIn(lab.ns('n1'));
  assert.not.ok(after.some(ofConnection(lab, 'n1', id('c3'))), "n1's side of c3 was removed on return");
  assert.not.ok((await linksIn(lab.ns('client'))).some((l) => l.ifname === 'nsm-c3'), 'the workload lost the c3 interface');
  assert.ok(await pingOk(ctx, 'c1'), 'c1 pings again: its route was repaired');
  assert.ok(await pingOk(ctx, 'c2'), 'c2 still pings');
  for (const l of after.filter((x) => ofConnection(lab, 'n1', id('c1'))(x) || ofConnection(lab, 'n1', id('c2'))(x))) {
    assert.is(l.ifindex, before.get(l.ifname), `${l.ifname} was kept, not recreated`);
  }
  assert.equal(wireguardGoPids(wgName), wgPids, 'the same wireguard-go process still serves c2');

  // The agent's structured log, line by line (the order of fields within a line is the logger's).
  const lines = agent
    .output()
    .split('\n')
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
  assert.ok(
    lines.some((l) => l.msg === 'reconcile: removing a side that is no longer wanted' && l.domain === 'lab' && l.node === 'n1' && l.connectionId === id('c3') && l.side === 'client'),
    'the agent removed the side of c3 that is no longer wanted',
  );
  assert.ok(
    lines.some((l) => l.msg === 'repaired side' && l.connectionId === id('c1') && l.side === 'client' && JSON.stringify(l).includes(`route ${c1Dst} via nsm-c1`)),
    `the agent repaired c1's route: ${JSON.stringify(lines.filter((l) => l.msg === 'repaired side'))}`,
  );

  // The control plane learnt that n1's side of c3 is gone, and n2's: n2's agent reports its
  // removal after deleting the interfaces, so seeing them gone does not mean the report is in.
  let events: string[] = [];
  for (let i = 0; i < 50; i++) {
    const history = must(await c.query<{ event: { type: string; data: { side?: string } } }[]>('history', { id: id('c3') }));
    events = history.map((h) => `${h.event.type}${h.event.data.side ? `:${h.event.data.side}` : ''}`);
    if (events.includes('DataplaneRemoved:client') && events.includes('DataplaneRemoved:endpoint')) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.ok(events.includes('DataplaneRemoved:client') && events.includes('DataplaneRemoved:endpoint'), `history of c3: ${events.join(', ')}`);
});

s.run();
