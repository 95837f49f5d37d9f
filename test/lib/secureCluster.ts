// A mesh on a 3-server NATS cluster, run with bin/nsm the way docs/operations.md deploys one,
// secure by default: `nsm init --cluster 3`, one `nsm up --cluster-node K` per server (here the
// servers alone: control planes and agents run as processes of their own, so that each can be
// killed without the others), `nsm control-plane` replicas and `nsm agent`s given the list of
// every server. XDG dirs and the deployment live in one temp dir, removed at stop; every process
// started is stopped, and a nats-server left behind by a killed nsm up is killed by its pid.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import { freePort } from '../../infra/net.ts';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import type { StoredCommit } from '../../src/contracts/envelope.ts';
import { MeshClient, type MeshClientOptions } from '../../src/client/index.ts';
import { natsAuthOptions, readCredentials } from '../../src/security/credentials.ts';
import { serverList } from '../../src/lib/servers.ts';
import { runId } from './nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess, type NsmResult } from './nsmProcess.ts';

export interface ClusterServerProc {
  readonly index: number;
  readonly clientPort: number;
  /** The `nsm up --cluster-node K` process (replaced by restartServer). */
  up: NsmProcess;
  /** Its nats-server's pid (from the up's log). */
  natsPid: number;
}

export interface StreamView {
  readonly stream: string;
  readonly leader?: string;
  readonly replicas: number;
  readonly peers: readonly { server: string; current: boolean; offline?: boolean; lag?: number }[];
}
export interface ClusterStatus {
  readonly name?: string;
  readonly servers: readonly string[];
  readonly lease: { replica: string; thisReplica: boolean } | null;
  readonly controlPlane: { replica: string; connectedTo?: string; leader: boolean };
  readonly streams: readonly StreamView[];
}

export interface SecureCluster {
  readonly domain: string;
  readonly dir: string;
  readonly urls: string;
  readonly servers: ClusterServerProc[];
  readonly controlPlanes: NsmProcess[];
  readonly agents: Map<string, NsmProcess>;
  env(identity?: string): NodeJS.ProcessEnv;
  nsm(identity: string, args: readonly string[], timeoutMs?: number): Promise<NsmResult>;
  /** An SDK client with the identity's own credentials, connected to every server. */
  client(identity: string, o?: Partial<MeshClientOptions>): Promise<MeshClient>;
  /** A NATS connection with the identity's credentials (the operator reads the log with it). */
  natsAs(identity: string): Promise<NatsConnection>;
  /** Every commit of the log, read as the operator. */
  log(): Promise<StoredCommit[]>;
  status(): Promise<ClusterStatus>;
  /** The server (1-based) whose nats-server is named `name` (nsm-<domain>-K). */
  indexOf(serverName: string): number;
  startControlPlane(): Promise<NsmProcess>;
  startAgent(node: string): Promise<NsmProcess>;
  /** SIGKILL server K's nats-server (its nsm up keeps running, without a server). */
  killServer(index: number): Promise<void>;
  /** Stops server K's nsm up (whatever is left of it) and starts it again. */
  restartServer(index: number): Promise<void>;
  /**
   * The whole cluster stopped (control planes, then every server, SIGTERM) and started again on
   * the same deployment; the agents keep running (they are on other hosts), cut off meanwhile.
   * Resolves once every server is up and the control planes run again.
   */
  restartCluster(): Promise<{ downAt: number; upAt: number }>;
  /** Warnings and errors every process logged since `since` (ms), for a failure's report. */
  problems(since: number): string[];
  stop(): Promise<void>;
}

const credsFile = (dir: string, identity: string) => join(dir, 'creds', `${identity.startsWith('agent:') ? `agent-${identity.slice(6)}` : identity}.creds`);

export const startSecureCluster = async (o: { nodes?: readonly string[]; clients?: readonly string[]; controlPlanes?: number; leaseTtl?: string; cpArgs?: readonly string[] } = {}): Promise<SecureCluster> => {
  const tmp = mkdtempSync(join(tmpdir(), 'nsm-cluster-'));
  const domain = `c${runId()}`.slice(0, 32).toLowerCase();
  const dir = join(tmp, 'deployment');
  const nodes = o.nodes ?? ['n1', 'n2'];
  const leaseTtl = o.leaseTtl ?? '3s';
  const base: NodeJS.ProcessEnv = { XDG_CONFIG_HOME: join(tmp, 'config'), XDG_DATA_HOME: join(tmp, 'xdg-data'), NSM_DOMAIN: domain, NSM_LOG_LEVEL: 'info', NSM_CREDS: '', NSM_NATS_URL: '', NSM_ACTOR: '', NSM_NODE: '' };
  const every: NsmProcess[] = [];
  const natsPids = new Set<number>();
  const servers: ClusterServerProc[] = [];
  const controlPlanes: NsmProcess[] = [];
  const agents = new Map<string, NsmProcess>();
  const ports = { client: [] as number[], route: [] as number[] };
  for (let i = 0; i < 3; i++) {
    ports.client.push(await freePort());
    ports.route.push(await freePort());
  }
  const urls = ports.client.map((p) => `nats://127.0.0.1:${p}`).join(',');
  const env = (identity = 'operator'): NodeJS.ProcessEnv => ({ ...base, NSM_LOG_LEVEL: 'warn', NSM_NATS_URL: urls, NSM_CREDS: credsFile(dir, identity) });

  const upArgs = (k: number) => ['up', '--data-dir', dir, '--domain', domain, '--cluster-node', String(k), '--no-control-plane', '--no-agent', '--lease-ttl', leaseTtl];
  const startServer = (k: number): ClusterServerProc => {
    const up = startNsm(upArgs(k), base);
    every.push(up);
    const s: ClusterServerProc = { index: k, clientPort: ports.client[k - 1]!, up, natsPid: 0 };
    return s;
  };
  const awaitServer = async (s: ClusterServerProc) => {
    await s.up.waitFor(`mesh "${domain}" is up`, 120_000);
    const pid = s.up.logs('nats-server started')[0]?.pid;
    if (typeof pid !== 'number') throw new Error(`nsm up --cluster-node ${s.index} did not log its nats-server's pid`);
    s.natsPid = pid;
    natsPids.add(pid);
  };
  const startControlPlane = async () => {
    const p = startNsm(['control-plane', '--domain', domain, '--server', urls, '--creds', credsFile(dir, 'control-plane'), '--identities', join(dir, 'identities.json'), '--lease-ttl', leaseTtl, ...(o.cpArgs ?? [])], base);
    every.push(p);
    controlPlanes.push(p);
    await p.waitFor('control plane running', 120_000);
    return p;
  };
  const startAgent = async (node: string) => {
    const p = startNsm(['agent', '--domain', domain, '--node', node, '--server', urls, '--creds', credsFile(dir, `agent:${node}`), '--identities', join(dir, 'identities.json'), '--state-dir', join(tmp, `agent-${node}`)], base);
    every.push(p);
    agents.set(node, p);
    await p.waitFor('node agent ready', 120_000);
    return p;
  };
  const startAll = async () => {
    servers.splice(0, servers.length, ...[1, 2, 3].map(startServer));
    await Promise.all(servers.map(awaitServer));
    controlPlanes.splice(0);
    for (let i = 0; i < (o.controlPlanes ?? 2); i++) await startControlPlane();
    for (const n of nodes) await startAgent(n);
  };
  const restartCluster = async () => {
    const replicas = controlPlanes.length;
    for (const p of controlPlanes) await p.stop('SIGTERM', 15_000);
    controlPlanes.splice(0);
    await Promise.all(servers.map((s) => s.up.stop('SIGTERM', 20_000)));
    for (const pid of natsPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    const downAt = Date.now();
    servers.splice(0, servers.length, ...[1, 2, 3].map(startServer));
    await Promise.all(servers.map(awaitServer));
    for (let i = 0; i < replicas; i++) await startControlPlane();
    return { downAt, upAt: Date.now() };
  };
  const conns: NatsConnection[] = [];
  const cleanup = async () => {
    for (const nc of conns) await nc.close().catch(() => undefined);
    for (const p of every) await p.stop('SIGTERM', 15_000);
    for (const pid of natsPids) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    const init = await runNsm(
      ['init', '--dir', dir, '--domain', domain, '--nodes', nodes.join(','), ...(o.clients?.length ? ['--clients', o.clients.join(',')] : []), '--cluster', '3', '--client-port', ports.client.join(','), '--route-port', ports.route.join(',')],
      base,
    );
    if (init.code !== 0) throw new Error(`nsm init --cluster 3 failed: ${init.stderr}`);
    await startAll();
    const natsAs = async (identity: string) => {
      const c = readCredentials(credsFile(dir, identity));
      if (E.isLeft(c)) throw new Error(c.left);
      const nc = await connect({ servers: serverList(urls), maxReconnectAttempts: -1, reconnectTimeWait: 200, ...natsAuthOptions(c.right) });
      conns.push(nc);
      return nc;
    };
    const cluster: SecureCluster = {
      domain,
      dir,
      urls,
      servers,
      controlPlanes,
      agents,
      env,
      nsm: (identity, args, timeoutMs) => runNsm(args, env(identity), timeoutMs),
      client: async (identity, opts = {}) => {
        const c = readCredentials(credsFile(dir, identity));
        if (E.isLeft(c)) throw new Error(c.left);
        const r = await MeshClient.connect(urls, { domain, credentials: c.right, timeoutMs: 60_000, ...opts });
        if (E.isLeft(r)) throw new Error(r.left.message);
        conns.push(r.right.nc);
        return r.right;
      },
      natsAs,
      log: async () => {
        const nc = await natsAs('operator');
        const store = await jetStreamEventStore(nc, domain, { create: false });
        const out: StoredCommit[] = [];
        for await (const c of store.readAll(0n)) out.push(c);
        await store.close();
        return out;
      },
      status: async () => {
        const r = await runNsm(['status', '--json'], env('operator'));
        if (r.code !== 0) throw new Error(`nsm status failed: ${r.stderr}`);
        return (JSON.parse(r.stdout) as { cluster: ClusterStatus }).cluster;
      },
      indexOf: (name) => {
        const k = Number(name.slice(`nsm-${domain}-`.length));
        if (!Number.isInteger(k) || k < 1 || k > 3) throw new Error(`not a server of this cluster: ${name}`);
        return k;
      },
      startControlPlane,
      startAgent,
      killServer: async (k) => {
        const s = servers[k - 1]!;
        process.kill(s.natsPid, 'SIGKILL');
        for (let i = 0; i < 100 && isAlive(s.natsPid); i++) await new Promise((r) => setTimeout(r, 50));
      },
      restartServer: async (k) => {
        const old = servers[k - 1]!;
        await old.up.stop('SIGTERM', 20_000);
        if (isAlive(old.natsPid)) process.kill(old.natsPid, 'SIGKILL');
        const s = startServer(k);
        servers[k - 1] = s;
        await awaitServer(s);
      },
      restartCluster,
      problems: (since) => [
        ...every.flatMap((p) =>
          p
            .stderr()
            .split('\n')
            .filter((l) => /"level":"(warn|error|fatal)"/.test(l) && Date.parse(/"time":"([^"]+)"/.exec(l)?.[1] ?? '') >= since)
            .map((l) => `${p.pid}: ${l.slice(0, 600)}`),
        ),
        // What the servers themselves said: errors, exits and reloads (the last few of each).
        ...[1, 2, 3].flatMap((k) => {
          const file = join(dir, 'cluster', `server-${k}`, 'nats-server.log');
          const lines = existsSync(file) ? readFileSync(file, 'utf8').split('\n') : [];
          return lines
            .filter((l) => /\[(ERR|FTL)\]|Exiting|Reloaded|Starting nats-server|lame duck/i.test(l))
            .slice(-8)
            .map((l) => `server ${k}: ${l.slice(0, 400)}`);
        }),
      ],
      stop: cleanup,
    };
    return cluster;
  } catch (e) {
    await cleanup();
    throw e;
  }
};

/** Events of the log by type, for counting "exactly once". */
export const eventsOf = (log: readonly StoredCommit[], type: string) => log.flatMap((c) => c.events.filter((e) => e.type === type).map((e) => ({ stream: c.stream, time: e.time, data: e.data as unknown as Record<string, unknown> })));

/** How many of each value: the values that occur other than once. */
export const notOnce = (values: readonly string[], expected: readonly string[]): { missing: string[]; repeated: string[] } => {
  const n = new Map<string, number>();
  for (const v of values) n.set(v, (n.get(v) ?? 0) + 1);
  return { missing: expected.filter((v) => !n.has(v)), repeated: [...n].filter(([, k]) => k > 1).map(([v]) => v) };
};
