// nsm limits show|set|unset: per-role and per-identity limits on connection requests (docs/security.md).
import { toActorToken } from '../../contracts/subjects.ts';
import { defineCommand } from '../command.ts';
import { fail, must } from '../kit.ts';
import { CLIENT_OPTIONS, str } from '../options.ts';
import { table } from '../render/table.ts';

export const limits = defineCommand({
  name: 'limits',
  group: 'use',
  usage: ['nsm limits [show] | set --role client|operator|peer|--client ID [--connections N] [--pending N] [--rate N] | unset ...'],
  description: `
Limits on connection requests per role or per identity: connections held, being set up, accepted
per second. Over a limit a request fails with code "limited" and the reason. show lists them (and
the defaults); set changes some for a role or an identity (what is not given is not limited);
unset removes an identity's (its role's apply) or a role's (the defaults apply). Operators only.`,
  flags: {
    role: str('ROLE', 'set or unset the limits of a role', { choices: ['client', 'operator', 'peer'] }),
    client: str('ID', 'set or unset the limits of one identity'),
    connections: str('N', 'connections held at once'),
    pending: str('N', 'connections being set up at once'),
    rate: str('N', 'requests accepted per second'),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [verb] }, ctx) {
    if (verb === 'set' || verb === 'unset') {
      if ((v.role === undefined) === (v.client === undefined)) fail(`nsm limits ${verb}: give --role client|operator|peer or --client IDENTITY`);
      if (v.role !== undefined && !['client', 'operator', 'peer'].includes(v.role)) fail(`--role ${JSON.stringify(v.role)}: expected client, operator or peer`);
      const count = (s: string | undefined, flag: string) => (s === undefined ? undefined : /^\d{1,8}$/.test(s) ? Number(s) : fail(`${flag} ${JSON.stringify(s)}: expected a whole number (0 or more)`));
      const limits = { connections: count(v.connections, '--connections'), pending: count(v.pending, '--pending'), ratePerSecond: count(v.rate, '--rate') };
      const given = Object.fromEntries(Object.entries(limits).filter(([, n]) => n !== undefined)) as { connections?: number; pending?: number; ratePerSecond?: number };
      if (verb === 'set' && Object.keys(given).length === 0) fail('nsm limits set: give at least one of --connections N, --pending N, --rate N (what is not given is not limited)');
      if (verb === 'unset' && Object.keys(given).length > 0) fail('nsm limits unset takes no limit values');
      const scope = v.role !== undefined ? { role: v.role as 'client' | 'operator' | 'peer' } : { identity: toActorToken(v.client!) };
      const who = v.role !== undefined ? `role ${v.role}` : `identity ${v.client}`;
      return ctx.send(v, 'limits.set', { ...scope, ...(verb === 'set' ? { limits: given } : {}) }, verb === 'set' ? `limits of ${who} set` : `limits of ${who} removed (${v.role !== undefined ? 'the defaults apply' : 'its role\'s apply'})`);
    }
    if (verb !== 'show' && verb !== undefined) fail(`unknown "nsm limits ${verb}"; use show, set or unset`);
    await ctx.withClient(v, async (c) => {
      type L = { connections?: number; pending?: number; ratePerSecond?: number };
      const r = must(await c.query<{ defaults: Record<string, L>; roles: Record<string, L>; identities: Record<string, L>; usage: Record<string, { held: number; pending: number }> }>('limits'));
      const show = (l: L | undefined) => (l ? [l.connections ?? 'unlimited', l.pending ?? 'unlimited', l.ratePerSecond ?? 'unlimited'] : ['', '', '']);
      ctx.out(v, r, () =>
        table(
          ['applies to', 'connections', 'pending', 'per second', 'set by'],
          [
            ...['client', 'operator', 'peer'].map((role) => [`role ${role}`, ...show(r.roles[role] ?? r.defaults[role]), r.roles[role] ? 'operator' : 'default']),
            ...Object.entries(r.identities).map(([id, l]) => [id, ...show(l), 'operator']),
          ],
        ),
      );
    });
  },
});
