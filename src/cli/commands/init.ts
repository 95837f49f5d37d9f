// nsm init: the identities of a deployment (nkeys, CA, TLS, NATS permissions); docs/security.md.
import { resolve } from 'node:path';
import { defaultDataDir, writePointer } from '../../client/index.ts';
import { hasDeployment, initDeployment } from '../../security/init.ts';
import { DEFAULT_ROTATION_GRACE_MS, rotateKey } from '../../security/keyManagement.ts';
import { parseDuration } from '../parse.ts';
import { applyToServer } from './revoke.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, fail, must, port, type Ctx } from '../kit.ts';
import { clusterUrls } from '../../security/cluster.ts';
import { strs, str } from '../options.ts';

const list = (xs: string[] | undefined) => (xs ? xs.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean) : undefined);

export const init = defineCommand({
  name: 'init',
  group: 'setup',
  usage: [
    'nsm init [--dir DIR] [--domain D] [--nodes n1,n2] [--clients alice,bob] [--operators operator] [--auditors auditor]',
    '         [--host 127.0.0.1,localhost] [--peers b,c]   (--peers: leaf credentials for domains joining this one)',
    '         [--cluster N [--cluster-host H1,H2,H3] [--client-port 4222] [--route-port 6222]]   (a NATS cluster of N servers)',
    'nsm init --rotate ACTOR [--grace 24h] [--dir DIR] [--domain D]   (a new key for one identity)',
  ],
  description: `
Creates a deployment's identities in DIR: the CA and nats-server's TLS certificate, one nkey per
identity (control plane, operators, auditors, an agent per node, clients) with its credentials file
(creds/<name>.creds, secret, 0600), identities.json (public keys and roles) and the nats-server
authorization it implies. Running it again adds what is missing and never replaces a key. It also
writes a pointer (~/.config/nsm/<domain>.json) through which the CLI on this host finds the
operator's credentials without flags. See docs/security.md.

--rotate ACTOR gives one identity (control-plane, an operator, auditor or client name, or
agent:<node>) a new key in its credentials file. Its old key still logs in to nats-server for the
grace period, so the process holding it can be switched over; tokens the old key signed before the
rotation stay valid until they expire, nothing it signs afterwards is accepted. A nats-server that
nsm up runs on DIR is reloaded at once and again when the grace period ends; running control
planes and agents read identities.json and their own credentials file again within a second.
Rotating a revoked identity (nsm revoke) gives it a new key and lets it act again.

--cluster N plans a NATS cluster of N servers (3 or 5: a majority must be up) into cluster.json and
writes each server's configuration, cluster/server-K/nats-server.conf: its name, client listener,
JetStream store, routes to the others over TLS with the deployment's route certificate (tls/route.pem,
made for the --cluster-host addresses, presented both ways), and an include of nats-auth.conf, so
every server has the same users and permissions. Start server K with nsm up --cluster-node K (or
nats-server -c on its file, after one nsm up has made the streams). Several servers on one host
take consecutive ports from --client-port and --route-port. See docs/operations.md.`,
  flags: {
    dir: str('DIR', 'where the deployment is written', { defaultText: '$XDG_DATA_HOME/nsm/<domain>, else ~/.local/share/nsm/<domain>' }),
    nodes: strs('NAMES', 'an agent identity per node (repeatable or comma separated)'),
    clients: strs('NAMES', 'a client identity each (repeatable or comma separated)'),
    operators: strs('NAMES', 'operator identities (repeatable or comma separated)', { defaultText: 'operator' }),
    auditors: strs('NAMES', 'auditor identities (repeatable or comma separated)', { defaultText: 'auditor' }),
    host: strs('HOSTS', "names and addresses of nats-server's certificate (repeatable or comma separated)", { defaultText: '127.0.0.1,localhost' }),
    peers: strs('DOMAINS', 'leaf credentials (peers/<d>.leaf) for each domain joining this one (docs/federation.md)'),
    cluster: str('N', 'plan a NATS cluster of N servers and write each one\'s configuration (cluster/server-K/nats-server.conf)'),
    'cluster-host': strs('H', 'with --cluster: each server\'s address (one for all, or one per server; repeatable or comma separated)', { defaultText: '127.0.0.1' }),
    'client-port': strs('P', 'with --cluster: the servers\' client port (one, or one per server)', { defaultText: '4222 (then 4223, ... for servers on one host)' }),
    'route-port': strs('P', 'with --cluster: the servers\' route port (one, or one per server)', { defaultText: '6222 (then 6223, ...)' }),
    rotate: str('ACTOR', 'give this identity a new key (alone: no other identity is created)'),
    grace: str('DURATION', 'with --rotate: how long the old key may still log in', { defaultText: '24h' }),
  },
  common: ['domain', 'json'],
  async run({ values: v }, ctx) {
    const domain = checkDomain(v.domain ?? defaultDomain());
    const dir = resolve(v.dir ?? defaultDataDir(domain));
    if (v.rotate !== undefined) return rotate(v.rotate, v, dir, domain, ctx);
    if (v.grace !== undefined) fail('--grace goes with --rotate');
    const operators = list(v.operators);
    const auditors = list(v.auditors);
    const hosts = list(v.host);
    const peers = list(v.peers);
    const clusterHosts = list(v['cluster-host']);
    const clientPorts = list(v['client-port'])?.map((x) => port(x, '--client-port', 4222));
    const routePorts = list(v['route-port'])?.map((x) => port(x, '--route-port', 6222));
    if (v.cluster === undefined && (clusterHosts || clientPorts || routePorts)) fail('--cluster-host, --client-port and --route-port go with --cluster N');
    const size = v.cluster === undefined ? undefined : Number(v.cluster);
    const r = must(
      initDeployment({
        dir,
        domain,
        nodes: list(v.nodes) ?? [],
        clients: list(v.clients) ?? [],
        ...(operators ? { operators } : {}),
        ...(auditors ? { auditors } : {}),
        ...(hosts ? { hosts } : {}),
        ...(peers ? { peers } : {}),
        ...(size !== undefined ? { cluster: { size, ...(clusterHosts ? { hosts: clusterHosts } : {}), ...(clientPorts ? { clientPorts } : {}), ...(routePorts ? { routePorts } : {}) } } : {}),
      }),
    );
    const pointer = writePointer(domain, { deployment: dir });
    // A running nsm up notices new identities by itself within a second; this makes it certain now.
    const server = r.created.length > 0 ? await applyToServer(dir) : undefined;
    const p = r.paths;
    ctx.out(
      v,
      { dir, domain, created: r.created, kept: r.kept, tls: r.tlsCreated, identities: p.identities, natsConfig: p.natsConfig, ca: p.caFile, pointer, ...(server ? { server } : {}), ...(r.cluster ? { cluster: { ...r.cluster.layout, configs: r.cluster.configs, urls: clusterUrls(r.cluster.layout) } } : {}) },
      () =>
        [
          `deployment of domain "${domain}" in ${dir}`,
          ...r.created.map((i) => `  created  ${i.role.padEnd(13)} ${i.actor.padEnd(24)} ${p.creds(i.name, i.role)}`),
          ...r.kept.map((i) => `  kept     ${i.role.padEnd(13)} ${i.actor.padEnd(24)} ${i.revokedAt ? `(revoked at ${i.revokedAt}; nsm init --rotate ${i.actor} gives it a new key)` : '(existing key, not replaced)'}`),
          ...r.tlsCreated.map((t) => `  created  ${t}`),
          ...r.peersCreated.map((d) => `  created  leaf credentials of peer domain ${d}: ${p.leafCreds(d)} (secret: give it to ${d}'s operator, for nsm up --join ... --leaf-creds FILE)`),
          `  identities (public keys and roles): ${p.identities}`,
          `  nats-server configuration (users, permissions, TLS): ${p.natsConfig}`,
          `  CA certificate: ${p.caFile}`,
          ...(r.cluster
            ? [
                `  cluster ${r.cluster.layout.name}: ${r.cluster.layout.servers.length} servers (${clusterUrls(r.cluster.layout)})`,
                ...r.cluster.configs.map((f, i) => `    server ${i + 1}: ${f}   (nsm up --data-dir ${dir} --cluster-node ${i + 1})`),
              ]
            : []),
          ...(server && server.status !== 'not-running' ? [`  ${server.text}`] : []),
          `The CLI on this host finds the operator's credentials through ${pointer}.`,
          `Copy creds/<name>.creds (secret, 0600) and identities.json to each host that runs that identity.`,
        ].join('\n'),
    );
  },
});

const rotate = async (actor: string, v: { grace?: string; json?: boolean; nodes?: string[]; clients?: string[]; operators?: string[]; auditors?: string[]; host?: string[]; peers?: string[]; cluster?: string }, dir: string, domain: string, ctx: Ctx) => {
  if (v.nodes || v.clients || v.operators || v.auditors || v.host || v.peers || v.cluster) fail('--rotate changes one key and creates nothing: run it without --nodes, --clients, --operators, --auditors, --host or --peers');
  if (!hasDeployment(dir)) fail(`${dir} holds no deployment (nsm init --dir ${dir} --domain ${domain} creates one)`);
  const graceMs = v.grace === undefined ? DEFAULT_ROTATION_GRACE_MS : Math.round(must(parseDuration(v.grace, '--grace')) * 1000);
  const r = must(rotateKey({ dir, actor, graceMs, now: new Date() }));
  const server = await applyToServer(dir);
  ctx.out(
    v,
    { dir, domain, actor: r.identity.actor, publicKey: r.identity.publicKey, previousKey: r.previousKey, credentials: r.credsFile, loginUntil: r.loginUntil, reinstated: r.reinstated, server },
    () =>
      [
        `${r.identity.actor}: new key ${r.identity.publicKey} in ${r.credsFile}`,
        r.reinstated
          ? `  it had been revoked: it may act again with the new key; its old keys stay refused`
          : `  the old key ${r.previousKey} may log in until ${r.loginUntil}; tokens it signed before now stay valid until they expire`,
        `  ${server.text}`,
        `  copy identities.json to every host of the mesh, and the new credentials file to the host that runs ${r.identity.actor}`,
      ].join('\n'),
  );
};
