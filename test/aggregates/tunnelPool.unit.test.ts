import * as assert from 'uvu/assert';
import * as E from 'fp-ts/lib/Either.js';
import { setIn } from '../../aggregates/buckets.ts';
import { parseTunnelRange, rangesOverlap, TUNNEL_IDS, tunnelPool, type TunnelPoolEvent, type TunnelPoolState } from '../../aggregates/tunnelPool.ts';
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
  // Every id in use, built with the buckets' own helpers: folding 20,000 TunnelAllocated events
  // one at a time through immer takes seconds (each copies a bucket), which a unit test should not.
  const used = {};
  const byConnection = {};
  for (let i = 0; i < TUNNEL_IDS; i++) {
    setIn<string>(used, i, `c${i}`);
    setIn<number>(byConnection, `c${i}`, i);
  }
  const state: TunnelPoolState = { used, byConnection, cursor: TUNNEL_IDS };
  const r = tunnelPool.decide({ type: 'AllocateTunnel', connectionId: 'new' }, state);
  assert.ok(r._tag === 'Left' && r.left.code === 'pool-exhausted' && r.left.message.includes(`${TUNNEL_IDS}`));
});

s('a domain range: ids come from it only, wrapping inside it', () => {
  const range = { from: 1000, to: 1002 };
  const scenario = given(tunnelPool, [{ type: 'TunnelAllocated', connectionId: 'local', id: 0 }])
    .when({ type: 'AllocateTunnel', connectionId: 'a', range })
    .thenEvents([{ type: 'TunnelAllocated', connectionId: 'a', id: 1000 }])
    .when({ type: 'AllocateTunnel', connectionId: 'b', range })
    .thenEvents([{ type: 'TunnelAllocated', connectionId: 'b', id: 1001 }])
    .when({ type: 'AllocateTunnel', connectionId: 'c', range })
    .thenEvents([{ type: 'TunnelAllocated', connectionId: 'c', id: 1002 }]);
  const r = tunnelPool.decide({ type: 'AllocateTunnel', connectionId: 'd', range }, scenario.state);
  assert.ok(E.isLeft(r) && r.left.code === 'pool-exhausted' && r.left.message.includes('1000-1002'), JSON.stringify(r));
  scenario
    .when({ type: 'ReleaseTunnel', connectionId: 'a' })
    .thenEvents([{ type: 'TunnelReleased', connectionId: 'a', id: 1000 }])
    .when({ type: 'AllocateTunnel', connectionId: 'd', range })
    .thenEvents([{ type: 'TunnelAllocated', connectionId: 'd', id: 1000 }]);
});

s('tunnel id ranges: parsed with a clear error; overlap check', () => {
  assert.equal(parseTunnelRange('1000-1999'), E.right({ from: 1000, to: 1999 }));
  assert.ok(E.isLeft(parseTunnelRange('2000-1000')));
  assert.ok(E.isLeft(parseTunnelRange('0-20000')), 'the last id is 19999');
  assert.ok(E.isLeft(parseTunnelRange('a-b')));
  assert.ok(rangesOverlap({ from: 0, to: 10 }, { from: 10, to: 20 }));
  assert.not.ok(rangesOverlap({ from: 0, to: 9 }, { from: 10, to: 20 }));
});
s.run();
