// `nsm init`: the identities and NATS configuration of a deployment, in one directory:
//
//   identities.json          public keys and roles (the control plane and agents load it)
//   nats-auth.conf           nkey users with least-privilege permissions + TLS, for nats-server
//   creds/<name>.creds       one credentials file per identity (0600): its nkey seed and the CA
//   tls/ca.pem, ca-key.pem   the deployment's CA (the key stays here, 0600)
//   tls/server.pem, server-key.pem   nats-server's certificate, for the given hosts
//   peers.json, peers/<peer>.leaf    federation (--peers): one leaf user per peer domain, and the
//                                    file that domain joins with (docs/federation.md)
//
// Running it again adds identities that are missing and keeps every key that exists: it never
// replaces a key or a certificate.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { NAME_HINT, NAME_PATTERN } from '../../aggregates/domain.ts';
import { DOMAIN_HINT, DOMAIN_PATTERN } from '../contracts/subjects.ts';
import { writeCredentials } from './credentials.ts';
import { actorFor, loadRegistry, registryOf, serializeRegistry, type Identity, type Role } from './identities.ts';
import { createUserKey } from './keys.ts';
import { natsSecurityConfig } from './permissions.ts';
import { clusterFile, clusterServerConfig, planCluster, readCluster, serializeCluster, uncoveredHosts, type ClusterLayout, type ClusterPlan } from './cluster.ts';
import { newLeafPeer, parsePeers, serializePeers, writeLeafCredentials, type LeafPeer } from './leaf.ts';

export interface InitOptions {
  readonly dir: string;
  readonly domain: string;
  readonly nodes?: readonly string[];
  readonly clients?: readonly string[];
  /** Default: one operator named "operator". */
  readonly operators?: readonly string[];
  /** Default: one auditor named "auditor". */
  readonly auditors?: readonly string[];
  /** Names and addresses the server certificate is valid for; default 127.0.0.1 and localhost. */
  readonly hosts?: readonly string[];
  /** Federation: domains that may join this one's leafnode port (one leaf user each). */
  readonly peers?: readonly string[];
  /** A NATS cluster of several servers (./cluster.ts); kept once planned. */
  readonly cluster?: ClusterPlan;
}

export interface DeploymentPaths {
  readonly dir: string;
  readonly identities: string;
  readonly natsConfig: string;
  readonly caFile: string;
  readonly caKeyFile: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** A cluster's route certificate (server and client use, for every cluster host) and its key. */
  readonly routeCertFile: string;
  readonly routeKeyFile: string;
  creds(name: string, role: Role): string;
  /** The hub's leaf users (0600). */
  readonly peers: string;
  /** What peer domain `peer` joins with (0600). */
  leafCreds(peer: string): string;
}

export const deploymentPaths = (dir: string): DeploymentPaths => ({
  dir,
  identities: join(dir, 'identities.json'),
  natsConfig: join(dir, 'nats-auth.conf'),
  caFile: join(dir, 'tls', 'ca.pem'),
  caKeyFile: join(dir, 'tls', 'ca-key.pem'),
  certFile: join(dir, 'tls', 'server.pem'),
  keyFile: join(dir, 'tls', 'server-key.pem'),
  routeCertFile: join(dir, 'tls', 'route.pem'),
  routeKeyFile: join(dir, 'tls', 'route-key.pem'),
  creds: (name, role) => join(dir, 'creds', `${role === 'agent' ? `agent-${name}` : name}.creds`),
  peers: join(dir, 'peers.json'),
  leafCreds: (peer) => join(dir, 'peers', `${peer}.leaf`),
});

export const hasDeployment = (dir: string): boolean => existsSync(deploymentPaths(dir).identities);

export interface InitResult {
  readonly paths: DeploymentPaths;
  readonly created: readonly Identity[];
  readonly kept: readonly Identity[];
  /** What was made this time, for the report: "CA", "server certificate". */
  readonly tlsCreated: readonly string[];
  /** Peer domains given leaf credentials this time. */
  readonly peersCreated: readonly string[];
  /** The deployment's cluster and each server's configuration file, when it has one. */
  readonly cluster?: { readonly layout: ClusterLayout; readonly configs: readonly string[] };
}

const openssl = (args: readonly string[]): E.Either<string, void> => {
  const r = spawnSync('openssl', args, { encoding: 'utf8' });
  if (r.error) return E.left(`openssl is needed to create TLS certificates: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found (apt-get install openssl)' : r.error.message}`);
  if (r.status !== 0) return E.left(`openssl ${args[0]} failed: ${(r.stderr || '').trim().split('\n').pop()}`);
  return E.right(undefined);
};

const createCa = (p: DeploymentPaths, domain: string): E.Either<string, void> => {
  const r = openssl([
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', p.caKeyFile, '-out', p.caFile, '-days', '3650', '-subj', `/CN=nsm ${domain} CA`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  if (E.isRight(r)) chmodSync(p.caKeyFile, 0o600);
  return r;
};

const createServerCert = (p: DeploymentPaths, domain: string, hosts: readonly string[], o: { certFile: string; keyFile: string; name: string; usage: string } = { certFile: p.certFile, keyFile: p.keyFile, name: 'nats-server', usage: 'serverAuth' }): E.Either<string, void> => {
  const csr = join(p.dir, 'tls', 'server.csr');
  const ext = join(p.dir, 'tls', 'server.ext');
  const san = hosts.map((h) => (isIP(h) ? `IP:${h}` : `DNS:${h}`)).join(',');
  writeFileSync(ext, `subjectAltName=${san}\nextendedKeyUsage=${o.usage}\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n`);
  try {
    const req = openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', o.keyFile, '-out', csr, '-subj', `/CN=nsm ${domain} ${o.name}`]);
    if (E.isLeft(req)) return req;
    chmodSync(o.keyFile, 0o600);
    return openssl(['x509', '-req', '-in', csr, '-CA', p.caFile, '-CAkey', p.caKeyFile, '-CAcreateserial', '-out', o.certFile, '-days', '825', '-extfile', ext]);
  } finally {
    rmSync(csr, { force: true });
    rmSync(ext, { force: true });
  }
};

/**
 * The cluster of the deployment: the one planned before (cluster.json), or the one asked for
 * now. A different plan for a deployment that has one is refused: its servers' stores and the
 * streams' replicas were made for it.
 */
const clusterOf = (o: InitOptions): E.Either<string, ClusterLayout | undefined> => {
  const had = readCluster(o.dir);
  if (E.isLeft(had) || !o.cluster) return had;
  const wanted = planCluster(o.domain, o.cluster);
  if (E.isLeft(wanted) || !had.right) return wanted;
  if (serializeCluster(had.right) !== serializeCluster(wanted.right)) return E.left(`${clusterFile(o.dir)} already plans another cluster (${had.right.servers.map((s) => `${s.host}:${s.clientPort}`).join(', ')}); to change it, stop its servers and remove that file and cluster/`);
  return had;
};

/** The route certificate for every cluster host (made once), the server certificate checked to cover them. */
const clusterTls = (p: DeploymentPaths, domain: string, c: ClusterLayout, tlsCreated: string[]): E.Either<string, void> => {
  const hosts = [...new Set(c.servers.map((s) => s.host))];
  const missing = uncoveredHosts(p.certFile, hosts);
  if (missing.length > 0) return E.left(`${p.certFile} does not cover the cluster host${missing.length > 1 ? 's' : ''} ${missing.join(', ')}: clients connect to every server; delete tls/server.pem and tls/server-key.pem and run nsm init again with --host naming every host`);
  if (existsSync(p.routeCertFile)) {
    const off = uncoveredHosts(p.routeCertFile, hosts);
    return off.length === 0 ? E.right(undefined) : E.left(`${p.routeCertFile} does not cover the cluster host${off.length > 1 ? 's' : ''} ${off.join(', ')}: delete tls/route.pem and tls/route-key.pem and run nsm init again`);
  }
  const r = createServerCert(p, domain, hosts, { certFile: p.routeCertFile, keyFile: p.routeKeyFile, name: 'cluster routes', usage: 'serverAuth,clientAuth' });
  if (E.isRight(r)) tlsCreated.push(`route certificate for ${hosts.join(', ')}`);
  return r;
};

/** Writes every cluster server's configuration file (they include nats-auth.conf). */
export const writeClusterConfigs = (dir: string, c: ClusterLayout): E.Either<string, string[]> => {
  const p = deploymentPaths(dir);
  const files: string[] = [];
  for (const s of c.servers) {
    const conf = clusterServerConfig(dir, c, s.index, { routeCertFile: p.routeCertFile, routeKeyFile: p.routeKeyFile, caFile: p.caFile, authFile: p.natsConfig });
    if (E.isLeft(conf)) return conf;
    writeFileAtomically(conf.right.file, conf.right.text, 0o600);
    files.push(conf.right.file);
  }
  writeFileAtomically(clusterFile(dir), serializeCluster(c));
  return E.right(files);
};

const HOST_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$/;

export const initDeployment = (o: InitOptions): E.Either<string, InitResult> => {
  if (!DOMAIN_PATTERN.test(o.domain)) return E.left(`--domain ${JSON.stringify(o.domain)}: ${DOMAIN_HINT}`);
  const p = deploymentPaths(o.dir);
  for (const h of [...(o.hosts ?? []), ...(o.cluster?.hosts ?? [])]) if (!isIP(h) && !HOST_PATTERN.test(h)) return E.left(`--host ${JSON.stringify(h)}: expected an IP address or a host name`);
  const cluster = clusterOf(o);
  if (E.isLeft(cluster)) return cluster;
  // The server certificate covers every server a client may connect to.
  const hosts = [...new Set([...(o.hosts && o.hosts.length > 0 ? o.hosts : ['127.0.0.1', 'localhost']), ...(cluster.right?.servers.map((s) => s.host) ?? [])])];
  const wanted: { role: Role; name: string }[] = [
    { role: 'control-plane', name: 'control-plane' },
    ...(o.operators ?? ['operator']).map((name) => ({ role: 'operator' as const, name })),
    ...(o.auditors ?? ['auditor']).map((name) => ({ role: 'auditor' as const, name })),
    ...(o.nodes ?? []).map((name) => ({ role: 'agent' as const, name })),
    ...(o.clients ?? []).map((name) => ({ role: 'client' as const, name })),
  ];
  for (const w of wanted) if (!NAME_PATTERN.test(w.name)) return E.left(`${w.role} name ${JSON.stringify(w.name)}: ${NAME_HINT}`);
  for (const peer of o.peers ?? []) {
    if (!DOMAIN_PATTERN.test(peer)) return E.left(`--peers ${JSON.stringify(peer)}: ${DOMAIN_HINT}`);
    if (peer === o.domain) return E.left(`--peers: ${peer} is this deployment's own domain`);
  }

  let existing: Identity[] = [];
  if (existsSync(p.identities)) {
    const reg = loadRegistry(p.identities);
    if (E.isLeft(reg)) return reg;
    if (reg.right.domain !== o.domain) return E.left(`${o.dir} holds the deployment of domain "${reg.right.domain}", not "${o.domain}"`);
    existing = [...reg.right.identities];
  }
  mkdirSync(join(o.dir, 'creds'), { recursive: true, mode: 0o700 });
  mkdirSync(join(o.dir, 'tls'), { recursive: true, mode: 0o700 });

  const tlsCreated: string[] = [];
  if (!existsSync(p.caFile)) {
    if (existsSync(p.certFile)) return E.left(`${p.certFile} exists without its CA ${p.caFile}: restore the CA or remove both`);
    const r = createCa(p, o.domain);
    if (E.isLeft(r)) return r;
    tlsCreated.push('CA');
  }
  if (!existsSync(p.certFile)) {
    const r = createServerCert(p, o.domain, hosts);
    if (E.isLeft(r)) return r;
    tlsCreated.push(`server certificate for ${hosts.join(', ')}`);
  }
  const ca = readFileSync(p.caFile, 'utf8');

  const created: Identity[] = [];
  const kept: Identity[] = [];
  const all = [...existing];
  for (const w of wanted) {
    const actor = actorFor(w.role, w.name);
    const have = all.find((i) => i.actor === actor);
    if (have) {
      if (have.role !== w.role) return E.left(`"${actor}" is already a ${have.role}`);
      kept.push(have);
      continue;
    }
    const file = p.creds(w.name, w.role);
    if (existsSync(file)) return E.left(`${file} exists but ${actor} is not in ${p.identities}: refusing to overwrite a key; remove the file or restore identities.json`);
    const key = createUserKey();
    writeCredentials(file, { domain: o.domain, name: w.name, role: w.role, actor, seed: key.seed, ca });
    const id: Identity = { name: w.name, role: w.role, actor, publicKey: key.publicKey };
    all.push(id);
    created.push(id);
  }
  const reg = registryOf(o.domain, all);
  if (E.isLeft(reg)) return reg;

  // Leaf users of peer domains: kept once made (their passwords are in the peers' hands).
  let peers: LeafPeer[] = [];
  if (existsSync(p.peers)) {
    const loaded = parsePeers(readFileSync(p.peers, 'utf8'), p.peers);
    if (E.isLeft(loaded)) return loaded;
    peers = loaded.right;
  }
  const peersCreated: string[] = [];
  for (const peer of o.peers ?? []) {
    if (peers.some((x) => x.peer === peer)) continue;
    const file = p.leafCreds(peer);
    if (existsSync(file)) return E.left(`${file} exists but peer ${peer} is not in ${p.peers}: refusing to overwrite it; remove the file or restore peers.json`);
    mkdirSync(join(o.dir, 'peers'), { recursive: true, mode: 0o700 });
    const leaf = newLeafPeer(peer);
    writeLeafCredentials(file, { ...leaf, hub: o.domain, ca });
    peers.push(leaf);
    peersCreated.push(peer);
  }
  if (peers.length > 0) writeFileSync(p.peers, serializePeers(o.domain, peers), { mode: 0o600 });
  writeFileAtomically(p.identities, serializeRegistry(o.domain, all));
  writeFileAtomically(p.natsConfig, natsSecurityConfig(o.domain, all, tlsFilesOf(p), peers), 0o600);
  if (!cluster.right) return E.right({ paths: p, created, kept, tlsCreated, peersCreated });
  const routes = clusterTls(p, o.domain, cluster.right, tlsCreated);
  if (E.isLeft(routes)) return routes;
  const configs = writeClusterConfigs(o.dir, cluster.right);
  if (E.isLeft(configs)) return configs;
  return E.right({ paths: p, created, kept, tlsCreated, peersCreated, cluster: { layout: cluster.right, configs: configs.right } });
};

const tlsFilesOf = (p: DeploymentPaths) => ({ certFile: p.certFile, keyFile: p.keyFile, caFile: p.caFile });

/**
 * nats-server's authorization and TLS blocks for the deployment in `dir`, from its
 * identities.json and peers.json as they are now (with the permissions of this version of the
 * code), plus the one-time setup identity when given (src/security/setup.ts).
 */
export const natsConfigOf = (dir: string, setup?: { readonly publicKey: string }): E.Either<string, string> => {
  const p = deploymentPaths(dir);
  const reg = loadRegistry(p.identities);
  if (E.isLeft(reg)) return reg;
  let peers: LeafPeer[] = [];
  if (existsSync(p.peers)) {
    const loaded = parsePeers(readFileSync(p.peers, 'utf8'), p.peers);
    if (E.isLeft(loaded)) return loaded;
    peers = loaded.right;
  }
  return E.right(natsSecurityConfig(reg.right.domain, reg.right.identities, tlsFilesOf(p), peers, setup));
};

/** Regenerates nats-auth.conf (a deployment made by an older version gets this version's permissions). */
export const writeNatsConfig = (dir: string): E.Either<string, void> => {
  const text = natsConfigOf(dir);
  if (E.isLeft(text)) return text;
  writeFileAtomically(deploymentPaths(dir).natsConfig, text.right, 0o600);
  return E.right(undefined);
};

/**
 * Writes beside the file, then renames: running processes follow identities.json (./live.ts)
 * and must see the old file or the new one, never half of one.
 */
export const writeFileAtomically = (file: string, text: string, mode?: number): void => {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, text, mode !== undefined ? { mode } : {});
  if (mode !== undefined) chmodSync(tmp, mode);
  renameSync(tmp, file);
};
