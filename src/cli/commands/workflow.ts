// nsm workflow ls|retry POSITION: workflow steps that failed for another reason than infrastructure.
import { defineCommand } from '../command.ts';
import { fail, must } from '../kit.ts';
import { CLIENT_OPTIONS } from '../options.ts';
import { age, table } from '../render/table.ts';

export const workflow = defineCommand({
  name: 'workflow',
  group: 'use',
  usage: ['nsm workflow ls | retry POSITION          failed workflow steps; run one again (operator)'],
  description: `
A reaction of the process manager that fails for another reason than infrastructure (which is
retried for as long as it lasts) is tried 5 times, then recorded as WorkflowStepFailed on the
stream workflow.<position> and left behind. ls lists those not recovered (position, stream,
failures, attempts, last failure, error); nsm history POSITION shows their events. retry POSITION
(operators only) runs the reaction again on the original commit.`,
  flags: {},
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [verb, position] }, ctx) {
    if (verb === 'retry') {
      if (!position || !/^[1-9][0-9]{0,19}$/.test(position)) fail('nsm workflow retry POSITION: the log position of a failed step (see nsm workflow ls)');
      return ctx.send(v, 'workflow.retry', { position: position! }, `retry of the workflow step at position ${position} requested; see nsm workflow ls and nsm history ${position}`);
    }
    if (verb !== 'ls') fail(`unknown "nsm workflow ${verb ?? ''}"; use ls or retry POSITION`);
    await ctx.withClient(v, async (c) => {
      const rows = must(await c.queryAll<{ position: string; stream: string; error: string; attempts: number; failures: number; failedAt: string; retrying: boolean }>('failed-steps'));
      ctx.out(v, rows, () =>
        rows.length === 0
          ? 'no failed workflow steps'
          : table(['position', 'stream', 'failed', 'attempts', 'last failure', 'state', 'error'], rows.map((r) => [r.position, r.stream, r.failures, r.attempts, age(r.failedAt), r.retrying ? 'retrying' : 'failed', r.error.length > 100 ? r.error.slice(0, 97) + '...' : r.error])),
      );
    });
  },
});
