// nsm status: the log position and the counts of the read model.
import { defineCommand } from '../command.ts';
import { must } from '../kit.ts';
import { CLIENT_OPTIONS } from '../options.ts';

export const status = defineCommand({
  name: 'status',
  group: 'use',
  usage: ['nsm status'],
  description: `
The log position and the number of services, endpoints, nodes and connections, and failedSteps:
workflow steps the process manager gave up on (nsm workflow ls).`,
  flags: {},
  common: CLIENT_OPTIONS,
  async run({ values: v }, ctx) {
    await ctx.withClient(v, async (c) => {
      const s = must(await c.query<Record<string, number>>('status'));
      ctx.out(v, s, () => Object.entries(s).map(([k, n]) => `${k}: ${n}`).join('\n'));
    });
  },
});
