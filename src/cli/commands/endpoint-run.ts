// nsm endpoint run KIND: a network service endpoint as a process, until Ctrl-C (src/runtime/endpointProcess.ts).
import { ENDPOINT_KINDS, EndpointRunError, runEndpoint, type EndpointKind } from '../../runtime/endpointProcess.ts';
import { defineCommand } from '../command.ts';
import { defaultNode, fail, must } from '../kit.ts';
import { CLIENT_OPTIONS, dataplaneFlag, dnsField, endpointFlags, str } from '../options.ts';
import { parseDuration, parseLabels } from '../parse.ts';

export const endpointRun = defineCommand({
  name: 'endpoint run',
  group: 'run',
  usage: [
    'nsm endpoint run icmp-responder --name N --service SVC [--service SVC]... --netns NS [--prefix CIDR]...',
    '          [--exclude CIDR]... [--label k=v]... [--expiration 60s] [--node N] [--dataplane linux|simulated]',
  ],
  description: `
Runs an endpoint until Ctrl-C or SIGTERM: on the linux dataplane it creates the named namespace if
missing (and deletes it at exit only if it created it) and brings loopback up; it registers with
the namespace, refreshes the registration every third of --expiration, logs the connections it
serves, and unregisters when stopped. icmp-responder: the kernel in the endpoint's namespace
answers ping on the addresses the agent puts there. See docs/dataplane.md.`,
  flags: {
    name: str('N', "the endpoint's name"),
    ...endpointFlags,
    netns: { ...endpointFlags.netns, help: 'the network namespace that answers (needed with the linux dataplane)' },
    expiration: { ...endpointFlags.expiration, help: 'the registration lapses unless refreshed within this; refreshed every third of it (at least 3s)', defaultText: '60s' },
    dataplane: dataplaneFlag('linux'),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [kind] }, ctx) {
    if (!ENDPOINT_KINDS.includes(kind as EndpointKind)) fail(`nsm endpoint run ${kind ?? ''}: expected one of ${ENDPOINT_KINDS.join(', ')}`);
    const dataplane = v.dataplane ?? 'linux';
    if (dataplane !== 'linux' && dataplane !== 'simulated') fail(`--dataplane ${JSON.stringify(dataplane)}: expected linux or simulated`);
    if (dataplane === 'linux' && !v.netns) fail('nsm endpoint run needs --netns NS with the linux dataplane (the namespace that answers)');
    const expiration = v.expiration ? must(parseDuration(v.expiration, '--expiration')) : 60;
    if (expiration < 3) fail('--expiration must be at least 3s (the registration is refreshed every third of it)');
    await ctx.withClient(v, async (c) => {
      try {
        await runEndpoint(c, {
          kind: kind as EndpointKind,
          name: ctx.checkName('--name', v.name),
          services: (v.service ?? fail('nsm endpoint run needs at least one --service')).map((s) => ctx.checkServiceRef('--service', s)),
          labels: must(parseLabels(v.label ?? [])),
          node: ctx.checkName('--node', v.node ?? defaultNode()),
          ...(v.prefix ? { prefixes: v.prefix } : {}),
          ...(v.exclude ? { excludedPrefixes: v.exclude } : {}),
          ...dnsField(v),
          expirationSeconds: Math.ceil(expiration),
          netns: v.netns ?? '',
          dataplane: dataplane as 'linux' | 'simulated',
        });
      } catch (e) {
        if (e instanceof EndpointRunError) fail(e.message);
        throw e;
      }
    });
  },
});
