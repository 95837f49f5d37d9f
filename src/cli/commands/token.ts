// nsm token: a bearer token for the HTTP API, signed with your credentials (docs/security.md).
import { resolveAccess } from '../../client/index.ts';
import { apiToken, MAX_API_TOKEN_SECONDS } from '../../security/apiToken.ts';
import { signerOf } from '../../security/credentials.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, fail, must } from '../kit.ts';
import { str } from '../options.ts';
import { parseDuration } from '../parse.ts';

export const token = defineCommand({
  name: 'token',
  group: 'use',
  usage: ['nsm token [--ttl 15m]        (a bearer token for the HTTP API, signed with your credentials)'],
  description: `
Prints a bearer token for the HTTP API of an authenticated mesh, signed with your credentials:
curl -H "Authorization: Bearer $(nsm token)" http://127.0.0.1:8080/api/v1/status`,
  flags: {
    ttl: str('DURATION', 'how long the token is good for', { defaultText: `15m (at most ${MAX_API_TOKEN_SECONDS / 3600}h)` }),
  },
  common: ['server', 'creds', 'domain'],
  async run({ values: v }, ctx) {
    const domain = checkDomain(v.domain ?? defaultDomain());
    const access = must(resolveAccess(v, domain, { role: 'operator', name: 'operator' }));
    ctx.notes(access);
    if (!access.credentials) fail('no credentials found: nsm token signs with yours (--creds FILE or NSM_CREDS)');
    const ttl = Math.ceil(must(parseDuration(v.ttl ?? '15m', '--ttl')));
    if (ttl < 1 || ttl > MAX_API_TOKEN_SECONDS) fail(`--ttl must be between 1s and ${MAX_API_TOKEN_SECONDS / 3600}h`);
    ctx.print(apiToken(signerOf(access.credentials!), access.credentials!.actor, new Date(), ttl));
  },
});
