// nsm agent: a node agent (node-agent/) against a running mesh.
import { join } from 'node:path';
import { defaultDataDir } from '../../client/index.ts';
import { runAgent } from '../../runtime/processes.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, defaultNode, identitiesOf, processAccess } from '../kit.ts';
import { agentFlags, agentOptions, common, dataplaneFlag, metricsFlags, metricsOptions, netnsDirFlag, netnsDirsOption, nodeFlag, processSecurityFlags, str } from '../options.ts';

export const agent = defineCommand({
  name: 'agent',
  group: 'run',
  usage: [
    'nsm agent --node NAME [--server URL] [--domain D] [--dataplane simulated|linux]',
    '          [--netns NODE_NS] [--underlay ADDR] [--external-address ADDR] [--state-dir DIR] [--liveness-interval 2s]',
    '          [--heartbeat 5s] [--creds FILE] [--identities FILE] [--insecure] [--netns-dir DIR]...',
    '          [--metrics-port N [--metrics-host ADDR]]   (/metrics without a token; docs/observability.md)',
  ],
  description: `
A node agent: joins the node, reconciles its dataplane with what the control plane wants for the
node, then carries out the node's commands and heartbeats. Needs a control plane (it waits for
one). It connects with the node's agent credentials (--creds, NSM_CREDS, or the deployment's
creds/agent-<node>.creds), or without any with --insecure. Runs until SIGTERM, SIGINT or SIGHUP.
The linux dataplane needs root: see docs/dataplane.md.`,
  flags: {
    node: nodeFlag('the node this agent serves'),
    creds: { ...common.creds, help: "credentials of the node's agent identity", defaultText: "the deployment's creds/agent-<node>.creds; none: refused unless --insecure" },
    dataplane: dataplaneFlag('simulated'),
    netns: str('NODE_NS', 'the network namespace that is the node (the test lab runs several nodes on one host)', { defaultText: "the agent's own" }),
    underlay: str('ADDR', 'the address other nodes reach this one at; without one, only same-node connections are offered', { defaultText: 'the source address of the default route' }),
    'external-address': str('ADDR', 'where nodes of other domains reach this node (NAT); its own domain uses --underlay'),
    'state-dir': str('DIR', "where the node's WireGuard key lives", { defaultText: '<data dir of the domain>/agent-<node>' }),
    ...agentFlags,
    ...metricsFlags,
    ...processSecurityFlags,
    ...netnsDirFlag,
  },
  common: ['server', 'tls-ca', 'domain'],
  longRunning: true,
  async run({ values: v }, ctx) {
    const domain = checkDomain(v.domain ?? defaultDomain());
    const node = ctx.checkName('--node', v.node ?? defaultNode());
    const access = processAccess(ctx, v, domain, 'agent', node);
    await runAgent({
      agent: agentOptions(v),
      access,
      ...identitiesOf(v, access, domain),
      domain,
      node,
      dataplane: v.dataplane ?? 'simulated',
      ...(v.netns ? { netns: v.netns } : {}),
      ...(v.underlay ? { underlay: v.underlay } : {}),
      stateDir: v['state-dir'] ?? join(defaultDataDir(domain), `agent-${node}`),
      ...(v['external-address'] ? { externalAddress: v['external-address'] } : {}),
      ...netnsDirsOption(v),
      ...metricsOptions(v),
    });
  },
});
