import * as assert from 'uvu/assert';
import { TUNNEL_IDS, tunnelPool, type TunnelPoolEvent } from '../../aggregates/tunnelPool.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const s = suite('tunnel pool');

s('allocates the first free id, then the next one', () => {
  given(tunnelPool)
    .when({ type: 'AllocateTunnel', connectionId: 'a' })
    .thenEvents([{ type: 'TunnelAllocated', connectionId: 'a', id: 0 }])
    .when({ type: 'AllocateTunnel', connectionId: 'b' })
    .thenEvents([{ type: 'TunnelAllocated', connectionId: 'b', id: 1 }]);
});

s('allocating again for the same connection is a no-op (a retried step)', () => {
  given(tunnelPool, [{ type: 'TunnelAllocated', connectionId: 'a', id: 0 }]).when({ type: 'AllocateTunnel', connectionId: 'a' }).thenEvents([]);
});

s('a released id is not reused until the range wraps', () => {
  const history: TunnelPoolEvent[] = [
    { type: 'TunnelAllocated', connectionId: 'a', id: 0 },
    { type: 'TunnelAllocated', connectionId: 'b', id: 1 },
    { type: 'TunnelReleased', connectionId: 'a', id: 0 },
  ];
  given(tunnelPool, history).when({ type: 'AllocateTunnel', connectionId: 'c' }).thenEvents([{ type: 'TunnelAllocated', connectionId: 'c', id: 2 }]);
});

s('after the last id the search wraps to the lowest free one', () => {
  const history: TunnelPoolEvent[] = [
    { type: 'TunnelAllocated', connectionId: 'a', id: 0 },
    { type: 'TunnelAllocated', connectionId: 'z', id: TUNNEL_IDS - 1 },
  ];
  given(tunnelPool, history).when({ type: 'AllocateTunnel', connectionId: 'b' }).thenEvents([{ type: 'TunnelAllocated', connectionId: 'b', id: 1 }]);
});

s('release frees the id; releasing what is not held is a no-op', () => {
  const scenario = given(tunnelPool, [{ type: 'TunnelAllocated', connectionId: 'a', id: 5 }])
    .when({ type: 'ReleaseTunnel', connectionId: 'a' })
    .thenEvents([{ type: 'TunnelReleased', connectionId: 'a', id: 5 }]);
  assert.equal(scenario.state.used, {});
  scenario.when({ type: 'ReleaseTunnel', connectionId: 'a' }).thenEvents([]);
});

s('an exhausted range is refused with the reason', () => {
  const full = Array.from({ length: TUNNEL_IDS }, (_, i): TunnelPoolEvent => ({ type: 'TunnelAllocated', connectionId: `c${i}`, id: i }));
  const state = full.reduce(tunnelPool.evolve, tunnelPool.initialState);
  const r = tunnelPool.decide({ type: 'AllocateTunnel', connectionId: 'new' }, state);
  assert.ok(r._tag === 'Left' && r.left.code === 'pool-exhausted' && r.left.message.includes(`${TUNNEL_IDS}`));
});
s.run();
