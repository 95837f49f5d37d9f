// nsm audit verify|export: the log's integrity checked, or exported for a SIEM (docs/audit.md).
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import * as E from 'fp-ts/lib/Either.js';
import { jetStreamSealStore } from '../../../infra/nats/seals.ts';
import { exportRange, verifyExportFile, verifyStore } from '../../audit/audit.ts';
import { ExportFileError } from '../../audit/exportFile.ts';
import { describeFinding, type VerifyReport } from '../../audit/verify.ts';
import { defineCommand } from '../command.ts';
import { bound, jsonText, openLog, type Foreign } from '../eventLog.ts';
import { fail, type Ctx } from '../kit.ts';
import { CLIENT_OPTIONS, str } from '../options.ts';
import { progressBar, rate } from '../render/progress.ts';

const reportVerify = (ctx: Ctx, v: { json?: boolean }, r: VerifyReport) => {
  if (v.json) ctx.print(jsonText(r));
  else {
    const c = r.counts;
    const summary = `${c.commits} commits (${c.events} events) in ${c.streams} streams, positions ${r.firstPosition ?? '-'}..${r.lastPosition ?? '-'}; ${c.sealed} sealed by ${c.seals} seal${c.seals === 1 ? '' : 's'}, ${c.unsealed} not sealed yet`;
    if (r.ok) ctx.print(`audit verify: OK: ${summary}`);
    else {
      const first = r.findings[0]!;
      ctx.print(`audit verify: BROKEN: first broken link: ${describeFinding(first)}`);
      const total = r.findings.length + r.moreFindings;
      if (total > 1) ctx.print(`${total} problems in all (--json lists every one):\n${r.findings.slice(1, 20).map((f) => `  ${describeFinding(f)}`).join('\n')}${total > 20 ? '\n  ...' : ''}`);
      ctx.print(summary);
    }
    if (c.unchained > 0) ctx.print(`note: ${c.unchained} commits were written before hash chaining (first at position ${r.firstUnchained}); they are protected by seals only${c.sealed > 0 ? '' : ', and none is sealed'}`);
  }
  if (!r.ok) fail(`integrity check failed (${r.findings.length + r.moreFindings} problems)`);
};

export const audit = defineCommand({
  name: 'audit',
  group: 'audit',
  usage: [
    'nsm audit verify [--file EXPORT.jsonl]        check hashes, chains and seals; names the first broken link',
    'nsm audit export [--since T] [--until T] [--format jsonl] [--output FILE]',
  ],
  description: `
verify checks the log read straight from JetStream (or an export file) against its hash chains
and seals: it prints OK with the counts, or BROKEN with the first broken link, and exits 1 with
"integrity check failed (N problems)". export writes the log's commits and seals between two
moments as JSON Lines, to the file or stdout, streaming; a summary line goes to stderr. T is an
ISO time or a log position (--since 1: from the beginning). See docs/audit.md.`,
  flags: {
    file: str('EXPORT.jsonl', 'verify: check this export file instead of the live log'),
    since: str('T', 'export: from this time or log position', { defaultText: 'the beginning of the log' }),
    until: str('T', 'export: up to this time or log position', { defaultText: 'the end of the log when the export starts' }),
    format: str('FORMAT', 'export: the output format', { choices: ['jsonl'], defaultText: 'jsonl' }),
    output: str('FILE', 'export: write to FILE', { short: 'o', defaultText: 'stdout' }),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [verb] }, ctx) {
    if (verb === 'verify') {
      if (v.file) {
        try {
          return reportVerify(ctx, v, await verifyExportFile(v.file));
        } catch (e) {
          if (e instanceof ExportFileError || (e as NodeJS.ErrnoException).code === 'ENOENT') fail((e as Error).message);
          throw e;
        }
      }
      return await ctx.withClient(v, async (c) => {
        const foreign = new Map<bigint, Foreign>();
        const store = await openLog(ctx, c, (f) => foreign.set(f.position, f));
        const r = await verifyStore(store, await jetStreamSealStore(c.nc, c.subjects, { create: false }), { foreign: () => [...foreign.values()] });
        if (E.isLeft(r)) fail(r.left);
        if (E.isRight(r)) reportVerify(ctx, v, r.right);
      });
    }
    if (verb === 'export') {
      if ((v.format ?? 'jsonl') !== 'jsonl') fail(`--format ${JSON.stringify(v.format)}: only jsonl is supported`);
      const since = bound(v.since, '--since');
      const until = bound(v.until, '--until');
      return await ctx.withClient(v, async (c) => {
        const store = await openLog(ctx, c);
        const out = v.output ? createWriteStream(v.output) : ctx.io.stdout;
        const bar = progressBar('exporting', ctx.io.stderr);
        const started = Date.now();
        const r = await exportRange(store, await jetStreamSealStore(c.nc, c.subjects, { create: false }), {
          domain: c.subjects.domain,
          out,
          ...(since ? { since } : {}),
          ...(until ? { until } : {}),
          onProgress: (p) => bar.update(Number(p.position), Number(p.to), `${p.events} events, ${rate(p.events, (Date.now() - started) / 1000)} events/s`),
        });
        bar.done();
        if (v.output) {
          out.end();
          await once(out, 'finish');
        }
        if (E.isLeft(r)) fail(r.left);
        if (E.isRight(r)) {
          const s = (Date.now() - started) / 1000;
          ctx.warn(`exported ${r.right.commits} commits (${r.right.events} events, positions ${r.right.from}..${r.right.to}) and ${r.right.seals} seals in ${s.toFixed(1)} s, ${rate(r.right.events, s)} events/s${v.output ? ` to ${v.output}` : ''}`);
        }
      });
    }
    fail(`unknown "nsm audit ${verb ?? ''}"; use verify or export`);
  },
});
