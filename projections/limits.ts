// The limits in force (aggregates/limits.ts), folded from limits.mesh: connection requests are
// decided against them, and `nsm limits show` reads them.
import { castDraft, type Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import { emptyLimitsConfig, type LimitsConfig } from '../aggregates/limits.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export const emptyLimits: LimitsConfig = emptyLimitsConfig;

export const applyLimits = (m: Draft<{ limits: LimitsConfig }>, e: EventEnvelope<DomainEvent>): void => {
  if (e.data.type !== 'LimitsSet') return;
  const { scope, limits } = e.data;
  // Replaced, never mutated in place: the objects come from events.
  const key = 'role' in scope ? 'roles' : 'identities';
  const name = 'role' in scope ? scope.role : scope.identity;
  const { [name]: _old, ...rest } = m.limits[key] as Record<string, unknown>;
  m.limits = castDraft({ ...(m.limits as LimitsConfig), [key]: limits ? { ...rest, [name]: limits } : rest });
};
