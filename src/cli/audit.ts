// nsm replay, nsm audit verify|export, nsm projections rebuild. Replay, verify and export read
// the event log and the seals straight from JetStream (read-only): they answer with the control
// plane down, and verify checks what is stored rather than what a control plane says.
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { jetStreamSealStore } from '../../infra/nats/seals.ts';
import { exportRange, verifyExportFile, verifyStore } from '../audit/audit.ts';
import { ExportFileError } from '../audit/exportFile.ts';
import { parseBound, replayAt } from '../read/replay.ts';
import type { RebuildMessage } from '../runtime/audit.ts';
import type { RebuildStart } from '../read/snapshots.ts';
import { describeFinding, type VerifyReport } from '../audit/verify.ts';
import type { MeshClient } from '../client/index.ts';
import { meshAtView } from '../read/queries.ts';
import { common } from './options.ts';
import { progressBar, rate } from './render/progress.ts';
import { table } from './render/table.ts';

type Values = { server?: string; domain?: string; json?: boolean; actor?: string; timeout?: string };

export interface CliKit {
  readonly fail: (msg: string) => never;
  readonly withClient: <T>(v: Values, fn: (c: MeshClient) => Promise<T>) => Promise<T>;
}

const print = (text: string) => process.stdout.write(text + '\n');
const json = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2);

export const auditCommands = (kit: CliKit): Record<string, (args: string[]) => Promise<void>> => {
  const { fail } = kit;
  const parse = <O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) => {
    try {
      return parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
    } catch (e) {
      return fail(`${(e as Error).message.replace(/^Unknown option/, 'unknown option').split('. ')[0]}; see nsm --help`);
    }
  };
  const bound = (text: string | undefined, flag: string) => {
    if (text === undefined) return undefined;
    const b = parseBound(text, flag);
    return E.isRight(b) ? b.right : fail(b.left);
  };
  /** A message of the log that is not a commit is stepped over; verify reports it, the others say so on stderr. */
  type Foreign = { readonly position: bigint; readonly reason: string };
  const warnForeign = (f: Foreign) =>
    process.stderr.write(`nsm: position ${f.position} of the log is not a commit (${f.reason}): stepped over; nsm audit verify reports it\n`);
  const openLog = async (c: MeshClient, onForeign: (f: Foreign) => void = warnForeign) => {
    try {
      return await jetStreamEventStore(c.nc, c.subjects, { create: false, onForeign });
    } catch (e) {
      return fail((e as Error).message);
    }
  };

  const reportVerify = (v: Values, r: VerifyReport) => {
    if (v.json) print(json(r));
    else {
      const c = r.counts;
      const summary = `${c.commits} commits (${c.events} events) in ${c.streams} streams, positions ${r.firstPosition ?? '-'}..${r.lastPosition ?? '-'}; ${c.sealed} sealed by ${c.seals} seal${c.seals === 1 ? '' : 's'}, ${c.unsealed} not sealed yet`;
      if (r.ok) print(`audit verify: OK: ${summary}`);
      else {
        const first = r.findings[0]!;
        print(`audit verify: BROKEN: first broken link: ${describeFinding(first)}`);
        const total = r.findings.length + r.moreFindings;
        if (total > 1) print(`${total} problems in all (--json lists every one):\n${r.findings.slice(1, 20).map((f) => `  ${describeFinding(f)}`).join('\n')}${total > 20 ? '\n  ...' : ''}`);
        print(summary);
      }
      if (c.unchained > 0) print(`note: ${c.unchained} commits were written before hash chaining (first at position ${r.firstUnchained}); they are protected by seals only${c.sealed > 0 ? '' : ', and none is sealed'}`);
    }
    if (!r.ok) fail(`integrity check failed (${r.findings.length + r.moreFindings} problems)`);
  };

  return {
    async replay(args) {
      const { values: v } = parse(args, { until: { type: 'string' }, all: { type: 'boolean' } });
      const until = bound(v.until, '--until') ?? fail('nsm replay needs --until TIME|POSITION (an ISO time or a log position)');
      await kit.withClient(v, async (c) => {
        const store = await openLog(c);
        const bar = progressBar('replaying');
        const last = await store.lastPosition()();
        const total = E.isRight(last) ? Number(last.right) : 0;
        const r = await replayAt(store, until, { onBatch: (p) => bar.update(p.position, total, `${p.events} events`) });
        bar.done();
        if (E.isLeft(r)) fail(r.left);
        const at = E.isRight(r) ? r.right : fail('unreachable');
        const view = meshAtView(at, { includeClosed: v.all ?? false });
        if (v.json) return print(json(view));
        const addr = (xs: string[] | undefined) => (xs ?? []).join(',');
        print(`mesh as of position ${view.position}${view.time ? ` (last change decided at ${view.time})` : ''}; asked for ${v.until}\n`);
        print(`SERVICES\n${table(['name', 'payload', 'matches'], view.services.map((s) => [s.name, s.payload, s.matches.length]))}\n`);
        print(`ENDPOINTS\n${table(['name', 'services', 'node', 'prefix', 'connections', 'expires'], view.endpoints.map((e) => [e.name, e.networkServiceNames.join(','), e.node, e.prefix, e.connections, e.expirationTime]))}\n`);
        print(
          `CONNECTIONS${v.all ? '' : ' (closed ones with --all)'}\n${table(
            ['id', 'service', 'state', 'endpoint', 'client node', 'endpoint node', 'client addr', 'endpoint addr', 'actor'],
            view.connections.map((x) => [x.id, x.networkService, x.state, x.networkServiceEndpointName, x.clientNode, x.endpointNode, addr(x.context?.ipContext.srcIpAddrs as string[]), addr(x.context?.ipContext.dstIpAddrs as string[]), x.actor]),
          )}\n`,
        );
        print(`NODES\n${table(['name', 'dataplane', 'mechanisms', 'mtu', 'underlay'], view.nodes.map((n) => [n.name, n.dataplane, n.mechanisms.join(','), n.mtu, n.underlayAddress]))}`);
      });
    },

    async audit(args) {
      const { values: v, positionals: [verb] } = parse(args, {
        file: { type: 'string' },
        since: { type: 'string' },
        until: { type: 'string' },
        format: { type: 'string' },
        output: { type: 'string', short: 'o' },
      });
      {
        if (verb === 'verify') {
          if (v.file) {
            try {
              return reportVerify(v, await verifyExportFile(v.file));
            } catch (e) {
              if (e instanceof ExportFileError || (e as NodeJS.ErrnoException).code === 'ENOENT') fail((e as Error).message);
              throw e;
            }
          }
          return await kit.withClient(v, async (c) => {
            const foreign = new Map<bigint, Foreign>();
            const store = await openLog(c, (f) => foreign.set(f.position, f));
            const r = await verifyStore(store, await jetStreamSealStore(c.nc, c.subjects, { create: false }), { foreign: () => [...foreign.values()] });
            if (E.isLeft(r)) fail(r.left);
            if (E.isRight(r)) reportVerify(v, r.right);
          });
        }
        if (verb === 'export') {
          if ((v.format ?? 'jsonl') !== 'jsonl') fail(`--format ${JSON.stringify(v.format)}: only jsonl is supported`);
          const since = bound(v.since, '--since');
          const until = bound(v.until, '--until');
          return await kit.withClient(v, async (c) => {
            const store = await openLog(c);
            const out = v.output ? createWriteStream(v.output) : process.stdout;
            const bar = progressBar('exporting');
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
              process.stderr.write(`exported ${r.right.commits} commits (${r.right.events} events, positions ${r.right.from}..${r.right.to}) and ${r.right.seals} seals in ${s.toFixed(1)} s, ${rate(r.right.events, s)} events/s${v.output ? ` to ${v.output}` : ''}\n`);
            }
          });
        }
        fail(`unknown "nsm audit ${verb ?? ''}"; use verify or export`);
      }
    },

    async projections(args) {
      const { values: v, positionals: [verb] } = parse(args, {});
      if (verb !== 'rebuild') fail(`unknown "nsm projections ${verb ?? ''}"; use rebuild`);
      await kit.withClient(v, async (c) => {
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
          if (!start.started && !v.json) process.stderr.write(`a rebuild is already running (${start.id}); following it\n`);
          const bar = progressBar('rebuilding');
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
              else if (v.json) print(json(msg));
              else print(`rebuilt ${msg.events} events (${msg.commits} commits) in ${msg.seconds.toFixed(2)} s, ${Math.round(msg.eventsPerSecond)} events/s; swapped in at position ${msg.swappedAt}`);
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
  };
};
