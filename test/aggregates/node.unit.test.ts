import * as assert from 'uvu/assert';
import { node, type NodeEvent, type NodeSpec } from '../../aggregates/node.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const spec: NodeSpec = {
  name: 'node-a',
  mechanisms: ['kernel', 'vxlan', 'wireguard'],
  dataplane: 'linux',
  underlayAddress: '192.168.1.10',
  mtu: 1500,
  publicKeys: { wireguard: 'pubkey-a=' },
};
const joined: NodeEvent = { type: 'NodeJoined', spec };
const join = (s: NodeSpec) => ({ type: 'JoinNode', spec: s }) as const;

const s = suite('node');

s('a new node joins', () => {
  const next = given(node).when(join(spec)).thenEvents([joined]);
  assert.equal(next.state, { joined: true, lost: false, spec });
});

s('joining again with the same spec is a no-op', () => {
  given(node, [joined]).when(join({ ...spec, mechanisms: ['kernel', 'vxlan', 'wireguard'] })).thenEvents([]);
});

s('joining again with a different MTU emits NodeUpdated', () => {
  const changed: NodeSpec = { ...spec, mtu: 9000 };
  const next = given(node, [joined]).when(join(changed)).thenEvents([{ type: 'NodeUpdated', spec: changed }]);
  assert.is(next.state.spec?.mtu, 9000);
});

s('a new public key or mechanism set emits NodeUpdated', () => {
  const changed: NodeSpec = { ...spec, mechanisms: ['kernel', 'vxlan'], publicKeys: {} };
  given(node, [joined]).when(join(changed)).thenEvents([{ type: 'NodeUpdated', spec: changed }]);
});

s('a joined node leaves', () => {
  const next = given(node, [joined]).when({ type: 'LeaveNode', name: 'node-a' }).thenEvents([{ type: 'NodeLeft', name: 'node-a' }]);
  assert.is(next.state.joined, false);
});

s('leaving a node that never joined is not-found', () => {
  given(node).when({ type: 'LeaveNode', name: 'node-z' }).thenRejected('not-found', 'node "node-z" has not joined');
});

s('leaving twice: the second is not-found', () => {
  given(node, [joined, { type: 'NodeLeft', name: 'node-a' }])
    .when({ type: 'LeaveNode', name: 'node-a' })
    .thenRejected('not-found', '"node-a" has not joined');
});

s('a node that left joins again with NodeJoined', () => {
  given(node, [joined, { type: 'NodeLeft', name: 'node-a' }]).when(join(spec)).thenEvents([joined]);
});

s.run();
