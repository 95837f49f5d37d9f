// A NATS cluster's part of a server's configuration (routes between the servers, over TLS with
// certificates both ways), and what JetStream says about the cluster: whether it has a quorum
// yet, and each stream's leader and replicas (`nsm status`).
import type { JetStreamManager, NatsConnection, StreamInfo } from 'nats';
import { errorText } from '../../src/ports/logger.ts';
import { sleep } from '../../src/lib/time.ts';

export interface RouteTls {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

export interface ClusterBlock {
  readonly name: string;
  /** Where this server listens for its peers' routes. */
  readonly host: string;
  readonly port: number;
  /** Every server's route URL (this one's included: nats-server skips itself). */
  readonly routes: readonly string[];
  /**
   * Routes over TLS, each side presenting a certificate of the deployment's CA (verify): only a
   * holder of a route key can join the cluster and see its traffic.
   */
  readonly tls?: RouteTls;
}

const hostPort = (host: string, port: number) => `${host.includes(':') ? `[${host}]` : host}:${port}`;

export const routeUrl = (host: string, port: number): string => `nats-route://${hostPort(host, port)}`;

export const clusterBlock = (c: ClusterBlock): string =>
  [
    'cluster {',
    `  name: ${JSON.stringify(c.name)}`,
    `  listen: "${hostPort(c.host, c.port)}"`,
    `  routes: [${c.routes.map((r) => JSON.stringify(r)).join(', ')}]`,
    ...(c.tls
      ? [
          '  tls {',
          `    cert_file: ${JSON.stringify(c.tls.certFile)}`,
          `    key_file: ${JSON.stringify(c.tls.keyFile)}`,
          `    ca_file: ${JSON.stringify(c.tls.caFile)}`,
          '    verify: true',
          '    timeout: 5',
          '  }',
        ]
      : []),
    '}',
  ].join('\n');

/**
 * Waits until the cluster's JetStream answers (a meta leader is elected: a majority of the
 * servers is up and routed), saying every `everyMs` what it is waiting for. Resolves false when
 * `stopped()` says to give up first.
 */
export const waitForJetStream = async (
  nc: NatsConnection,
  o: { size: number; everyMs?: number; say: (line: string, fields: Record<string, unknown>) => void; stopped?: () => boolean },
): Promise<boolean> => {
  let lastSaid = 0;
  for (;;) {
    if (o.stopped?.()) return false;
    let why: string;
    try {
      const jsm = await nc.jetstreamManager({ timeout: 2000 });
      await jsm.getAccountInfo();
      return true;
    } catch (e) {
      why = errorText(e);
    }
    if (Date.now() - lastSaid >= (o.everyMs ?? 5000)) {
      lastSaid = Date.now();
      // The other servers' client URLs reach a client once the routes are up.
      const seen = 1 + (nc.info?.connect_urls?.length ? nc.info.connect_urls.length - 1 : 0);
      o.say(`waiting for the JetStream cluster: a quorum of ${Math.floor(o.size / 2) + 1} of ${o.size} servers must be up and routed`, { serversSeen: seen, jetstream: why });
    }
    await sleep(500);
  }
};

export interface StreamClusterView {
  readonly stream: string;
  readonly replicas: number;
  readonly messages: number;
  readonly leader?: string;
  /** Each replica: its server, whether it is caught up, how many operations behind, seconds since heard from. */
  readonly peers: readonly { readonly server: string; readonly current: boolean; readonly offline?: boolean; readonly lag?: number; readonly activeSeconds?: number }[];
}

/** A stream's leader and replicas as JetStream reports them (the leader counts as current, lag 0). */
export const streamClusterView = (info: StreamInfo): StreamClusterView => {
  const c = info.cluster;
  return {
    stream: info.config.name,
    replicas: info.config.num_replicas,
    messages: info.state.messages,
    ...(c?.leader ? { leader: c.leader } : {}),
    peers: [
      ...(c?.leader ? [{ server: c.leader, current: true, lag: 0 }] : []),
      ...(c?.replicas ?? []).map((r) => ({
        server: r.name,
        current: r.current,
        ...(r.offline ? { offline: true } : {}),
        ...(r.lag !== undefined ? { lag: r.lag } : {}),
        activeSeconds: Math.round((r.active / 1e9) * 10) / 10,
      })),
    ],
  };
};

/** The streams' cluster views, in the order asked; a stream that cannot be read now says why. */
export const streamsClusterView = async (jsm: JetStreamManager, names: readonly string[]): Promise<(StreamClusterView | { stream: string; error: string })[]> =>
  Promise.all(names.map((n) => jsm.streams.info(n).then(streamClusterView, (e: unknown) => ({ stream: n, error: errorText(e) }))));
