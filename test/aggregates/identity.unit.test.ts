// The log's record of who may act (aggregates/identity.ts): what the control plane appends when
// the registry file changes, and nothing when it has not.
import * as assert from 'uvu/assert';
import { identities, type ObservedIdentity } from '../../aggregates/identity.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';

const s = suite('identity aggregate');

const K1 = 'UAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1';
const K2 = 'UBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2';
const K3 = 'UCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCCC3';
const alice: ObservedIdentity = { actor: 'alice', role: 'client', publicKey: K1 };
const node: ObservedIdentity = { actor: 'agent:n1', role: 'agent', publicKey: K2 };
const observe = (...ids: ObservedIdentity[]) => ({ type: 'ObserveRegistry' as const, identities: ids });

s('first reading records every identity; reading the same file again records nothing', () => {
  given(identities)
    .when(observe(alice, node))
    .thenEvents([
      { type: 'IdentityAdded', actor: 'alice', role: 'client', publicKey: K1 },
      { type: 'IdentityAdded', actor: 'agent:n1', role: 'agent', publicKey: K2 },
    ])
    .when(observe(node, alice))
    .thenEvents([]);
});

s('a rotated key is recorded with the key it replaced and its grace period; a revocation once; a new key after it reinstates', () => {
  const rotated: ObservedIdentity = { ...alice, publicKey: K3, retiredKeys: [{ publicKey: K1, retiredAt: '2026-12-06T10:00:00.000Z', loginUntil: '2026-12-07T10:00:00.000Z' }] };
  const after = given(identities)
    .when(observe(alice, node))
    .accepted()
    .when(observe(rotated, node))
    .thenEvents([{ type: 'IdentityKeyRotated', actor: 'alice', publicKey: K3, previousKey: K1, retiredAt: '2026-12-06T10:00:00.000Z', loginUntil: '2026-12-07T10:00:00.000Z' }])
    .when(observe(rotated, { ...node, revokedAt: '2026-12-06T11:00:00.000Z' }))
    .thenEvents([{ type: 'IdentityRevoked', actor: 'agent:n1', revokedAt: '2026-12-06T11:00:00.000Z' }])
    .when(observe(rotated, { ...node, revokedAt: '2026-12-06T11:00:00.000Z' }))
    .thenEvents([]);
  const reinstated = after.when(observe(rotated, { ...node, publicKey: K1 })).thenEvents([
    { type: 'IdentityKeyRotated', actor: 'agent:n1', publicKey: K1, previousKey: K2 },
    { type: 'IdentityReinstated', actor: 'agent:n1' },
  ]);
  assert.equal(reinstated.state.identities['agent:n1'], { role: 'agent', publicKey: K1 });
  assert.equal(after.state.identities['agent:n1'], { role: 'agent', publicKey: K2, revokedAt: '2026-12-06T11:00:00.000Z' });
  assert.is(after.state.identities.alice?.publicKey, K3);
});

s('an identity gone from the file is recorded as removed; one that changed role as removed and added', () => {
  given(identities)
    .when(observe(alice, node))
    .accepted()
    .when(observe({ ...alice, role: 'operator' }))
    .thenEvents([
      { type: 'IdentityRemoved', actor: 'alice' },
      { type: 'IdentityAdded', actor: 'alice', role: 'operator', publicKey: K1 },
      { type: 'IdentityRemoved', actor: 'agent:n1' },
    ]);
});

s.run();
