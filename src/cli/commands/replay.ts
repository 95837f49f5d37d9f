// nsm replay --until: the whole mesh as of a moment, folded from the log (docs/audit.md).
import * as E from 'fp-ts/lib/Either.js';
import { meshAtView } from '../../read/queries.ts';
import { replayAt } from '../../read/replay.ts';
import { defineCommand } from '../command.ts';
import { bound, jsonText, openLog } from '../eventLog.ts';
import { fail } from '../kit.ts';
import { bool, CLIENT_OPTIONS, str } from '../options.ts';
import { progressBar } from '../render/progress.ts';
import { table } from '../render/table.ts';

export const replay = defineCommand({
  name: 'replay',
  group: 'audit',
  usage: ['nsm replay --until TIME|POSITION [--all]      the whole mesh as of that moment'],
  description: `
Folds the event log, read straight from JetStream, up to a moment and prints the mesh as it was
then: services, endpoints, connections, nodes. --until takes a log position (1234: the state after
that commit) or an ISO time (everything stored at or before that moment, by the JetStream
server's clock). It needs nothing but the log and works with the control plane down. With
--json: {position, until, time, services, endpoints, connections, nodes, addresses}.`,
  flags: {
    until: str('TIME|POSITION', 'the moment: an ISO time or a log position (required)'),
    all: bool('connections closed before the moment too'),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v }, ctx) {
    const until = bound(v.until, '--until') ?? fail('nsm replay needs --until TIME|POSITION (an ISO time or a log position)');
    await ctx.withClient(v, async (c) => {
      const store = await openLog(ctx, c);
      const bar = progressBar('replaying', ctx.io.stderr);
      const last = await store.lastPosition()();
      const total = E.isRight(last) ? Number(last.right) : 0;
      const r = await replayAt(store, until, { onBatch: (p) => bar.update(p.position, total, `${p.events} events`) });
      bar.done();
      if (E.isLeft(r)) fail(r.left);
      const at = E.isRight(r) ? r.right : fail('unreachable');
      const view = meshAtView(at, { includeClosed: v.all ?? false });
      if (v.json) return ctx.print(jsonText(view));
      const addr = (xs: string[] | undefined) => (xs ?? []).join(',');
      ctx.print(`mesh as of position ${view.position}${view.time ? ` (last change decided at ${view.time})` : ''}; asked for ${v.until}\n`);
      ctx.print(`SERVICES\n${table(['name', 'payload', 'matches'], view.services.map((s) => [s.name, s.payload, s.matches.length]))}\n`);
      ctx.print(`ENDPOINTS\n${table(['name', 'services', 'node', 'prefix', 'connections', 'expires'], view.endpoints.map((e) => [e.name, e.networkServiceNames.join(','), e.node, e.prefixes.join(','), e.connections, e.expirationTime]))}\n`);
      ctx.print(
        `CONNECTIONS${v.all ? '' : ' (closed ones with --all)'}\n${table(
          ['id', 'service', 'state', 'endpoint', 'client node', 'endpoint node', 'client addr', 'endpoint addr', 'actor'],
          view.connections.map((x) => [x.id, x.networkService, x.state, x.networkServiceEndpointName, x.clientNode, x.endpointNode, addr(x.context?.ipContext.srcIpAddrs as string[]), addr(x.context?.ipContext.dstIpAddrs as string[]), x.actor]),
        )}\n`,
      );
      ctx.print(`NODES\n${table(['name', 'dataplane', 'mechanisms', 'mtu', 'underlay'], view.nodes.map((n) => [n.name, n.dataplane, n.mechanisms.join(','), n.mtu, n.underlayAddress]))}`);
    });
  },
});
