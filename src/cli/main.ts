// The nsm command line. Exceptions stop here: every failure becomes one line on stderr and a
// non-zero exit code.
import { randomUUID } from 'node:crypto';
import { hostname, userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import * as E from 'fp-ts/lib/Either.js';
import { NAME_PATTERN } from '../../aggregates/domain.ts';
import { DOMAIN_HINT, DOMAIN_PATTERN, toActorToken } from '../contracts/subjects.ts';
import { MeshClient, type ClientError, defaultDataDir, env, resolveAccess, resolveIdentities, writePointer, type AccessFlags } from '../client/index.ts';
import { SERVICE_REF_PATTERN, splitServiceRef, type CommandBody, type CommandKind } from '../contracts/commands.ts';
import { auditCommands } from './audit.ts';
import { common } from './options.ts';
import { parseDuration, parseLabels, parseMatch } from './parse.ts';
import { age, labelsText, table } from './render/table.ts';
import { chooseStore, STORE_OPTIONS } from '../runtime/storeChoice.ts';
import { runAgent, runControlPlane, runUp, StartupError } from '../runtime/processes.ts';
import { ENDPOINT_KINDS, EndpointRunError, runEndpoint, type EndpointKind } from '../runtime/endpointProcess.ts';
import { policyCommand } from './policy.ts';
import { apiToken, MAX_API_TOKEN_SECONDS } from '../security/apiToken.ts';
import { signerOf } from '../security/credentials.ts';
import { initDeployment } from '../security/init.ts';
import { formatRange, parseTunnelRange } from '../../aggregates/tunnelPool.ts';
import { checkLeafUrl } from '../../infra/nats/leafnodes.ts';
import type { FederationOptions } from '../runtime/federation.ts';
import { readFileSync } from 'node:fs';
import { checkNetnsDirs } from '../contracts/netnsRef.ts';
import { signalOwnedChildren } from '../../infra/ownedChild.ts';
import { exitWhenFlushed, handleClosedPipes } from '../../infra/stdio.ts';
import { sleep } from '../lib/time.ts';

class CliError extends Error {}
const fail = (msg: string): never => {
  throw new CliError(msg);
};
const must = <T>(r: E.Either<string | ClientError, T>): T =>
  E.isRight(r) ? r.right : fail(typeof r.left === 'string' ? r.left : r.left.message);

const USAGE = `nsm - Network Service Mesh, event-sourced on NATS

Set up identities (nkeys, TLS, NATS permissions) for a deployment:
  nsm init [--dir DIR] [--domain D] [--nodes n1,n2] [--clients alice,bob] [--operators operator] [--auditors auditor]
           [--host 127.0.0.1,localhost] [--peers b,c]   (--peers: leaf credentials for domains joining this one)

Run a mesh (authenticated and over TLS unless --insecure):
  nsm up [--data-dir DIR] [--nats-port N] [--http-port N] [--domain D] [--node NAME] [--dataplane simulated|linux]
         [--underlay ADDR] [--node-timeout 15s] [--down-grace 5m] [--liveness-interval 2s] [--heartbeat 5s]
         [--store jetstream|esdb] [--esdb-url URL] [--insecure] [--host H]... [--token-lifetime 24h]
         [--netns-dir DIR]... (paths a workload's --netns may name besides /run/netns; default none)
         [--config FILE]      (the same options as a JSON object keyed by flag name)
    federation (docs/federation.md): [--leaf-port P] [--join nats-leaf://HOST:P]... [--tunnel-ids FROM-TO]
         [--peer D]... [--peer-timeout 5s] [--registry-only] [--external-address ADDR] [--leaf-creds FILE]...
  nsm control-plane [--server URL] [--domain D] [--http-port N] [--node-timeout 15s] [--down-grace 5m] [--lease-ttl 10s]
                    [--store jetstream|esdb] [--esdb-url URL] [--creds FILE] [--identities FILE] [--insecure]
                    [--federate] [--tunnel-ids FROM-TO] [--peer D]... [--peer-timeout 5s] [--registry-only] [--netns-dir DIR]...
    (--store esdb keeps events in EventStoreDB: --esdb-url or NSM_ESDB_URL, e.g. esdb://127.0.0.1:2113?tls=false)
  nsm agent --node NAME [--server URL] [--domain D] [--dataplane simulated|linux]
            [--netns NODE_NS] [--underlay ADDR] [--external-address ADDR] [--state-dir DIR] [--liveness-interval 2s]
            [--heartbeat 5s] [--creds FILE] [--identities FILE] [--insecure] [--netns-dir DIR]...
  nsm endpoint run icmp-responder --name N --service SVC [--service SVC]... --netns NS [--prefix CIDR]
            [--exclude CIDR]... [--label k=v]... [--expiration 60s] [--node N] [--dataplane linux|simulated]

Use it (--server URL or NSM_NATS_URL, --domain D or NSM_DOMAIN, --json for scripts;
        --creds FILE or NSM_CREDS, --tls-ca FILE or NSM_TLS_CA; on the host of nsm init/up the
        operator's credentials are found without flags):
  nsm service register NAME [--payload IP|ETHERNET] [--match 'SRC=>DST[|DST][;fallthrough]']...
  nsm service unregister NAME
  nsm endpoint register NAME --service SVC[@FLOATING] [--service ...]... [--label k=v]... [--node N]
                        [--prefix CIDR] [--exclude CIDR]... [--expiration 60s] [--netns NS]
  nsm endpoint unregister NAME
  nsm connect SVC[@DOMAIN] [--label k=v]... [--node N] [--netns NS] [--interface IF] [--mechanism M]...
              [--id ID] [--wait] [--timeout 30s] [--expiration D [--hold]]
  nsm refresh ID [--expiration 60s]
  nsm close ID
  nsm ls services|endpoints|nodes|addresses|peers
  nsm ls endpoints --domain D | --all-domains [--via HOME]   (other domains' registries, from HOME's copy)
  nsm ls connections [--all] [--state S] [--node N] [--endpoint E] [--service SVC] [--client ACTOR]
  nsm history ID [--wide] [--all-domains]
  nsm status
  nsm limits [show] | set --role client|operator|peer|--client ID [--connections N] [--pending N] [--rate N] | unset ...
  nsm workflow ls | retry POSITION          failed workflow steps; run one again (operator)
  nsm policy [show] | set FILE | remove NAME | default allow|deny
  nsm policy allow|deny [--name N] [--client ID]... [--client-label k=v]... [--service SVC]...
                        [--require k=v]... [--forbid k[=v]]... [--position N]
  nsm token [--ttl 15m]        (a bearer token for the HTTP API, signed with your credentials)

Audit (reads the log and seals straight from JetStream; see docs/audit.md):
  nsm replay --until TIME|POSITION [--all]      the whole mesh as of that moment
  nsm audit verify [--file EXPORT.jsonl]        check hashes, chains and seals; names the first broken link
  nsm audit export [--since T] [--until T] [--format jsonl] [--output FILE]
  nsm projections rebuild                       rebuild the control plane's read model beside the live one
`;


const parse = <O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) => {
  try {
    return parseArgs({ args, options: { ...common, ...options }, allowPositionals: true, strict: true });
  } catch (e) {
    return fail(`${(e as Error).message.replace(/^Unknown option/, 'unknown option').split('. ')[0]}; see nsm --help`);
  }
};

const defaultDomain = () => env('NSM_DOMAIN') ?? 'default';
const defaultNode = () => env('NSM_NODE') ?? (hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 63) || 'node');
// The actor is a subject token: a host name's dots become "_" (toActorToken).
const defaultActor = () => toActorToken(env('NSM_ACTOR') ?? `${userInfo().username}@${hostname()}`);

const checkDomain = (d: string) => (DOMAIN_PATTERN.test(d) ? d : fail(`--domain ${JSON.stringify(d)}: ${DOMAIN_HINT}`));
const checkName = (what: string, n: string | undefined) =>
  n === undefined ? fail(`missing ${what}; see nsm --help`) : NAME_PATTERN.test(n) ? n : fail(`${what} ${JSON.stringify(n)}: use 1-63 letters, digits, "-" or "_"`);
/** A service, or service@domain (federation: a service of another domain, or a floating registry). */
const checkServiceRef = (what: string, n: string | undefined) =>
  n === undefined ? fail(`missing ${what}; see nsm --help`) : SERVICE_REF_PATTERN.test(n) ? n : fail(`${what} ${JSON.stringify(n)}: a service name (1-63 letters, digits, "-" or "_"), optionally @domain`);
const port = (s: string | undefined, flag: string, dflt: number) => {
  if (s === undefined) return dflt;
  const n = Number(s);
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : fail(`${flag} ${JSON.stringify(s)}: expected a port number`);
};

type Values = AccessFlags & { domain?: string; json?: boolean; actor?: string; timeout?: string };

/** What an endpoint is registered with, by `nsm endpoint register` and `nsm endpoint run`. */
const endpointFlags = {
  service: { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
  node: { type: 'string' },
  prefix: { type: 'string' },
  exclude: { type: 'string', multiple: true },
  expiration: { type: 'string' },
  netns: { type: 'string' },
} as const;

const healingFlags = { 'node-timeout': { type: 'string' }, 'down-grace': { type: 'string' }, 'lease-ttl': { type: 'string' } } as const;
const agentFlags = { 'liveness-interval': { type: 'string' }, heartbeat: { type: 'string' } } as const;
const msFlag = (v: string | undefined, flag: string) => (v === undefined ? undefined : Math.round(must(parseDuration(v, flag)) * 1000));
const healingOptions = (v: { 'node-timeout'?: string; 'down-grace'?: string; 'lease-ttl'?: string }) => {
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
const agentOptions = (v: { 'liveness-interval'?: string; heartbeat?: string }) => {
  const livenessIntervalMs = msFlag(v['liveness-interval'], '--liveness-interval');
  const heartbeatMs = msFlag(v.heartbeat, '--heartbeat');
  if (heartbeatMs !== undefined && heartbeatMs < 100) fail('--heartbeat must be at least 100ms');
  return { ...(livenessIntervalMs !== undefined ? { livenessIntervalMs } : {}), ...(heartbeatMs !== undefined ? { heartbeatMs } : {}) };
};

const processSecurityFlags = { identities: { type: 'string' }, insecure: { type: 'boolean' } } as const;

/** --netns-dir DIR...: where else than /run/netns a workload's namespace may be named (src/contracts/netnsRef.ts). */
const netnsDirFlag = { 'netns-dir': { type: 'string', multiple: true } } as const;
const netnsDirsOption = (v: { 'netns-dir'?: string[] }) => (v['netns-dir'] ? { netnsDirs: must(checkNetnsDirs(v['netns-dir'])) } : {});

/** Federation (docs/federation.md): this domain's tunnel ids, its peers, whether it is a registry only. */
const federationFlags = {
  'tunnel-ids': { type: 'string' },
  peer: { type: 'string', multiple: true },
  'registry-only': { type: 'boolean' },
  'peer-timeout': { type: 'string' },
} as const;
const federationOptions = (v: { 'tunnel-ids'?: string; peer?: string[]; 'registry-only'?: boolean; 'peer-timeout'?: string }, force = false): FederationOptions | undefined => {
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

/**
 * `nsm up --config FILE`: the same options as the flags, as a JSON object keyed by flag name
 * ({"domain": "b", "join": "nats-leaf://hub:7422", "tunnel-ids": "1000-1999"}). Flags given on
 * the command line come after, so they win.
 */
const configArgs = (file: string, known: Record<string, { type: string; multiple?: boolean }>): string[] => {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    return fail(`--config ${file}: ${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail(`--config ${file}: expected a JSON object keyed by option name`);
  return Object.entries(raw as Record<string, unknown>).flatMap(([k, val]) => {
    const opt = known[k];
    if (!opt || k === 'config') return fail(`--config ${file}: unknown option "${k}"; see nsm --help`);
    if (opt.type === 'boolean') return val === true ? [`--${k}`] : val === false ? [] : fail(`--config ${file}: "${k}" must be true or false`);
    const values = Array.isArray(val) ? val : [val];
    if (values.length > 1 && !opt.multiple) return fail(`--config ${file}: "${k}" takes one value`);
    return values.flatMap((x) => (typeof x === 'string' || typeof x === 'number' ? [`--${k}`, String(x)] : fail(`--config ${file}: "${k}" must be a string or number`)));
  });
};

/** A mesh process's identity: its credentials unless --insecure, which connects without any. */
const processAccess = (v: Values & { insecure?: boolean }, domain: string, role: 'control-plane' | 'agent', name: string) => {
  const access = must(resolveAccess(v.insecure ? { ...v, creds: undefined } : v, domain, { role, name }));
  tellNotes(access);
  if (v.insecure) return { url: access.url, ...(access.tlsCaFile ? { tlsCaFile: access.tlsCaFile } : {}) };
  if (!access.credentials) fail(`no credentials found for ${role === 'agent' ? `agent:${name}` : role}: pass --creds FILE (or NSM_CREDS), or --insecure for a mesh without authentication`);
  return access;
};
/** Says why a pointer in the user's config was passed over (src/cli/access.ts): one line each. */
const tellNotes = (access: { notes?: readonly string[] }) => {
  for (const n of access.notes ?? []) process.stderr.write(`nsm: ${n}\n`);
};
const identitiesOf = (v: Values, access: { credentialsFile?: string }, domain: string) => {
  const f = resolveIdentities(v, access.credentialsFile, domain);
  return f ? { identitiesFile: f } : {};
};

const withClient = async <T>(v: Values, fn: (c: MeshClient) => Promise<T>): Promise<T> => {
  const domain = checkDomain(v.domain ?? defaultDomain());
  const timeoutMs = v.timeout ? must(parseDuration(v.timeout, '--timeout')) * 1000 : 10000;
  // The operator's credentials, found without flags on the host that ran nsm init / nsm up.
  const access = must(resolveAccess(v, domain, { role: 'operator', name: 'operator' }));
  tellNotes(access);
  const explicitActor = v.actor ?? env('NSM_ACTOR');
  // With credentials the actor is the identity's unless one is named.
  const actor = explicitActor !== undefined ? toActorToken(explicitActor) : access.credentials ? undefined : defaultActor();
  const client = must(
    await MeshClient.connect(access.url, {
      domain,
      timeoutMs,
      ...(actor !== undefined ? { actor } : {}),
      ...(access.credentials ? { credentials: access.credentials } : {}),
      ...(access.tlsCaFile ? { tlsCaFile: access.tlsCaFile } : {}),
    }),
  );
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
};

const out = (v: Values, json: unknown, human: () => string) => {
  process.stdout.write((v.json ? JSON.stringify(json, null, 2) : human()) + '\n');
};

const sendAndReport = async <K extends CommandKind>(v: Values, kind: K, body: CommandBody<K>, done: string) =>
  withClient(v, async (c) => {
    const r = must(await c.send(kind, body));
    out(v, r, () => ('noop' in r && r.noop ? `${done} (no change)` : done));
  });

/** Refreshes the connection every third of its expiration until SIGINT/SIGTERM, then closes it. */
const holdConnection = (c: MeshClient, id: string, expirationSeconds: number): Promise<void> =>
  new Promise((resolve) => {
    process.stderr.write(`holding ${id}: refreshing every ${Math.round(expirationSeconds / 3)} s; Ctrl-C closes it\n`);
    const timer = setInterval(async () => {
      const r = await c.send('connection.refresh', { connectionId: id, expirationSeconds });
      if (E.isLeft(r)) process.stderr.write(`refresh failed (will retry): ${r.left.message}\n`);
    }, (expirationSeconds * 1000) / 3);
    const done = async () => {
      clearInterval(timer);
      const r = await c.send('connection.close', { connectionId: id, reason: 'the holding client stopped' });
      process.stderr.write(E.isLeft(r) ? `close failed: ${r.left.message}\n` : `connection ${id} closed\n`);
      resolve();
    };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, done);
  });

const commands: Record<string, (args: string[]) => Promise<void>> = {
  async up(rawArgs) {
    const upFlags = {
      'data-dir': { type: 'string' },
      'nats-port': { type: 'string' },
      'http-port': { type: 'string' },
      node: { type: 'string' },
      dataplane: { type: 'string' },
      insecure: { type: 'boolean' },
      host: { type: 'string', multiple: true },
      'token-lifetime': { type: 'string' },
      ...healingFlags,
      ...agentFlags,
      ...STORE_OPTIONS,
      underlay: { type: 'string' },
      ...federationFlags,
      'leaf-port': { type: 'string' },
      join: { type: 'string', multiple: true },
      'leaf-creds': { type: 'string', multiple: true },
      'external-address': { type: 'string' },
      config: { type: 'string' },
      ...netnsDirFlag,
    } as const;
    // Options from --config first: flags on the command line then win.
    const configAt = rawArgs.findIndex((a) => a === '--config' || a.startsWith('--config='));
    const configFile = configAt < 0 ? undefined : rawArgs[configAt]!.includes('=') ? rawArgs[configAt]!.slice('--config='.length) : rawArgs[configAt + 1];
    const args = configFile ? [...configArgs(configFile, { ...common, ...upFlags } as Record<string, { type: string; multiple?: boolean }>), ...rawArgs] : rawArgs;
    const { values: v } = parse(args, upFlags);
    const domain = checkDomain(v.domain ?? defaultDomain());
    const tokenLifetimeMs = msFlag(v['token-lifetime'], '--token-lifetime');
    const join = v.join?.flatMap((j) => j.split(',')).filter(Boolean);
    for (const url of join ?? []) {
      const bad = checkLeafUrl(url);
      if (bad) fail(`--join ${bad}`);
    }
    const leafPort = v['leaf-port'] !== undefined ? port(v['leaf-port'], '--leaf-port', 7422) : undefined;
    const fedOptions = federationOptions(v, leafPort !== undefined || (join?.length ?? 0) > 0);
    await runUp({
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
      node: checkName('--node', v.node ?? defaultNode()),
      dataplane: v.dataplane ?? 'simulated',
      store: must(chooseStore(v, env)),
      ...(v.underlay ? { underlay: v.underlay } : {}),
      ...netnsDirsOption(v),
    });
  },
  async 'control-plane'(args) {
    const { values: v } = parse(args, { 'http-port': { type: 'string' }, ...processSecurityFlags, 'token-lifetime': { type: 'string' }, ...healingFlags, ...STORE_OPTIONS, ...federationFlags, federate: { type: 'boolean' }, ...netnsDirFlag });
    const fedOptions = federationOptions(v, v.federate ?? false);
    const domain = checkDomain(v.domain ?? defaultDomain());
    const access = processAccess(v, domain, 'control-plane', 'control-plane');
    const tokenLifetimeMs = msFlag(v['token-lifetime'], '--token-lifetime');
    await runControlPlane({
      healing: healingOptions(v),
      store: must(chooseStore(v, env)),
      access,
      ...identitiesOf(v, access, domain),
      domain,
      ...(tokenLifetimeMs !== undefined ? { tokenLifetimeMs } : {}),
      ...(v['http-port'] ? { httpPort: port(v['http-port'], '--http-port', 0) } : {}),
      ...(fedOptions ? { federation: fedOptions } : {}),
      ...netnsDirsOption(v),
    });
  },
  async agent(args) {
    const { values: v } = parse(args, {
      node: { type: 'string' },
      dataplane: { type: 'string' },
      netns: { type: 'string' },
      underlay: { type: 'string' },
      'state-dir': { type: 'string' },
      'external-address': { type: 'string' },
      ...processSecurityFlags,
      ...agentFlags,
      ...netnsDirFlag,
    });
    const domain = checkDomain(v.domain ?? defaultDomain());
    const node = checkName('--node', v.node ?? defaultNode());
    const access = processAccess(v, domain, 'agent', node);
    await runAgent({
      agent: agentOptions(v),
      access,
      ...identitiesOf(v, access, domain),
      domain,
      node,
      dataplane: v.dataplane ?? 'simulated',
      ...(v.netns ? { netns: v.netns } : {}),
      ...(v.underlay ? { underlay: v.underlay } : {}),
      stateDir: v['state-dir'] ?? join(defaultDataDir(domain), `agent-${node}`),
      ...(v['external-address'] ? { externalAddress: v['external-address'] } : {}),
      ...netnsDirsOption(v),
    });
  },
  async init(args) {
    const { values: v } = parse(args, {
      dir: { type: 'string' },
      nodes: { type: 'string', multiple: true },
      clients: { type: 'string', multiple: true },
      operators: { type: 'string', multiple: true },
      auditors: { type: 'string', multiple: true },
      host: { type: 'string', multiple: true },
      peers: { type: 'string', multiple: true },
    });
    const domain = checkDomain(v.domain ?? defaultDomain());
    const list = (xs: string[] | undefined) => (xs ? xs.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean) : undefined);
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
    out(
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
  async policy(args) {
    const { values: v, positionals } = parse(args, {
      client: { type: 'string', multiple: true },
      'client-label': { type: 'string', multiple: true },
      service: { type: 'string', multiple: true },
      require: { type: 'string', multiple: true },
      forbid: { type: 'string', multiple: true },
      name: { type: 'string' },
      position: { type: 'string' },
    });
    await withClient(v, (c) => policyCommand(c, positionals, v, (json, human) => out(v, json, human)));
  },
  async token(args) {
    const { values: v } = parse(args, { ttl: { type: 'string' } });
    const domain = checkDomain(v.domain ?? defaultDomain());
    const access = must(resolveAccess(v, domain, { role: 'operator', name: 'operator' }));
    tellNotes(access);
    if (!access.credentials) fail('no credentials found: nsm token signs with yours (--creds FILE or NSM_CREDS)');
    const ttl = Math.ceil(must(parseDuration(v.ttl ?? '15m', '--ttl')));
    if (ttl < 1 || ttl > MAX_API_TOKEN_SECONDS) fail(`--ttl must be between 1s and ${MAX_API_TOKEN_SECONDS / 3600}h`);
    process.stdout.write(apiToken(signerOf(access.credentials!), access.credentials!.actor, new Date(), ttl) + '\n');
  },
  async service(args) {
    const { values: v, positionals: [verb, name] } = parse(args, { payload: { type: 'string' }, match: { type: 'string', multiple: true } });
    const svc = checkName('service name', name);
    if (verb === 'register') {
      const payload = v.payload ?? 'IP';
      if (payload !== 'IP' && payload !== 'ETHERNET') fail(`--payload ${JSON.stringify(payload)}: expected IP or ETHERNET`);
      const matches = (v.match ?? []).map((m) => must(parseMatch(m)));
      return sendAndReport(v, 'service.register', { name: svc, payload: payload as 'IP' | 'ETHERNET', matches }, `service ${svc} registered`);
    }
    if (verb === 'unregister') return sendAndReport(v, 'service.unregister', { name: svc }, `service ${svc} unregistered`);
    fail(`unknown "nsm service ${verb ?? ''}"; use register or unregister`);
  },
  async endpoint(args) {
    const verbAt = firstPositional(args);
    if (verbAt !== undefined && args[verbAt] === 'run') return endpointRun([...args.slice(0, verbAt), ...args.slice(verbAt + 1)]);
    const { values: v, positionals: [verb, name] } = parse(args, endpointFlags);
    const ep = checkName('endpoint name', name);
    if (verb === 'unregister') return sendAndReport(v, 'endpoint.unregister', { name: ep }, `endpoint ${ep} unregistered`);
    if (verb !== 'register') fail(`unknown "nsm endpoint ${verb ?? ''}"; use register, unregister or run`);
    const services = (v.service ?? fail('endpoint register needs at least one --service')).map((x) => checkServiceRef('--service', x));
    const labels = must(parseLabels(v.label ?? []));
    return sendAndReport(
      v,
      'endpoint.register',
      {
        name: ep,
        networkServiceNames: services,
        networkServiceLabels: Object.fromEntries(services.map((s) => [splitServiceRef(s).service, { labels }])),
        node: checkName('--node', v.node ?? defaultNode()),
        ...(v.prefix ? { prefix: v.prefix } : {}),
        ...(v.exclude ? { excludedPrefixes: v.exclude } : {}),
        ...(v.netns ? { netns: v.netns } : {}),
        ...(v.expiration ? { expirationSeconds: Math.ceil(must(parseDuration(v.expiration, '--expiration'))) } : {}),
      },
      `endpoint ${ep} registered`,
    );
  },
  async connect(args) {
    const { values: v, positionals: [svc] } = parse(args, {
      label: { type: 'string', multiple: true },
      node: { type: 'string' },
      netns: { type: 'string' },
      interface: { type: 'string' },
      mechanism: { type: 'string', multiple: true },
      id: { type: 'string' },
      wait: { type: 'boolean' },
      expiration: { type: 'string' },
      hold: { type: 'boolean' },
    });
    const service = checkServiceRef('network service', svc);
    const expirationSeconds = v.expiration ? Math.ceil(must(parseDuration(v.expiration, '--expiration'))) : undefined;
    if (v.hold && expirationSeconds === undefined) fail('--hold keeps a connection alive by refreshing it: give it an --expiration too');
    const id = v.id ?? randomUUID();
    const waitMs = v.timeout ? must(parseDuration(v.timeout, '--timeout')) * 1000 : 30000;
    await withClient(v, async (c) => {
      const mechanisms = (v.mechanism ?? []).map((m) => (['kernel', 'vxlan', 'wireguard'].includes(m) ? m : fail(`--mechanism ${JSON.stringify(m)}: expected kernel, vxlan or wireguard`)));
      must(
        await c.send('connection.request', {
          connectionId: id,
          networkService: service,
          clientNode: checkName('--node', v.node ?? defaultNode()),
          labels: must(parseLabels(v.label ?? [])),
          ...(v.netns ? { clientNetns: v.netns } : {}),
          ...(v.interface ? { clientInterface: v.interface } : {}),
          ...(mechanisms.length > 0 ? { mechanismPreferences: mechanisms as ('kernel' | 'vxlan' | 'wireguard')[] } : {}),
          ...(expirationSeconds !== undefined ? { expirationSeconds } : {}),
        }),
      );
      if (!v.wait && !v.hold) return out(v, { id, state: 'requested' }, () => id);
      const settled = must(await c.waitForConnection(id, waitMs));
      // The settling event can reach us before the queried read model has folded it.
      let conn = must(await c.query<Record<string, unknown>>('connection', { id }));
      for (let i = 0; i < 50 && conn.state !== settled.state; i++) {
        await sleep(100);
        conn = must(await c.query<Record<string, unknown>>('connection', { id }));
      }
      if (settled.state !== 'established') {
        if (v.json) out(v, conn, () => '');
        fail(`connection ${id} ${settled.state}: ${settled.reason ?? 'no reason given'}`);
      }
      const ctx = conn.context as { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] } } | undefined;
      out(v, conn, () => `${id} established via ${String(conn.networkServiceEndpointName)} (${ctx?.ipContext.srcIpAddrs.join(',')} -> ${ctx?.ipContext.dstIpAddrs.join(',')})`);
      if (v.hold) await holdConnection(c, id, expirationSeconds!);
    });
  },
  async refresh(args) {
    const { values: v, positionals: [id] } = parse(args, { expiration: { type: 'string' } });
    if (!id) fail('missing connection ID; see nsm --help');
    const expirationSeconds = Math.ceil(must(parseDuration(v.expiration ?? '60s', '--expiration')));
    return sendAndReport(v, 'connection.refresh', { connectionId: id!, expirationSeconds }, `connection ${id} refreshed for ${expirationSeconds} s`);
  },
  async close(args) {
    const { values: v, positionals: [id] } = parse(args, {});
    if (!id) fail('missing connection ID; see nsm --help');
    return sendAndReport(v, 'connection.close', { connectionId: id! }, `connection ${id} closed`);
  },
  async ls(args) {
    const { values: v, positionals: [what] } = parse(args, {
      all: { type: 'boolean' },
      state: { type: 'string' },
      node: { type: 'string' },
      endpoint: { type: 'string' },
      service: { type: 'string' },
      client: { type: 'string' },
      'all-domains': { type: 'boolean' },
      via: { type: 'string' },
    });
    // Federation: other domains' registries come from the home domain's sourced copy (docs/federation.md).
    if (what === 'endpoints') {
      const home = v.via ?? env('NSM_DOMAIN');
      if (v['all-domains'] || (v.domain !== undefined && home !== undefined && checkDomain(v.domain) !== checkDomain(home))) return remoteEndpoints({ ...v, ...(home ? { domain: home } : {}) }, v['all-domains'] ? undefined : v.domain);
    }
    await withClient(v, async (c) => {
      switch (what) {
        case 'services': {
          const rows = must(await c.queryAll<{ name: string; payload: string; matches: unknown[]; updatedAt: string }>('services'));
          return out(v, rows, () => table(['name', 'payload', 'matches', 'updated'], rows.map((r) => [r.name, r.payload, r.matches.length, age(r.updatedAt)])));
        }
        case 'endpoints': {
          const rows = must(await c.queryAll<{ name: string; networkServiceNames: string[]; networkServiceLabels: Record<string, { labels: Record<string, string> }>; node: string; prefix: string; connections: number; expirationTime: string; domain?: string }>('endpoints'));
          // A floating registry's entries name their home domain (docs/federation.md).
          const floating = rows.some((r) => r.domain);
          return out(v, rows, () =>
            table(
              ['name', 'services', 'labels', ...(floating ? ['home domain'] : []), 'node', 'prefix', 'connections', 'expires'],
              rows.map((r) => [r.name, r.networkServiceNames.join(','), r.networkServiceNames.map((s) => labelsText(r.networkServiceLabels[s]?.labels)).filter(Boolean).join(' '), ...(floating ? [r.domain ?? ''] : []), r.node, r.prefix, r.connections, r.expirationTime]),
            ),
          );
        }
        case 'connections': {
          const params = {
            ...(v.all ? { includeClosed: true } : {}),
            // "denied" and "limited" are failures with that code (a policy or a limit refused the request).
            ...(v.state ? { state: v.state === 'denied' || v.state === 'limited' ? 'failed' : v.state } : {}),
            ...(v.node ? { node: v.node } : {}),
            ...(v.endpoint ? { endpoint: v.endpoint } : {}),
            ...(v.service ? { service: v.service } : {}),
            ...(v.client ? { actor: v.client } : {}),
          };
          const all = must(await c.queryAll<Record<string, any>>('connections', params));
          const rows = v.state === 'denied' || v.state === 'limited' ? all.filter((r) => r.failure?.code === v.state) : all;
          return out(v, rows, () =>
            table(
              ['id', 'service', 'state', 'endpoint', 'client node', 'mechanism', 'client addr', 'endpoint addr', 'updated'],
              rows.map((r) => [r.id, r.networkService, r.healing ? `${r.state} (healing: ${r.healing.cause})` : r.failure?.code === 'denied' || r.failure?.code === 'limited' ? `failed (${r.failure.code})` : r.state, r.networkServiceEndpointName, r.clientNode, r.mechanism ? [r.mechanism.local, r.mechanism.remote].filter(Boolean).join('+') : '', r.context?.ipContext.srcIpAddrs.join(','), r.context?.ipContext.dstIpAddrs.join(','), age(r.updatedAt)]),
            ),
          );
        }
        case 'nodes': {
          const rows = must(await c.queryAll<{ name: string; status: string; dataplane: string; mechanisms: string[]; mtu: number; underlayAddress?: string; lastHeartbeat?: string }>('nodes'));
          return out(v, rows, () => table(['name', 'status', 'dataplane', 'mechanisms', 'mtu', 'underlay', 'heartbeat'], rows.map((r) => [r.name, r.status, r.dataplane, r.mechanisms.join(','), r.mtu, r.underlayAddress, r.lastHeartbeat ? age(r.lastHeartbeat) : 'never'])));
        }
        case 'addresses': {
          const rows = must(await c.queryAll<{ endpoint: string; connectionId: string; src: string; dst: string }>('addresses'));
          return out(v, rows, () => table(['endpoint', 'connection', 'client addr', 'endpoint addr'], rows.map((r) => [r.endpoint, r.connectionId, r.src, r.dst])));
        }
        case 'peers': {
          const rows = must(await c.query<{ domain: string; status: string; lastHeard?: string; tunnelIds?: { from: number; to: number }; registryOnly?: boolean; conflict?: string }[]>('peers'));
          const problems = rows.some((r) => r.conflict);
          return out(v, rows, () =>
            table(
              ['domain', 'status', 'heard', 'tunnel ids', 'kind', ...(problems ? ['problem'] : [])],
              rows.map((r) => [r.domain, r.status, r.lastHeard ? age(r.lastHeard) : 'never', r.tunnelIds ? formatRange(r.tunnelIds) : '', r.registryOnly ? 'registry' : 'cluster', ...(problems ? [r.conflict ? `CONFLICT: ${r.conflict}` : ''] : [])]),
            ),
          );
        }
        default:
          fail(`nsm ls ${what ?? ''}: expected services, endpoints, connections, nodes, addresses or peers`);
      }
    });
  },
  async history(args) {
    const { values: v, positionals: [id] } = parse(args, { wide: { type: 'boolean' }, 'all-domains': { type: 'boolean' } });
    if (!id) fail('missing ID; see nsm --help');
    if (v['all-domains']) return historyAllDomains(v, id!);
    await withClient(v, async (c) => {
      const rows = must(await c.queryAll<{ stream: string; position: string; event: { type: string; time: string; actor: string; version: number; correlationId: string; causationId: string; data: Record<string, unknown> } }>('history', { id }));
      const short = (s: string) => (v.wide ? s : s.slice(0, 12));
      out(v, rows, () =>
        table(
          ['position', 'time', 'stream', 'v', 'event', 'actor', 'correlation', 'causation', 'detail'],
          rows.map((r) => {
            const { type: _t, ...d } = r.event.data;
            const detail = JSON.stringify(d);
            return [r.position, r.event.time, r.stream, r.event.version, r.event.type, r.event.actor, short(r.event.correlationId), short(r.event.causationId), v.wide || detail.length <= 90 ? detail : detail.slice(0, 87) + '...'];
          }),
        ),
      );
    });
  },
  async limits(args) {
    const { values: v, positionals: [verb] } = parse(args, {
      role: { type: 'string' },
      client: { type: 'string' },
      connections: { type: 'string' },
      pending: { type: 'string' },
      rate: { type: 'string' },
    });
    if (verb === 'set' || verb === 'unset') {
      if ((v.role === undefined) === (v.client === undefined)) fail(`nsm limits ${verb}: give --role client|operator|peer or --client IDENTITY`);
      if (v.role !== undefined && !['client', 'operator', 'peer'].includes(v.role)) fail(`--role ${JSON.stringify(v.role)}: expected client, operator or peer`);
      const count = (s: string | undefined, flag: string) => (s === undefined ? undefined : /^\d{1,8}$/.test(s) ? Number(s) : fail(`${flag} ${JSON.stringify(s)}: expected a whole number (0 or more)`));
      const limits = { connections: count(v.connections, '--connections'), pending: count(v.pending, '--pending'), ratePerSecond: count(v.rate, '--rate') };
      const given = Object.fromEntries(Object.entries(limits).filter(([, n]) => n !== undefined)) as { connections?: number; pending?: number; ratePerSecond?: number };
      if (verb === 'set' && Object.keys(given).length === 0) fail('nsm limits set: give at least one of --connections N, --pending N, --rate N (what is not given is not limited)');
      if (verb === 'unset' && Object.keys(given).length > 0) fail('nsm limits unset takes no limit values');
      const scope = v.role !== undefined ? { role: v.role as 'client' | 'operator' | 'peer' } : { identity: toActorToken(v.client!) };
      const who = v.role !== undefined ? `role ${v.role}` : `identity ${v.client}`;
      return sendAndReport(v, 'limits.set', { ...scope, ...(verb === 'set' ? { limits: given } : {}) }, verb === 'set' ? `limits of ${who} set` : `limits of ${who} removed (${v.role !== undefined ? 'the defaults apply' : 'its role\'s apply'})`);
    }
    if (verb !== 'show' && verb !== undefined) fail(`unknown "nsm limits ${verb}"; use show, set or unset`);
    await withClient(v, async (c) => {
      type L = { connections?: number; pending?: number; ratePerSecond?: number };
      const r = must(await c.query<{ defaults: Record<string, L>; roles: Record<string, L>; identities: Record<string, L>; usage: Record<string, { held: number; pending: number }> }>('limits'));
      const show = (l: L | undefined) => (l ? [l.connections ?? 'unlimited', l.pending ?? 'unlimited', l.ratePerSecond ?? 'unlimited'] : ['', '', '']);
      out(v, r, () =>
        table(
          ['applies to', 'connections', 'pending', 'per second', 'set by'],
          [
            ...['client', 'operator', 'peer'].map((role) => [`role ${role}`, ...show(r.roles[role] ?? r.defaults[role]), r.roles[role] ? 'operator' : 'default']),
            ...Object.entries(r.identities).map(([id, l]) => [id, ...show(l), 'operator']),
          ],
        ),
      );
    });
  },
  async workflow(args) {
    const { values: v, positionals: [verb, position] } = parse(args, {});
    if (verb === 'retry') {
      if (!position || !/^[1-9][0-9]{0,19}$/.test(position)) fail('nsm workflow retry POSITION: the log position of a failed step (see nsm workflow ls)');
      return sendAndReport(v, 'workflow.retry', { position: position! }, `retry of the workflow step at position ${position} requested; see nsm workflow ls and nsm history ${position}`);
    }
    if (verb !== 'ls') fail(`unknown "nsm workflow ${verb ?? ''}"; use ls or retry POSITION`);
    await withClient(v, async (c) => {
      const rows = must(await c.queryAll<{ position: string; stream: string; error: string; attempts: number; failures: number; failedAt: string; retrying: boolean }>('failed-steps'));
      out(v, rows, () =>
        rows.length === 0
          ? 'no failed workflow steps'
          : table(['position', 'stream', 'failed', 'attempts', 'last failure', 'state', 'error'], rows.map((r) => [r.position, r.stream, r.failures, r.attempts, age(r.failedAt), r.retrying ? 'retrying' : 'failed', r.error.length > 100 ? r.error.slice(0, 97) + '...' : r.error])),
      );
    });
  },
  async status(args) {
    const { values: v } = parse(args, {});
    await withClient(v, async (c) => {
      const s = must(await c.query<Record<string, number>>('status'));
      out(v, s, () => Object.entries(s).map(([k, n]) => `${k}: ${n}`).join('\n'));
    });
  },
};

type EndpointRow = { name: string; networkServiceNames: string[]; node: string; prefix: string; expirationTime?: string; registry?: string; domain?: string; stale?: boolean };

/** `nsm ls endpoints --domain D` (from another domain) or `--all-domains`: the home domain's copy of other registries. */
const remoteEndpoints = (v: Values, domain: string | undefined) =>
  withClient(v, async (c) => {
    const remote = must(await c.queryAll<EndpointRow>('remote-endpoints', domain ? { domain: checkDomain(domain) } : {}));
    const local = domain ? [] : must(await c.queryAll<EndpointRow>('endpoints')).map((r) => ({ ...r, registry: c.subjects.domain, domain: r.domain ?? c.subjects.domain }));
    const rows = [...local, ...remote];
    out(v, rows, () =>
      table(
        ['registry', 'name', 'services', 'home domain', 'node', 'prefix', 'expires'],
        rows.map((r) => [r.registry ?? '', r.name, r.networkServiceNames.join(','), r.domain ?? r.registry ?? '', r.node, r.prefix, r.stale ? `${r.expirationTime} (stale)` : (r.expirationTime ?? 'static')]),
      ),
    );
  });

/** `nsm history ID --all-domains`: the connection's events in every domain it spans, joined by its id. */
const historyAllDomains = (v: Values & { wide?: boolean }, id: string) =>
  withClient(v, async (c) => {
    type Row = { domain: string; stream: string; position: string; event: { type: string; time: string; actor: string; version: number; data: Record<string, unknown> } };
    const r = must(await c.query<{ events: Row[]; domains: Record<string, string> }>('history', { id, allDomains: true }));
    out(v, r, () =>
      [
        table(
          ['domain', 'time', 'stream', 'v', 'event', 'actor', 'detail'],
          r.events.map((x) => {
            const { type: _t, ...d } = x.event.data;
            const detail = JSON.stringify(d);
            return [x.domain, x.event.time, x.stream, x.event.version, x.event.type, x.event.actor, v.wide || detail.length <= 80 ? detail : detail.slice(0, 77) + '...'];
          }),
        ),
        `domains: ${Object.entries(r.domains).map(([d, st]) => `${d} ${st}`).join('; ')}`,
      ].join('\n'),
    );
  });

/** Index of the first argument that is not an option or an option's value (globals may come first). */
const firstPositional = (args: readonly string[]): number | undefined => {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('-')) return i;
    if (!a.includes('=') && a !== '--json' && a !== '--help' && a !== '-h') i++;
  }
  return undefined;
};

/** `nsm endpoint run KIND ...`: runs until Ctrl-C (see src/client/endpointRun.ts). */
const endpointRun = async (args: string[]) => {
  const { values: v, positionals: [kind] } = parse(args, { ...endpointFlags, name: { type: 'string' }, dataplane: { type: 'string' } });
  if (!ENDPOINT_KINDS.includes(kind as EndpointKind)) fail(`nsm endpoint run ${kind ?? ''}: expected one of ${ENDPOINT_KINDS.join(', ')}`);
  const dataplane = v.dataplane ?? 'linux';
  if (dataplane !== 'linux' && dataplane !== 'simulated') fail(`--dataplane ${JSON.stringify(dataplane)}: expected linux or simulated`);
  if (dataplane === 'linux' && !v.netns) fail('nsm endpoint run needs --netns NS with the linux dataplane (the namespace that answers)');
  const expiration = v.expiration ? must(parseDuration(v.expiration, '--expiration')) : 60;
  if (expiration < 3) fail('--expiration must be at least 3s (the registration is refreshed every third of it)');
  await withClient(v, async (c) => {
    try {
      await runEndpoint(c, {
        kind: kind as EndpointKind,
        name: checkName('--name', v.name),
        services: (v.service ?? fail('nsm endpoint run needs at least one --service')).map((s) => checkServiceRef('--service', s)),
        labels: must(parseLabels(v.label ?? [])),
        node: checkName('--node', v.node ?? defaultNode()),
        ...(v.prefix ? { prefix: v.prefix } : {}),
        ...(v.exclude ? { excludedPrefixes: v.exclude } : {}),
        expirationSeconds: Math.ceil(expiration),
        netns: v.netns ?? '',
        dataplane: dataplane as 'linux' | 'simulated',
      });
    } catch (e) {
      if (e instanceof EndpointRunError) fail(e.message);
      throw e;
    }
  });
};

Object.assign(commands, auditCommands({ fail, withClient }));

/** Global options may come before the command: "nsm --server URL ls nodes". */
const hoistGlobals = (argv: string[]): string[] => {
  const globals: string[] = [];
  let i = 0;
  while (i < argv.length && argv[i]!.startsWith('--') && argv[i] !== '--help') {
    const flag = argv[i]!;
    const takesValue = !flag.includes('=') && flag !== '--json' && flag !== '--insecure';
    globals.push(...argv.slice(i, i + (takesValue ? 2 : 1)));
    i += takesValue ? 2 : 1;
  }
  return argv.length > i ? [argv[i]!, ...globals, ...argv.slice(i + 1)] : argv;
};

export const main = async (argv: string[]): Promise<number> => {
  const [cmd, ...rest] = hoistGlobals(argv);
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help' || rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(USAGE);
    return cmd ? 0 : 2;
  }
  const run = commands[cmd];
  if (!run) {
    process.stderr.write(`nsm: unknown command "${cmd}"; see nsm --help\n`);
    return 2;
  }
  try {
    await run(rest);
    return 0;
  } catch (e) {
    // One line for people; the stack only when asked for (NSM_LOG_LEVEL=debug).
    const expected = e instanceof CliError || e instanceof StartupError;
    const debug = env('NSM_LOG_LEVEL') === 'debug';
    const text = !expected && debug ? ((e as Error).stack ?? String(e)) : (e instanceof Error ? e.message : String(e)).split('\n')[0];
    process.stderr.write(`nsm ${cmd}: ${text}\n`);
    return 1;
  }
};

/** Commands that run until stopped: they install their own fatal-error policy. */
const LONG_RUNNING = ['up', 'control-plane', 'agent'];

// The process edge. Every way out flushes stdout and stderr first (infra/stdio.ts: a pipe
// would otherwise lose all but its first 64 KiB), and child processes never outlive this one
// (infra/ownedChild.ts: the exit hook, the parent-death signal or the watchdog).
handleClosedPipes();
const fatal = (e: unknown) => {
  const debug = env('NSM_LOG_LEVEL') === 'debug';
  const text = debug && e instanceof Error ? (e.stack ?? e.message) : (e instanceof Error ? e.message : String(e)).split('\n')[0];
  process.stderr.write(`nsm ${hoistGlobals(process.argv.slice(2))[0] ?? ''}: unexpected error: ${text}\n`);
  // At once, before anything else can go wrong: the exit hook would do it too, after the flush.
  signalOwnedChildren('SIGTERM');
  void exitWhenFlushed(1);
};
// Long-running processes have their own policy: stop in order, then exit (src/runtime/processes.ts exitOnFatal).
if (!LONG_RUNNING.includes(hoistGlobals(process.argv.slice(2))[0] ?? '')) {
  process.on('uncaughtException', fatal);
  process.on('unhandledRejection', fatal);
}
await exitWhenFlushed(await main(process.argv.slice(2)));
