// nsm control-plane: a control plane replica against a NATS server of your own.
import { env } from '../../client/index.ts';
import { runControlPlane } from '../../runtime/processes.ts';
import { chooseStore } from '../../runtime/storeChoice.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, identitiesOf, must, port, processAccess } from '../kit.ts';
import {
  bool,
  common,
  federationFlags,
  federationOptions,
  healingFlags,
  healingOptions,
  httpHostFlag,
  metricsFlags,
  metricsOptions,
  msFlag,
  netnsDirFlag,
  netnsDirsOption,
  processSecurityFlags,
  storeFlags,
  str,
} from '../options.ts';

export const controlPlane = defineCommand({
  name: 'control-plane',
  group: 'run',
  usage: [
    'nsm control-plane [--server URL] [--domain D] [--http-port N] [--http-host ADDR] [--http-cert FILE --http-key FILE]',
    '                  [--node-timeout 15s] [--down-grace 5m] [--lease-ttl 10s] [--metrics-port N [--metrics-host ADDR]]',
    '                  [--store jetstream|esdb] [--esdb-url URL] [--creds FILE] [--identities FILE] [--insecure]',
    '                  [--federate] [--tunnel-ids FROM-TO] [--peer D]... [--peer-timeout 5s] [--registry-only] [--netns-dir DIR]...',
    '  (--store esdb keeps events in EventStoreDB: --esdb-url or NSM_ESDB_URL, e.g. esdb://127.0.0.1:2113?tls=false)',
  ],
  description: `
A control plane replica against an existing NATS server: it folds the event log into its read
model, consumes commands, runs the connection workflow and answers queries; with --http-port it
serves the HTTP API too. Replicas share one durable command consumer, so run as many as you like.
It connects with the control plane's credentials (--creds, NSM_CREDS, or the deployment's
creds/control-plane.creds), or without any with --insecure. Runs until SIGTERM, SIGINT or SIGHUP.`,
  flags: {
    creds: { ...common.creds, help: 'credentials of the control-plane identity', defaultText: "the deployment's creds/control-plane.creds; none: refused unless --insecure" },
    'http-port': str('N', 'also serve the HTTP API (HTTPS unless --insecure)', { defaultText: 'no HTTP API' }),
    ...httpHostFlag,
    ...metricsFlags,
    'http-cert': str('FILE', "the HTTP API's TLS certificate (PEM)", { defaultText: "the deployment's tls/server.pem, beside identities.json" }),
    'http-key': str('FILE', "the HTTP API's TLS key (PEM)", { defaultText: "the deployment's tls/server-key.pem, beside identities.json" }),
    ...processSecurityFlags,
    'token-lifetime': str('DURATION', 'lifetime of the path tokens of connections without an expiration', { defaultText: '24h' }),
    ...healingFlags,
    ...storeFlags,
    federate: bool("a control plane of a federated domain whose nats-server you run yourself (JetStream domain, leafnodes)"),
    ...federationFlags,
    ...netnsDirFlag,
  },
  common: ['server', 'tls-ca', 'domain'],
  longRunning: true,
  async run({ values: v }, ctx) {
    const fedOptions = federationOptions(v, v.federate ?? false);
    const domain = checkDomain(v.domain ?? defaultDomain());
    const access = processAccess(ctx, v, domain, 'control-plane', 'control-plane');
    const tokenLifetimeMs = msFlag(v['token-lifetime'], '--token-lifetime');
    await runControlPlane({
      healing: healingOptions(v),
      store: must(chooseStore(v, env)),
      access,
      ...identitiesOf(v, access, domain),
      domain,
      ...(tokenLifetimeMs !== undefined ? { tokenLifetimeMs } : {}),
      ...(v['http-port'] ? { httpPort: port(v['http-port'], '--http-port', 0) } : {}),
      ...(v['http-host'] ? { httpHost: v['http-host'] } : {}),
      ...(v['http-cert'] ? { httpCert: v['http-cert'] } : {}),
      ...(v['http-key'] ? { httpKey: v['http-key'] } : {}),
      ...(fedOptions ? { federation: fedOptions } : {}),
      ...netnsDirsOption(v),
      ...metricsOptions(v),
    });
  },
});
