// Long-running processes: a whole single-node mesh (`nsm up`), a control plane replica, an agent.
import type { Server } from 'node:http';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import { connectEsdbEventStore } from '../../infra/eventstore/esdb.ts';
import { createLogger, errorText, type Logger } from '../../infra/log.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { startNodeAgent, type NodeAgent, type NodeAgentOptions } from '../../node-agent/agent.ts';
import { createLinuxDataplane, nodeNetnsFrom } from '../../node-agent/linux/linuxDataplane.ts';
import type { Dataplane } from '../../node-agent/dataplane.ts';
import { simulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { startControlPlane, type ControlPlane } from '../controlPlane.ts';
import type { HealingConfig } from '../healing/detector.ts';
import type { EventStore } from '../eventStore.ts';
import { startHttpApi } from '../http.ts';
import { redactUrl, type StoreChoice } from './storeOption.ts';

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
  const dp = await createLinuxDataplane({ domain: c.domain, nodeNetns: netns.right, ...(c.underlay ? { underlayAddress: c.underlay } : {}), stateDir: c.stateDir, log });
  if (E.isLeft(dp)) throw new StartupError(dp.left);
  const f = dp.right.facts;
  log.info('linux dataplane ready', { mechanisms: dp.right.capabilities(), underlay: f.underlayAddress, mtu: f.mtu, wireguard: dp.right.wireguardMode, stateDir: c.stateDir });
  return {
    dataplane: dp.right,
    facts: { ...(f.underlayAddress ? { underlayAddress: f.underlayAddress } : {}), mtu: f.mtu, publicKeys: f.publicKeys, localPrefixes: f.localPrefixes.slice(0, 256) },
  };
};

const connectNats = async (url: string, name: string): Promise<NatsConnection> => {
  try {
    return await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  } catch (e) {
    throw new StartupError(`cannot reach NATS at ${url}: ${errorText(e)}`);
  }
};

/** The EventStoreDB store when chosen, checked to answer; undefined: the control plane's JetStream default. */
const openStore = async (choice: StoreChoice, domain: string, log: Logger): Promise<EventStore | undefined> => {
  if (choice.kind === 'jetstream') return undefined;
  const where = redactUrl(choice.url);
  let store: EventStore;
  try {
    store = connectEsdbEventStore(choice.url, domain, { log: createLogger('eventstore-esdb', { domain }) });
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

/** Stops everything in reverse order on SIGINT/SIGTERM, then exits. */
const untilSignal = (log: Logger, stops: (() => Promise<unknown>)[]): Promise<void> =>
  new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal: sig });
      (async () => {
        for (const stop of [...stops].reverse()) await stop().catch((e) => log.warn('stop failed', { error: errorText(e) }));
        log.info('stopped');
        resolve();
        process.exit(0);
      })();
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
  });

export interface AgentTimings {
  readonly heartbeatMs?: number;
  readonly livenessIntervalMs?: number;
}

export const runUp = async (o: {
  domain: string;
  dataDir: string;
  natsPort: number;
  httpPort: number;
  node: string;
  dataplane: string;
  healing?: Partial<HealingConfig>;
  agent?: AgentTimings;
  store: StoreChoice;
  underlay?: string;
}) => {
  const log = createLogger('nsm-up', { domain: o.domain });
  const stops: (() => Promise<unknown>)[] = [];
  const { dataplane, facts } = await dataplaneFor(
    { kind: o.dataplane, domain: o.domain, ...(o.underlay ? { underlay: o.underlay } : {}), stateDir: join(o.dataDir, `agent-${o.node}`) },
    log,
  );
  let nats: RunningNatsServer | undefined;
  try {
    const started = await startNatsServer({ dataDir: o.dataDir, port: o.natsPort, serverName: `nsm-${o.domain}-${o.node}` });
    if (E.isLeft(started)) throw new StartupError(started.left);
    nats = started.right;
    stops.push(() => nats!.stop());
    log.info('nats-server started', { url: nats.url, dataDir: o.dataDir, pid: nats.pid });
    const nc = await connectNats(nats.url, 'nsm-control-plane');
    stops.push(() => nc.close());
    const store = await openStore(o.store, o.domain, log);
    // Until the control plane owns the store (its stop() closes it).
    const unowned = { store };
    stops.push(async () => unowned.store?.close());
    const cp = await startControlPlane({ nc, domain: o.domain, log: createLogger('control-plane', { domain: o.domain }), store, ...(o.healing ? { healing: o.healing } : {}) });
    unowned.store = undefined;
    stops.push(() => cp.stop());
    const http = await startHttpApi(o.httpPort, '127.0.0.1', () => cp.queryContext(), log).catch((e) => {
      throw new StartupError(`HTTP API cannot listen on 127.0.0.1:${o.httpPort}: ${errorText(e)}`);
    });
    stops.push(() => new Promise((r) => http.close(r)));
    const anc = await connectNats(nats.url, `nsm-agent-${o.node}`);
    stops.push(() => anc.close());
    const agent = await startNodeAgent({ nc: anc, domain: o.domain, node: o.node, dataplane, ...facts, log: createLogger('agent', { domain: o.domain }), ...o.agent });
    stops.push(() => agent.stop());
    await agent.ready;
    process.stderr.write(
      `\nmesh "${o.domain}" is up\n  NATS      ${nats.url}\n  events    ${storeLabel(o.store)}\n  HTTP API  http://127.0.0.1:${o.httpPort}/api/v1/\n  node      ${o.node} (${dataplane.kind} dataplane)\n  data      ${o.dataDir}\n` +
        `Use it from another shell:\n  export NSM_NATS_URL=${nats.url} NSM_DOMAIN=${o.domain}\n  nsm status; nsm --help\nStop with Ctrl-C.\n\n`,
    );
  } catch (e) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    throw e;
  }
  await untilSignal(log, stops);
};

export const runControlPlane = async (o: { url: string; domain: string; httpPort?: number; healing?: Partial<HealingConfig>; store: StoreChoice }) => {
  const log = createLogger('control-plane', { domain: o.domain });
  const nc = await connectNats(o.url, 'nsm-control-plane');
  let store: EventStore | undefined;
  let cp: ControlPlane;
  try {
    store = await openStore(o.store, o.domain, log);
    cp = await startControlPlane({ nc, domain: o.domain, log, store, ...(o.healing ? { healing: o.healing } : {}) });
  } catch (e) {
    await store?.close().catch(() => undefined);
    await nc.close().catch(() => undefined);
    throw e;
  }
  const stops: (() => Promise<unknown>)[] = [async () => log.info('control plane stopped', { ...cp.stats }), () => nc.close(), () => cp.stop()];
  if (o.httpPort !== undefined) {
    const http: Server = await startHttpApi(o.httpPort, '127.0.0.1', () => cp.queryContext(), log);
    stops.push(() => new Promise((r) => http.close(r)));
  }
  log.info('control plane running', { url: o.url, events: storeLabel(o.store) });
  await untilSignal(log, stops);
};

export const runAgent = async (o: { url: string; domain: string; node: string; dataplane: string; netns?: string; underlay?: string; stateDir: string; agent?: AgentTimings }) => {
  const log = createLogger('agent', { domain: o.domain, node: o.node });
  const { dataplane, facts } = await dataplaneFor(
    { kind: o.dataplane, domain: o.domain, ...(o.netns ? { netns: o.netns } : {}), ...(o.underlay ? { underlay: o.underlay } : {}), stateDir: o.stateDir },
    log,
  );
  const nc = await connectNats(o.url, `nsm-agent-${o.node}`);
  const agent: NodeAgent = await startNodeAgent({ nc, domain: o.domain, node: o.node, dataplane, ...facts, log, ...o.agent });
  await agent.ready;
  await untilSignal(log, [() => nc.close(), () => agent.stop()]);
};
