// nsm dashboard: the dashboard page of this package, served on loopback, against any mesh's HTTP API.
import { readFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { createLogger } from '../../../infra/log.ts';
import { resolveAccess } from '../../client/index.ts';
import { runDashboardProxy } from '../../runtime/dashboard.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, fail, port } from '../kit.ts';
import { str } from '../options.ts';

export const dashboard = defineCommand({
  name: 'dashboard',
  group: 'use',
  usage: ['nsm dashboard [--server https://HOST:8080] [--port 8090] [--tls-ca FILE]   (the web dashboard against any mesh)'],
  description: `
Serves the dashboard on http://127.0.0.1:PORT/ and passes its API requests (with the token you
sign in with, from nsm token) to the HTTP API of the mesh at --server, checking that server's
certificate against the deployment's CA. The browser then needs to trust nothing but loopback.
Every nsm up (and nsm control-plane --http-port) serves the same page at / of its own API; this
command is for a mesh whose API your browser cannot reach or does not trust. Loopback only: the
page's requests carry your token in plain HTTP to this process. See docs/observability.md.`,
  flags: {
    server: str('URL', "the mesh's HTTP API (nsm up --http-port)", { defaultText: 'https://127.0.0.1:8080' }),
    port: str('N', 'the local port to serve the page on (127.0.0.1)', { defaultText: '8090' }),
    'tls-ca': str('FILE', "the CA of the API's certificate", { env: 'NSM_TLS_CA', defaultText: "the CA in the operator's credentials found for the domain, else the system's" }),
  },
  common: ['domain'],
  async run({ values: v }, ctx) {
    let target: URL;
    try {
      target = new URL(v.server ?? 'https://127.0.0.1:8080');
    } catch {
      return fail(`--server ${JSON.stringify(v.server)}: expected the HTTP API's URL, https://HOST:PORT`);
    }
    if (target.protocol !== 'https:' && target.protocol !== 'http:') fail(`--server ${v.server}: expected the HTTP API's URL (https://HOST:PORT, or http:// for an --insecure mesh), not a ${target.protocol} URL`);
    const domain = checkDomain(v.domain ?? defaultDomain());
    // The NATS server is not this command's --server: only the CA is looked for.
    const access = resolveAccess({ ...(v['tls-ca'] ? { 'tls-ca': v['tls-ca'] } : {}) }, domain, { role: 'operator', name: 'operator' });
    let ca: string | undefined;
    const caFile = v['tls-ca'] ?? (E.isRight(access) ? access.right.tlsCaFile : undefined);
    if (caFile) {
      try {
        ca = readFileSync(caFile, 'utf8');
      } catch (e) {
        fail(`--tls-ca ${caFile}: ${(e as Error).message}`);
      }
    } else if (E.isRight(access)) ca = access.right.credentials?.ca;
    await runDashboardProxy({ port: port(v.port, '--port', 8090), target, ...(ca ? { ca } : {}), log: createLogger('dashboard', { domain }), said: (line) => ctx.warn(line) });
  },
});
