// canonicalJson and the commit/seal hashes: what the audit chain's tamper evidence rests on.
import * as assert from 'uvu/assert';
import { commitHash, GENESIS_HASH, makeSeal, sealHashOf, sha256 } from '../../src/audit/hash.ts';
import { canonicalJson } from '../../src/contracts/canonicalJson.ts';
import type { Commit, EventEnvelope } from '../../src/contracts/envelope.ts';
import { suite } from '../lib/harness.ts';

const c = suite('canonicalJson');

c('sorts keys at every depth and writes no whitespace', () => {
  assert.is(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: 'x' } }), '{"a":{"c":"x","d":[3,{"y":2,"z":1}]},"b":1}');
});

c('same value, any key order: same text', () => {
  const a = { type: 'PathPlanned', context: { mtu: 1500, ipContext: { srcIpAddrs: ['10.0.0.1/32'] } }, generation: 1 };
  const b = { generation: 1, context: { ipContext: { srcIpAddrs: ['10.0.0.1/32'] }, mtu: 1500 }, type: 'PathPlanned' };
  assert.is(canonicalJson(a), canonicalJson(b));
});

c('drops undefined fields and writes null for undefined array items, as JSON.stringify', () => {
  assert.is(canonicalJson({ a: undefined, b: [undefined, 1], c: null }), '{"b":[null,1],"c":null}');
});

c('a value and its JSON round trip give the same text', () => {
  const v = { s: 'événement ✓ "quoted" \\ \n\u0001 \ud800', n: [0, -0, 1.5, 1e21, -3, Number.NaN], t: true, e: {}, l: [], nested: { k: { j: [null, { i: 'x' }] } }, u: undefined };
  assert.is(canonicalJson(JSON.parse(JSON.stringify(v))), canonicalJson(v));
});

c('strings and keys are written exactly as JSON.stringify writes them (escapes, unicode, lone surrogates)', () => {
  const tricky = ['', 'plain', 'é ✓ 日本', 'say "hi"', 'back\\slash', 'tab\tnew\nline', '\u0000\u001f', '\u2028\u2029', 'lone \ud800 high', 'lone \udc00 low', 'pair \ud83d\ude00', '</script>'];
  for (const t of tricky) {
    assert.is(canonicalJson(t), JSON.stringify(t), JSON.stringify(t));
    assert.is(canonicalJson({ [t]: t }), `{${JSON.stringify(t)}:${JSON.stringify(t)}}`);
  }
});

c('uses toJSON like JSON.stringify', () => {
  assert.is(canonicalJson({ d: new Date(Date.UTC(2024, 0, 2)) }), '{"d":"2024-01-02T00:00:00.000Z"}');
});

c('refuses bigint rather than writing something that reads back different', () => {
  assert.throws(() => canonicalJson({ p: 1n }), /bigint/);
});

const h = suite('commit and seal hashes');

const env = (stream: string, version: number, data: Record<string, unknown>): EventEnvelope => ({
  id: `e-${version}`,
  type: String(data.type),
  stream,
  version,
  time: '2030-01-01T00:00:00.000Z',
  correlationId: 'corr',
  causationId: 'cause',
  domain: 'd',
  actor: 'alice',
  schema: 1,
  data: data as { type: string },
});

h('a commit hash covers commitId, stream, events and prevHash, and nothing else', () => {
  const base: Commit = { commitId: 'c1', stream: 'node.n1', events: [env('node.n1', 1, { type: 'NodeJoined', spec: { name: 'n1' } })], prevHash: GENESIS_HASH };
  const hash = commitHash(base);
  assert.match(hash, /^[0-9a-f]{64}$/);
  assert.is(hash, sha256(canonicalJson({ commitId: 'c1', stream: 'node.n1', events: base.events, prevHash: GENESIS_HASH })));
  assert.is(commitHash({ ...base, hash: 'whatever' } as Commit), hash, 'the stored hash field is not part of what it hashes');
  assert.is.not(commitHash({ ...base, commitId: 'c2' }), hash);
  assert.is.not(commitHash({ ...base, stream: 'node.n2' }), hash);
  assert.is.not(commitHash({ ...base, prevHash: 'f'.repeat(64) }), hash);
  assert.is.not(commitHash({ ...base, events: [env('node.n1', 1, { type: 'NodeJoined', spec: { name: 'n2' } })] }), hash);
  assert.is(commitHash(JSON.parse(JSON.stringify(base)) as Commit), hash, 'survives a JSON round trip');
});

h('an unchained commit (no prevHash) has a content hash of its own', () => {
  const old: Commit = { commitId: 'c1', stream: 'node.n1', events: [env('node.n1', 1, { type: 'NodeJoined' })] };
  assert.is.not(commitHash(old), commitHash({ ...old, prevHash: GENESIS_HASH }));
});

h('a seal hash covers from, to, entries and the previous seal hash', () => {
  const s = makeSeal([['1', 'a'.repeat(64)], ['2', 'b'.repeat(64)]], GENESIS_HASH);
  assert.is(s.from, '1');
  assert.is(s.to, '2');
  assert.is(s.sealHash, sealHashOf(s));
  assert.is.not(sealHashOf({ ...s, entries: [['1', 'a'.repeat(64)], ['2', 'c'.repeat(64)]] }), s.sealHash);
  assert.is.not(sealHashOf({ ...s, prevSealHash: 'f'.repeat(64) }), s.sealHash);
});

c.run();
h.run();
