// The authorization policy in force, folded from the policy.mesh stream: connection requests are
// decided against it, and the `policy` query shows it.
import { castDraft, type Draft } from 'immer';
import { DEFAULT_POLICY, type PolicyState } from '../aggregates/policy.ts';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export const emptyPolicy: PolicyState = { version: 0, policy: DEFAULT_POLICY };

export const applyPolicy = (m: Draft<{ policy: PolicyState }>, e: EventEnvelope<DomainEvent>): void => {
  // Replaced, never mutated: the policy object comes from the event.
  if (e.data.type === 'PolicySet') m.policy = castDraft({ version: m.policy.version + 1, policy: e.data.policy });
};
