// nsm policy: show and change the authorization policy (aggregates/policy.ts, docs/security.md).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import type { Policy, PolicyRule } from '../../../aggregates/policy.ts';
import * as D from '../../contracts/decode.ts';
import { defineCommand } from '../command.ts';
import { fail, must } from '../kit.ts';
import { CLIENT_OPTIONS, str, strs } from '../options.ts';
import { parseLabels } from '../parse.ts';
import { labelsText, table } from '../render/table.ts';

interface RuleFlags {
  readonly client?: string[];
  readonly 'client-label'?: string[];
  readonly service?: string[];
  readonly require?: string[];
  readonly forbid?: string[];
  readonly name?: string;
}

const list = (xs: readonly string[] | undefined) => (xs ?? []).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);

/** "--forbid k" forbids the key with any value, "--forbid k=v" that value only. */
const forbidden = (items: readonly string[]): Record<string, string> =>
  Object.fromEntries(list(items).map((i) => (i.includes('=') ? [i.slice(0, i.indexOf('=')), i.slice(i.indexOf('=') + 1)] : [i, '*'])));

const ruleFromFlags = (action: 'allow' | 'deny', f: RuleFlags): PolicyRule => {
  const body = {
    action,
    clients: list(f.client),
    clientLabels: must(parseLabels(f['client-label'] ?? [], '--client-label')),
    services: list(f.service),
    requireLabels: must(parseLabels(f.require ?? [], '--require')),
    forbidLabels: forbidden(f.forbid ?? []),
  };
  // Same rule, same name: adding it twice is a no-op rather than a duplicate.
  const name = f.name ?? `${action}-${createHash('sha256').update(JSON.stringify(body)).digest('hex').slice(0, 8)}`;
  return { name, ...body };
};

const show = (p: { version: number; policy: Policy }): string => {
  const rows = p.policy.rules.map((r, i) => [
    i,
    r.name,
    r.action,
    r.clients.length > 0 ? r.clients.join(',') : '*',
    labelsText(r.clientLabels),
    r.services.length > 0 ? r.services.join(',') : '*',
    labelsText(r.requireLabels),
    labelsText(r.forbidLabels),
  ]);
  const head = `default: ${p.policy.defaultAction}${p.version === 0 ? ' (no policy has been set: every request is allowed)' : ''}; ${p.policy.rules.length} rule(s), first match decides`;
  return rows.length === 0 ? head : `${head}\n${table(['#', 'name', 'action', 'clients', 'client labels', 'services', 'require', 'forbid'], rows)}`;
};

export const policy = defineCommand({
  name: 'policy',
  group: 'use',
  usage: [
    'nsm policy [show] | set FILE | remove NAME | default allow|deny',
    'nsm policy allow|deny [--name N] [--client ID]... [--client-label k=v]... [--service SVC]...',
    '                      [--require k=v]... [--forbid k[=v]]... [--position N]',
  ],
  description: `
The authorization policy: rules in order, the first that matches a connection request decides,
else the default action. show prints it; set FILE replaces it with a JSON policy,
{"defaultAction": "allow"|"deny", "rules": [...]}; allow and deny add a rule (the same rule twice
is one); remove NAME removes one; default allow|deny sets the default. A rule's lists are
repeatable or comma separated; what a rule does not name, it does not restrict. Changes are
operators' only. See docs/security.md.`,
  flags: {
    name: str('N', "the rule's name", { defaultText: 'allow-<hash> or deny-<hash> of the rule' }),
    client: strs('ID', 'the rule applies to these identities', { defaultText: 'any' }),
    'client-label': strs('k=v', 'the rule applies to requests with these client labels'),
    service: strs('SVC', 'the rule applies to these services', { defaultText: 'any' }),
    require: strs('k=v', 'labels a request must carry to be allowed by the rule'),
    forbid: strs('k[=v]', 'labels (any value, or that value) a request must not carry'),
    position: str('N', "where the rule goes in the list, from 0", { defaultText: 'the end' }),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [verb, arg] }, ctx) {
    await ctx.withClient(v, async (c) => {
      const out = (json: unknown, human: () => string) => ctx.out(v, json, human);
      switch (verb) {
        case undefined:
        case 'show': {
          const p = must(await c.query<{ version: number; policy: Policy }>('policy'));
          return out(p, () => show(p));
        }
        case 'set': {
          if (!arg) fail('nsm policy set FILE: the policy as JSON, {"defaultAction": "allow"|"deny", "rules": [...]}');
          let text: string;
          try {
            text = readFileSync(arg!, 'utf8');
          } catch (e) {
            return fail(`cannot read ${arg}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
          }
          const policy = must(E.mapLeft((e: D.DecodeError) => `${arg}: ${e.message}`)(D.parseJson(text, 1024 * 1024)));
          const r = must(await c.send('policy.set', { policy: policy as Policy }));
          return out(r, () => ('noop' in r && r.noop ? 'policy unchanged' : 'policy set'));
        }
        case 'allow':
        case 'deny': {
          const rule = ruleFromFlags(verb, v);
          const position = v.position === undefined ? undefined : Number(v.position);
          if (position !== undefined && !(Number.isInteger(position) && position >= 0)) fail(`--position ${JSON.stringify(v.position)}: expected 0 or more`);
          const r = must(await c.send('policy.add', { rule, ...(position !== undefined ? { position } : {}) }));
          return out(r, () => `rule ${rule.name} added${'noop' in r && r.noop ? ' (no change)' : ''}`);
        }
        case 'remove': {
          if (!arg) fail('nsm policy remove NAME');
          const r = must(await c.send('policy.remove', { name: arg! }));
          return out(r, () => `rule ${arg} removed`);
        }
        case 'default': {
          if (arg !== 'allow' && arg !== 'deny') fail('nsm policy default allow|deny');
          const p = must(await c.query<{ version: number; policy: Policy }>('policy'));
          const r = must(await c.send('policy.set', { policy: { ...p.policy, defaultAction: arg as 'allow' | 'deny' } }));
          return out(r, () => `default action: ${arg}`);
        }
        default:
          fail(`unknown "nsm policy ${verb}"; use show, set FILE, allow, deny, remove NAME or default allow|deny`);
      }
    });
  },
});
