// The flags of the nsm command line, each declared once with what the help shows: its value's
// name, its choices, its default and the environment variable behind that default. The parser
// (src/cli/args.ts) hands `type`, `multiple` and `short` to node:util parseArgs, which ignores
// the rest; the help (src/cli/render/help.ts) shows the rest. Choices are shown, not enforced
// here: each command checks its values and says what is wrong in its own words.
//
// Below: the option sets several commands share, and what their values turn into.
import * as E from 'fp-ts/lib/Either.js';
import { parseTunnelRange } from '../../aggregates/tunnelPool.ts';
import { checkNetnsDirs } from '../contracts/netnsRef.ts';
import type { FederationOptions } from '../runtime/federation.ts';
import { checkDomain, fail, must, port } from './kit.ts';
import { parseDuration } from './parse.ts';

export interface Flag {
  readonly type: 'string' | 'boolean';
  readonly multiple?: boolean;
  readonly short?: string;
  /** The value's name in the help: `--server URL`. */
  readonly value?: string;
  readonly help: string;
  /** The values the command accepts, for the help. */
  readonly choices?: readonly string[];
  /** The default, as the help shows it. */
  readonly defaultText?: string;
  /** The environment variable that gives the default. */
  readonly env?: string;
}
export type Flags = Readonly<Record<string, Flag>>;

interface More {
  readonly choices?: readonly string[];
  readonly defaultText?: string;
  readonly env?: string;
  readonly short?: string;
}
/** A flag that takes a value: `--server URL`. */
export const str = (value: string, help: string, more: More = {}) => ({ type: 'string', value, help, ...more }) as const;
/** A flag that takes a value and may be given again: `--label k=v...`. */
export const strs = (value: string, help: string, more: More = {}) => ({ type: 'string', multiple: true, value, help, ...more }) as const;
/** A switch: `--json`. */
export const bool = (help: string, more: More = {}) => ({ type: 'boolean', help, ...more }) as const;

/** Options every command accepts, also before the command (`nsm --server URL ls nodes`). */
export const common = {
  server: str('URL', 'the NATS server', { env: 'NSM_NATS_URL', defaultText: 'the URL nsm up recorded for the domain, else nats://127.0.0.1:4222' }),
  creds: str('FILE', 'credentials (nkey) of the identity to act as', { env: 'NSM_CREDS', defaultText: "the operator's, found without flags on the host of nsm init / nsm up; none: no authentication" }),
  'tls-ca': str('FILE', "the CA certificate of the NATS server's", { env: 'NSM_TLS_CA', defaultText: 'the CA in the credentials file' }),
  domain: str('D', 'the mesh domain: 1-32 lowercase letters, digits or "-"', { env: 'NSM_DOMAIN', defaultText: 'default' }),
  json: bool('print the result as JSON, for scripts'),
  actor: str('NAME', 'who you are on the record (with credentials it must agree with them)', { env: 'NSM_ACTOR', defaultText: "the credentials' identity, else user@host" }),
  timeout: str('DURATION', "how long to wait for the control plane's answer: 90, 90s, 5m, 1h, 500ms", { defaultText: '10s' }),
  help: bool("show this command's help", { short: 'h' }),
} as const;
export type CommonName = keyof typeof common;
/** The common options a command that talks to a running mesh uses. */
export const CLIENT_OPTIONS: readonly CommonName[] = ['server', 'creds', 'tls-ca', 'domain', 'actor', 'timeout', 'json'];

/** --node: the node a process serves or a client or endpoint is on. */
export const nodeFlag = (help: string) => str('NAME', help, { env: 'NSM_NODE', defaultText: 'the host name' });
/** --dataplane: what programs the node's kernel (docs/dataplane.md). */
export const dataplaneFlag = (defaultText: 'simulated' | 'linux') =>
  str('KIND', 'linux programs the kernel (veth, VXLAN, WireGuard; root); simulated records connections and programs nothing', { choices: ['simulated', 'linux'], defaultText });

/** Which event store a control plane uses (src/runtime/storeChoice.ts, docs/eventstoredb.md). */
export const storeFlags = {
  store: str('KIND', 'where the event log is kept', { choices: ['jetstream', 'esdb'], env: 'NSM_STORE', defaultText: 'jetstream' }),
  'esdb-url': str('URL', 'EventStoreDB connection string with --store esdb, e.g. esdb://127.0.0.1:2113?tls=false', { env: 'NSM_ESDB_URL' }),
} as const;

/** A mesh process's identity files, or none. */
export const processSecurityFlags = {
  identities: str('FILE', 'the identity registry (public keys and roles)', { env: 'NSM_IDENTITIES', defaultText: "identities.json beside the credentials' creds/ directory, else the deployment's" }),
  insecure: bool('no authentication, no TLS, no path tokens (development); says so when it starts'),
} as const;

/** Where the HTTP API listens: loopback unless asked; over TLS on an authenticated mesh (docs/security.md "HTTP API"). */
export const httpHostFlag = {
  'http-host': str('ADDR', 'the address the HTTP API listens on (HTTPS with the deployment\'s certificate unless --insecure)', { defaultText: '127.0.0.1' }),
} as const;

/** The opt-in metrics listener: /metrics in plaintext without a token (docs/observability.md). */
export const metricsFlags = {
  'metrics-port': str('N', 'also serve /metrics on this port, plaintext and without a token, for a Prometheus on this host (aggregate numbers only)', { defaultText: 'none' }),
  'metrics-host': str('ADDR', 'the address the --metrics-port listener listens on', { defaultText: '127.0.0.1' }),
} as const;

export const metricsOptions = (v: { 'metrics-port'?: string; 'metrics-host'?: string }) => {
  if (v['metrics-host'] !== undefined && v['metrics-port'] === undefined) fail('--metrics-host needs --metrics-port');
  return {
    ...(v['metrics-port'] !== undefined ? { metricsPort: port(v['metrics-port'], '--metrics-port', 0) } : {}),
    ...(v['metrics-host'] !== undefined ? { metricsHost: v['metrics-host'] } : {}),
  };
};

/** The control plane's healing timers (docs/healing.md). */
export const healingFlags = {
  'node-timeout': str('DURATION', 'a node without a heartbeat this long is lost', { defaultText: '15s' }),
  'down-grace': str('DURATION', 'connections down this long (their node or peer domain gone) are closed', { defaultText: '5m' }),
  'lease-ttl': str('DURATION', "the lease of the replica that runs the timers (at least 1s)", { defaultText: '10s' }),
} as const;

/** The node agent's probes and heartbeats (docs/healing.md). */
export const agentFlags = {
  'liveness-interval': str('DURATION', "how often the agent probes each connection's datapath", { defaultText: '2s' }),
  heartbeat: str('DURATION', 'how often the agent heartbeats (at least 100ms)', { defaultText: '5s' }),
} as const;

/** Federation (docs/federation.md): this domain's tunnel ids, its peers, whether it is a registry only. */
export const federationFlags = {
  'tunnel-ids': str('FROM-TO', "this domain's tunnel ids; federated domains take disjoint ranges", { defaultText: '0-19999' }),
  peer: strs('D', 'a peer domain this one deals with (repeatable or comma separated)'),
  'registry-only': bool('a floating registry: control plane and registry, no node, no agent'),
  'peer-timeout': str('DURATION', 'a peer domain silent this long is lost (at least 500ms)', { defaultText: '5s' }),
} as const;

/** --netns-dir DIR...: where else than /run/netns a workload's namespace may be named (src/contracts/netnsRef.ts). */
export const netnsDirFlag = {
  'netns-dir': strs('DIR', "a directory besides /run/netns whose namespace files a workload's or endpoint's --netns may name", { defaultText: 'none: named namespaces only' }),
} as const;

/** What an endpoint is registered with, by `nsm endpoint register` and `nsm endpoint run`. */
export const endpointFlags = {
  service: strs('SVC[@FLOATING]', 'a service it provides (repeatable; @FLOATING also registers it in that floating registry, docs/federation.md)'),
  label: strs('k=v', 'its labels, for each service (repeatable or comma separated)'),
  node: nodeFlag('the node the endpoint runs on'),
  prefix: strs('CIDR', 'a prefix the address pairs of its connections come from: IPv4 or IPv6, one per family (repeat for dual stack)', { defaultText: '169.254.0.0/16' }),
  exclude: strs('CIDR', 'a prefix never handed out (repeatable)'),
  expiration: str('DURATION', 'the registration expires unless refreshed within this'),
  netns: str('NS', 'the network namespace the endpoint side of each connection goes into'),
  'dns-server': strs('ADDR', 'a name server its clients get while connected: an address, or "endpoint" for its own address on each connection (repeatable, at most 3)'),
  'dns-search': strs('DOMAIN', 'a search domain its clients get with --dns-server (repeatable, at most 6)'),
} as const;

/** A service's DNS, offered to every connection after its endpoint's own. */
export const serviceDnsFlags = {
  'dns-server': strs('ADDR', 'a name server every connection to it gets (register): an address, or "endpoint" for the selected endpoint\'s address on each connection (repeatable, at most 3)'),
  'dns-search': strs('DOMAIN', 'a search domain every connection to it gets with --dns-server (register; repeatable, at most 6)'),
} as const;

/** --dns-server and --dns-search as the endpoint.register body's dns field. */
export const dnsField = (v: { 'dns-server'?: string[]; 'dns-search'?: string[] }): { dns?: { servers: string[]; searchDomains?: string[] } } => {
  const servers = v['dns-server']?.flatMap((x) => x.split(',')).filter(Boolean);
  const searches = v['dns-search']?.flatMap((x) => x.split(',')).filter(Boolean);
  if (!servers?.length) return searches?.length ? fail('--dns-search needs --dns-server') : {};
  return { dns: { servers, ...(searches?.length ? { searchDomains: searches } : {}) } };
};

/** A duration flag in milliseconds. */
export const msFlag = (v: string | undefined, flag: string) => (v === undefined ? undefined : Math.round(must(parseDuration(v, flag)) * 1000));

export const healingOptions = (v: { 'node-timeout'?: string; 'down-grace'?: string; 'lease-ttl'?: string }) => {
  const nodeTimeoutMs = msFlag(v['node-timeout'], '--node-timeout');
  const downGraceMs = msFlag(v['down-grace'], '--down-grace');
  const leaseTtlMs = msFlag(v['lease-ttl'], '--lease-ttl');
  if (leaseTtlMs !== undefined && leaseTtlMs < 1000) fail('--lease-ttl must be at least 1s');
  return {
    ...(nodeTimeoutMs !== undefined ? { nodeTimeoutMs } : {}),
    ...(downGraceMs !== undefined ? { downGraceMs } : {}),
    ...(leaseTtlMs !== undefined ? { leaseTtlMs } : {}),
  };
};

export const agentOptions = (v: { 'liveness-interval'?: string; heartbeat?: string }) => {
  const livenessIntervalMs = msFlag(v['liveness-interval'], '--liveness-interval');
  const heartbeatMs = msFlag(v.heartbeat, '--heartbeat');
  if (heartbeatMs !== undefined && heartbeatMs < 100) fail('--heartbeat must be at least 100ms');
  return { ...(livenessIntervalMs !== undefined ? { livenessIntervalMs } : {}), ...(heartbeatMs !== undefined ? { heartbeatMs } : {}) };
};

export const netnsDirsOption = (v: { 'netns-dir'?: string[] }) => (v['netns-dir'] ? { netnsDirs: must(checkNetnsDirs(v['netns-dir'])) } : {});

/** The federation options given, or undefined when none is (and `force` does not ask for federation anyway). */
export const federationOptions = (v: { 'tunnel-ids'?: string; peer?: string[]; 'registry-only'?: boolean; 'peer-timeout'?: string }, force = false): FederationOptions | undefined => {
  if (!force && v['tunnel-ids'] === undefined && v.peer === undefined && !v['registry-only'] && v['peer-timeout'] === undefined) return undefined;
  const peerTimeoutMs = msFlag(v['peer-timeout'], '--peer-timeout');
  if (peerTimeoutMs !== undefined && peerTimeoutMs < 500) fail('--peer-timeout must be at least 500ms');
  const peers = v.peer?.flatMap((p) => p.split(',')).filter(Boolean).map(checkDomain);
  return {
    ...(v['tunnel-ids'] !== undefined ? { tunnelIds: must(E.mapLeft((e: string) => `--tunnel-ids ${e}`)(parseTunnelRange(v['tunnel-ids']))) } : {}),
    ...(peers ? { peers } : {}),
    ...(v['registry-only'] ? { registryOnly: true } : {}),
    ...(peerTimeoutMs !== undefined ? { peerTimeoutMs } : {}),
  };
};
