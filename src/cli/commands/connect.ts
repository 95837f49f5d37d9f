// nsm connect: ask for a connection to a network service, optionally wait for it and hold it.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { MeshClient } from '../../client/index.ts';
import { defineCommand } from '../command.ts';
import { defaultNode, fail, must, type Ctx } from '../kit.ts';
import { bool, CLIENT_OPTIONS, common, nodeFlag, str, strs } from '../options.ts';
import { parseDuration, parseLabels } from '../parse.ts';
import { sleep } from '../../lib/time.ts';

/** Refreshes the connection every third of its expiration until SIGINT/SIGTERM, then closes it. */
const holdConnection = (ctx: Ctx, c: MeshClient, id: string, expirationSeconds: number): Promise<void> =>
  new Promise((resolve) => {
    ctx.warn(`holding ${id}: refreshing every ${Math.round(expirationSeconds / 3)} s; Ctrl-C closes it`);
    const timer = setInterval(async () => {
      const r = await c.send('connection.refresh', { connectionId: id, expirationSeconds });
      if (E.isLeft(r)) ctx.warn(`refresh failed (will retry): ${r.left.message}`);
    }, (expirationSeconds * 1000) / 3);
    const done = async () => {
      clearInterval(timer);
      const r = await c.send('connection.close', { connectionId: id, reason: 'the holding client stopped' });
      ctx.warn(E.isLeft(r) ? `close failed: ${r.left.message}` : `connection ${id} closed`);
      resolve();
    };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, done);
  });

export const connect = defineCommand({
  name: 'connect',
  group: 'use',
  usage: [
    'nsm connect SVC[@DOMAIN] [--label k=v]... [--node N] [--netns NS] [--interface IF] [--mechanism M]...',
    '            [--id ID] [--wait] [--timeout 30s] [--expiration D [--hold]]',
  ],
  description: `
Requests a connection to the network service SVC (SVC@DOMAIN: a service of another domain, or of
a floating registry; docs/federation.md) for a client on --node with the client's labels. Without
--wait it prints the connection id as soon as the request is accepted. With --wait it waits until
the connection is established or has failed and prints "ID established via ENDPOINT (CLIENT_ADDR
-> ENDPOINT_ADDR)", or exits 1 with "connection ID failed: REASON"; with --json it prints the
whole connection. --hold keeps the connection alive by refreshing it until Ctrl-C, then closes it.`,
  flags: {
    label: strs('k=v', "the client's labels (repeatable or comma separated)"),
    node: nodeFlag("the client's node"),
    netns: str('NS', "the workload's network namespace (linux dataplane; must exist)"),
    interface: str('IF', "the interface's name in the workload's namespace", { defaultText: 'nsm<id>' }),
    mechanism: strs('M', 'a mechanism, in order of preference (repeatable)', { choices: ['kernel', 'vxlan', 'wireguard'] }),
    id: str('ID', "the connection's id; one already in use is refused", { defaultText: 'a random UUID' }),
    wait: bool('wait until the connection is established or has failed'),
    timeout: { ...common.timeout, help: "how long to wait for the control plane's answer, and with --wait or --hold for the connection", defaultText: '30s with --wait or --hold, else 10s' },
    expiration: str('DURATION', 'the connection expires unless refreshed within this (nsm refresh)', { defaultText: 'none: it lasts until closed' }),
    hold: bool('keep refreshing the connection (needs --expiration) until Ctrl-C, then close it'),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [svc] }, ctx) {
    const service = ctx.checkServiceRef('network service', svc);
    const expirationSeconds = v.expiration ? Math.ceil(must(parseDuration(v.expiration, '--expiration'))) : undefined;
    if (v.hold && expirationSeconds === undefined) fail('--hold keeps a connection alive by refreshing it: give it an --expiration too');
    const id = v.id ?? randomUUID();
    const waitMs = v.timeout ? must(parseDuration(v.timeout, '--timeout')) * 1000 : 30000;
    await ctx.withClient(v, async (c) => {
      const mechanisms = (v.mechanism ?? []).map((m) => (['kernel', 'vxlan', 'wireguard'].includes(m) ? m : fail(`--mechanism ${JSON.stringify(m)}: expected kernel, vxlan or wireguard`)));
      must(
        await c.send('connection.request', {
          connectionId: id,
          networkService: service,
          clientNode: ctx.checkName('--node', v.node ?? defaultNode()),
          labels: must(parseLabels(v.label ?? [])),
          ...(v.netns ? { clientNetns: v.netns } : {}),
          ...(v.interface ? { clientInterface: v.interface } : {}),
          ...(mechanisms.length > 0 ? { mechanismPreferences: mechanisms as ('kernel' | 'vxlan' | 'wireguard')[] } : {}),
          ...(expirationSeconds !== undefined ? { expirationSeconds } : {}),
        }),
      );
      if (!v.wait && !v.hold) return ctx.out(v, { id, state: 'requested' }, () => id);
      const settled = must(await c.waitForConnection(id, waitMs));
      // The settling event can reach us before the queried read model has folded it.
      let conn = must(await c.query<Record<string, unknown>>('connection', { id }));
      for (let i = 0; i < 50 && conn.state !== settled.state; i++) {
        await sleep(100);
        conn = must(await c.query<Record<string, unknown>>('connection', { id }));
      }
      if (settled.state !== 'established') {
        if (v.json) ctx.out(v, conn, () => '');
        fail(`connection ${id} ${settled.state}: ${settled.reason ?? 'no reason given'}`);
      }
      const cx = conn.context as { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] } } | undefined;
      ctx.out(v, conn, () => `${id} established via ${String(conn.networkServiceEndpointName)} (${cx?.ipContext.srcIpAddrs.join(',')} -> ${cx?.ipContext.dstIpAddrs.join(',')})`);
      if (v.hold) await holdConnection(ctx, c, id, expirationSeconds!);
    });
  },
});
