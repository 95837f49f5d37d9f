// A deployment's NATS cluster (docs/operations.md): which servers, where, and each server's
// nats-server configuration. `nsm init --cluster N` plans it into cluster.json and writes
// cluster/server-K/nats-server.conf for every server; `nsm up --cluster-node K` (or plain
// `nats-server -c` on that file) runs server K. Every server includes the same nats-auth.conf,
// so the users and permissions are the same on all of them, and `nsm init --rotate` /
// `nsm revoke` change them for all at once (each server reloads its copy).
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join, relative } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { clusterBlock, routeUrl } from '../../infra/nats/cluster.ts';
import { natsServerConfig } from '../../infra/natsServer.ts';

export interface ClusterServer {
  /** 1-based, as in `nsm up --cluster-node K`. */
  readonly index: number;
  readonly name: string;
  readonly host: string;
  readonly clientPort: number;
  readonly routePort: number;
}

export interface ClusterLayout {
  readonly name: string;
  readonly servers: readonly ClusterServer[];
}

export interface ClusterPlan {
  readonly size: number;
  /** One host for all servers, or one per server. Default 127.0.0.1. */
  readonly hosts?: readonly string[];
  /** One port (servers on one host then take P, P+1, ...), or one per server. Default 4222. */
  readonly clientPorts?: readonly number[];
  /** As clientPorts; default 6222. */
  readonly routePorts?: readonly number[];
}

export const MAX_CLUSTER_SIZE = 7;

const perServer = <T>(what: string, xs: readonly T[] | undefined, n: number, fallback: T): E.Either<string, T[]> => {
  const given = xs && xs.length > 0 ? xs : [fallback];
  if (given.length === 1) return E.right(Array.from({ length: n }, () => given[0]!));
  if (given.length !== n) return E.left(`${what}: ${given.length} values for ${n} servers (give one, or one per server)`);
  return E.right([...given]);
};

/** The layout of a cluster of `size` servers for domain `domain`: names, hosts, ports. */
export const planCluster = (domain: string, p: ClusterPlan): E.Either<string, ClusterLayout> => {
  if (!Number.isInteger(p.size) || p.size < 1 || p.size > MAX_CLUSTER_SIZE) return E.left(`--cluster ${p.size}: expected 1 to ${MAX_CLUSTER_SIZE} servers (3 or 5 tolerate one or two lost)`);
  const hosts = perServer('--cluster-host', p.hosts, p.size, '127.0.0.1');
  if (E.isLeft(hosts)) return hosts;
  const clients = perServer('--client-port', p.clientPorts, p.size, 4222);
  if (E.isLeft(clients)) return clients;
  const routes = perServer('--route-port', p.routePorts, p.size, 6222);
  if (E.isLeft(routes)) return routes;
  // One port given for servers that share a host: each takes the next one.
  const spread = (ports: number[], given: readonly number[] | undefined) =>
    (given?.length ?? 0) > 1 ? ports : ports.map((port, i) => port + hosts.right.slice(0, i).filter((h) => h === hosts.right[i]).length);
  const clientPorts = spread(clients.right, p.clientPorts);
  const routePorts = spread(routes.right, p.routePorts);
  const servers = hosts.right.map((host, i) => ({ index: i + 1, name: `nsm-${domain}-${i + 1}`, host, clientPort: clientPorts[i]!, routePort: routePorts[i]! }));
  const taken = new Set<string>();
  for (const s of servers) {
    for (const port of [s.clientPort, s.routePort]) {
      if (port < 1 || port > 65535) return E.left(`server ${s.index}: port ${port} is out of range`);
      const key = `${s.host}:${port}`;
      if (taken.has(key)) return E.left(`two listeners on ${key}: give each server on one host its own --client-port and --route-port`);
      taken.add(key);
    }
  }
  return E.right({ name: `nsm-${domain}`, servers });
};

export const clusterFile = (dir: string): string => join(dir, 'cluster.json');
/** Server K's own directory: its configuration, JetStream store, log and pid file. */
export const clusterServerDir = (dir: string, index: number): string => join(dir, 'cluster', `server-${index}`);

export const serializeCluster = (c: ClusterLayout): string => JSON.stringify(c, null, 2) + '\n';

const isPort = (x: unknown): x is number => Number.isInteger(x) && (x as number) > 0 && (x as number) < 65536;

/** The deployment's cluster, or undefined when it has none (a single server). */
export const readCluster = (dir: string): E.Either<string, ClusterLayout | undefined> => {
  const file = clusterFile(dir);
  if (!existsSync(file)) return E.right(undefined);
  try {
    const raw = JSON.parse(readFileSync(file, 'utf8')) as { name?: unknown; servers?: unknown };
    if (typeof raw.name !== 'string' || !Array.isArray(raw.servers) || raw.servers.length === 0) return E.left(`${file}: expected {name, servers: [...]}`);
    const servers = raw.servers.map((s: Record<string, unknown>, i: number) => {
      if (s.index !== i + 1 || typeof s.name !== 'string' || typeof s.host !== 'string' || !isPort(s.clientPort) || !isPort(s.routePort)) throw new Error(`servers[${i}]: expected {index: ${i + 1}, name, host, clientPort, routePort}`);
      return { index: i + 1, name: s.name, host: s.host, clientPort: s.clientPort, routePort: s.routePort };
    });
    return E.right({ name: raw.name, servers });
  } catch (e) {
    return E.left(`${file}: ${(e as Error).message}`);
  }
};

const hostInUrl = (h: string) => (h.includes(':') ? `[${h}]` : h);

/** The client URLs of every server, server `first` first: what the CLI, control planes and agents connect to. */
export const clusterUrls = (c: ClusterLayout, first?: number): string => {
  const order = first === undefined ? c.servers : [...c.servers.filter((s) => s.index === first), ...c.servers.filter((s) => s.index !== first)];
  return order.map((s) => `nats://${hostInUrl(s.host)}:${s.clientPort}`).join(',');
};

export interface ClusterTlsFiles {
  /** The route certificate (both server and client use), its key, the CA. */
  readonly routeCertFile: string;
  readonly routeKeyFile: string;
  readonly caFile: string;
  /** The deployment's nats-auth.conf, which every server includes. */
  readonly authFile: string;
}

/** What server K runs with: what startNatsServer takes, and the lines after the server's own (the include first). */
export const clusterServerOptions = (dir: string, c: ClusterLayout, index: number, files: ClusterTlsFiles) => {
  const s = c.servers.find((x) => x.index === index);
  if (!s) return E.left(`--cluster-node ${index}: the cluster in ${clusterFile(dir)} has servers 1 to ${c.servers.length}`);
  const serverDir = clusterServerDir(dir, index);
  const cluster = clusterBlock({
    name: c.name,
    host: s.host,
    port: s.routePort,
    routes: c.servers.map((x) => routeUrl(x.host, x.routePort)),
    tls: { certFile: files.routeCertFile, keyFile: files.routeKeyFile, caFile: files.caFile },
  });
  return E.right({
    server: s,
    dataDir: serverDir,
    /** The include of the users and permissions, relative to the server's configuration file. */
    authInclude: relative(serverDir, files.authFile),
    cluster,
  });
};

/** Server K's whole configuration file, as `nsm init --cluster` writes it and `nsm up --cluster-node K` runs it. */
export const clusterServerConfig = (dir: string, c: ClusterLayout, index: number, files: ClusterTlsFiles): E.Either<string, { file: string; text: string }> => {
  const o = clusterServerOptions(dir, c, index, files);
  if (E.isLeft(o)) return o;
  mkdirSync(o.right.dataDir, { recursive: true, mode: 0o700 });
  return E.right({
    file: join(o.right.dataDir, 'nats-server.conf'),
    text: natsServerConfig({ serverName: o.right.server.name, host: o.right.server.host, port: o.right.server.clientPort, storeDir: join(o.right.dataDir, 'jetstream'), extra: `include ${JSON.stringify(o.right.authInclude)}\n${o.right.cluster}` }),
  });
};

/** Hosts of the list that the certificate does not cover (by its subject alternative names). */
export const uncoveredHosts = (certFile: string, hosts: readonly string[]): string[] => {
  const cert = new X509Certificate(readFileSync(certFile));
  return hosts.filter((h) => (isIP(h) ? cert.checkIP(h) === undefined : cert.checkHost(h) === undefined));
};
