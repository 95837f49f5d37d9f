import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { MechanismType, Payload } from '../../aggregates/domain.ts';
import { negotiateMechanism, TUNNEL_OVERHEAD } from '../../aggregates/mechanism.ts';
import { suite } from '../lib/harness.ts';

const ALL: MechanismType[] = ['kernel', 'vxlan', 'wireguard'];
const negotiate = (o: {
  preferences?: MechanismType[];
  payload?: Payload;
  clientNode?: string;
  endpointNode?: string;
  client?: MechanismType[];
  endpoint?: MechanismType[];
}) =>
  negotiateMechanism({
    preferences: o.preferences ?? [],
    payload: o.payload ?? 'IP',
    clientNode: o.clientNode ?? 'node-a',
    clientCapabilities: o.client ?? ALL,
    endpointNode: o.endpointNode ?? 'node-b',
    endpointCapabilities: o.endpoint ?? ALL,
  });
const leftOf = (r: ReturnType<typeof negotiate>): string => {
  if (E.isRight(r)) {
    assert.unreachable(`expected no fit, got ${JSON.stringify(r.right)}`);
    return '';
  }
  return r.left;
};

const s = suite('mechanism');

s('same node: kernel only, no remote mechanism even if tunnels are preferred', () => {
  assert.equal(negotiate({ endpointNode: 'node-a', preferences: ['wireguard', 'vxlan'] }), E.right({ local: 'kernel' }));
});

s('same node works with a node that offers only kernel', () => {
  assert.equal(negotiate({ endpointNode: 'node-a', client: ['kernel'], endpoint: ['kernel'] }), E.right({ local: 'kernel' }));
});

s('cross node without preferences: wireguard first (the default order)', () => {
  assert.equal(negotiate({}), E.right({ local: 'kernel', remote: 'wireguard' }));
});

s('cross node: the first remote preference both nodes support', () => {
  assert.equal(negotiate({ preferences: ['vxlan', 'wireguard'] }), E.right({ local: 'kernel', remote: 'vxlan' }));
  assert.equal(negotiate({ preferences: ['wireguard', 'vxlan'], endpoint: ['kernel', 'vxlan'] }), E.right({ local: 'kernel', remote: 'vxlan' }));
  assert.equal(negotiate({ preferences: ['kernel', 'wireguard'] }), E.right({ local: 'kernel', remote: 'wireguard' }));
});

s('only-local preferences leave the remote choice to the default order', () => {
  assert.equal(negotiate({ preferences: ['kernel'], client: ['kernel', 'vxlan'] }), E.right({ local: 'kernel', remote: 'vxlan' }));
});

s('ETHERNET payload cannot use wireguard: vxlan is chosen even if wireguard is preferred', () => {
  assert.equal(negotiate({ payload: 'ETHERNET', preferences: ['wireguard', 'vxlan'] }), E.right({ local: 'kernel', remote: 'vxlan' }));
});

s('ETHERNET payload between wireguard-only nodes: no fit, and the message says why', () => {
  const msg = leftOf(negotiate({ payload: 'ETHERNET', client: ['kernel', 'wireguard'], endpoint: ['kernel', 'wireguard'] }));
  assert.is(msg, 'no mechanism joins node node-a (kernel, wireguard) and node node-b (kernel, wireguard) for ETHERNET payload; client asked for wireguard, vxlan');
});

s('a preference neither node supports: no fit naming what was asked', () => {
  const msg = leftOf(negotiate({ preferences: ['wireguard'], client: ['kernel', 'vxlan'], endpoint: ['kernel', 'vxlan'] }));
  assert.ok(msg.includes('client asked for wireguard'), msg);
  assert.ok(msg.includes('node node-a (kernel, vxlan)'), msg);
});

s('nodes with no common tunnel: no fit', () => {
  const msg = leftOf(negotiate({ client: ['kernel', 'vxlan'], endpoint: ['kernel', 'wireguard'] }));
  assert.ok(msg.startsWith('no mechanism joins node node-a (kernel, vxlan) and node node-b (kernel, wireguard) for IP payload'), msg);
});

s('no local mechanism on one node: a clear message listing both nodes\' offers', () => {
  // no preferences default to kernel first
  const msg = leftOf(negotiate({ endpointNode: 'node-a', endpoint: [] }));
  assert.is(msg, 'no local mechanism fits: client asked for kernel, node node-a offers kernel, vxlan, wireguard, node node-a offers nothing');
  // preferences naming only tunnels leave the local choice open ("any"), but it must still exist
  const remoteOnly = leftOf(negotiate({ preferences: ['vxlan'], endpoint: ['vxlan'] }));
  assert.is(remoteOnly, 'no local mechanism fits: client asked for any, node node-a offers kernel, vxlan, wireguard, node node-b offers vxlan');
  const asked = leftOf(negotiate({ preferences: ['kernel'], client: ['vxlan'] }));
  assert.ok(asked.startsWith('no local mechanism fits: client asked for kernel, node node-a offers vxlan'), asked);
});

s('tunnel overheads', () => {
  assert.equal(TUNNEL_OVERHEAD, { vxlan: 50, wireguard: 80 });
});

s.run();
