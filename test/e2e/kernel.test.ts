// Same node, kernel mechanism, on real namespaces: `nsm endpoint run icmp-responder` and
// `nsm connect --netns` through the CLI; the client pings the endpoint through the connection;
// `nsm close` leaves nothing behind.
import * as assert from 'uvu/assert';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { addressOf, linksIn, meshRoutesIn, rulesIn, startLab, type ConnectionView, type Lab, stopLabAndCheck } from '../lib/netns.ts';

const s = suite<{ lab?: Lab }>('e2e: same node, kernel mechanism', {});

s.before(async (ctx) => {
  ctx.lab = await startLab({ nodes: ['n1'] });
  const r = await ctx.lab.nsm(['service', 'register', 'icmp']);
  assert.is(r.code, 0, r.stderr);
  await ctx.lab.startEndpoint({ name: 'responder', service: 'icmp', node: 'n1', role: 'ep', prefix: '10.60.0.0/24' });
  await ctx.lab.addNamespace('client');
});
s.after(async (ctx) => {
  await stopLabAndCheck(ctx.lab);
});

s('the client pings the endpoint through a kernel connection', async (ctx) => {
  const lab = ctx.lab!;
  const id = lab.connectionId('k1');
  const r = await lab.nsm(['connect', 'icmp', '--node', 'n1', '--netns', lab.ns('client'), '--interface', 'nsm-1', '--mechanism', 'kernel', '--id', id, '--wait', '--json']);
  assert.is(r.code, 0, `nsm connect failed: ${r.stderr}\n${lab.nodes.get('n1')!.agent!.output().slice(-3000)}`);
  const conn = JSON.parse(r.stdout) as ConnectionView;
  assert.is(conn.state, 'established');
  assert.equal(conn.mechanism, { local: 'kernel' });
  const [clientAddr] = conn.context!.ipContext.srcIpAddrs;
  const [endpointAddr] = conn.context!.ipContext.dstIpAddrs;

  // The workload got the interface it asked for, with its address, the route and the MTU.
  const wl = (await linksIn(lab.ns('client'))).find((l) => l.ifname === 'nsm-1');
  assert.ok(wl, 'nsm-1 exists in the client namespace');
  assert.is(wl!.mtu, conn.context!.mtu);
  const ep = (await linksIn(lab.ns('ep'))).find((l) => l.ifname === conn.interfaces!.endpoint);
  assert.ok(ep, 'the endpoint side has its interface');

  const ping = await lab.ping('client', addressOf(endpointAddr!));
  assert.is(ping.code, 0, `ping ${endpointAddr} from the client failed:\n${ping.stdout}${ping.stderr}`);
  assert.match(ping.stdout, /3 received/);

  // And the other way: the endpoint reaches the client's address.
  const back = await lab.ping('ep', addressOf(clientAddr!));
  assert.is(back.code, 0, back.stdout + back.stderr);

  const closed = await lab.nsm(['close', id]);
  assert.is(closed.code, 0, closed.stderr);
  const c = await lab.client();
  for (let i = 0; i < 100; i++) {
    const row = must(await c.query<ConnectionView & { programmed: string[] }>('connection', { id }));
    const left = [...(await linksIn(lab.ns('client'))), ...(await linksIn(lab.ns('n1')))].filter((l) => l.ifname !== 'lo' && l.ifname !== 'ul0');
    if (row.state === 'closed' && left.length === 0) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal((await linksIn(lab.ns('client'))).map((l) => l.ifname), ['lo'], 'only loopback is left in the client namespace');
  assert.equal((await linksIn(lab.ns('ep'))).map((l) => l.ifname), ['lo'], 'only loopback is left in the endpoint namespace');
  assert.equal((await linksIn(lab.ns('n1'))).map((l) => l.ifname).sort(), ['lo', 'ul0'], 'the node namespace holds only its own interfaces');
  assert.equal((await rulesIn(lab.ns('n1'))).filter((r) => r.iif !== undefined), [], 'no policy rule of the connection is left');
  assert.equal(await meshRoutesIn(lab.ns('n1')), [], 'no route of the connection is left in the node');
  const wlRoutes = JSON.parse((await lab.nsm(['--json', 'ls', 'connections'])).stdout || '[]') as unknown[];
  assert.equal(wlRoutes, [], 'no open connection is listed');
});

s("addresses skip the node's own routes and the configured exclusions", async (ctx) => {
  const lab = ctx.lab!;
  const c = await lab.client();
  must(await c.send('service.register', { name: 'near' }));
  // 172.31.0.0/24 is the node's underlay (reported by its agent); 172.31.1.0/28 is excluded by configuration.
  await lab.startEndpoint({ name: 'near-responder', service: 'near', node: 'n1', role: 'ep-near', prefix: '172.31.0.0/23', exclude: ['172.31.1.0/28'] });
  const id = lab.connectionId('ex');
  must(await c.send('connection.request', { connectionId: id, networkService: 'near', clientNode: 'n1', clientNetns: lab.ns('client'), clientInterface: 'nsm-ex' }));
  const settled = must(await c.waitForConnection(id, 30000));
  assert.is(settled.state, 'established', settled.reason);
  const conn = must(await c.query<ConnectionView>('connection', { id }));
  assert.equal(conn.context!.ipContext.srcIpAddrs, ['172.31.1.17/32']);
  assert.equal(conn.context!.ipContext.dstIpAddrs, ['172.31.1.16/32']);
  const ping = await lab.ping('client', '172.31.1.16');
  assert.is(ping.code, 0, ping.stdout + ping.stderr);
  must(await c.send('connection.close', { connectionId: id }));
  for (let i = 0; i < 50 && (await linksIn(lab.ns('client'))).some((l) => l.ifname === 'nsm-ex'); i++) await new Promise((r) => setTimeout(r, 100));
  assert.not.ok((await linksIn(lab.ns('client'))).some((l) => l.ifname === 'nsm-ex'));
});

s('a workload without a namespace gets a clear failure, and nothing is left half-made', async (ctx) => {
  const lab = ctx.lab!;
  const r = await lab.nsm(['connect', 'icmp', '--node', 'n1', '--id', lab.connectionId('nn'), '--wait']);
  assert.is(r.code, 1);
  assert.match(r.stderr, /failed: dataplane on node n1 \(client side\): the linux dataplane needs the workload's network namespace \(nsm connect --netns NS\)/);
  const missing = await lab.nsm(['connect', 'icmp', '--node', 'n1', '--netns', lab.ns('nowhere'), '--id', lab.connectionId('nw'), '--wait']);
  assert.is(missing.code, 1);
  assert.match(missing.stderr, new RegExp(`network namespace ${lab.ns('nowhere')} does not exist`));
  // Both present commands went out together: the endpoint side may be built after the client
  // side failed, and is then removed. Wait until the control plane has both removals.
  const c = await lab.client();
  for (const id of [lab.connectionId('nn'), lab.connectionId('nw')]) {
    let removed: string[] = [];
    for (let i = 0; i < 100 && removed.length < 2; i++) {
      const history = must(await c.query<{ event: { type: string; data: { side?: string } } }[]>('history', { id }));
      removed = history.filter((h) => h.event.type === 'DataplaneRemoved').map((h) => h.event.data.side ?? '');
      if (removed.length < 2) await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(removed.sort(), ['client', 'endpoint'], `both sides of ${id} reported removed`);
  }
  assert.equal((await linksIn(lab.ns('n1'))).map((l) => l.ifname).sort(), ['lo', 'ul0']);
});

s.run();
