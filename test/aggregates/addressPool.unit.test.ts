import * as assert from 'uvu/assert';
import { entriesOf } from '../../aggregates/buckets.ts';
import { allocationOf, addressPool, type AddressPoolCommand, type AddressPoolEvent } from '../../aggregates/addressPool.ts';
import { given, type Scenario } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

type Pool = Scenario<typeof addressPool.initialState, AddressPoolCommand, AddressPoolEvent>;

const allocate = (connectionId: string, prefix = '10.60.0.0/24', excludedPrefixes: readonly string[] = []): AddressPoolCommand => ({
  type: 'AllocateAddresses',
  pool: 'nse-b',
  prefix,
  excludedPrefixes,
  connectionId,
});
const release = (connectionId: string): AddressPoolCommand => ({ type: 'ReleaseAddresses', pool: 'nse-b', connectionId });
const allocated = (connectionId: string, index: number, dst: string, src: string, prefix = '10.60.0.0/24'): AddressPoolEvent => ({
  type: 'AddressesAllocated',
  connectionId,
  prefix,
  index,
  src,
  dst,
});

/** Allocates until the pool refuses; returns every allocation event and the final scenario. */
const drain = (start: Pool, prefix: string, excluded: readonly string[] = [], max = 1000) => {
  let sc = start;
  const got: Extract<AddressPoolEvent, { type: 'AddressesAllocated' }>[] = [];
  for (let i = 0; i < max; i++) {
    const out = sc.when(allocate(`c${i}`, prefix, excluded));
    if (out.result._tag === 'Left') return { got, sc, refusal: out };
    const ev = out.events()[0];
    if (ev?.type !== 'AddressesAllocated') throw new Error(`unexpected ${JSON.stringify(ev)}`);
    got.push(ev);
    sc = out.accepted();
  }
  throw new Error('pool never ran out');
};

const s = suite('addressPool');

s('a large pool: each allocation takes the lowest free pair, found without scanning the used ones', () => {
  let state = addressPool.initialState;
  for (let i = 0; i < 3000; i++) {
    const r = addressPool.decide(allocate(`c${i}`, '10.0.0.0/16'), state);
    if (r._tag === 'Left') throw new Error(r.left.message);
    state = r.right.reduce(addressPool.evolve, state);
  }
  assert.is(state.count, 3000);
  assert.is(state.lowestFree, 3001);
  assert.equal(allocationOf(state, 'c2999'), { index: 3000, src: '10.0.23.113/32', dst: '10.0.23.112/32' });
  // Free one in the middle: it is the next one handed out.
  state = [{ type: 'AddressesReleased', connectionId: 'c500', index: 501 } as const].reduce(addressPool.evolve, state);
  const r = addressPool.decide(allocate('again', '10.0.0.0/16'), state);
  assert.equal(r._tag === 'Right' && (r.right[0] as { index: number }).index, 501);
});

s('the first pair of a /24 skips the network address: dst .2, src .3', () => {
  const next = given(addressPool).when(allocate('c1')).thenEvents([allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32')]);
  assert.is(next.state.prefix, '10.60.0.0/24');
  assert.equal(allocationOf(next.state, 'c1'), { index: 1, src: '10.60.0.3/32', dst: '10.60.0.2/32' });
  assert.equal(entriesOf(next.state.used), [['1', 'c1']]);
  assert.is(next.state.count, 1);
});

s('consecutive allocations get distinct pairs', () => {
  given(addressPool)
    .when(allocate('c1'))
    .thenEvents([allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32')])
    .when(allocate('c2'))
    .thenEvents([allocated('c2', 2, '10.60.0.4/32', '10.60.0.5/32')]);
});

s('a /24 yields 126 distinct pairs, none with the network or broadcast address, then pool-exhausted', () => {
  const { got, refusal } = drain(given(addressPool), '10.60.0.0/24');
  assert.is(got.length, 126);
  const addrs = got.flatMap((e) => [e.src, e.dst]);
  assert.is(new Set(addrs).size, 252);
  for (const bad of ['10.60.0.0/32', '10.60.0.1/32', '10.60.0.254/32', '10.60.0.255/32']) assert.not.ok(addrs.includes(bad), bad);
  assert.is(got[got.length - 1]?.dst, '10.60.0.252/32');
  assert.is(got[got.length - 1]?.src, '10.60.0.253/32');
  refusal.thenRejected('pool-exhausted', 'no free address pair left in 10.60.0.0/24 of endpoint "nse-b" (126 in use)');
});

s('a /29 yields the two inner pairs only', () => {
  const { got, refusal } = drain(given(addressPool), '10.9.0.8/29');
  assert.equal(
    got.map((e) => [e.dst, e.src]),
    [
      ['10.9.0.10/32', '10.9.0.11/32'],
      ['10.9.0.12/32', '10.9.0.13/32'],
    ],
  );
  refusal.thenRejected('pool-exhausted', '(2 in use)');
});

s('a /31 is a point-to-point link: its one pair is both addresses', () => {
  given(addressPool)
    .when(allocate('c1', '10.1.2.4/31'))
    .thenEvents([allocated('c1', 0, '10.1.2.4/32', '10.1.2.5/32', '10.1.2.4/31')])
    .when(allocate('c2', '10.1.2.4/31'))
    .thenRejected('pool-exhausted', 'no free address pair left in 10.1.2.4/31');
});

s('a /32 holds no pair at all', () => {
  given(addressPool).when(allocate('c1', '10.1.2.7/32')).thenRejected('pool-exhausted', 'no free address pair left in 10.1.2.7/32 of endpoint "nse-b" (0 in use)');
});

s('a /30 holds no pair: both pairs contain the network or broadcast address', () => {
  given(addressPool).when(allocate('c1', '10.1.2.0/30')).thenRejected('pool-exhausted', '10.1.2.0/30');
});

s('excluded prefixes are never handed out', () => {
  // .0-.7 excluded: pairs 1..3 are out, the first free pair is .8/.9
  given(addressPool).when(allocate('c1', '10.60.0.0/24', ['10.60.0.0/29'])).thenEvents([allocated('c1', 4, '10.60.0.8/32', '10.60.0.9/32')]);
});

s('a pair is skipped when only its client address is excluded', () => {
  given(addressPool).when(allocate('c1', '10.60.0.0/24', ['10.60.0.3/32'])).thenEvents([allocated('c1', 2, '10.60.0.4/32', '10.60.0.5/32')]);
});

s('exclusions count against the pool: excluding all but one pair leaves exactly one', () => {
  const { got, refusal } = drain(given(addressPool), '10.60.0.0/24', ['10.60.0.0/25', '10.60.0.128/26', '10.60.0.192/27', '10.60.0.224/28', '10.60.0.240/29', '10.60.0.248/30']);
  assert.equal(got.map((e) => e.dst), ['10.60.0.252/32']);
  refusal.thenRejected('pool-exhausted', '(1 in use)');
});

s('an exclusion covering the whole pool exhausts it', () => {
  given(addressPool).when(allocate('c1', '10.60.0.0/24', ['10.0.0.0/8'])).thenRejected('pool-exhausted', '10.60.0.0/24');
});

s('release then re-allocate reuses the freed pair', () => {
  const two = given(addressPool, [allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32'), allocated('c2', 2, '10.60.0.4/32', '10.60.0.5/32')]);
  const afterRelease = two.when(release('c1')).thenEvents([{ type: 'AddressesReleased', connectionId: 'c1', index: 1 }]);
  assert.equal(entriesOf(afterRelease.state.allocations), [['c2', { index: 2, src: '10.60.0.5/32', dst: '10.60.0.4/32' }]]);
  assert.equal(entriesOf(afterRelease.state.used), [['2', 'c2']]);
  assert.is(afterRelease.state.lowestFree, 1, 'the search starts at the freed pair');
  afterRelease.when(allocate('c3')).thenEvents([allocated('c3', 1, '10.60.0.2/32', '10.60.0.3/32')]);
});

s('allocation is idempotent per connection', () => {
  given(addressPool, [allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32')]).when(allocate('c1')).thenEvents([]);
  // even when the pool would otherwise be exhausted, or the exclusions changed
  given(addressPool, [allocated('c1', 0, '10.1.2.4/32', '10.1.2.5/32', '10.1.2.4/31')])
    .when(allocate('c1', '10.1.2.4/31', ['10.1.2.4/31']))
    .thenEvents([]);
});

s('releasing a connection that holds nothing emits nothing; releasing twice emits once', () => {
  given(addressPool).when(release('ghost')).thenEvents([]);
  given(addressPool, [allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32')])
    .when(release('c1'))
    .thenEvents([{ type: 'AddressesReleased', connectionId: 'c1', index: 1 }])
    .when(release('c1'))
    .thenEvents([]);
});

s('a prefix with host bits set is invalid, with the intended prefix suggested', () => {
  given(addressPool).when(allocate('c1', '10.60.0.1/24')).thenRejected('invalid', 'pool "nse-b": "10.60.0.1/24" has host bits set; did you mean 10.60.0.0/24?');
});

s('a malformed or IPv6 prefix is invalid', () => {
  given(addressPool).when(allocate('c1', '10.60.0/24')).thenRejected('invalid', 'is not a CIDR prefix like 10.0.0.0/24');
  given(addressPool).when(allocate('c1', 'fd00::/64')).thenRejected('invalid', 'IPv6 prefix "fd00::/64" is not supported yet');
});

s('a bad excluded prefix is invalid', () => {
  given(addressPool).when(allocate('c1', '10.60.0.0/24', ['10.60.0.0/33'])).thenRejected('invalid', 'excluded prefix: "10.60.0.0/33" is not a CIDR prefix');
});

s('changing the prefix while allocations remain is a conflict; once all are released it is allowed', () => {
  const held = given(addressPool, [allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32')]);
  held.when(allocate('c2', '10.61.0.0/24')).thenRejected('conflict', 'pool "nse-b" still has allocations from 10.60.0.0/24');
  const next = held
    .when(release('c1'))
    .accepted()
    .when(allocate('c2', '10.61.0.0/24'))
    .thenEvents([allocated('c2', 1, '10.61.0.2/32', '10.61.0.3/32', '10.61.0.0/24')]);
  assert.is(next.state.prefix, '10.61.0.0/24');
});

s.run();
