// Long-running processes: a whole single-node mesh (`nsm up`), a control plane replica, an agent.
import type { Server } from 'node:http';
import { constants as osConstants } from 'node:os';
import { dirname, join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { connectEsdbEventStore } from '../../infra/eventstore/esdb.ts';
import { createLogger } from '../../infra/log.ts';
import { errorText, type Logger } from '../ports/logger.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { exitWhenFlushed } from '../../infra/stdio.ts';
import { serverList } from '../lib/servers.ts';
import { signalOwnedChildren } from '../../infra/ownedChild.ts';
import { startNodeAgent, type NodeAgent, type NodeAgentOptions } from '../../node-agent/agent.ts';
import { createLinuxDataplane, nodeNetnsFrom } from '../../node-agent/linux/linuxDataplane.ts';
import type { Dataplane } from '../../node-agent/dataplane.ts';
import { simulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { formatRange } from '../../aggregates/tunnelPool.ts';
import { agentActor } from '../contracts/commands.ts';
import { subjectsFor } from '../contracts/subjects.ts';
import { startControlPlane, type ControlPlane } from './controlPlane.ts';
import { DEFAULT_HEALING, type HealingConfig } from '../workflows/healing.ts';
import type { FederationOptions } from './federation.ts';
import { leafnodesConfig } from '../../infra/nats/leafnodes.ts';
import type { EventStore } from '../ports/eventStore.ts';
import { isLoopbackHost, startHttpApi, startMetricsListener, type HttpAccess, type HttpTls } from './http.ts';
import { agentMetrics, controlPlaneMetrics, createMetricsRegistry, metricsSource } from './metrics.ts';
import type { Registry } from 'prom-client';
import { redactUrl, type StoreChoice } from './storeChoice.ts';
import { forgetPointer, writePointer, type Access } from '../client/index.ts';
import { verifyApiToken } from '../security/apiToken.ts';
import { connectionAuth, natsAuthOptions, readCredentials, signerOf } from '../security/credentials.ts';
import { loadRegistry, type IdentityRegistry, type Role } from '../security/identities.ts';
import { liveCredentials, liveRegistry, type LiveCredentials, type LiveRegistry } from '../security/live.ts';
import { followLoginKeys } from './loginKeys.ts';
import { deploymentPaths, hasDeployment, initDeployment } from '../security/init.ts';
import { parsePeers, readLeafCredentials, secureLeafnodesConfig, type LeafCredentials } from '../security/leaf.ts';
import { startSecureNatsServer, type SecureServer } from '../security/setup.ts';
import { clusterServerOptions, clusterUrls, readCluster } from '../security/cluster.ts';
import { mkdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';

export class StartupError extends Error {}

export interface DataplaneChoice {
  readonly kind: string;
  readonly domain: string;
  /** Linux: the node's network namespace (default: the process's own). */
  readonly netns?: string;
  /** Linux: the address other nodes reach this one at (default: from the default route). */
  readonly underlay?: string;
  /** Linux: where the node keeps its WireGuard private key. */
  readonly stateDir: string;
  /** Linux: directories whose files node commands may name as workload namespaces (--netns-dir). */
  readonly netnsDirs?: readonly string[];
}

type AgentFacts = Pick<NodeAgentOptions, 'underlayAddress' | 'mtu' | 'publicKeys' | 'localPrefixes'>;

const dataplaneFor = async (c: DataplaneChoice, log: Logger): Promise<{ dataplane: Dataplane; facts: AgentFacts }> => {
  if (c.kind === 'simulated') {
    log.warn('simulated dataplane: connections are recorded and reported established, but no interface is created and no packet is forwarded');
    return { dataplane: simulatedDataplane(), facts: {} };
  }
  if (c.kind !== 'linux') throw new StartupError(`--dataplane ${JSON.stringify(c.kind)}: expected simulated or linux`);
  const netns = nodeNetnsFrom(c.netns);
  if (E.isLeft(netns)) throw new StartupError(netns.left);
  const dp = await createLinuxDataplane({ domain: c.domain, nodeNetns: netns.right, ...(c.underlay ? { underlayAddress: c.underlay } : {}), stateDir: c.stateDir, log, ...(c.netnsDirs ? { netnsDirs: c.netnsDirs } : {}) });
  if (E.isLeft(dp)) throw new StartupError(dp.left);
  const f = dp.right.facts;
  log.info('linux dataplane ready', { mechanisms: dp.right.capabilities(), underlay: f.underlayAddress, mtu: f.mtu, wireguard: dp.right.wireguardMode, stateDir: c.stateDir });
  return {
    dataplane: dp.right,
    facts: { ...(f.underlayAddress ? { underlayAddress: f.underlayAddress } : {}), mtu: f.mtu, publicKeys: f.publicKeys, localPrefixes: f.localPrefixes.slice(0, 256) },
  };
};

/**
 * A long-running process's NATS connection: it reconnects for ever, and says so in the log. Closed
 * for good while the process runs (nats.js gives up after the server refused the same credentials
 * twice: a revoked identity, or a rotated key used past its grace period), it is a fatal error:
 * the process stops and exits 1 (exitOnFatal) rather than run on cut off.
 */
const connectNats = async (url: string, name: string, auth: Partial<ConnectionOptions>, log: Logger): Promise<NatsConnection> => {
  let nc: NatsConnection;
  try {
    nc = await connect({ servers: serverList(url), name, maxReconnectAttempts: -1, reconnectTimeWait: 500, ...auth });
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw new StartupError(code === 'AUTHORIZATION_VIOLATION' ? `NATS at ${url} refused the credentials (authorization violation)` : `cannot reach NATS at ${url}: ${errorText(e)}`);
  }
  void (async () => {
    for await (const st of nc.status()) {
      if (st.type === 'disconnect') log.warn('disconnected from NATS; reconnecting', { connection: name, server: String(st.data) });
      else if (st.type === 'reconnect') log.info('reconnected to NATS', { connection: name, server: String(st.data) });
      else if (st.type === 'error') log.warn('NATS connection error', { connection: name, error: String(st.data) });
    }
  })();
  void nc.closed().then((err) => {
    if (!err) return;
    const refused = (err as { code?: string }).code === 'AUTHORIZATION_VIOLATION';
    throw new Error(`the NATS connection ${name} was closed for good: ${err.message}${refused ? ' (the server refuses this identity\'s key: was it revoked, or rotated and its grace period is over? see nsm history identities)' : ''}`);
  });
  return nc;
};

export const insecureWarning = (url: string) =>
  `INSECURE MODE: no authentication and no TLS. Anyone who can reach ${url} can act as any identity, read every connection and send any command. For development only.`;

/**
 * The identity registry and a role's credentials, for a process that runs authenticated: both
 * followed on disk (../security/live.ts), so a rotation or revocation reaches a running process.
 */
const secureIdentity = (access: Access, identitiesFile: string | undefined, role: Role, name: string, log: Logger): { registry: LiveRegistry; creds: LiveCredentials } => {
  const creds = access.credentials!;
  if (creds.role !== role || creds.name !== name) throw new StartupError(`${access.credentialsFile} holds the credentials of ${creds.actor} (${creds.role}), not of the ${role} ${name}`);
  if (!identitiesFile) throw new StartupError('cannot find identities.json for this deployment: pass --identities FILE (or NSM_IDENTITIES)');
  const registry = loadRegistry(identitiesFile);
  if (E.isLeft(registry)) throw new StartupError(registry.left);
  const mine = registry.right.byActor(creds.actor);
  if (mine?.revokedAt) throw new StartupError(`${creds.actor} was revoked at ${mine.revokedAt} (${identitiesFile})`);
  if (mine?.publicKey !== signerOf(creds).publicKey) throw new StartupError(`${identitiesFile} does not list the key of ${access.credentialsFile}${mine?.retiredKeys?.some((k) => k.publicKey === signerOf(creds).publicKey) ? ' as its current key (it was rotated out: use the new credentials file)' : ''}`);
  return { registry: liveRegistry(identitiesFile, registry.right, log), creds: liveCredentials(access.credentialsFile!, creds, log) };
};

/** The deployment in the data dir, created for this single node when there is none. */
const prepareDeployment = (dataDir: string, domain: string, node: string, hosts: readonly string[] | undefined, log: Logger, o: { agent: boolean; cluster: boolean }) => {
  const paths = deploymentPaths(dataDir);
  if (!hasDeployment(dataDir) && o.cluster) throw new StartupError(`${dataDir} holds no deployment: a cluster is planned first, with nsm init --dir ${dataDir} --domain ${domain} --cluster N (docs/operations.md)`);
  if (!hasDeployment(dataDir)) {
    const init = initDeployment({ dir: dataDir, domain, nodes: [node], ...(hosts ? { hosts } : {}) });
    if (E.isLeft(init)) throw new StartupError(`nsm init: ${init.left}`);
    log.info('created the deployment: identities, credentials, CA and server certificate', { dir: dataDir, identities: init.right.created.map((i) => i.actor) });
  }
  const registry = loadRegistry(paths.identities);
  if (E.isLeft(registry)) throw new StartupError(registry.left);
  if (registry.right.domain !== domain) throw new StartupError(`${dataDir} holds the deployment of domain "${registry.right.domain}", not "${domain}"`);
  const credsOf = (actor: string) => {
    const id = registry.right.byActor(actor);
    if (!id) throw new StartupError(`${paths.identities} has no identity ${actor}: add it with nsm init --dir ${dataDir} --domain ${domain} ${actor.startsWith('agent:') ? `--nodes ${node}` : ''}`.trim());
    if (id.revokedAt) throw new StartupError(`${actor} was revoked at ${id.revokedAt}; give it a new key (nsm init --dir ${dataDir} --rotate ${actor}) to run it again`);
    const file = paths.creds(id.name, id.role);
    const c = readCredentials(file);
    if (E.isLeft(c)) throw new StartupError(c.left);
    return liveCredentials(file, c.right, log);
  };
  return { paths, registry: liveRegistry(paths.identities, registry.right, log), controlPlane: credsOf('control-plane'), agent: o.agent ? credsOf(agentActor(node)) : undefined };
};

/** The EventStoreDB store when chosen, checked to answer; undefined: the control plane's JetStream default. */
const openStore = async (choice: StoreChoice, domain: string, log: Logger): Promise<EventStore | undefined> => {
  if (choice.kind === 'jetstream') return undefined;
  const where = redactUrl(choice.url);
  let store: EventStore;
  try {
    store = connectEsdbEventStore(choice.url, domain);
  } catch (e) {
    throw new StartupError(`--esdb-url ${where}: ${errorText(e)}`);
  }
  const last = await store.lastPosition()();
  if (E.isLeft(last)) {
    await store.close().catch(() => undefined);
    throw new StartupError(`cannot use EventStoreDB at ${where}: ${last.left.message}`);
  }
  log.info('event store: EventStoreDB', { url: where, lastPosition: last.right });
  return store;
};

const storeLabel = (choice: StoreChoice): string => (choice.kind === 'esdb' ? `EventStoreDB ${redactUrl(choice.url)}` : 'JetStream');

/** One stop, bounded: a part that hangs must not keep the others (nats-server last) running. */
const STOP_TIMEOUT_MS = 15_000;
const stopBounded = (stop: () => Promise<unknown>, onError: (e: unknown) => void): Promise<void> => {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    stop().then(
      () => undefined,
      (e) => onError(e),
    ),
    new Promise<void>((r) => {
      timer = setTimeout(() => (onError(new Error(`did not stop within ${STOP_TIMEOUT_MS / 1000} s`)), r()), STOP_TIMEOUT_MS);
    }),
  ]).finally(() => clearTimeout(timer));
};

/** Runs the stops in reverse order of the starts, each bounded; never throws. */
const stopAll = async (stops: readonly (() => Promise<unknown>)[], log?: Logger): Promise<void> => {
  for (const stop of [...stops].reverse()) await stopBounded(stop, (e) => log?.warn('stop failed', { error: errorText(e) }));
};

/**
 * SIGINT, SIGTERM and SIGHUP (a closed terminal) stop a long-running process in order, once it
 * is running. Caught from the start: a signal while it starts (an agent waiting for a control
 * plane, a nats-server not ready yet) ends it at once, with the status of that signal, and its
 * child processes are stopped by their exit hook (infra/ownedChild.ts); a second signal while it
 * stops in order ends it at once too.
 */
const catchStopSignals = (log: Logger) => {
  let running = false;
  let first: NodeJS.Signals | undefined;
  let wake: (sig: NodeJS.Signals) => void = () => undefined;
  const requested = new Promise<NodeJS.Signals>((r) => (wake = r));
  const onSignal = (sig: NodeJS.Signals) => {
    if (!running || first !== undefined) {
      log.warn(running ? 'stopping at once' : 'stopped while starting', { signal: sig });
      void exitWhenFlushed(128 + (osConstants.signals[sig] ?? 0));
      return;
    }
    first = sig;
    wake(sig);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  return {
    /** Resolves once everything is stopped after the first signal; the CLI then exits (src/cli/entry.ts). */
    untilStopped: async (stops: readonly (() => Promise<unknown>)[]): Promise<void> => {
      running = true;
      const sig = await requested;
      log.info('stopping', { signal: sig });
      await stopAll(stops, log);
      log.info('stopped');
    },
  };
};

/** How long a fatal error's stop may take before the process exits anyway. */
export const FATAL_STOP_MS = 5000;

/**
 * The policy of a long-running process (nsm up, control-plane, agent) for an exception nothing
 * caught and a promise rejection nothing handled: log it (level error, with the stack), stop what
 * runs in reverse order as on SIGTERM but for at most FATAL_STOP_MS, and exit 1.
 *
 * Exit, not serve on: after such an error some piece of the process's state was left half-done (a
 * fold into the view, a lease renewal, a consumer loop), and serving on would act on it unseen.
 * Nothing is lost by exiting: the log, the durable command and node-command consumers, the process
 * manager's checkpoint and the agents' desired state are in JetStream, so a supervisor's restart
 * (systemd, Kubernetes) folds the log again and carries on where this process stopped. The stops
 * are worth the attempt because `nsm up` owns its nats-server, which would otherwise outlive it.
 * Errors that requests cause never get here: the HTTP API and the query and command loops catch
 * their own (src/runtime/http.ts, src/runtime/controlPlane.ts).
 */
export const exitOnFatal = (log: Logger, stops: readonly (() => Promise<unknown>)[], exit: (code: number) => void = (c) => void exitWhenFlushed(c), graceMs = FATAL_STOP_MS): void => {
  let fatal = false;
  const onFatal = (kind: 'uncaught exception' | 'unhandled promise rejection') => (e: unknown) => {
    log.error(`${kind}: stopping`, { error: errorText(e), ...(e instanceof Error && e.stack ? { stack: e.stack } : {}), ...(fatal ? { alreadyStopping: true } : {}) });
    if (fatal) return;
    fatal = true;
    setTimeout(() => {
      log.error('stopping took too long after a fatal error; exiting', { graceMs });
      // Child processes (nats-server) are signalled by the exit hook (infra/ownedChild.ts) too; at once here.
      signalOwnedChildren('SIGTERM');
      exit(1);
    }, graceMs).unref();
    void (async () => {
      await stopAll(stops, log);
      log.error('stopped after a fatal error; exiting with status 1');
      exit(1);
    })();
  };
  process.on('uncaughtException', onFatal('uncaught exception'));
  process.on('unhandledRejection', onFatal('unhandled promise rejection'));
};

const DEFAULT_HTTP_HOST = '127.0.0.1';
const hostInUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** The opt-in plaintext metrics listener (--metrics-port, --metrics-host); its URL, or undefined when not asked for. */
export interface MetricsListen {
  readonly metricsPort?: number;
  readonly metricsHost?: string;
}
const listenMetrics = async (o: MetricsListen, registry: Registry, log: Logger, stops: (() => Promise<unknown>)[]): Promise<string | undefined> => {
  if (o.metricsPort === undefined) return undefined;
  const host = o.metricsHost ?? DEFAULT_HTTP_HOST;
  const server = await startMetricsListener(o.metricsPort, host, metricsSource(registry), log).catch((e) => {
    throw new StartupError(`metrics cannot listen on ${host}:${o.metricsPort}: ${errorText(e)}`);
  });
  stops.push(() => new Promise((r) => server.close(r)));
  return `http://${hostInUrl(host)}:${o.metricsPort}/metrics`;
};

/** The HTTP API's certificate and key, read once at start. */
const httpTlsOf = (certFile: string, keyFile: string): HttpTls => {
  try {
    return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
  } catch (e) {
    throw new StartupError(`cannot read the HTTP API's certificate or key: ${errorText(e)}`);
  }
};

/** An --insecure mesh's API is plain HTTP; off loopback, anyone on the network reads and asks it. */
const plaintextHttp = (host: string, log: Logger): undefined => {
  if (!isLoopbackHost(host)) log.warn('HTTP API in plaintext on a non-loopback address: anyone who reaches it reads the whole mesh (--insecure)', { host });
  return undefined;
};

/** The HTTP API of an authenticated mesh answers bearers of an `nsm token`, within their role's scope. */
const httpAccess = (cp: ControlPlane, registry: IdentityRegistry): HttpAccess => ({
  authenticate: (h: string | undefined) => verifyApiToken(h, registry, new Date()),
  scope: (actor: string, query: string, params: unknown) => cp.guard.scopeQuery(actor, query, params, cp.view.current),
});

export interface AgentTimings {
  readonly heartbeatMs?: number;
  readonly livenessIntervalMs?: number;
}

/** `nsm up` in a federation (docs/federation.md): this domain's part, and how its nats-server joins the others. */
export interface UpFederation {
  readonly options: FederationOptions;
  /** Listen for other domains' leafnode connections on this port (the hub). */
  readonly leafPort?: number;
  /** Hubs to join: nats-leaf://HOST:PORT. */
  readonly join?: readonly string[];
  /** Authenticated: the leaf credentials for each hub joined, in the order of `join` (from the hub's nsm init --peers). */
  readonly leafCreds?: readonly string[];
}

/** `nsm up --cluster-node K`: server K of the deployment's cluster, with or without a control plane and an agent beside it. */
export interface UpCluster {
  readonly node: number;
  readonly controlPlane: boolean;
  readonly agent: boolean;
}

/** Server K of the cluster planned in the deployment (nsm init --cluster): how to run it, and every server's URL. */
const clusterServerOf = (dataDir: string, paths: ReturnType<typeof deploymentPaths>, index: number) => {
  const layout = readCluster(dataDir);
  if (E.isLeft(layout)) throw new StartupError(layout.left);
  if (!layout.right) throw new StartupError(`--cluster-node ${index}: ${dataDir} plans no cluster; run nsm init --dir ${dataDir} --cluster N first (docs/operations.md)`);
  const opts = clusterServerOptions(dataDir, layout.right, index, { routeCertFile: paths.routeCertFile, routeKeyFile: paths.routeKeyFile, caFile: paths.caFile, authFile: paths.natsConfig });
  if (E.isLeft(opts)) throw new StartupError(opts.left);
  for (const f of [paths.routeCertFile, paths.routeKeyFile]) if (!existsSync(f)) throw new StartupError(`${f} is missing: the cluster's routes need it (nsm init --dir ${dataDir} --cluster ${layout.right.servers.length} makes it; copy tls/ to every server's host)`);
  return { ...opts.right, name: layout.right.name, size: layout.right.servers.length, urls: clusterUrls(layout.right, index) };
};

export const runUp = async (o: {
  domain: string;
  dataDir: string;
  natsPort: number;
  httpPort: number;
  /** Where the HTTP API listens (default 127.0.0.1). */
  httpHost?: string;
  node: string;
  dataplane: string;
  healing?: Partial<HealingConfig>;
  agent?: AgentTimings;
  store: StoreChoice;
  underlay?: string;
  /** Run without authentication or TLS (development only). */
  insecure?: boolean;
  /** Names and addresses for the server certificate when a deployment is created. */
  hosts?: readonly string[];
  tokenLifetimeMs?: number;
  federation?: UpFederation;
  /** Federation: the node's address as other domains' nodes reach it (NAT). */
  externalAddress?: string;
  /** Directories whose files may be named as workload namespaces (--netns-dir). */
  netnsDirs?: readonly string[];
  /** Run server `node` of the deployment's NATS cluster (nsm init --cluster), and whether a control plane and an agent run beside it. */
  cluster?: UpCluster;
} & MetricsListen) => {
  const log = createLogger('nsm-up', { domain: o.domain });
  const registry = createMetricsRegistry();
  const cpMetrics = controlPlaneMetrics(registry, log);
  const signals = catchStopSignals(log);
  const stops: (() => Promise<unknown>)[] = [];
  exitOnFatal(log, stops);
  const fed = o.federation;
  // A registry-only domain (a floating registry) has no node of its own.
  const withNode = !fed?.options.registryOnly && (o.cluster?.agent ?? true);
  const withControlPlane = o.cluster?.controlPlane ?? true;
  if (o.cluster && o.insecure) throw new StartupError('--cluster-node runs a server of an authenticated deployment (nsm init --cluster); an insecure cluster is not supported');
  if (o.cluster && fed) throw new StartupError('--cluster-node does not combine with federation (--leaf-port, --join) yet');
  const { dataplane, facts } = withNode
    ? await dataplaneFor({ kind: o.dataplane, domain: o.domain, ...(o.underlay ? { underlay: o.underlay } : {}), stateDir: join(o.dataDir, `agent-${o.node}`), ...(o.netnsDirs ? { netnsDirs: o.netnsDirs } : {}) }, log)
    : { dataplane: undefined, facts: {} };
  let nats: RunningNatsServer | undefined;
  const url = `nats://127.0.0.1:${o.natsPort}`;
  if (o.insecure) forgetPointer(o.domain);
  const sec = o.insecure ? undefined : prepareDeployment(o.dataDir, o.domain, o.node, o.hosts, log, { agent: withNode, cluster: o.cluster !== undefined });
  const clustered = sec && o.cluster ? clusterServerOf(o.dataDir, sec.paths, o.cluster.node) : undefined;
  try {
    const secureFed = fed && sec ? secureFederation(o.dataDir, o.domain, o.node, fed, o.hosts) : undefined;
    const leaf = secureFed
      ? secureFed.config
      : fed
        ? leafnodesConfig({ ...(fed.leafPort ? { hub: { port: fed.leafPort } } : {}), remotes: (fed.join ?? []).map((url) => ({ url })) })
        : '';
    const fedOptions = secureFed ? { ...fed!.options, peers: secureFed.peers } : fed?.options;
    const serverOptions = clustered
      ? { dataDir: clustered.dataDir, deploymentDir: o.dataDir, port: clustered.server.clientPort, host: clustered.server.host, serverName: clustered.server.name, authInclude: clustered.authInclude, cluster: { size: clustered.size } }
      : {
          dataDir: o.dataDir,
          port: o.natsPort,
          serverName: `nsm-${o.domain}-${o.node}`,
          // Each federated cluster is its own JetStream domain, named like the mesh domain.
          ...(fed ? { jetstreamDomain: o.domain } : {}),
        };
    // Authenticated: the setup step makes the streams with a one-time identity, then the server
    // runs with the deployment's identities only, none of which may change them (docs/security.md).
    const started = sec
      ? E.map((s: SecureServer) => {
          log.info('setup step: the mesh\'s streams are in place; nats-server reloaded without the setup identity', { created: s.provisioned.created, updated: s.provisioned.updated });
          return s.server;
        })(
          await startSecureNatsServer({
            ...serverOptions,
            extraConfig: clustered ? clustered.cluster : leaf,
            say: (line, fields) => log.info(line, fields),
            streams: { leaseTtlMs: o.healing?.leaseTtlMs ?? DEFAULT_HEALING.leaseTtlMs, ...(fedOptions?.peers ? { peers: fedOptions.peers } : {}) },
          }),
        )
      : await startNatsServer({ ...serverOptions, ...(leaf ? { extraConfig: leaf } : {}) });
    if (E.isLeft(started)) throw new StartupError(started.left);
    nats = started.right;
    stops.push(() => nats!.stop());
    for (const note of nats.notes) log.warn(note);
    if (sec) {
      const keys = followLoginKeys({ dataDir: o.dataDir, registry: sec.registry, reload: () => nats!.reload(), log });
      stops.push(async () => (keys.stop(), sec.registry.stop(), sec.controlPlane.stop(), sec.agent?.stop()));
    }
    if (o.insecure) {
      process.stderr.write(`\n${insecureWarning(url)}\n\n`);
      log.warn('running insecure: no authentication, no TLS', { url });
    }
    log.info('nats-server started', { url: nats.url, dataDir: clustered?.dataDir ?? o.dataDir, pid: nats.pid, authenticated: sec !== undefined, ...(clustered ? { cluster: clustered.name, server: clustered.server.name } : {}) });
    // A cluster's every server, this one first: the control plane and agent fail over to the others.
    const meshUrl = clustered ? clustered.urls : nats.url;
    const upControlPlane = async () => {
      const nc = await connectNats(meshUrl, 'nsm-control-plane', sec ? natsAuthOptions(sec.controlPlane.current(), {}, sec.controlPlane.seed) : {}, log);
      stops.push(() => nc.close());
      const store = await openStore(o.store, o.domain, log);
      // Until the control plane owns the store (its stop() closes it).
      const unowned = { store };
      stops.push(async () => unowned.store?.close());
      const cp = await startControlPlane({
        nc,
        domain: o.domain,
        log: createLogger('control-plane', { domain: o.domain }),
        store,
        ...(o.healing ? { healing: o.healing } : {}),
        ...(sec ? { security: { registry: sec.registry, signer: sec.controlPlane.signer, watchRegistry: sec.registry.onChange, ...(o.tokenLifetimeMs ? { tokenLifetimeMs: o.tokenLifetimeMs } : {}) } } : {}),
        ...(fedOptions ? { federation: fedOptions } : {}),
        ...(o.netnsDirs ? { netnsDirs: o.netnsDirs } : {}),
        observer: cpMetrics.observer,
      });
      unowned.store = undefined;
      stops.push(() => cp.stop());
      const unwatch = cpMetrics.watch(cp, await nc.jetstreamManager());
      stops.push(async () => unwatch());
      const httpHost = o.httpHost ?? DEFAULT_HTTP_HOST;
      const http = await startHttpApi(o.httpPort, httpHost, () => cp.queryContext(), log, sec ? httpAccess(cp, sec.registry) : undefined, sec ? httpTlsOf(sec.paths.certFile, sec.paths.keyFile) : plaintextHttp(httpHost, log), metricsSource(registry), { live: cp.view }).catch((e) => {
        throw new StartupError(`HTTP API cannot listen on ${httpHost}:${o.httpPort}: ${errorText(e)}`);
      });
      stops.push(() => new Promise((r) => http.close(r)));
    };
    if (withControlPlane) await upControlPlane();
    if (dataplane) {
      const anc = await connectNats(meshUrl, `nsm-agent-${o.node}`, sec ? natsAuthOptions(sec.agent!.current(), {}, sec.agent!.seed) : {}, log);
      stops.push(() => anc.close());
      // The control plane's metrics have this node's command consumer already.
      let started: NodeAgent | undefined;
      const observer = agentMetrics(registry, o.node, { sides: () => started?.programmedSides() ?? 0, log });
      const agent = (started = await startNodeAgent({
        nc: anc,
        domain: o.domain,
        node: o.node,
        dataplane,
        ...facts,
        ...(o.externalAddress ? { externalAddress: o.externalAddress } : {}),
        log: createLogger('agent', { domain: o.domain }),
        ...o.agent,
        ...(sec ? { security: { registry: sec.registry, signer: sec.agent!.signer } } : {}),
        observer,
      }));
      stops.push(() => agent.stop());
      await agent.ready;
    }
    const metricsUrl = await listenMetrics(o, registry, log, stops);
    const federation = fed
      ? `  federation ${fed.options.registryOnly ? 'registry only' : `tunnel ids ${fed.options.tunnelIds ? formatRange(fed.options.tunnelIds) : 'all (give each domain a disjoint --tunnel-ids range)'}`}${fed.leafPort ? `; leafnodes on port ${fed.leafPort}` : ''}${fed.join?.length ? `; joined ${fed.join.map(redactUrl).join(', ')}` : ''}\n`
      : '';
    // The CLI on this host finds the whole cluster through the pointer, and fails over as the processes do.
    const pointer = sec ? writePointer(o.domain, { deployment: o.dataDir, url: meshUrl }) : undefined;
    const httpLine = withControlPlane
      ? `${sec ? 'https' : 'http'}://${hostInUrl(o.httpHost ?? DEFAULT_HTTP_HOST)}:${o.httpPort}/api/v1/${sec ? ` (CA ${sec.paths.caFile}; Authorization: Bearer $(nsm token))` : ''}`
      : 'none (--no-control-plane: no control plane runs here)';
    const natsLine = clustered ? `${nats.url} (server ${clustered.server.index} of ${clustered.size} of cluster ${clustered.name}: ${meshUrl})` : nats.url;
    const security = sec
      ? `  security  nkey authentication, TLS (CA ${sec.paths.caFile})\n  operator  ${sec.paths.creds('operator', 'operator')} (found by the CLI through ${pointer})\n`
      : `  security  NONE (--insecure)\n`;
    process.stderr.write(
      `\nmesh "${o.domain}" is up\n  NATS      ${natsLine}\n  events    ${storeLabel(o.store)}\n  HTTP API  ${httpLine}\n${withControlPlane ? `  dashboard ${sec ? 'https' : 'http'}://${hostInUrl(o.httpHost ?? DEFAULT_HTTP_HOST)}:${o.httpPort}/${sec ? ' (paste a token from nsm token; or nsm dashboard)' : ''}\n` : ''}  metrics   ${withControlPlane ? `/metrics on the HTTP API${sec ? ' (operator or auditor token)' : ''}` : 'no HTTP API'}${metricsUrl ? `; ${metricsUrl} (no token)` : ''}\n  node      ${dataplane ? `${o.node} (${dataplane.kind} dataplane)` : o.cluster && !o.cluster.agent ? 'none (--no-agent)' : 'none (registry only)'}\n  data      ${o.dataDir}\n${federation}${security}` +
        `Use it from another shell:\n  export NSM_NATS_URL=${meshUrl} NSM_DOMAIN=${o.domain}\n  nsm status; nsm --help\nStop with Ctrl-C.\n\n`,
    );
  } catch (e) {
    // A startup error: nothing this start began stays running (nats-server last).
    await stopAll(stops);
    throw e;
  }
  await signals.untilStopped(stops);
};

/**
 * An authenticated domain in a federation: as a hub, a leaf user per peer (made by nsm init
 * --peers, here for the --peer domains that have none yet) and TLS on the leafnode port; as a
 * joining domain, the leaf credentials of each hub. Its peers: the domains named either way.
 */
const secureFederation = (dataDir: string, domain: string, node: string, fed: UpFederation, hosts: readonly string[] | undefined) => {
  const paths = deploymentPaths(dataDir);
  const named = fed.options.peers ?? [];
  if (fed.leafPort !== undefined && named.length > 0) {
    const init = initDeployment({ dir: dataDir, domain, nodes: fed.options.registryOnly ? [] : [node], peers: named, ...(hosts ? { hosts } : {}) });
    if (E.isLeft(init)) throw new StartupError(`nsm init --peers: ${init.left}`);
  }
  const hubPeers = fed.leafPort !== undefined && existsSync(paths.peers) ? parsePeers(readFileSync(paths.peers, 'utf8'), paths.peers) : E.right([]);
  if (E.isLeft(hubPeers)) throw new StartupError(hubPeers.left);
  if (fed.leafPort !== undefined && hubPeers.right.length === 0) throw new StartupError(`--leaf-port on an authenticated mesh: name the domains that may join (--peer D); each gets leaf credentials in ${join(dataDir, 'peers')}`);
  const joins = (fed.join ?? []).map((url, i) => {
    const file = fed.leafCreds?.[i];
    if (!file) throw new StartupError(`--join ${url}: an authenticated mesh joins with the leaf credentials the hub made for it (--leaf-creds FILE, from the hub's ${'peers/<domain>.leaf'}), or run --insecure`);
    const c = readLeafCredentials(file);
    if (E.isLeft(c)) throw new StartupError(c.left);
    if (c.right.peer !== domain) throw new StartupError(`${file} lets domain ${c.right.peer} join ${c.right.hub}, not ${domain}`);
    mkdirSync(join(dataDir, 'tls'), { recursive: true, mode: 0o700 });
    const caFile = join(dataDir, 'tls', `hub-${c.right.hub}-ca.pem`);
    writeFileSync(caFile, c.right.ca);
    return { url, creds: c.right as LeafCredentials, caFile };
  });
  const peers = [...new Set([...named, ...hubPeers.right.map((p) => p.peer), ...joins.map((j) => j.creds.hub)])].filter((p) => p !== domain).sort();
  const config = secureLeafnodesConfig({
    domain,
    ...(fed.leafPort !== undefined ? { hub: { port: fed.leafPort, tls: { certFile: paths.certFile, keyFile: paths.keyFile, caFile: paths.caFile } } } : {}),
    joins,
  });
  return { config, peers };
};

export const runControlPlane = async (o: {
  access: Access;
  identitiesFile?: string;
  domain: string;
  httpPort?: number;
  healing?: Partial<HealingConfig>;
  store: StoreChoice;
  tokenLifetimeMs?: number;
  federation?: FederationOptions;
  netnsDirs?: readonly string[];
  httpHost?: string;
  /** The HTTP API's certificate and key on an authenticated mesh; default: the deployment's, beside identities.json. */
  httpCert?: string;
  httpKey?: string;
} & MetricsListen) => {
  const log = createLogger('control-plane', { domain: o.domain });
  const registry = createMetricsRegistry();
  const cpMetrics = controlPlaneMetrics(registry, log);
  const signals = catchStopSignals(log);
  const stops: (() => Promise<unknown>)[] = [];
  exitOnFatal(log, stops);
  const url = o.access.url;
  const sec = o.access.credentials ? secureIdentity(o.access, o.identitiesFile, 'control-plane', 'control-plane', log) : undefined;
  if (!sec) log.warn(insecureWarning(url));
  const nc = await connectNats(url, 'nsm-control-plane', connectionAuth(sec?.creds.current(), o.access.tlsCaFile, sec?.creds.seed), log);
  let store: EventStore | undefined;
  let cp: ControlPlane;
  try {
    store = await openStore(o.store, o.domain, log);
    cp = await startControlPlane({
      nc,
      domain: o.domain,
      log,
      store,
      ...(o.healing ? { healing: o.healing } : {}),
      ...(sec ? { security: { registry: sec.registry, signer: sec.creds.signer, watchRegistry: sec.registry.onChange, ...(o.tokenLifetimeMs ? { tokenLifetimeMs: o.tokenLifetimeMs } : {}) } } : {}),
      ...(o.federation ? { federation: o.federation } : {}),
      ...(o.netnsDirs ? { netnsDirs: o.netnsDirs } : {}),
      observer: cpMetrics.observer,
    });
  } catch (e) {
    await store?.close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    throw e;
  }
  const unwatch = cpMetrics.watch(cp, await nc.jetstreamManager());
  stops.push(async () => log.info('control plane stopped', { ...cp.stats }), () => nc.close(), () => cp.stop(), async () => unwatch());
  if (o.httpPort !== undefined) {
    const httpHost = o.httpHost ?? DEFAULT_HTTP_HOST;
    const stopAndThrow = async (why: string): Promise<never> => {
      await cp.stop().catch(() => undefined);
      await nc.close().catch(() => undefined);
      throw new StartupError(why);
    };
    let tls: HttpTls | undefined;
    if (sec) {
      const beside = o.identitiesFile ? deploymentPaths(dirname(o.identitiesFile)) : undefined;
      const cert = o.httpCert ?? beside?.certFile;
      const key = o.httpKey ?? beside?.keyFile;
      if (!cert || !key || !existsSync(cert) || !existsSync(key)) {
        await stopAndThrow(`the HTTP API of an authenticated mesh is served over TLS: pass --http-cert FILE and --http-key FILE (the deployment's tls/server.pem and tls/server-key.pem${cert && !existsSync(cert) ? `; ${cert} does not exist` : ''})`);
      }
      tls = httpTlsOf(cert!, key!);
    } else tls = plaintextHttp(httpHost, log);
    const http: Server = await startHttpApi(o.httpPort, httpHost, () => cp.queryContext(), log, sec ? httpAccess(cp, sec.registry) : undefined, tls, metricsSource(registry), { live: cp.view }).catch((e) =>
      stopAndThrow(`HTTP API cannot listen on ${httpHost}:${o.httpPort}: ${errorText(e)}`),
    );
    stops.push(() => new Promise((r) => http.close(r)));
  }
  await listenMetrics(o, registry, log, stops).catch(async (e) => {
    await stopAll(stops, log);
    throw e;
  });
  log.info('control plane running', { url, events: storeLabel(o.store), authenticated: sec !== undefined });
  await signals.untilStopped(stops);
};

export const runAgent = async (o: {
  access: Access;
  identitiesFile?: string;
  domain: string;
  node: string;
  dataplane: string;
  netns?: string;
  underlay?: string;
  stateDir: string;
  agent?: AgentTimings;
  externalAddress?: string;
  netnsDirs?: readonly string[];
} & MetricsListen) => {
  const log = createLogger('agent', { domain: o.domain, node: o.node });
  const registry = createMetricsRegistry();
  const signals = catchStopSignals(log);
  const stops: (() => Promise<unknown>)[] = [];
  exitOnFatal(log, stops);
  const { dataplane, facts } = await dataplaneFor(
    { kind: o.dataplane, domain: o.domain, ...(o.netns ? { netns: o.netns } : {}), ...(o.underlay ? { underlay: o.underlay } : {}), stateDir: o.stateDir, ...(o.netnsDirs ? { netnsDirs: o.netnsDirs } : {}) },
    log,
  );
  const url = o.access.url;
  const sec = o.access.credentials ? secureIdentity(o.access, o.identitiesFile, 'agent', o.node, log) : undefined;
  if (!sec) log.warn(insecureWarning(url));
  const nc = await connectNats(url, `nsm-agent-${o.node}`, connectionAuth(sec?.creds.current(), o.access.tlsCaFile, sec?.creds.seed), log);
  // Alone, the agent reports its own command consumer's backlog (it may read that consumer's info).
  let started: NodeAgent | undefined;
  const observer = agentMetrics(registry, o.node, {
    sides: () => started?.programmedSides() ?? 0,
    consumer: { jsm: await nc.jetstreamManager({ checkAPI: false }), subjects: subjectsFor(o.domain) },
    log,
  });
  const agent: NodeAgent = (started = await startNodeAgent({
    nc,
    domain: o.domain,
    node: o.node,
    dataplane,
    ...facts,
    ...(o.externalAddress ? { externalAddress: o.externalAddress } : {}),
    log,
    ...o.agent,
    ...(sec ? { security: { registry: sec.registry, signer: sec.creds.signer } } : {}),
    observer,
  }));
  stops.push(() => nc.close(), () => agent.stop());
  await agent.ready;
  await listenMetrics(o, registry, log, stops).catch(async (e) => {
    await stopAll(stops, log);
    throw e;
  });
  await signals.untilStopped(stops);
};
