// nsm endpoint register|unregister, and nsm endpoint run (its own flags: ./endpoint-run.ts).
import { prefixFields, splitServiceRef } from '../../contracts/commands.ts';
import { defineCommand } from '../command.ts';
import { defaultNode, fail, must } from '../kit.ts';
import { CLIENT_OPTIONS, dnsField, endpointFlags } from '../options.ts';
import { parseDuration, parseLabels } from '../parse.ts';
import { endpointRun } from './endpoint-run.ts';

export const endpoint = defineCommand({
  name: 'endpoint',
  group: 'use',
  usage: [
    'nsm endpoint register NAME --service SVC[@FLOATING] [--service ...]... [--label k=v]... [--node N]',
    '                      [--prefix CIDR]... [--exclude CIDR]... [--expiration 60s] [--netns NS]',
    'nsm endpoint unregister NAME',
  ],
  description: `
Registers a network service endpoint (NSE) in the registry, or unregisters it. Without
--expiration the registration is static; with it, it lapses unless registered again in time (nsm
endpoint run does that for a process that serves). --prefix may be IPv4 or IPv6; give one of each
(--prefix fd00:10::/64 --prefix 10.60.0.0/24) for dual-stack connections. A bad prefix is refused
with the reason, e.g. "body.prefix: "10.0.0.1/24" has host bits set; did you mean 10.0.0.0/24?".`,
  flags: { ...endpointFlags, expiration: { ...endpointFlags.expiration, defaultText: 'none: a static registration' } },
  common: CLIENT_OPTIONS,
  subcommands: { run: endpointRun },
  async run({ values: v, positionals: [verb, name] }, ctx) {
    const ep = ctx.checkName('endpoint name', name);
    if (verb === 'unregister') return ctx.send(v, 'endpoint.unregister', { name: ep }, `endpoint ${ep} unregistered`);
    if (verb !== 'register') fail(`unknown "nsm endpoint ${verb ?? ''}"; use register, unregister or run`);
    const services = (v.service ?? fail('endpoint register needs at least one --service')).map((x) => ctx.checkServiceRef('--service', x));
    const labels = must(parseLabels(v.label ?? []));
    return ctx.send(
      v,
      'endpoint.register',
      {
        name: ep,
        networkServiceNames: services,
        networkServiceLabels: Object.fromEntries(services.map((s) => [splitServiceRef(s).service, { labels }])),
        node: ctx.checkName('--node', v.node ?? defaultNode()),
        ...prefixFields(v.prefix),
        ...(v.exclude ? { excludedPrefixes: v.exclude } : {}),
        ...(v.netns ? { netns: v.netns } : {}),
        ...dnsField(v),
        ...(v.expiration ? { expirationSeconds: Math.ceil(must(parseDuration(v.expiration, '--expiration'))) } : {}),
      },
      `endpoint ${ep} registered`,
    );
  },
});
