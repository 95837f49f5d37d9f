// nsm init: the identities of a deployment (nkeys, CA, TLS, NATS permissions); docs/security.md.
import { resolve } from 'node:path';
import { defaultDataDir, writePointer } from '../../client/index.ts';
import { initDeployment } from '../../security/init.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, must } from '../kit.ts';
import { strs, str } from '../options.ts';

const list = (xs: string[] | undefined) => (xs ? xs.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean) : undefined);

export const init = defineCommand({
  name: 'init',
  group: 'setup',
  usage: [
    'nsm init [--dir DIR] [--domain D] [--nodes n1,n2] [--clients alice,bob] [--operators operator] [--auditors auditor]',
    '         [--host 127.0.0.1,localhost] [--peers b,c]   (--peers: leaf credentials for domains joining this one)',
  ],
  description: `
Creates a deployment's identities in DIR: the CA and nats-server's TLS certificate, one nkey per
identity (control plane, operators, auditors, an agent per node, clients) with its credentials file
(creds/<name>.creds, secret, 0600), identities.json (public keys and roles) and the nats-server
authorization it implies. Running it again adds what is missing and never replaces a key. It also
writes a pointer (~/.config/nsm/<domain>.json) through which the CLI on this host finds the
operator's credentials without flags. See docs/security.md.`,
  flags: {
    dir: str('DIR', 'where the deployment is written', { defaultText: '$XDG_DATA_HOME/nsm/<domain>, else ~/.local/share/nsm/<domain>' }),
    nodes: strs('NAMES', 'an agent identity per node (repeatable or comma separated)'),
    clients: strs('NAMES', 'a client identity each (repeatable or comma separated)'),
    operators: strs('NAMES', 'operator identities (repeatable or comma separated)', { defaultText: 'operator' }),
    auditors: strs('NAMES', 'auditor identities (repeatable or comma separated)', { defaultText: 'auditor' }),
    host: strs('HOSTS', "names and addresses of nats-server's certificate (repeatable or comma separated)", { defaultText: '127.0.0.1,localhost' }),
    peers: strs('DOMAINS', 'leaf credentials (peers/<d>.leaf) for each domain joining this one (docs/federation.md)'),
  },
  common: ['domain', 'json'],
  async run({ values: v }, ctx) {
    const domain = checkDomain(v.domain ?? defaultDomain());
    const dir = resolve(v.dir ?? defaultDataDir(domain));
    const operators = list(v.operators);
    const auditors = list(v.auditors);
    const hosts = list(v.host);
    const peers = list(v.peers);
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
      }),
    );
    const pointer = writePointer(domain, { deployment: dir });
    const p = r.paths;
    ctx.out(
      v,
      { dir, domain, created: r.created, kept: r.kept, tls: r.tlsCreated, identities: p.identities, natsConfig: p.natsConfig, ca: p.caFile, pointer },
      () =>
        [
          `deployment of domain "${domain}" in ${dir}`,
          ...r.created.map((i) => `  created  ${i.role.padEnd(13)} ${i.actor.padEnd(24)} ${p.creds(i.name, i.role)}`),
          ...r.kept.map((i) => `  kept     ${i.role.padEnd(13)} ${i.actor.padEnd(24)} (existing key, not replaced)`),
          ...r.tlsCreated.map((t) => `  created  ${t}`),
          ...r.peersCreated.map((d) => `  created  leaf credentials of peer domain ${d}: ${p.leafCreds(d)} (secret: give it to ${d}'s operator, for nsm up --join ... --leaf-creds FILE)`),
          `  identities (public keys and roles): ${p.identities}`,
          `  nats-server configuration (users, permissions, TLS): ${p.natsConfig}`,
          `  CA certificate: ${p.caFile}`,
          `The CLI on this host finds the operator's credentials through ${pointer}.`,
          `Copy creds/<name>.creds (secret, 0600) and identities.json to each host that runs that identity.`,
        ].join('\n'),
    );
  },
});
