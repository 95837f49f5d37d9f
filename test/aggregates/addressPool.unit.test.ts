import * as assert from 'uvu/assert';
import { entriesOf } from '../../aggregates/buckets.ts';
import { allocationOf, addressPool, type AddressPoolCommand, type AddressPoolEvent, type AllocatedPair } from '../../aggregates/addressPool.ts';
import { given, type Scenario } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

type Pool = Scenario<typeof addressPool.initialState, AddressPoolCommand, AddressPoolEvent>;

const allocate = (connectionId: string, prefix: string | readonly string[] = '10.60.0.0/24', excludedPrefixes: readonly string[] = []): AddressPoolCommand => ({
  type: 'AllocateAddresses',
  pool: 'nse-b',
  prefixes: typeof prefix === 'string' ? [prefix] : prefix,
  excludedPrefixes,
  connectionId,
});
const release = (connectionId: string): AddressPoolCommand => ({ type: 'ReleaseAddresses', pool: 'nse-b', connectionId });
const released = (connectionId: string): AddressPoolEvent => ({ type: 'AddressesReleased', connectionId });
/** One IPv4 pair (the index is implied by the addresses: dst = base + 2 index). */
const allocated = (connectionId: string, _index: number, dst: string, src: string, prefix = '10.60.0.0/24'): AddressPoolEvent => ({
  type: 'AddressesAllocated',
  connectionId,
  pairs: [{ prefix, src, dst }],
});
const allocatedPairs = (connectionId: string, pairs: readonly AllocatedPair[]): AddressPoolEvent => ({ type: 'AddressesAllocated', connectionId, pairs });
const pairOf = (e: AddressPoolEvent, k = 0): AllocatedPair => {
  if (e.type !== 'AddressesAllocated') throw new Error(`unexpected ${JSON.stringify(e)}`);
  return e.pairs[k]!;
};

/** Allocates until the pool refuses; returns every first pair allocated and the final scenario. */
const drain = (start: Pool, prefix: string, excluded: readonly string[] = [], max = 1000) => {
  let sc = start;
  const got: AllocatedPair[] = [];
  for (let i = 0; i < max; i++) {
    const out = sc.when(allocate(`c${i}`, prefix, excluded));
    if (out.result._tag === 'Left') return { got, sc, refusal: out };
    const ev = out.events()[0];
    if (ev?.type !== 'AddressesAllocated') throw new Error(`unexpected ${JSON.stringify(ev)}`);
    got.push(pairOf(ev));
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
  assert.is(state.families.IPv4?.lowestFree, 3001n);
  assert.equal(allocationOf(state, 'c2999'), { pairs: [{ prefix: '10.0.0.0/16', src: '10.0.23.113/32', dst: '10.0.23.112/32', family: 'IPv4', index: 3000n }] });
  // Free one in the middle: it is the next one handed out.
  state = [released('c500')].reduce(addressPool.evolve, state);
  const r = addressPool.decide(allocate('again', '10.0.0.0/16'), state);
  assert.equal(r._tag === 'Right' && pairOf(r.right[0]!).dst, '10.0.3.234/32', 'pair 501: 10.0.0.0 + 1002');
});

s('the first pair of a /24 skips the network address: dst .2, src .3', () => {
  const next = given(addressPool).when(allocate('c1')).thenEvents([allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32')]);
  assert.is(next.state.families.IPv4?.prefix, '10.60.0.0/24');
  assert.equal(allocationOf(next.state, 'c1'), { pairs: [{ prefix: '10.60.0.0/24', src: '10.60.0.3/32', dst: '10.60.0.2/32', family: 'IPv4', index: 1n }] });
  assert.equal(entriesOf(next.state.families.IPv4!.used), [['1', 'c1']]);
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
  const afterRelease = two.when(release('c1')).thenEvents([released('c1')]);
  assert.equal(entriesOf(afterRelease.state.allocations), [['c2', { pairs: [{ prefix: '10.60.0.0/24', src: '10.60.0.5/32', dst: '10.60.0.4/32', family: 'IPv4', index: 2n }] }]]);
  assert.equal(entriesOf(afterRelease.state.families.IPv4!.used), [['2', 'c2']]);
  assert.is(afterRelease.state.families.IPv4!.lowestFree, 1n, 'the search starts at the freed pair');
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
    .thenEvents([released('c1')])
    .when(release('c1'))
    .thenEvents([]);
});

s('a prefix with host bits set is invalid, with the intended prefix suggested', () => {
  given(addressPool).when(allocate('c1', '10.60.0.1/24')).thenRejected('invalid', 'pool "nse-b": "10.60.0.1/24" has host bits set; did you mean 10.60.0.0/24?');
});

s('a malformed prefix is invalid', () => {
  given(addressPool).when(allocate('c1', '10.60.0/24')).thenRejected('invalid', 'is not a CIDR prefix like 10.0.0.0/24 or fd00::/64');
  given(addressPool).when(allocate('c1', 'fd00::g/64')).thenRejected('invalid', '"fd00::g/64" is not a CIDR prefix');
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
  assert.is(next.state.families.IPv4?.prefix, '10.61.0.0/24');
});

// ---- IPv6 and dual stack -------------------------------------------------------------------

const v6 = (connectionId: string, dst: string, src: string, prefix = 'fd00:10::/64'): AddressPoolEvent => allocatedPairs(connectionId, [{ prefix, src, dst }]);

s('IPv6: the first pair of a /64 skips the subnet-router anycast address: dst ::2, src ::3, host prefixes /128', () => {
  given(addressPool)
    .when(allocate('c1', 'fd00:10::/64'))
    .thenEvents([v6('c1', 'fd00:10::2/128', 'fd00:10::3/128')])
    .when(allocate('c2', 'fd00:10::/64'))
    .thenEvents([v6('c2', 'fd00:10::4/128', 'fd00:10::5/128')]);
});

s('dual stack: one decision hands out a pair of each family, in the order of the prefixes', () => {
  const sc = given(addressPool)
    .when(allocate('c1', ['fd00:10::/64', '10.60.0.0/24']))
    .thenEvents([
      allocatedPairs('c1', [
        { prefix: 'fd00:10::/64', src: 'fd00:10::3/128', dst: 'fd00:10::2/128' },
        { prefix: '10.60.0.0/24', src: '10.60.0.3/32', dst: '10.60.0.2/32' },
      ]),
    ]);
  assert.is(sc.state.count, 1);
  assert.is(sc.state.families.IPv4?.count, 1);
  assert.is(sc.state.families.IPv6?.count, 1);
  // A connection of one family only takes nothing of the other.
  const next = sc.when(allocate('c2', ['10.60.0.0/24'])).thenEvents([allocated('c2', 2, '10.60.0.4/32', '10.60.0.5/32')]);
  assert.is(next.state.families.IPv6?.count, 1);
  // Released: both families' pairs are free again, and the next dual-stack connection reuses them.
  next
    .when(release('c1'))
    .thenEvents([released('c1')])
    .when(allocate('c3', ['fd00:10::/64', '10.60.0.0/24']))
    .thenEvents([
      allocatedPairs('c3', [
        { prefix: 'fd00:10::/64', src: 'fd00:10::3/128', dst: 'fd00:10::2/128' },
        { prefix: '10.60.0.0/24', src: '10.60.0.3/32', dst: '10.60.0.2/32' },
      ]),
    ]);
});

s('IPv6: an exclusion of half a /64 is jumped over, not walked: the first pair above it, at once', () => {
  const started = process.hrtime.bigint();
  given(addressPool)
    .when(allocate('c1', 'fd00:10::/64', ['fd00:10::/65']))
    .thenEvents([v6('c1', 'fd00:10:0:0:8000::/128', 'fd00:10::8000:0:0:1/128')]);
  // 2^62 pairs lie below; enumerating them would never finish.
  assert.ok(process.hrtime.bigint() - started < 1_000_000_000n, 'well under a second');
});

s('IPv6: pair indexes beyond 2^53 are exact (bigint), held and released', () => {
  const sc = given(addressPool).when(allocate('c1', 'fd00:10::/64', ['fd00:10::/65'])).accepted().when(allocate('c2', 'fd00:10::/64', ['fd00:10::/65'])).accepted();
  const pairs = [allocationOf(sc.state, 'c1')!.pairs[0]!, allocationOf(sc.state, 'c2')!.pairs[0]!];
  assert.equal(pairs.map((p) => p.index), [1n << 62n, (1n << 62n) + 1n]);
  assert.is(pairs[1]!.dst, 'fd00:10::8000:0:0:2/128');
  const after = sc.when(release('c1')).accepted();
  assert.is(after.state.families.IPv6?.count, 1);
  after.when(allocate('c3', 'fd00:10::/64', ['fd00:10::/65'])).thenEvents([v6('c3', 'fd00:10:0:0:8000::/128', 'fd00:10::8000:0:0:1/128')]);
});

s('IPv6: exclusions scattered over a /64 are each jumped, with the node routes and the configured ones together', () => {
  given(addressPool)
    .when(allocate('c1', 'fd00:10::/64', ['fd00:10::/120', 'fd00:10::100/121', '10.60.0.0/24', 'fd00:10::180/128']))
    .thenEvents([v6('c1', 'fd00:10::182/128', 'fd00:10::183/128')]);
});

s('IPv6: exclusions covering the whole prefix exhaust it at once, with a clear error', () => {
  const started = process.hrtime.bigint();
  given(addressPool)
    .when(allocate('c1', 'fd00:10::/64', ['fd00:10::/65', 'fd00:10::8000:0:0:0/65']))
    .thenRejected('pool-exhausted', 'no free address pair left in fd00:10::/64 of endpoint "nse-b" (0 in use)');
  given(addressPool).when(allocate('c1', 'fd00:10::/64', ['fd00::/16'])).thenRejected('pool-exhausted', 'fd00:10::/64');
  assert.ok(process.hrtime.bigint() - started < 1_000_000_000n, 'well under a second');
});

s('IPv6: a /126 holds one pair (pair 0 is the anycast one), a /127 one point-to-point pair, a /128 none', () => {
  const { got, refusal } = drain(given(addressPool), 'fd00:10::/126');
  assert.equal(got, [{ prefix: 'fd00:10::/126', src: 'fd00:10::3/128', dst: 'fd00:10::2/128' }]);
  refusal.thenRejected('pool-exhausted', 'no free address pair left in fd00:10::/126 of endpoint "nse-b" (1 in use)');
  given(addressPool).when(allocate('c1', 'fd00:10::4/127')).thenEvents([v6('c1', 'fd00:10::4/128', 'fd00:10::5/128', 'fd00:10::4/127')]);
  given(addressPool).when(allocate('c1', 'fd00:10::4/128')).thenRejected('pool-exhausted', 'fd00:10::4/128');
});

s('dual stack: when one family is exhausted nothing is handed out, and the error names that family\'s prefix', () => {
  const full = given(addressPool, [v6('c1', 'fd00:10::2/128', 'fd00:10::3/128', 'fd00:10::/126')]);
  full.when(allocate('c2', ['10.60.0.0/24', 'fd00:10::/126'])).thenRejected('pool-exhausted', 'no free address pair left in fd00:10::/126 of endpoint "nse-b" (1 in use)');
  assert.is(full.state.families.IPv4, undefined, 'the IPv4 pair it could have had was not taken');
});

s('two prefixes of one family, or none at all, are invalid', () => {
  given(addressPool).when(allocate('c1', ['fd00:10::/64', 'fd00:11::/64'])).thenRejected('invalid', 'pool "nse-b": two IPv6 prefixes; one per family');
  given(addressPool).when(allocate('c1', [])).thenRejected('invalid', 'no prefix to allocate from');
});

s('changing one family\'s prefix while it has allocations is a conflict; the other family may still be added', () => {
  const held = given(addressPool, [allocated('c1', 1, '10.60.0.2/32', '10.60.0.3/32')]);
  held.when(allocate('c2', ['fd00:10::/64', '10.61.0.0/24'])).thenRejected('conflict', 'still has allocations from 10.60.0.0/24');
  held.when(allocate('c2', ['10.60.0.0/24', 'fd00:10::/64'])).events();
});

s.run();
