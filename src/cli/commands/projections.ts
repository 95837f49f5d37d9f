// nsm projections rebuild: the control plane's read model rebuilt beside the live one (docs/audit.md).
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { RebuildStart } from '../../read/snapshots.ts';
import type { RebuildMessage } from '../../runtime/audit.ts';
import { defineCommand } from '../command.ts';
import { jsonText } from '../eventLog.ts';
import { fail } from '../kit.ts';
import { CLIENT_OPTIONS } from '../options.ts';
import { progressBar, rate } from '../render/progress.ts';

export const projections = defineCommand({
  name: 'projections',
  group: 'audit',
  usage: ['nsm projections rebuild                       rebuild the control plane\'s read model beside the live one'],
  description: `
Asks the control plane to fold the whole log into a new read model beside the live one, and swap
it in when it has caught up; follows its progress (a bar on a terminal) and prints the events,
time and rate. A rebuild already running is followed instead of started again.`,
  flags: {},
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [verb] }, ctx) {
    if (verb !== 'rebuild') fail(`unknown "nsm projections ${verb ?? ''}"; use rebuild`);
    await ctx.withClient(v, async (c) => {
      const id = randomUUID();
      // Subscribed before asking, so no progress message is missed.
      const sub = c.nc.subscribe(c.subjects.progress(id));
      let follow = sub;
      let watchdog: NodeJS.Timeout | undefined;
      try {
        const r = await c.query<RebuildStart>('projections-rebuild', { id });
        if (E.isLeft(r)) fail(r.left.message);
        const start = E.isRight(r) ? r.right : fail('unreachable');
        if (!start.started) {
          sub.unsubscribe();
          follow = c.nc.subscribe(c.subjects.progress(start.id));
        }
        if (!start.started && !v.json) ctx.warn(`a rebuild is already running (${start.id}); following it`);
        const bar = progressBar('rebuilding', ctx.io.stderr);
        // A control plane that stops mid-rebuild sends nothing more: do not wait forever.
        let lastAt = Date.now();
        let silent = false;
        watchdog = setInterval(() => {
          if (Date.now() - lastAt > 30_000) {
            silent = true;
            follow.unsubscribe();
          }
        }, 1000);
        for await (const m of follow) {
          lastAt = Date.now();
          const msg = JSON.parse(new TextDecoder().decode(m.data)) as RebuildMessage;
          if (msg.kind === 'progress') bar.update(msg.position, msg.target, `${msg.events.toLocaleString('en-US')} events, ${rate(msg.events, msg.elapsedMs / 1000)} events/s`);
          else {
            bar.done();
            if (msg.kind === 'failed') fail(`rebuild failed: ${msg.error}`);
            else if (v.json) ctx.print(jsonText(msg));
            else ctx.print(`rebuilt ${msg.events} events (${msg.commits} commits) in ${msg.seconds.toFixed(2)} s, ${Math.round(msg.eventsPerSecond)} events/s; swapped in at position ${msg.swappedAt}`);
            break;
          }
        }
        bar.done();
        if (silent) fail('no word from the control plane for 30 s; the rebuild may have stopped (see its log)');
      } finally {
        // On every path out, a failed rebuild included.
        clearInterval(watchdog);
        follow.unsubscribe();
      }
    });
  },
});
