// nsm up: a whole mesh in one process (nats-server, control plane, HTTP API, a node agent).
import { readFileSync } from 'node:fs';
import { defaultDataDir, env } from '../../client/index.ts';
import { checkLeafUrl } from '../../../infra/nats/leafnodes.ts';
import { runUp } from '../../runtime/processes.ts';
import { chooseStore } from '../../runtime/storeChoice.ts';
import { optionsOf } from '../args.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, defaultNode, fail, must, port } from '../kit.ts';
import {
  agentFlags,
  agentOptions,
  bool,
  dataplaneFlag,
  federationFlags,
  federationOptions,
  healingFlags,
  healingOptions,
  httpHostFlag,
  metricsFlags,
  metricsOptions,
  msFlag,
  netnsDirFlag,
  netnsDirsOption,
  nodeFlag,
  storeFlags,
  str,
  strs,
  type Flags,
} from '../options.ts';

const flags = {
  'data-dir': str('DIR', "the mesh's JetStream store, nats-server configuration, log and pid file, and the deployment", { env: 'XDG_DATA_HOME', defaultText: '$XDG_DATA_HOME/nsm/<domain>, else ~/.local/share/nsm/<domain>' }),
  'nats-port': str('N', "nats-server's client port (127.0.0.1); refused at once when in use", { defaultText: '4222' }),
  'http-port': str('N', 'the HTTP API (HTTPS with the deployment\'s certificate unless --insecure)', { defaultText: '8080' }),
  ...httpHostFlag,
  ...metricsFlags,
  node: nodeFlag("this process's node (its agent's)"),
  dataplane: dataplaneFlag('simulated'),
  underlay: str('ADDR', 'the address other nodes reach this one at', { defaultText: 'the source address of the default route' }),
  insecure: bool('no authentication, no TLS, no path tokens (development); says so when it starts'),
  host: strs('H', "names and addresses of the server certificate, when nsm up creates the deployment (repeatable or comma separated)", { defaultText: '127.0.0.1,localhost' }),
  'token-lifetime': str('DURATION', 'lifetime of the path tokens of connections without an expiration', { defaultText: '24h' }),
  ...healingFlags,
  ...agentFlags,
  ...storeFlags,
  ...netnsDirFlag,
  config: str('FILE', 'these options as a JSON object keyed by flag name ({"domain": "b", "join": "nats-leaf://hub:7422"}); flags given win'),
  'leaf-port': str('P', 'this cluster is a federation hub: nats-server listens for leafnode links on P'),
  join: strs('URL', 'join a hub: nats-leaf://HOST:P (repeatable; one --leaf-creds per --join, in order, when authenticated)'),
  'leaf-creds': strs('FILE', 'the leaf credentials a hub gave this domain (nsm init --peers on the hub)'),
  ...federationFlags,
  'external-address': str('ADDR', 'where nodes of other domains reach this node (NAT); its own domain uses --underlay'),
  'cluster-node': str('K', "run server K of the deployment's NATS cluster (nsm init --cluster N) instead of a server of its own; docs/operations.md"),
  'no-control-plane': bool('with --cluster-node: run no control plane here (the server, and the agent unless --no-agent)'),
  'no-agent': bool('with --cluster-node: run no node agent here'),
} as const;

/**
 * `nsm up --config FILE`: the same options as the flags, as a JSON object keyed by flag name
 * ({"domain": "b", "join": "nats-leaf://hub:7422", "tunnel-ids": "1000-1999"}). Flags given on
 * the command line come after, so they win.
 */
const configArgs = (file: string, known: Flags): string[] => {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail(`--config ${file}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail(`--config ${file}: expected a JSON object keyed by option name`);
  return Object.entries(raw as Record<string, unknown>).flatMap(([k, val]) => {
    const opt = Object.hasOwn(known, k) ? known[k] : undefined;
    if (!opt || k === 'config') return fail(`--config ${file}: unknown option "${k}"; see nsm up --help`);
    if (opt.type === 'boolean') return val === true ? [`--${k}`] : val === false ? [] : fail(`--config ${file}: "${k}" must be true or false`);
    const values = Array.isArray(val) ? val : [val];
    if (values.length > 1 && !opt.multiple) return fail(`--config ${file}: "${k}" takes one value`);
    return values.flatMap((x) => (typeof x === 'string' || typeof x === 'number' ? [`--${k}`, String(x)] : fail(`--config ${file}: "${k}" must be a string or number`)));
  });
};

export const up = defineCommand({
  name: 'up',
  group: 'run',
  usage: [
    'nsm up [--data-dir DIR] [--nats-port N] [--http-port N] [--http-host ADDR] [--domain D] [--node NAME] [--dataplane simulated|linux]',
    '       [--underlay ADDR] [--node-timeout 15s] [--down-grace 5m] [--liveness-interval 2s] [--heartbeat 5s]',
    '       [--store jetstream|esdb] [--esdb-url URL] [--insecure] [--host H]... [--token-lifetime 24h]',
    "       [--netns-dir DIR]... (paths a workload's --netns may name besides /run/netns; default none)",
    '       [--metrics-port N [--metrics-host ADDR]] (/metrics without a token; docs/observability.md)',
    '       [--config FILE]      (the same options as a JSON object keyed by flag name)',
    '  federation (docs/federation.md): [--leaf-port P] [--join nats-leaf://HOST:P]... [--tunnel-ids FROM-TO]',
    '       [--peer D]... [--peer-timeout 5s] [--registry-only] [--external-address ADDR] [--leaf-creds FILE]...',
    '  cluster (docs/operations.md): --cluster-node K [--no-control-plane] [--no-agent]',
  ],
  description: `
A whole single-node mesh in one process: nats-server as a child (JetStream, 127.0.0.1 only, its
store, configuration and log in the data dir), then the control plane, the HTTP API and a node
agent. Authenticated and over TLS unless --insecure: the first start creates the deployment's
identities in the data dir (as nsm init does). Runs until SIGTERM, SIGINT or SIGHUP, then stops
the parts in reverse order and exits 0; nats-server never outlives it. Starting it again on the
same data dir finds the mesh as it was left. See docs/cli.md#nsm-up.

--cluster-node K runs server K of the NATS cluster that nsm init --cluster planned in the data dir
(its configuration cluster/server-K/nats-server.conf, its store beside it) instead of a server of its
own, plus a control plane replica and the node's agent unless --no-control-plane / --no-agent. It
waits for a majority of the servers, saying so, then makes the mesh's streams with one replica per
server (what already exists is kept), and connects to every server of the cluster, failing over
between them. See docs/operations.md.`,
  flags,
  common: ['domain'],
  environment: {
    NSM_NATS_SERVER: 'the nats-server binary (default: nats-server on the PATH)',
    NSM_SETPRIV: 'the setpriv binary that ties nats-server to nsm up (default: setpriv; one that does not run selects a watchdog)',
  },
  longRunning: true,
  expand(args) {
    // Options from --config first: flags on the command line then win.
    const at = args.findIndex((a) => a === '--config' || a.startsWith('--config='));
    const file = at < 0 ? undefined : args[at]!.includes('=') ? args[at]!.slice('--config='.length) : args[at + 1];
    return file ? [...configArgs(file, optionsOf(flags)), ...args] : [...args];
  },
  async run({ values: v }, ctx) {
    const domain = checkDomain(v.domain ?? defaultDomain());
    const tokenLifetimeMs = msFlag(v['token-lifetime'], '--token-lifetime');
    const join = v.join?.flatMap((j) => j.split(',')).filter(Boolean);
    for (const url of join ?? []) {
      const bad = checkLeafUrl(url);
      if (bad) fail(`--join ${bad}`);
    }
    const leafPort = v['leaf-port'] !== undefined ? port(v['leaf-port'], '--leaf-port', 7422) : undefined;
    const fedOptions = federationOptions(v, leafPort !== undefined || (join?.length ?? 0) > 0);
    const clusterNode = v['cluster-node'] === undefined ? undefined : Number(v['cluster-node']);
    if (clusterNode !== undefined && !(Number.isInteger(clusterNode) && clusterNode >= 1)) fail(`--cluster-node ${JSON.stringify(v['cluster-node'])}: expected a server number, 1 to the cluster's size`);
    if (clusterNode === undefined && (v['no-control-plane'] || v['no-agent'])) fail('--no-control-plane and --no-agent go with --cluster-node');
    if (clusterNode !== undefined && v['nats-port'] !== undefined) fail("--nats-port: a cluster server's ports are in its configuration (nsm init --cluster ... --client-port)");
    await runUp({
      ...(clusterNode !== undefined ? { cluster: { node: clusterNode, controlPlane: !v['no-control-plane'], agent: !v['no-agent'] } } : {}),
      ...(fedOptions ? { federation: { options: fedOptions, ...(leafPort !== undefined ? { leafPort } : {}), ...(join ? { join } : {}), ...(v['leaf-creds'] ? { leafCreds: v['leaf-creds'] } : {}) } } : {}),
      ...(v['external-address'] ? { externalAddress: v['external-address'] } : {}),
      insecure: v.insecure ?? false,
      ...(v.host ? { hosts: v.host.flatMap((h) => h.split(',')).filter(Boolean) } : {}),
      ...(tokenLifetimeMs !== undefined ? { tokenLifetimeMs } : {}),
      healing: healingOptions(v),
      agent: agentOptions(v),
      domain,
      dataDir: v['data-dir'] ?? defaultDataDir(domain),
      natsPort: port(v['nats-port'], '--nats-port', 4222),
      httpPort: port(v['http-port'], '--http-port', 8080),
      ...(v['http-host'] ? { httpHost: v['http-host'] } : {}),
      node: ctx.checkName('--node', v.node ?? defaultNode()),
      dataplane: v.dataplane ?? 'simulated',
      store: must(chooseStore(v, env)),
      ...(v.underlay ? { underlay: v.underlay } : {}),
      ...netnsDirsOption(v),
      ...metricsOptions(v),
    });
  },
});
