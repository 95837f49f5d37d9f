// The Linux implementation of the Dataplane port, driven directly (no control plane) on real
// namespaces: program is idempotent, a changed spec is applied in place, a changed mechanism
// swaps the tunnel, remove is idempotent, observe finds sides by their marks, and a name
// collision between two connection ids is refused instead of clobbering the other side.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { createLinuxDataplane, type LinuxDataplane } from '../../node-agent/linux/linuxDataplane.ts';
import { sideNames } from '../../node-agent/linux/names.ts';
import { wireguardGoPids } from '../../node-agent/linux/tunnels.ts';
import type { SideSpec } from '../../src/contracts/nodeCommands.ts';
import { suite } from '../lib/harness.ts';
import { runId } from '../lib/nats.ts';
import { exec, inNs, leftovers, linksIn, meshRoutesIn, requireNetnsLab, rootLinksWith, rulesIn, sh, sweepSync, wireguardLeft } from '../lib/netns.ts';

interface Ctx {
  run: string;
  dir: string;
  n1?: LinuxDataplane;
  n2?: LinuxDataplane;
}
const s = suite<Ctx>('e2e: the Linux dataplane port on namespaces', { run: runId(), dir: '' });
const ns = (ctx: Ctx, role: string) => `${ctx.run}-${role}`;

s.before(async (ctx) => {
  requireNetnsLab();
  ctx.dir = mkdtempSync(join(tmpdir(), 'nsm-dp-'));
  for (const role of ['n1', 'n2', 'ul', 'w', 'e', 'e2']) {
    await sh(['ip', 'netns', 'add', ns(ctx, role)]);
    await sh(['ip', '-n', ns(ctx, role), 'link', 'set', 'lo', 'up']);
  }
  // Two nodes on one link, no bridge needed for two.
  await sh(['ip', '-n', ns(ctx, 'n1'), 'link', 'add', 'ul0', 'type', 'veth', 'peer', 'name', 'ul0', 'netns', ns(ctx, 'n2')]);
  for (const [n, a] of [['n1', '172.31.1.1'], ['n2', '172.31.1.2']] as const) {
    await sh(['ip', '-n', ns(ctx, n), 'addr', 'add', `${a}/24`, 'dev', 'ul0']);
    await sh(['ip', '-n', ns(ctx, n), 'link', 'set', 'ul0', 'up']);
  }
  const make = async (n: string, underlay: string) => {
    const dp = await createLinuxDataplane({ domain: 'dp', nodeNetns: { kind: 'named', name: ns(ctx, n) }, underlayAddress: underlay, stateDir: join(ctx.dir, n), log: createLogger('dataplane', { node: n }) });
    if (E.isLeft(dp)) throw new Error(dp.left);
    return dp.right;
  };
  ctx.n1 = await make('n1', '172.31.1.1');
  ctx.n2 = await make('n2', '172.31.1.2');
});
s.after(async (ctx) => {
  sweepSync(ctx.run);
  rmSync(ctx.dir, { recursive: true, force: true });
  assert.equal(leftovers(ctx.run), []);
});

const ok = async <A>(t: () => Promise<E.Either<{ message: string }, A>>): Promise<A> => {
  const r = await t();
  if (E.isLeft(r)) throw new Error(r.left.message);
  return r.right;
};

const base = (ctx: Ctx, over: Partial<SideSpec> & Pick<SideSpec, 'side'>): SideSpec => ({
  connectionId: `${ctx.run}x1`,
  generation: 1,
  node: 'n1',
  desired: 'present',
  networkService: 'svc',
  payload: 'IP',
  interfaceName: over.side === 'client' ? 'nsm0' : 'nse0',
  mechanism: { local: 'kernel', remote: 'vxlan' },
  addresses: [over.side === 'client' ? '10.50.0.3/32' : '10.50.0.2/32'],
  remoteAddresses: [over.side === 'client' ? '10.50.0.2/32' : '10.50.0.3/32'],
  routes: [over.side === 'client' ? '10.50.0.2/32' : '10.50.0.3/32'],
  mtu: 1450,
  netns: over.side === 'client' ? ns(ctx, 'w') : ns(ctx, 'e'),
  tunnel: { id: 7, vni: 10007, vxlanPort: 4789, wireguardPort: 40007 },
  peer: over.side === 'client'
    ? { node: 'n2', underlayAddress: '172.31.1.2', publicKeys: { wireguard: ctx.n2!.facts.publicKeys.wireguard! }, mechanisms: ['kernel', 'vxlan', 'wireguard'] }
    : { node: 'n1', underlayAddress: '172.31.1.1', publicKeys: { wireguard: ctx.n1!.facts.publicKeys.wireguard! }, mechanisms: ['kernel', 'vxlan', 'wireguard'] },
  ...over,
});

const ping = (ctx: Ctx, to: string) => exec(inNs(ns(ctx, 'w'), ['ping', '-c', '2', '-i', '0.2', '-W', '2', to]));
const ifindexes = async (n: string) => new Map((await linksIn(n)).map((l) => [l.ifname, l.ifindex]));

s('joins facts: underlay, MTU, public key, local prefixes; mechanisms probed', async (ctx) => {
  assert.is(ctx.n1!.facts.underlayAddress, '172.31.1.1');
  assert.is(ctx.n1!.facts.mtu, 1500);
  assert.match(ctx.n1!.facts.publicKeys.wireguard ?? '', /^[A-Za-z0-9+/]{43}=$/);
  assert.equal(ctx.n1!.facts.localPrefixes, ['172.31.1.0/24']);
  assert.equal([...ctx.n1!.capabilities()], ['kernel', 'vxlan', 'wireguard']);
});

s('program is idempotent; a changed spec is applied in place; observe reads the marks back', async (ctx) => {
  const client = base(ctx, { side: 'client' });
  const endpoint = base(ctx, { side: 'endpoint', node: 'n2' });
  await ok(ctx.n1!.program(client));
  await ok(ctx.n2!.program(endpoint));
  assert.is((await ping(ctx, '10.50.0.2')).code, 0, 'ping over the programmed VXLAN connection');

  const before = await ifindexes(ns(ctx, 'n1'));
  await ok(ctx.n1!.program(client));
  assert.equal(await ifindexes(ns(ctx, 'n1')), before, 'programming the same spec again changes nothing');
  assert.equal(await ok(ctx.n1!.observe()), [{ connectionId: client.connectionId, side: 'client', generation: 1 }]);

  // Generation 2 with a smaller MTU and one more route: same interfaces, new values.
  await ok(ctx.n1!.program({ ...client, generation: 2, mtu: 1400, routes: ['10.50.0.2/32', '10.51.0.0/24'] }));
  assert.equal(await ifindexes(ns(ctx, 'n1')), before, 'updated in place, not recreated');
  const wl = (await linksIn(ns(ctx, 'w'))).find((l) => l.ifname === 'nsm0')!;
  assert.is(wl.mtu, 1400);
  assert.is(wl.ifalias, `nsm:dp:${client.connectionId}:client:2`);
  const routes = JSON.parse(await sh(['ip', '-n', ns(ctx, 'w'), '-json', 'route', 'show', 'dev', 'nsm0'])) as { dst: string }[];
  assert.equal(routes.map((r) => r.dst).sort(), ['10.50.0.2', '10.51.0.0/24']);
  assert.equal(await ok(ctx.n1!.observe()), [{ connectionId: client.connectionId, side: 'client', generation: 2 }]);
  assert.is((await ping(ctx, '10.50.0.2')).code, 0);
});

s('an endpoint side moved between two nodes of one host (a heal): the old and the new WireGuard side coexist', async (ctx) => {
  const id = `${ctx.run}mv`;
  const keys = { n1: ctx.n1!.facts.publicKeys.wireguard!, n2: ctx.n2!.facts.publicKeys.wireguard! };
  const wg = { connectionId: id, side: 'endpoint' as const, interfaceName: 'nse-mv', mechanism: { local: 'kernel' as const, remote: 'wireguard' as const }, mtu: 1420, tunnel: { id: 8, vni: 10008, vxlanPort: 4789, wireguardPort: 40008 } };
  const old = base(ctx, { ...wg, node: 'n2', generation: 1 });
  // Generation 2 on n1, programmed before n2's agent has removed generation 1.
  const moved = base(ctx, { ...wg, node: 'n1', generation: 2, netns: ns(ctx, 'e2'), peer: { node: 'n3', underlayAddress: '172.31.1.3', publicKeys: { wireguard: keys.n2 }, mechanisms: ['kernel', 'wireguard'] } });
  await ok(ctx.n2!.program(old));
  await ok(ctx.n1!.program(moved));
  const names = { n1: sideNames(id, 'endpoint', keys.n1).wireguard, n2: sideNames(id, 'endpoint', keys.n2).wireguard };
  assert.is.not(names.n1, names.n2, 'host-wide names differ per node');
  for (const n of ['n1', 'n2'] as const) {
    assert.ok((await linksIn(ns(ctx, n))).some((l) => l.ifname === names[n]), `${n} has its WireGuard side`);
    if (ctx.n1!.wireguardMode === 'userspace') assert.is(wireguardGoPids(names[n]).length, 1, `one wireguard-go for ${names[n]}`);
  }
  await ok(ctx.n2!.remove({ connectionId: id, side: 'endpoint', generation: 1 }));
  assert.ok((await linksIn(ns(ctx, 'n1'))).some((l) => l.ifname === names.n1), "removing n2's old side leaves n1's new one");
  await ok(ctx.n1!.remove({ connectionId: id, side: 'endpoint', generation: 2 }));
  assert.equal(wireguardLeft([names.n1, names.n2]), []);
});

s('a changed mechanism swaps VXLAN for WireGuard; remove is complete and idempotent', async (ctx) => {
  const id = `${ctx.run}x1`;
  const idPart = id.slice(0, 12);
  const wgN1 = sideNames(id, 'client', ctx.n1!.facts.publicKeys.wireguard ?? '').wireguard;
  const wgN2 = sideNames(id, 'endpoint', ctx.n2!.facts.publicKeys.wireguard ?? '').wireguard;
  const wg = { mechanism: { local: 'kernel' as const, remote: 'wireguard' as const }, generation: 3, mtu: 1420 };
  await ok(ctx.n1!.program(base(ctx, { side: 'client', ...wg })));
  await ok(ctx.n2!.program(base(ctx, { side: 'endpoint', node: 'n2', ...wg })));
  const names = (await linksIn(ns(ctx, 'n1'))).map((l) => l.ifname);
  assert.ok(names.includes(wgN1) && !names.includes(`nxc${idPart}`), `n1 has the WireGuard device and no VXLAN device: ${names.join(' ')}`);
  assert.is((await ping(ctx, '10.50.0.2')).code, 0, 'ping over WireGuard');
  assert.is(wireguardGoPids(wgN1).length, ctx.n1!.wireguardMode === 'userspace' ? 1 : 0);

  for (const [dp, side] of [[ctx.n1!, 'client'], [ctx.n2!, 'endpoint']] as const) {
    await ok(dp.remove({ connectionId: id, side, generation: 3 }));
    await ok(dp.remove({ connectionId: id, side, generation: 3 }));
    assert.equal(await ok(dp.observe()), []);
  }
  for (const n of ['n1', 'n2']) {
    assert.equal((await linksIn(ns(ctx, n))).map((l) => l.ifname).sort(), ['lo', 'ul0'], `only the node's own interfaces in ${n}`);
    assert.equal((await rulesIn(ns(ctx, n))).filter((r) => r.iif), [], `no rules left in ${n}`);
    assert.equal(await meshRoutesIn(ns(ctx, n)), [], `no routes left in ${n}`);
  }
  assert.equal((await linksIn(ns(ctx, 'w'))).map((l) => l.ifname), ['lo']);
  assert.equal([...rootLinksWith(idPart), ...wireguardLeft([wgN1, wgN2])], []);
});

s('ETHERNET on one node: both sides on one bridge, one subnet', async (ctx) => {
  const id = `${ctx.run}x2`;
  const l2 = { connectionId: id, payload: 'ETHERNET' as const, mechanism: { local: 'kernel' as const }, tunnel: undefined, peer: undefined, routes: [] };
  const { tunnel: _t, peer: _p, ...client } = base(ctx, { side: 'client', ...l2, addresses: ['10.52.0.3/24'] });
  const { tunnel: _t2, peer: _p2, ...endpoint } = base(ctx, { side: 'endpoint', ...l2, addresses: ['10.52.0.2/24'] });
  await ok(ctx.n1!.program(client));
  await ok(ctx.n1!.program(endpoint));
  const r = await ping(ctx, '10.52.0.2');
  assert.is(r.code, 0, r.stdout + r.stderr);
  const bridge = `nbx${id.slice(0, 12)}`;
  const ports = (await linksIn(ns(ctx, 'n1'))).filter((l) => (l as { master?: string }).master === bridge).map((l) => l.ifname).sort();
  assert.equal(ports, [`nvc${id.slice(0, 12)}`, `nve${id.slice(0, 12)}`]);
  await ok(ctx.n1!.remove({ connectionId: id, side: 'client', generation: 1 }));
  assert.ok((await linksIn(ns(ctx, 'n1'))).some((l) => l.ifname === bridge), 'the bridge stays while the endpoint side is on it');
  await ok(ctx.n1!.remove({ connectionId: id, side: 'endpoint', generation: 1 }));
  assert.not.ok((await linksIn(ns(ctx, 'n1'))).some((l) => l.ifname === bridge), 'the bridge goes with its last port');
});

s('two connection ids with the same first 12 characters: the second is refused, the first untouched', async (ctx) => {
  const twelve = `${ctx.run}x3zzzzzzzzzz`.slice(0, 12);
  const a = base(ctx, { side: 'client', connectionId: `${twelve}a`, mechanism: { local: 'kernel' }, tunnel: undefined, peer: undefined });
  const { tunnel: _t, peer: _p, ...first } = a;
  await ok(ctx.n1!.program(first));
  const clash = { ...first, connectionId: `${twelve}b`, interfaceName: 'nsm9' };
  const r = await ctx.n1!.program(clash)();
  assert.ok(E.isLeft(r), 'refused');
  if (E.isLeft(r)) assert.match(r.left.message, /share their first 12 characters/);
  assert.ok((await linksIn(ns(ctx, 'w'))).some((l) => l.ifname === 'nsm0'), 'the first connection keeps its interface');
  await ok(ctx.n1!.remove({ connectionId: clash.connectionId, side: 'client', generation: 1 }));
  assert.ok((await linksIn(ns(ctx, 'w'))).some((l) => l.ifname === 'nsm0'), "removing the other id leaves the first one's interface alone");
  assert.ok((await rulesIn(ns(ctx, 'n1'))).some((r) => r.iif === `nvc${twelve}`), 'and its rule');
  await ok(ctx.n1!.remove({ connectionId: first.connectionId, side: 'client', generation: 1 }));
  assert.equal((await linksIn(ns(ctx, 'w'))).map((l) => l.ifname), ['lo']);
});

s('a node command naming the host\'s or another process\'s namespace is refused, and nothing is created', async (ctx) => {
  const id = `${ctx.run}x4`;
  const hostBefore = rootLinksWith('');
  for (const netns of ['/proc/1/ns/net', '/proc/self/ns/net', '../../proc/1/ns/net', `/run/netns/../../proc/${process.pid}/ns/net`]) {
    const { tunnel: _t, peer: _p, ...spec } = base(ctx, { side: 'client', connectionId: id, netns, interfaceName: 'nsm-evil', mechanism: { local: 'kernel' } });
    const r = await ctx.n1!.program(spec)();
    assert.ok(E.isLeft(r), `${netns} refused`);
    if (E.isLeft(r)) assert.match(r.left.message, /only named namespaces \(ip netns add NAME\) are accepted/);
    const probed = await ctx.n1!.probe({ ...spec, remoteAddresses: ['10.50.0.2/32'] })();
    assert.ok(E.isLeft(probed), `no probe runs in ${netns}`);
  }
  assert.equal(rootLinksWith(''), hostBefore, 'no interface appeared in the host namespace');
  assert.not.ok((await linksIn(ns(ctx, 'n1'))).some((l) => l.ifname.includes(id.slice(0, 12))), 'nor in the node namespace');
});

s.run();
