// The HTTP API of a real `nsm up` (authenticated, the default) against hostile requests, sent
// raw over TCP: malformed percent-encodings, invalid request targets, bad Host headers, absurd
// URLs and headers, other methods, bad tokens, forward-dated tokens. Each gets a 4xx, and the
// process keeps running and answering. Also: the status of an error does not follow words the
// caller put into the request.
import { mkdtempSync, rmSync } from 'node:fs';
import { readFileSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { apiToken } from '../../src/security/apiToken.ts';
import { readCredentials, signerOf } from '../../src/security/credentials.ts';
import { suite } from '../lib/harness.ts';
import { httpsGet } from '../lib/https.ts';
import { runId } from '../lib/nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess } from '../lib/nsmProcess.ts';

interface Ctx {
  tmp?: string;
  dir?: string;
  up?: NsmProcess;
  httpPort?: number;
  token?: string;
  env?: NodeJS.ProcessEnv;
}
const s = suite<Ctx>('HTTP API of nsm up against hostile requests', {});
/** The deployment's CA: the API is served over TLS with its server certificate. */
let deploymentCa = '';

s.before(async (ctx) => {
  const tmp = (ctx.tmp = mkdtempSync(join(tmpdir(), 'nsm-http-')));
  const domain = `http-${runId()}`;
  ctx.dir = join(tmp, 'deployment');
  ctx.env = { XDG_CONFIG_HOME: join(tmp, 'config'), XDG_DATA_HOME: join(tmp, 'data'), NSM_DOMAIN: domain, NSM_LOG_LEVEL: 'info', NSM_NATS_URL: '', NSM_CREDS: '', NSM_ACTOR: '' };
  ctx.httpPort = await freePort();
  ctx.up = startNsm(['up', '--data-dir', ctx.dir, '--nats-port', String(await freePort()), '--http-port', String(ctx.httpPort), '--node', 'n1'], ctx.env);
  await ctx.up.waitFor(`mesh "${domain}" is up`, 60000);
  deploymentCa = readFileSync(join(ctx.dir, 'tls', 'ca.pem'), 'utf8');
  const t = await runNsm(['token', '--ttl', '10m'], ctx.env);
  assert.is(t.code, 0, t.stderr);
  ctx.token = t.stdout.trim();
});

s.after(async (ctx) => {
  if (ctx.up) {
    await ctx.up.stop('SIGTERM', 15000);
    const pid = ctx.up.logs('nats-server started')[0]?.pid;
    if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  if (ctx.tmp) rmSync(ctx.tmp, { recursive: true, force: true });
});

interface RawResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** The body of a chunked answer (sizes in hex, each chunk on its own line). */
const dechunk = (text: string): string => {
  let out = '';
  for (let rest = text; ; ) {
    const eol = rest.indexOf('\r\n');
    const size = parseInt(rest.slice(0, eol), 16);
    if (eol < 0 || !(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
};

/** Sends bytes as they are, over TLS trusting the deployment's CA, and reads the answer until the server closes the connection. */
const raw = (port: number, request: string): Promise<RawResponse> =>
  new Promise((resolve, reject) => {
    const socket = tlsConnect({ port, host: '127.0.0.1', ca: deploymentCa });
    let data = '';
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`no answer within 10 s to ${JSON.stringify(request.slice(0, 120))}`))), 10000);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    // A server that refuses a request before reading all of it closes with data unread, which the
    // kernel turns into a reset: the answer already received is what counts.
    let failure: Error | undefined;
    socket.on('error', (e) => (failure = e));
    socket.on('close', () => {
      clearTimeout(timer);
      const [head = '', body = ''] = data.split(/\r\n\r\n(.*)/s);
      const [statusLine = '', ...lines] = head.split('\r\n');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
      if (!m) return reject(new Error(`no HTTP answer to ${JSON.stringify(request.slice(0, 120))}: ${JSON.stringify(data.slice(0, 200))}${failure ? ` (${failure.message})` : ''}`));
      const headers: Record<string, string> = {};
      for (const l of lines) {
        const i = l.indexOf(':');
        if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
      }
      resolve({ status: Number(m[1]), headers, body: headers['transfer-encoding'] === 'chunked' ? dechunk(body) : body });
    });
    // Written, not ended: a client that half-closes its side before the answer gets none (Node's
    // HTTP server aborts such a request), and that is not what these tests are about. The server
    // closes the connection (Connection: close, or a request it refuses).
    socket.write(request);
  });

/** The error message of a JSON answer, else the body as it is. */
const errorOf = (r: RawResponse): string => {
  try {
    return String((JSON.parse(r.body) as { error?: unknown }).error ?? r.body);
  } catch {
    return r.body;
  }
};

const get = (target: string, headers: Record<string, string> = {}, method = 'GET') =>
  `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}Connection: close\r\n\r\n`;

/** Still running and answering: /healthz, and an authenticated query. */
const stillServing = async (ctx: Ctx, after: string) => {
  assert.is(ctx.up!.child.exitCode, null, `nsm up exited after ${after}:\n${ctx.up!.stderr().slice(-3000)}`);
  assert.is(ctx.up!.child.signalCode, null, `nsm up was killed after ${after}`);
  const health = await raw(ctx.httpPort!, get('/healthz'));
  assert.is(health.status, 200, `/healthz after ${after}`);
};

s('malformed requests each get a 4xx; nsm up keeps running and answering', async (ctx) => {
  const auth = { Authorization: `Bearer ${ctx.token!}` };
  const cases: { what: string; request: string; status: number; says?: RegExp }[] = [
    // The request that used to kill the process: decoded before authentication, URIError uncaught.
    { what: 'malformed percent-encoding, no token', request: get('/api/v1/connections/%ZZ'), status: 401, says: /requires "Authorization: Bearer <token>"/ },
    { what: 'malformed percent-encoding, with a token', request: get('/api/v1/connections/%ZZ', auth), status: 400, says: /path segment "%ZZ".*percent-encoding/ },
    { what: 'truncated UTF-8 in the history id', request: get('/api/v1/history/%E0%A4%A', auth), status: 400, says: /percent-encoding/ },
    { what: 'overlong UTF-8 in the node name', request: get('/api/v1/nodes/%C0%80/desired', auth), status: 400, says: /percent-encoding/ },
    { what: 'a NUL in a connection id', request: get('/api/v1/connections/a%00b', auth), status: 400, says: /params\.id/ },
    { what: 'traversal in a connection id', request: get('/api/v1/connections/..%2F..%2Fetc', auth), status: 400, says: /params\.id/ },
    { what: 'malformed percent-encoding in the query', request: get('/api/v1/connections?state=%ZZ&includeClosed=%', auth), status: 400, says: /params\.state/ },
    { what: 'a query string that is not one, no token', request: get('/api/v1/connections?%%%&&==&'), status: 401 },
    { what: 'an invalid absolute-form target', request: get('http://%zz/api/v1/status'), status: 400, says: /request target/ },
    { what: 'an absolute-form target', request: get('http://127.0.0.1/api/v1/status', auth), status: 400, says: /request target/ },
    { what: 'the asterisk-form target', request: get('*'), status: 400 },
    { what: 'a Host with a space', request: `GET /api/v1/status HTTP/1.1\r\nHost: exa mple\r\nConnection: close\r\n\r\n`, status: 400, says: /Host/ },
    { what: 'a Host that is half an IPv6 literal', request: `GET /healthz HTTP/1.1\r\nHost: [::1\r\nConnection: close\r\n\r\n`, status: 400, says: /Host/ },
    { what: 'no Host (HTTP/1.1)', request: `GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n`, status: 400 },
    { what: 'a 12 KB path', request: get(`/api/v1/connections/${'a'.repeat(12000)}`, auth), status: 414 },
    { what: 'a 40 KB path', request: get(`/api/v1/connections/${'a'.repeat(40000)}`), status: 431 },
    { what: 'a 64 KB header', request: get('/api/v1/status', { 'X-Junk': 'j'.repeat(64 * 1024) }), status: 431 },
    { what: 'a token of 10 KB', request: get('/api/v1/status', { Authorization: `Bearer ${'A'.repeat(10000)}.e30.AAAA` }), status: 401 },
    { what: 'a token that is not one', request: get('/api/v1/status', { Authorization: 'Bearer a.b.c' }), status: 401 },
    { what: 'a token with alg none', request: get('/api/v1/status', { Authorization: `Bearer ${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"sub":"operator"}').toString('base64url')}.AAAA` }), status: 401 },
    { what: 'HEAD without a token', request: get('/api/v1/status', {}, 'HEAD'), status: 401 },
    { what: 'OPTIONS', request: get('/api/v1/status', {}, 'OPTIONS'), status: 204 },
    { what: 'DELETE', request: get('/api/v1/status', auth, 'DELETE'), status: 405, says: /only GET/ },
    { what: 'POST with a body', request: `POST /api/v1/services HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}`, status: 405 },
    { what: 'a method that does not exist', request: get('/api/v1/status', {}, 'BREW'), status: 400 },
    { what: 'a request line that is not one', request: 'GARBAGE\r\n\r\n', status: 400 },
    { what: 'an unknown resource, no token', request: get('/api/v1/widgets'), status: 401 },
  ];
  for (const c of cases) {
    const r = await raw(ctx.httpPort!, c.request);
    assert.is(r.status, c.status, `${c.what}: ${r.status} ${r.body}`);
    if (c.says) assert.match(errorOf(r), c.says, `${c.what}: ${r.body}`);
    await stillServing(ctx, c.what);
  }
  const head = await raw(ctx.httpPort!, get('/api/v1/status', auth, 'HEAD'));
  assert.is(head.status, 200, 'HEAD with a token');
  assert.is(head.body, '', 'HEAD has no body');
  const options = await raw(ctx.httpPort!, get('/api/v1/status', {}, 'OPTIONS'));
  assert.is(options.headers.allow, 'GET, HEAD, OPTIONS');
  const status = await raw(ctx.httpPort!, get('/api/v1/status', auth));
  assert.is(status.status, 200, status.body);
  assert.is((JSON.parse(status.body) as { nodes: number }).nodes, 1);
  assert.not.match(ctx.up!.stderr(), /uncaught|URIError|Invalid URL/);
});

s('an API token dated forward, or valid for longer than 24 h from now, is refused', async (ctx) => {
  const c = readCredentials(join(ctx.dir!, 'creds', 'operator.creds'));
  if (E.isLeft(c)) throw new Error(c.left);
  const signer = signerOf(c.right);
  const now = Date.now();
  const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });
  // A key holder mints a token issued a year from now and valid for an hour from then.
  const forward = apiToken(signer, 'operator', new Date(now + 365 * 86400 * 1000), 3600);
  const r1 = await raw(ctx.httpPort!, get('/api/v1/status', bearer(forward)));
  assert.is(r1.status, 401, `a forward-dated token: ${r1.body}`);
  assert.match(errorOf(r1), /issued in the future/);
  // Issued 30 s ahead (within the clock skew allowed), but then valid for 24 h from then.
  const long = apiToken(signer, 'operator', new Date(now + 30_000), 24 * 3600);
  const r2 = await raw(ctx.httpPort!, get('/api/v1/status', bearer(long)));
  assert.is(r2.status, 401, `a token valid for more than 24 h from now: ${r2.body}`);
  assert.match(errorOf(r2), /valid for more than 24 h from now/);
  // Within the skew and the maximum: accepted.
  const skewed = apiToken(signer, 'operator', new Date(now + 30_000), 3600);
  const r3 = await raw(ctx.httpPort!, get('/api/v1/status', bearer(skewed)));
  assert.is(r3.status, 200, `a token issued 30 s ahead: ${r3.body}`);
  await stillServing(ctx, 'token checks');
});

s('the status of an error follows its kind, not words the caller put in the request', async (ctx) => {
  const auth = { Authorization: `Bearer ${ctx.token!}` };
  // Invalid parameters whose text says "does not exist" / "nothing has happened": still invalid.
  for (const target of ['/api/v1/connections?at=does%20not%20exist', '/api/v1/replay?until=nothing%20has%20happened', '/api/v1/status?at=forbidden']) {
    const r = await raw(ctx.httpPort!, get(target, auth));
    assert.is(r.status, 400, `${target}: ${r.body}`);
    assert.match(errorOf(r), /invalid query parameters/);
  }
  const missing = await raw(ctx.httpPort!, get('/api/v1/connections/nope', auth));
  assert.is(missing.status, 404, missing.body);
  assert.match(errorOf(missing), /connection "nope" does not exist/);
  const never = await raw(ctx.httpPort!, get('/api/v1/history/never-happened', auth));
  assert.is(never.status, 404, never.body);
  await stillServing(ctx, 'status checks');
});

s('the API is HTTPS with the deployment certificate: plaintext gets no HTTP answer, a client without the CA is refused', async (ctx) => {
  const plaintext = await new Promise<string>((resolve) => {
    const socket = tcpConnect(ctx.httpPort!, '127.0.0.1');
    let data = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(data));
    socket.write(get('/healthz'));
    setTimeout(() => socket.destroy(), 5000);
  });
  assert.not.match(plaintext, /^HTTP\//, 'no HTTP answer to plaintext');
  const untrusted = await httpsGet(`https://127.0.0.1:${ctx.httpPort}/healthz`).then(
    () => 'answered',
    (e: { code?: string }) => e.code,
  );
  assert.ok(untrusted === 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' || untrusted === 'SELF_SIGNED_CERT_IN_CHAIN', `a client that does not trust the deployment's CA: ${untrusted}`);
  const trusted = await httpsGet(`https://127.0.0.1:${ctx.httpPort}/healthz`, { ca: deploymentCa });
  assert.is(trusted.status, 200);
  assert.match(ctx.up!.stderr(), new RegExp(`HTTP API  https://127\\.0\\.0\\.1:${ctx.httpPort}/api/v1/ \\(CA .*tls/ca\\.pem; Authorization: Bearer \\$\\(nsm token\\)\\)`));
  await stillServing(ctx, 'TLS checks');
});

s('nsm control-plane serves its HTTP API over TLS with the deployment certificate, and refuses to start without one', async (ctx) => {
  const creds = join(ctx.dir!, 'creds', 'control-plane.creds');
  const server = String(ctx.up!.logs('nats-server started')[0]!.url);
  const noCert = await runNsm(['control-plane', '--server', server, '--creds', creds, '--http-port', String(await freePort()), '--http-cert', join(ctx.tmp!, 'nope.pem')], ctx.env!);
  assert.is(noCert.code, 1);
  assert.match(noCert.stderr, /the HTTP API of an authenticated mesh is served over TLS: pass --http-cert FILE and --http-key FILE .*nope\.pem does not exist/);
  const port = await freePort();
  const replica = startNsm(['control-plane', '--server', server, '--creds', creds, '--http-port', String(port)], ctx.env!);
  try {
    await replica.waitFor('"msg":"HTTP API listening"', 30000);
    assert.equal(replica.logs('HTTP API listening')[0]?.url, `https://127.0.0.1:${port}/api/v1/`);
    const r = await httpsGet(`https://127.0.0.1:${port}/api/v1/status`, { ca: deploymentCa, headers: { Authorization: `Bearer ${ctx.token!}` } });
    assert.is(r.status, 200, r.text);
  } finally {
    await replica.stop('SIGTERM', 10000);
  }
});

s.run();
