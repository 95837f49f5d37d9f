// `nsm policy`: show and change the authorization policy (aggregates/policy.ts).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import type { Policy, PolicyRule } from '../../aggregates/policy.ts';
import type { MeshClient } from '../client/index.ts';
import * as D from '../contracts/decode.ts';
import { parseLabels } from './parse.ts';
import { labelsText, table } from './render/table.ts';

export interface PolicyFlags {
  readonly client?: string[];
  readonly 'client-label'?: string[];
  readonly service?: string[];
  readonly require?: string[];
  readonly forbid?: string[];
  readonly name?: string;
  readonly position?: string;
}

class PolicyCliError extends Error {}
const fail = (msg: string): never => {
  throw new PolicyCliError(msg);
};
const must = <T>(r: E.Either<string | { message: string }, T>): T => (E.isRight(r) ? r.right : fail(typeof r.left === 'string' ? r.left : r.left.message));

const list = (xs: readonly string[] | undefined) => (xs ?? []).flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);

/** "--forbid k" forbids the key with any value, "--forbid k=v" that value only. */
const forbidden = (items: readonly string[]): Record<string, string> =>
  Object.fromEntries(list(items).map((i) => (i.includes('=') ? [i.slice(0, i.indexOf('=')), i.slice(i.indexOf('=') + 1)] : [i, '*'])));

const ruleFromFlags = (action: 'allow' | 'deny', f: PolicyFlags): PolicyRule => {
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

export const policyCommand = async (c: MeshClient, positionals: readonly string[], f: PolicyFlags, out: (json: unknown, human: () => string) => void): Promise<void> => {
  const [verb, arg] = positionals;
  try {
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
        const rule = ruleFromFlags(verb, f);
        const position = f.position === undefined ? undefined : Number(f.position);
        if (position !== undefined && !(Number.isInteger(position) && position >= 0)) fail(`--position ${JSON.stringify(f.position)}: expected 0 or more`);
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
  } catch (e) {
    if (e instanceof PolicyCliError) throw new Error(e.message);
    throw e;
  }
};
