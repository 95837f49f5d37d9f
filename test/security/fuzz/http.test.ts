// Boundary: the HTTP API of a real `nsm up` (authenticated, the default), sent raw over TCP.
// More than 10,000 requests drawn with fast-check: methods, request targets (paths, percent
// encodings, absolute and asterisk forms, sizes), query strings, Host headers, other headers
// (many, huge, odd), bearer tokens (missing, malformed, forged, expired, dated forward, of another
// identity), authorized requests of three roles, and raw bytes no parser takes (smuggling shapes,
// bare LF, NUL, HTTP/2 preface, CONNECT). Keep-alive connections carry the well-framed ones; a
// request the server may refuse before reading goes on a connection of its own.
//
// Asserted: every request gets an answer (no reset, no hang) with a status below 500, the one the
// documented order gives (method, target, Host, token, route: docs/security.md "HTTP API"); nsm up
// is still running and answers /healthz and an authenticated query; the log did not move.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { apiToken } from '../../../src/security/apiToken.ts';
import { readCredentials, signerOf, type Credentials } from '../../../src/security/credentials.ts';
import { JWT_HEADER, signJwt } from '../../../src/security/jwt.ts';
import { suite } from '../../lib/harness.ts';
import { startSecureUp, type SecureUp } from '../../lib/secureUp.ts';
import { Conn, type Outcome } from './httpClient.ts';
import { MeshClient } from '../../../src/client/index.ts';
import { isDashboardPath } from '../../../src/runtime/dashboard.ts';
import { announce, ascii, draw, fc, pool, shuffled, Tally } from './lib.ts';

const FILE = 'test/security/fuzz/http.test.ts';
const PER_KIND = 1000;
const CONNECTIONS = 16;
/** The server's bounds (src/runtime/http.ts): the target, and Node's request head. */
const MAX_TARGET = 4096;
const MAX_HEAD = 16 * 1024;

interface Req {
  readonly kind: string;
  readonly method: string;
  readonly target: string;
  /** Headers after the request line; a Host header is added unless `host` says otherwise. */
  readonly headers: readonly (readonly [string, string])[];
  /** undefined: "Host: 127.0.0.1"; null: none. */
  readonly host?: string | null;
  /** The token is one the API takes. */
  readonly authorized?: boolean;
  /** Sent as they are, on a connection of their own; any status below 500 is the answer. */
  readonly raw?: Buffer;
  /** The statuses this request may get; computed from the documented order when absent. */
  readonly expect?: readonly number[];
}

const ROUTE = /^\/api\/v1\/(services|endpoints|nodes|addresses|status|replay|policy|peers|remote-endpoints|connections|topology)$|^\/api\/v1\/(connections|history)\/[^/]+$|^\/api\/v1\/nodes\/[^/]+\/desired$/;
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

const serialize = (r: Req): Buffer => {
  if (r.raw) return r.raw;
  const host = r.host === undefined ? [['Host', '127.0.0.1']] : r.host === null ? [] : [['Host', r.host]];
  const lines = [`${r.method} ${r.target} HTTP/1.1`, ...[...host, ...r.headers].map(([k, v]) => `${k}: ${v}`)];
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
};

/** The statuses the documented order gives: method, target, Host, token, route. */
const expected = (r: Req): readonly number[] => {
  if (r.expect) return r.expect;
  if (serialize(r).length > MAX_HEAD + 512) return [431];
  if (r.method === 'OPTIONS') return [204];
  if (r.method !== 'GET' && r.method !== 'HEAD') return [405];
  if (r.target.length > MAX_TARGET) return [414];
  if (!r.target.startsWith('/') || r.target.startsWith('//')) return [400];
  if (r.host !== undefined && r.host !== null && !HOST.test(r.host)) return [400];
  const q = r.target.indexOf('?');
  const path = q < 0 ? r.target : r.target.slice(0, q);
  if (path === '/healthz') return [200];
  // The dashboard's page, script and stylesheet hold no data: served without a token (204: the favicon, 404: no such file).
  if (isDashboardPath(path)) return [200, 204, 304, 404];
  if (!r.authorized) return [401];
  return ROUTE.test(path) ? [200, 400, 403, 404] : [404];
};

interface Tokens {
  readonly valid: readonly string[];
  readonly invalid: readonly string[];
}

const tokenChars = fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_');
const pathChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz0123456789-_.~!$&\'()*+,;=:@%/');

const generators = (t: Tokens): Record<string, fc.Arbitrary<Req>> => {
  const auth = fc.constantFrom(...t.valid).map((tok) => [['Authorization', `Bearer ${tok}`]] as const);
  const routeTarget = fc.constantFrom(
    '/api/v1/services', '/api/v1/endpoints', '/api/v1/nodes', '/api/v1/addresses', '/api/v1/status', '/api/v1/replay', '/api/v1/policy', '/api/v1/peers', '/api/v1/remote-endpoints', '/api/v1/connections',
    '/api/v1/connections/real-1', '/api/v1/history/real-1', '/api/v1/nodes/n1/desired', '/healthz',
  );
  const segment = fc.oneof(
    fc.string({ unit: pathChar, maxLength: 30 }),
    fc.constantFrom('%ZZ', '%E0%A4%A', '%C0%80', 'a%00b', '..%2F..%2Fetc', '%2e%2e', '%', '%%', '..', '.', '%F0%9F%98%80', '%uD83D'),
    fc.string({ unit: 'grapheme', maxLength: 8 }).map((s) => encodeURIComponent(s)),
  );
  const queryString = fc.oneof(
    fc.webQueryParameters(),
    fc.array(fc.tuple(fc.constantFrom('at', 'until', 'state', 'node', 'endpoint', 'service', 'actor', 'includeClosed', 'domain', 'limit', 'x', ''), fc.oneof(segment, ascii(20).map(encodeURIComponent), fc.constantFrom('-1', '0', '1e400', 'NaN', '9999999999999999999999', '2026-13-45T99:99:99Z', 'true', 'false', '%ZZ'))), { maxLength: 6 }).map((kv) => kv.map(([k, v]) => `${k}=${v}`).join('&')),
    fc.constantFrom('%%%&&==&', '&&&', '=', '?', 'at', 'a=1&a=2&a=3'),
  );
  const request = (kind: string, o: Partial<Req> & { target: string }, authorized = true, withAuth = auth): fc.Arbitrary<Req> =>
    withAuth.map((h) => ({ kind, method: 'GET', ...o, headers: authorized ? [...h, ...(o.headers ?? [])] : (o.headers ?? []), authorized }));
  return {
    method: fc.tuple(fc.constantFrom('POST', 'PUT', 'DELETE', 'PATCH', 'TRACE', 'PROPFIND', 'MKCOL', 'LOCK', 'PURGE', 'SEARCH', 'OPTIONS', 'HEAD', 'COPY', 'MOVE', 'REPORT', 'LINK'), routeTarget, fc.boolean(), auth).map(([method, target, authorized, h]) => ({
      kind: 'method',
      method,
      target,
      headers: authorized ? h : [],
      authorized,
    })),
    target: fc.tuple(fc.array(segment, { minLength: 1, maxLength: 6 }), fc.option(queryString), fc.constantFrom('/', '/api/v1/', '/api/v1/connections/', '/api/v1/history/', '/api/v1/nodes/', '//', '/api//v1/', '/API/V1/', '/healthz/', '')).chain(([segs, q, prefix]) =>
      request('target', { target: `${prefix}${segs.join('/')}${q === null ? '' : `?${q}`}` }),
    ).map((r) => (r.target.startsWith('/') || r.target === '' ? { ...r, target: r.target === '' ? '/' : r.target } : r)),
    'target-form': fc.tuple(fc.constantFrom('http://127.0.0.1/api/v1/status', 'http://%zz/api/v1/status', 'https://x/healthz', '*', '//evil.example/api/v1/status', 'api/v1/status', 'healthz', '?at=1', 'http:/x', 'file:///etc/passwd'), fc.boolean()).chain(([target, a]) => request('target-form', { target }, a)),
    query: fc.tuple(routeTarget, queryString).chain(([p, q]) => request('query', { target: `${p}?${q}` })),
    host: fc.tuple(
      fc.oneof(
        fc.constantFrom('exa_mple', '[::1', '::1', 'a..b', '-x', 'x-', 'x:99999999', 'x:', ':80', '[zz]', 'localhost:80:80', 'a/b', 'a@b', '127.0.0.1:8080', '[::1]:80', 'example.org.', 'xn--bcher-kva.example', '', ' '),
        fc.string({ unit: fc.constantFrom(...'abz09-.:[]_@/'), minLength: 1, maxLength: 40 }),
        fc.domain(),
      ),
      routeTarget,
    ).chain(([host, target]) => request('host', { target, host })),
    'no-host': routeTarget.chain((target) => request('no-host', { target, host: null, expect: [400] })),
    headers: fc.tuple(
      routeTarget,
      fc.array(fc.tuple(fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz-_0123456789!#$%&\'*+.^`|~'), minLength: 1, maxLength: 30 }), ascii(200)), { maxLength: 40 }),
      fc.constantFrom<readonly (readonly [string, string])[]>(
        [],
        [['Content-Length', '0']],
        [['Expect', '100-continue']],
        [['Connection', 'Upgrade'], ['Upgrade', 'websocket']],
        [['Connection', 'keep-alive']],
        [['X-Forwarded-For', '10.0.0.1'], ['X-Forwarded-Host', 'evil']],
        [['Accept', '*/*'], ['Accept-Encoding', 'gzip, br']],
        [['Cookie', 'a=b; c=d']],
      ),
    ).chain(([target, hs, extra]) =>
      request('headers', { target, headers: [...hs.map(([k, v]) => [k.toLowerCase() === 'host' || k.toLowerCase() === 'authorization' || k.toLowerCase() === 'content-length' || k.toLowerCase() === 'transfer-encoding' || k.toLowerCase() === 'expect' || k.toLowerCase() === 'connection' || k.toLowerCase() === 'upgrade' ? `x-${k}` : k, v.trim() || 'v'] as const), ...extra] }),
    ),
    size: fc.tuple(fc.constantFrom('target', 'header', 'headers'), fc.oneof(fc.integer({ min: 3000, max: 4096 }), fc.integer({ min: 4097, max: 14000 }), fc.integer({ min: 18 * 1024, max: 60 * 1024 }))).chain(([where, n]) => {
      if (where === 'target') return request('size', { target: `/api/v1/connections/${'a'.repeat(Math.max(1, n - 20))}` });
      if (where === 'header') return request('size', { target: '/api/v1/status', headers: [['X-Junk', 'j'.repeat(n)]] });
      return request('size', { target: '/api/v1/status', headers: Array.from({ length: Math.ceil(n / 40) }, (_, i) => [`X-H${i}`, 'v'.repeat(30)] as const) });
    }),
    token: fc.tuple(
      routeTarget.filter((x) => x !== '/healthz'),
      fc.oneof(
        fc.constantFrom(...t.invalid),
        fc.tuple(fc.array(tokenChars, { minLength: 1, maxLength: 200 }), fc.array(tokenChars, { minLength: 1, maxLength: 200 }), fc.array(tokenChars, { minLength: 1, maxLength: 100 })).map(([a, b, c]) => `${a.join('')}.${b.join('')}.${c.join('')}`),
        fc.tuple(fc.constantFrom(...t.valid), fc.nat(), fc.constantFrom('A', '_', 'z')).map(([tok, i, ch]) => {
          // Not the last character: its low bits are padding.
          const at = tok.length - 2 - (i % 80);
          return tok.slice(0, at) + (tok[at] === ch ? 'Q' : ch) + tok.slice(at + 1);
        }),
        ascii(60),
      ),
      fc.constantFrom('Bearer ', 'Bearer  ', 'Basic ', '', 'Token ', 'Bearer\t'),
      fc.boolean(),
    ).map(([target, tok, scheme, inAuthorization]) => ({
      kind: 'token',
      method: 'GET',
      target,
      headers: inAuthorization ? [['Authorization', `${scheme}${tok}`.trim() || 'x']] : [['X-Authorization', `Bearer ${tok}`]],
      authorized: false,
    })),
    authorized: fc.tuple(routeTarget, fc.option(fc.constantFrom('at=1', 'includeClosed=true', 'until=1', 'state=established', 'limit=2'))).chain(([p, q]) => request('authorized', { target: q ? `${p}?${q}` : p })),
    head: routeTarget.chain((target) => fc.boolean().chain((a) => request('head', { target, method: 'HEAD' }, a))),
    raw: fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 300 }).filter((b) => b[0] !== 13 && b[0] !== 10 && b[0] !== 0x20).map((b) => Buffer.concat([Buffer.from(b), Buffer.from('\r\n\r\n')])),
      fc.constantFrom(
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello',
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Folded: a\r\n  b\r\n\r\n',
        'GET /api/v1/status HTTP/1.1\nHost: 127.0.0.1\n\n',
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Nul: a\u0000b\r\n\r\n',
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nBad Header: x\r\n\r\n',
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n: empty-name\r\n\r\n',
        'GET /api/v1/st atus HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
        'GET /api/v1/status HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n',
        'GET /api/v1/status HTTP/1.0\r\n\r\n',
        'GET /api/v1/status\r\n\r\n',
        'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
        'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n',
        'CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n',
        'get /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
        'BREW /pot HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n\r\n',
        'GET /\u00ff\u00fe HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
        'GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1\r\nX: \u00e9\r\n\r\n',
        '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003\r\n\r\n',
      ).map((s) => Buffer.from(s, 'latin1')),
    ).map((raw) => ({ kind: 'raw', method: '', target: '', headers: [], raw, expect: [] })),
  };
};

/** What an answer says, as a tally outcome: the shape refused (4xx but 401/403/404), the guard (401/403), answered (2xx, 404). */
const outcomeOf = (status: number): 'decoder' | 'guard' | 'accepted' => (status === 401 || status === 403 ? 'guard' : status < 300 || status === 404 ? 'accepted' : 'decoder');

type Ctx = { up?: SecureUp };
const s = suite<Ctx>('fuzz: the HTTP API of nsm up', {});

s.after(async (ctx) => {
  await ctx.up?.stop();
});

s(`at least ${PER_KIND * 10} hostile HTTP requests: each answered below 500 as documented, nsm up keeps serving, the log does not move`, async (ctx) => {
  announce(FILE, 'HTTP API');
  const up = (ctx.up = await startSecureUp({ clients: ['alice'] }));
  const port = Number(new URL(up.httpUrl).port);
  // The API of the default (authenticated) mesh is HTTPS with the deployment's certificate.
  const ca = readFileSync(up.caFile, 'utf8');
  const creds = (name: string): Credentials => {
    const c = readCredentials(join(up.dataDir, 'creds', `${name}.creds`));
    if (E.isLeft(c)) throw new Error(c.left);
    return c.right;
  };
  const now = new Date();
  const operator = signerOf(creds('operator'));
  const alice = signerOf(creds('alice'));
  const auditor = signerOf(creds('auditor'));
  const b64 = (x: object) => Buffer.from(JSON.stringify(x)).toString('base64url');
  const iat = Math.floor(now.getTime() / 1000);
  const tokens: Tokens = {
    valid: [apiToken(operator, 'operator', now, 1800), apiToken(auditor, 'auditor', now, 1800), apiToken(alice, 'alice', now, 1800)],
    invalid: [
      apiToken(alice, 'operator', now, 600), // signed by alice's key, claims to be the operator
      apiToken(operator, 'operator', new Date(now.getTime() - 7200_000), 600), // expired
      apiToken(operator, 'operator', new Date(now.getTime() + 365 * 86400_000), 600), // dated a year forward
      apiToken(operator, 'operator', new Date(now.getTime() + 30_000), 24 * 3600), // valid for more than 24 h from now
      apiToken(operator, 'operator', now, 48 * 3600), // lives 48 h
      signJwt({ typ: 'nsm-api', iss: operator.publicKey, sub: 'operator', aud: 'control-plane', iat, exp: iat + 600 }, operator), // another audience
      signJwt({ typ: 'nsm-api', iss: operator.publicKey, sub: 'operator', iat, exp: iat + 600 }, operator), // no audience
      `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'operator', aud: 'nsm-http', iat, exp: iat + 600 })}.`,
      `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ iss: operator.publicKey, sub: 'operator', aud: 'nsm-http', iat, exp: iat + 600 })}.AAAA`,
      `${JWT_HEADER}.${b64({ iss: operator.publicKey, sub: 'operator', aud: 'nsm-http', iat, exp: iat + 600 })}.${'A'.repeat(86)}`,
      `${'A'.repeat(10000)}.e30.AAAA`,
    ],
  };
  const authHeader = { Authorization: `Bearer ${tokens.valid[0]}` };
  const conn = new Conn(port, 10000, ca);
  const get = async (target: string, headers: Record<string, string> = {}): Promise<Outcome> =>
    conn.send(Buffer.from(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`));
  const positionOf = async (): Promise<number> => {
    const r = await get('/api/v1/status', authHeader);
    if (!r.ok || r.answer.status !== 200) throw new Error(`status: ${JSON.stringify(r)}`);
    return (JSON.parse(r.answer.body) as { position: number }).position;
  };
  // Something to find: a service, an endpoint, a connection (through the SDK with each identity's credentials).
  const sdk = async (name: string) => {
    const c = await MeshClient.connect(up.natsUrl, { domain: up.domain, credentials: creds(name) });
    if (E.isLeft(c)) throw new Error(c.left.message);
    return c.right;
  };
  const op = await sdk('operator');
  const client = await sdk('alice');
  try {
    assert.ok(E.isRight(await op.send('service.register', { name: 'svc' })));
    assert.ok(E.isRight(await op.send('endpoint.register', { name: 'ep', networkServiceNames: ['svc'], node: up.node, prefix: '10.62.0.0/24' })));
    assert.ok(E.isRight(await client.send('connection.request', { connectionId: 'real-1', networkService: 'svc', clientNode: up.node })));
    const settled = await client.waitForConnection('real-1', 20000);
    assert.ok(E.isRight(settled) && settled.right.state === 'established', JSON.stringify(settled));
  } finally {
    await op.close();
    await client.close();
  }
  const before = await positionOf();

  const cases = shuffled(Object.entries(generators(tokens)).flatMap(([kind, g]) => draw(g, PER_KIND, `http:${kind}`)), 'http');
  const tally = new Tally();
  const conns = Array.from({ length: CONNECTIONS }, () => new Conn(port, 10000, ca));
  const byStatus = new Map<number, number>();
  const t0 = Date.now();
  // Each pool worker keeps one connection (keep-alive): its requests go one after another on it.
  await pool(cases, CONNECTIONS, async (r, _i, w) => {
    tally.sent(r.kind);
    const fresh = r.raw !== undefined || expected(r).some((x) => x === 400 || x === 431) || r.host === null;
    const out = await (fresh ? new Conn(port, 10000, ca) : conns[w]!).send(serialize(r), { head: r.method === 'HEAD', fresh });
    if (!out.ok) return tally.problem(r.kind, `${out.why}: ${JSON.stringify(serialize(r).subarray(0, 160).toString('latin1'))}`);
    const status = out.answer.status;
    byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
    const want = expected(r);
    if (status >= 500 || (want.length > 0 && !want.includes(status))) return tally.problem(r.kind, `${status} (expected ${want.join('|') || '<500'}) ${out.answer.body.slice(0, 120)}: ${JSON.stringify(serialize(r).subarray(0, 160).toString('latin1'))}`);
    tally.count(r.kind, outcomeOf(status), String(status));
  });
  const ms = Date.now() - t0;
  for (const x of conns) x.close();

  // Still standing: the process runs, /healthz and an authenticated query answer, the log did not move.
  const alive = up.up.child.exitCode === null && up.up.child.signalCode === null;
  const health = await get('/healthz');
  const after = await positionOf();
  const services = await get('/api/v1/services', authHeader);
  tally.crashes = alive && health.ok && health.answer.status === 200 && services.ok && services.answer.status === 200 ? 0 : 1;
  conn.close();
  tally.print('HTTP API', ms, [
    'decoder: refused for its shape (400, 405, 414, 431); guard: 401 or 403; accepted: answered (2xx, or 404 for what does not exist); unanswered: no answer, 5xx or another status than documented',
    `statuses: ${[...byStatus].sort((a, b) => a[0] - b[0]).map(([k, v]) => `${k}=${v}`).join(' ')}`,
    `log position ${before} -> ${after}`,
  ]);

  assert.ok(tally.total().inputs >= 10000, `at least 10,000 requests (${tally.total().inputs})`);
  assert.equal(tally.problems.slice(0, 20), [], 'every request answered below 500 as documented');
  assert.ok(alive, `nsm up is running:\n${up.up.stderr().slice(-3000)}`);
  assert.ok(tally.crashes === 0, `nsm up answers /healthz and an authenticated query: ${JSON.stringify(health)} ${JSON.stringify(services)}`);
  assert.is(after, before, 'the event log did not move');
  assert.not.match(up.up.stderr(), /uncaught|URIError|Invalid URL|"level":"error"/, 'nothing logged as an error');
});

s.run();
