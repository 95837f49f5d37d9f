// Authorization policy: which clients (by identity or by the labels they connect with) may
// connect to which network services, and with which labels. One stream, policy.mesh, holding
// ordered rules; the first rule that applies to a request decides it. Without any policy set,
// every request is allowed (the default action is "allow"), as before policies existed.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { isSubset, jsonEqual, reject, type Aggregate, type Labels } from './domain.ts';

export type PolicyAction = 'allow' | 'deny';

export interface PolicyRule {
  /** Shown in every denial the rule causes. */
  readonly name: string;
  readonly action: PolicyAction;
  /** Client identities (actors) it applies to; empty: every client. */
  readonly clients: readonly string[];
  /** Labels a request must carry for the rule to apply; empty: any request. */
  readonly clientLabels: Labels;
  /** Network services it applies to; empty: every service. */
  readonly services: readonly string[];
  /** Allow rules: labels the request must carry, or it is denied by this rule. */
  readonly requireLabels: Labels;
  /** Allow rules: labels the request must not carry ("*" as a value: the key with any value). */
  readonly forbidLabels: Labels;
}

export interface Policy {
  /** What happens to a request no rule applies to. */
  readonly defaultAction: PolicyAction;
  readonly rules: readonly PolicyRule[];
}

export const DEFAULT_POLICY: Policy = { defaultAction: 'allow', rules: [] };
export const POLICY_STREAM_ID = 'mesh';

export type PolicyCommand =
  | { readonly type: 'SetPolicy'; readonly policy: Policy }
  /** Inserts the rule at `position` (0-based; default: last). */
  | { readonly type: 'AddPolicyRule'; readonly rule: PolicyRule; readonly position?: number }
  | { readonly type: 'RemovePolicyRule'; readonly name: string };

export type PolicyEvent = { readonly type: 'PolicySet'; readonly change: 'set' | 'add' | 'remove'; readonly rule?: string; readonly policy: Policy };

export interface PolicyState {
  /** Number of changes so far. */
  readonly version: number;
  readonly policy: Policy;
}

export type PolicyDecision =
  | { readonly allowed: true; readonly rule: string }
  | { readonly allowed: false; readonly rule: string; readonly reason: string };

export interface PolicyRequest {
  readonly client: string;
  readonly labels: Labels;
  readonly service: string;
}

const applies = (r: PolicyRule, q: PolicyRequest): boolean =>
  (r.clients.length === 0 || r.clients.includes('*') || r.clients.includes(q.client)) &&
  isSubset(q.labels, r.clientLabels) &&
  (r.services.length === 0 || r.services.includes('*') || r.services.includes(q.service));

const show = (labels: Labels) => Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',');

/** The first rule that applies decides; none: the default action. */
export const evaluatePolicy = (policy: Policy, q: PolicyRequest): PolicyDecision => {
  const rule = policy.rules.find((r) => applies(r, q));
  if (!rule) {
    return policy.defaultAction === 'allow'
      ? { allowed: true, rule: 'default' }
      : { allowed: false, rule: 'default', reason: `no policy rule lets ${q.client} connect to ${q.service}, and the default is deny` };
  }
  if (rule.action === 'deny') return { allowed: false, rule: rule.name, reason: `policy rule "${rule.name}" denies ${q.client} access to ${q.service}` };
  const missing = Object.entries(rule.requireLabels).filter(([k, v]) => q.labels[k] !== v);
  if (missing.length > 0) {
    return { allowed: false, rule: rule.name, reason: `policy rule "${rule.name}" lets ${q.client} connect to ${q.service} only with labels ${show(rule.requireLabels)}; missing ${show(Object.fromEntries(missing))}` };
  }
  const forbidden = Object.entries(rule.forbidLabels).filter(([k, v]) => q.labels[k] !== undefined && (v === '*' || q.labels[k] === v));
  if (forbidden.length > 0) {
    return { allowed: false, rule: rule.name, reason: `policy rule "${rule.name}" forbids ${q.client} to connect to ${q.service} with ${forbidden.map(([k]) => `${k}=${q.labels[k]}`).join(',')}` };
  }
  return { allowed: true, rule: rule.name };
};

const duplicateName = (rules: readonly PolicyRule[]): string | undefined => {
  const seen = new Set<string>();
  for (const r of rules) {
    if (seen.has(r.name)) return r.name;
    seen.add(r.name);
  }
  return undefined;
};

export const policy: Aggregate<PolicyState, PolicyCommand, PolicyEvent> = {
  name: 'policy',
  initialState: { version: 0, policy: DEFAULT_POLICY },
  decide(command, state) {
    switch (command.type) {
      case 'SetPolicy': {
        const dup = duplicateName(command.policy.rules);
        if (dup) return reject('invalid', `two policy rules are named "${dup}"`);
        if (jsonEqual(command.policy, state.policy)) return E.right([]);
        return E.right([{ type: 'PolicySet', change: 'set', policy: command.policy }]);
      }
      case 'AddPolicyRule': {
        const { rule } = command;
        const existing = state.policy.rules.find((r) => r.name === rule.name);
        if (existing) {
          if (jsonEqual(existing, rule)) return E.right([]);
          return reject('conflict', `a policy rule named "${rule.name}" exists; remove it first or choose another name`);
        }
        const rules = [...state.policy.rules];
        const at = command.position === undefined ? rules.length : Math.min(command.position, rules.length);
        rules.splice(at, 0, rule);
        return E.right([{ type: 'PolicySet', change: 'add', rule: rule.name, policy: { ...state.policy, rules } }]);
      }
      case 'RemovePolicyRule': {
        if (!state.policy.rules.some((r) => r.name === command.name)) return reject('not-found', `no policy rule is named "${command.name}"`);
        const rules = state.policy.rules.filter((r) => r.name !== command.name);
        return E.right([{ type: 'PolicySet', change: 'remove', rule: command.name, policy: { ...state.policy, rules } }]);
      }
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      s.version += 1;
      s.policy = castDraft(event.policy);
    }),
};
