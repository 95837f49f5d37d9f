// The authorization policy in force, folded from the policy.mesh stream as the control plane's
// view receives it: connection requests are decided against it.
import { policy as policyAggregate, type Policy, type PolicyEvent, type PolicyState } from '../../aggregates/policy.ts';
import type { EventEnvelope } from '../contracts/envelope.ts';
import { POLICY_STREAM } from '../handlers.ts';
import type { MeshView } from '../meshView.ts';

export interface PolicyView {
  current(): Policy;
  /** Number of policy changes folded so far (0: none was ever set, the default applies). */
  version(): number;
  stop(): void;
}

export const trackPolicy = (view: MeshView): PolicyView => {
  let state: PolicyState = policyAggregate.initialState;
  let position = 0;
  const stop = view.onChange((_model, commits) => {
    for (const c of commits) {
      const at = Number(c.position);
      if (c.stream !== POLICY_STREAM || at <= position) continue;
      position = at;
      for (const e of c.events as readonly EventEnvelope<PolicyEvent>[]) state = policyAggregate.evolve(state, e.data);
    }
  });
  return { current: () => state.policy, version: () => state.version, stop: () => void stop() };
};
