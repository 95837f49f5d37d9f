// nsm history ID: every event of a connection, endpoint, service, node, pool or failed step.
import { defineCommand } from '../command.ts';
import { fail, must, type ClientValues, type Ctx } from '../kit.ts';
import { bool, CLIENT_OPTIONS } from '../options.ts';
import { table } from '../render/table.ts';

/** `nsm history ID --all-domains`: the connection's events in every domain it spans, joined by its id. */
const historyAllDomains = (ctx: Ctx, v: ClientValues & { wide?: boolean }, id: string) =>
  ctx.withClient(v, async (c) => {
    type Row = { domain: string; stream: string; position: string; event: { type: string; time: string; actor: string; version: number; data: Record<string, unknown> } };
    const r = must(await c.query<{ events: Row[]; domains: Record<string, string> }>('history', { id, allDomains: true }));
    ctx.out(v, r, () =>
      [
        table(
          ['domain', 'time', 'stream', 'v', 'event', 'actor', 'detail'],
          r.events.map((x) => {
            const { type: _t, ...d } = x.event.data;
            const detail = JSON.stringify(d);
            return [x.domain, x.event.time, x.stream, x.event.version, x.event.type, x.event.actor, v.wide || detail.length <= 80 ? detail : detail.slice(0, 77) + '...'];
          }),
        ),
        `domains: ${Object.entries(r.domains).map(([d, st]) => `${d} ${st}`).join('; ')}`,
      ].join('\n'),
    );
  });

export const history = defineCommand({
  name: 'history',
  group: 'use',
  usage: ['nsm history ID [--wide] [--all-domains]'],
  description: `
Every event of the connection, endpoint, service, node, address pool or failed workflow step (by
its log position) with that id or name, in log order: position, time, stream, version, type,
actor, correlation and causation ids and the event's data. With --json, the full envelopes.`,
  flags: {
    wide: bool('whole ids and details, not cut to fit'),
    'all-domains': bool("a federated connection's events in every domain it spans, joined by its id (docs/federation.md)"),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [id] }, ctx) {
    if (!id) fail(`missing ID; ${ctx.seeHelp}`);
    if (v['all-domains']) return historyAllDomains(ctx, v, id!);
    await ctx.withClient(v, async (c) => {
      const rows = must(await c.queryAll<{ stream: string; position: string; event: { type: string; time: string; actor: string; version: number; correlationId: string; causationId: string; data: Record<string, unknown> } }>('history', { id }));
      const short = (s: string) => (v.wide ? s : s.slice(0, 12));
      ctx.out(v, rows, () =>
        table(
          ['position', 'time', 'stream', 'v', 'event', 'actor', 'correlation', 'causation', 'detail'],
          rows.map((r) => {
            const { type: _t, ...d } = r.event.data;
            const detail = JSON.stringify(d);
            return [r.position, r.event.time, r.stream, r.event.version, r.event.type, r.event.actor, short(r.event.correlationId), short(r.event.causationId), v.wide || detail.length <= 90 ? detail : detail.slice(0, 87) + '...'];
          }),
        ),
      );
    });
  },
});
