// The Linux dataplane's pure parts: names, marks, MACs, namespace references, the command
// runner's error values, and the node command decoder for ETHERNET interface addresses.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { commandLine, run } from '../../node-agent/linux/exec.ts';
import { aliasOf, allSideInterfaces, belongsTo, bridgeName, IFNAME, MESH_INTERFACE, oursOrUnmarked, parseAlias, sideNames, vxlanMac } from '../../node-agent/linux/names.ts';
import { inNetnsArgv, ipArgv, parseNetns } from '../../node-agent/linux/netns.ts';
import { decodeNodeCommand } from '../../src/contracts/nodeCommands.ts';
import { suite } from '../lib/harness.ts';

const s = suite('linux dataplane: names, marks and command values');

s('interface names fit in 15 bytes, differ per side and role, and are recognised as the mesh', () => {
  const id = '3f2a9c1e-7b44-4c1d-9e0a-55aa66bb77cc';
  const key = 'pPI56D8lBZKL6d/KxBLnT9foadQXz5u57NiUPtOUCnM=';
  const c = sideNames(id, 'client', key);
  const e = sideNames(id, 'endpoint', key);
  const all = [...allSideInterfaces(c), ...allSideInterfaces(e), bridgeName(id)];
  assert.equal(all.filter((n) => !n.startsWith('nw')), ['nvc3f2a9c1e7b44', 'nxc3f2a9c1e7b44', 'nve3f2a9c1e7b44', 'nxe3f2a9c1e7b44', 'nbx3f2a9c1e7b44']);
  assert.match(c.wireguard, /^nwc3f2a9c1[0-9a-f]{5}$/);
  assert.match(e.wireguard, /^nwe3f2a9c1[0-9a-f]{5}$/);
  assert.is(new Set(all).size, all.length);
  for (const n of all) {
    assert.ok(n.length <= 15, n);
    assert.ok(IFNAME.test(n), n);
    assert.ok(MESH_INTERFACE.test(n), n);
  }
  assert.not.ok(MESH_INTERFACE.test('eth0'));
  assert.not.ok(MESH_INTERFACE.test('nsm-1'));
});

s('WireGuard names are host-wide: they differ between nodes, and between ids that share a prefix', () => {
  const id = 't8bffotdheal';
  const [b1, b2] = ['key-of-b1', 'key-of-b2'];
  // A heal moves the endpoint side from b1 to b2 on one host: the old interface may still exist.
  assert.is.not(sideNames(id, 'endpoint', b1).wireguard, sideNames(id, 'endpoint', b2).wireguard);
  assert.is(sideNames(id, 'endpoint', b1).hostVeth, sideNames(id, 'endpoint', b2).hostVeth, 'names inside a node namespace need not differ');
  assert.is(sideNames(id, 'endpoint', b1).wireguard, sideNames(id, 'endpoint', b1).wireguard, 'stable: found again after a restart');
  assert.is.not(sideNames('connection-0001', 'client', b1).wireguard, sideNames('connection-0002', 'client', b1).wireguard);
});

s('marks round-trip and foreign aliases are not taken for ours', () => {
  const m = { domain: 'prod', connectionId: 'abc-123', side: 'endpoint' as const, generation: 7 };
  assert.is(aliasOf(m), 'nsm:prod:abc-123:endpoint:7');
  assert.equal(parseAlias(aliasOf(m)), m);
  for (const bad of [undefined, '', 'uplink to rack 3', 'nsm:prod:abc:middle:1', 'nsm:prod:abc:client:x', 'nsm:prod:abc:client', 'nsm:prod:abc-123:segment']) {
    assert.is(parseAlias(bad), undefined, String(bad));
  }
});

s('which interfaces the agent treats as its own: marked for this side, or not marked at all', () => {
  const owner = { domain: 'prod', connectionId: 'abc-123', side: 'client' as const };
  assert.ok(oursOrUnmarked({ ifalias: aliasOf({ ...owner, generation: 4 }) }, owner), 'marked for this side, any generation');
  assert.ok(oursOrUnmarked({}, owner) && oursOrUnmarked({ ifalias: '' }, owner), 'no alias: created, then a crash before marking');
  for (const other of [aliasOf({ ...owner, side: 'endpoint', generation: 1 }), aliasOf({ ...owner, domain: 'lab', generation: 1 }), aliasOf({ ...owner, connectionId: 'abc-124', generation: 1 }), 'uplink to rack 3', 'nsm:prod:abc-123:segment']) {
    assert.not.ok(oursOrUnmarked({ ifalias: other }, owner), other);
  }
  assert.ok(belongsTo({ ifalias: aliasOf({ ...owner, generation: 9 }) }, owner));
  assert.not.ok(belongsTo({}, owner), 'belongsTo needs the mark');
});

s('VXLAN MACs: locally administered unicast, stable, different per side', () => {
  const a = vxlanMac('conn-1', 'client');
  assert.match(a, /^02(:[0-9a-f]{2}){5}$/);
  assert.is(vxlanMac('conn-1', 'client'), a);
  assert.is.not(vxlanMac('conn-1', 'endpoint'), a);
  assert.is.not(vxlanMac('conn-2', 'client'), a);
});

s('namespace references: names and absolute paths; nothing an argument parser could misread', () => {
  assert.equal(parseNetns('client-1'), E.right({ kind: 'named', name: 'client-1' }));
  assert.equal(parseNetns('/proc/123/ns/net'), E.right({ kind: 'path', path: '/proc/123/ns/net' }));
  for (const bad of ['-n', '..', 'a b', '/proc/../etc', 'x;rm', '']) assert.ok(E.isLeft(parseNetns(bad)), bad);
  assert.equal(ipArgv({ kind: 'named', name: 'w1' }, ['link']), ['ip', '-n', 'w1', 'link']);
  assert.equal(ipArgv({ kind: 'path', path: '/proc/1/ns/net' }, ['link']), ['nsenter', '--net=/proc/1/ns/net', 'ip', 'link']);
  assert.equal(ipArgv({ kind: 'current' }, ['link']), ['ip', 'link']);
  assert.equal(inNetnsArgv({ kind: 'named', name: 'w1' }, ['wg', 'show']), ['nsenter', '--net=/run/netns/w1', 'wg', 'show']);
});

s('a failing command is a value naming the command and what the tool said; stdin never appears', async () => {
  const r = await run(['ls', '/no/such/dir'], { input: 'secret-input' })();
  assert.ok(E.isLeft(r));
  if (E.isLeft(r)) {
    assert.match(r.left.message, /^ls \/no\/such\/dir: .*No such file or directory/);
    assert.not.match(r.left.message, /secret-input/);
  }
  const missing = await run(['no-such-tool-here', 'x'])();
  assert.ok(E.isLeft(missing) && /not installed/.test(missing.left.message));
  assert.is(commandLine(['ip', 'link', 'set', 'dev', 'x', 'alias', 'nsm:a b']), "ip link set dev x alias 'nsm:a b'");
});

s('node commands carry interface addresses with host bits (ETHERNET /24, IPv6 /64) and refuse junk', () => {
  const spec = {
    connectionId: 'c1', generation: 1, side: 'client', node: 'n1', desired: 'present', networkService: 'l2', payload: 'ETHERNET',
    interfaceName: 'nsm-1', mechanism: { local: 'kernel', remote: 'vxlan' }, addresses: ['10.71.0.3/24'], remoteAddresses: ['10.71.0.2/24'], routes: [], mtu: 1450,
  };
  assert.ok(E.isRight(decodeNodeCommand({ id: 'x', spec })));
  // Dual stack: an IPv6 address with its prefix length beside the IPv4 one.
  assert.ok(E.isRight(decodeNodeCommand({ id: 'x', spec: { ...spec, addresses: ['fd00:71::3/64', '10.71.0.3/24'] } })));
  for (const bad of ['10.71.0.3', '10.71.0.3/33', '10.71.0/24', 'fd00:71::g/64', 'fd00:71::3/129', 'fe80::1%eth0/64', '10.71.0.3/24/1']) {
    const r = decodeNodeCommand({ id: 'x', spec: { ...spec, addresses: [bad] } });
    assert.ok(E.isLeft(r), bad);
    if (E.isLeft(r)) assert.is(r.left.path, 'spec.addresses[0]');
  }
});

s.run();
