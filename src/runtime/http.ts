// HTTP JSON API over the same queries the NATS query service answers.
//
// What a request may contain is decided in this order, and nothing user-controlled is parsed
// before it is needed: the method, the request target's shape and length, the Host header, the
// route (`/healthz` and the dashboard's page are open: the page holds no data), then the bearer token (on an authenticated mesh, before the path
// segments or the query string are even decoded), then the parameters. Anything malformed gets a
// 4xx with a message. Whatever still throws is caught by the guard around the handler: logged,
// answered 500, and the process serves on.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTlsServer } from 'node:https';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import { errorText, type Logger } from '../ports/logger.ts';
import { bigintsAsStrings } from '../contracts/canonicalJson.ts';
import { queryError, type QueryError, type QueryErrorCode } from '../contracts/replies.ts';
import { runQuery, type QueryContext } from '../read/queries.ts';
import type { QueryScope } from '../security/guard.ts';
import { createEventStreams, isDashboardPath, serveDashboardAsset, type EventStreams, type LiveSource, type StreamLimits } from './dashboard.ts';

/** An authenticated mesh's API: who is asking (bearer token) and what they may see. */
export interface HttpAccess {
  authenticate(authorization: string | undefined): Promise<E.Either<string, string>>;
  scope(actor: string, query: string, params: unknown): E.Either<QueryError, QueryScope>;
}

/** The status of a query error: from its kind only, never from its message. */
export const statusOf = (code: QueryErrorCode): number => {
  switch (code) {
    case 'forbidden':
      return 403;
    case 'not-found':
      return 404;
    case 'invalid':
      return 400;
    case 'unavailable':
      return 503;
    case 'too-large':
      return 413;
  }
};

/** Longest request target served (path and query); anything longer is 414. Node refuses a request head over 16 KiB with 431. */
export const MAX_TARGET_LENGTH = 4096;
const MAX_HEADER_BYTES = 16 * 1024;
const ALLOW = 'GET, HEAD, OPTIONS';
const METHOD_NOT_SERVED = 'only GET is served; send commands with the nsm CLI or over NATS';

/** A Host header: a name or IPv4 address, or a bracketed IPv6 literal, and an optional port. */
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?|\[[0-9A-Fa-f:.]{2,45}\])(?::\d{1,5})?$/;

/** A path segment, percent-decoded; Left when its encoding is malformed (`%ZZ`, truncated or overlong UTF-8). */
const segment = (raw: string): E.Either<QueryError, string> => {
  try {
    return E.right(decodeURIComponent(raw));
  } catch {
    return E.left(queryError('invalid', `invalid request: path segment ${JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}...` : raw)} has a malformed percent-encoding`));
  }
};

type Params = (m: RegExpMatchArray, q: URLSearchParams) => E.Either<QueryError, Record<string, unknown>>;

/** `?at=TIME|POSITION`: the answer as of that moment, replayed from the log. */
const at = (q: URLSearchParams): Record<string, unknown> => (q.has('at') ? { at: q.get('at') } : {});
const withAt: Params = (_m, q) => E.right(at(q));
const none: Params = () => E.right({});

const routes: { pattern: RegExp; query: string; params: Params }[] = [
  { pattern: /^\/api\/v1\/services$/, query: 'services', params: withAt },
  { pattern: /^\/api\/v1\/endpoints$/, query: 'endpoints', params: withAt },
  { pattern: /^\/api\/v1\/nodes$/, query: 'nodes', params: withAt },
  { pattern: /^\/api\/v1\/addresses$/, query: 'addresses', params: withAt },
  { pattern: /^\/api\/v1\/status$/, query: 'status', params: withAt },
  {
    pattern: /^\/api\/v1\/replay$/,
    query: 'replay',
    params: (_m, q) => E.right({ until: q.get('until') ?? q.get('at') ?? '', ...(q.has('includeClosed') ? { includeClosed: q.get('includeClosed') === 'true' } : {}) }),
  },
  { pattern: /^\/api\/v1\/connections\/([^/]+)$/, query: 'connection', params: (m, q) => E.map((id: string) => ({ id, ...at(q) }))(segment(m[1]!)) },
  { pattern: /^\/api\/v1\/policy$/, query: 'policy', params: none },
  { pattern: /^\/api\/v1\/peers$/, query: 'peers', params: none },
  { pattern: /^\/api\/v1\/remote-endpoints$/, query: 'remote-endpoints', params: (_m, q) => E.right(q.has('domain') ? { domain: q.get('domain') } : {}) },
  { pattern: /^\/api\/v1\/history\/([^/]+)$/, query: 'history', params: (m) => E.map((id: string) => ({ id }))(segment(m[1]!)) },
  { pattern: /^\/api\/v1\/nodes\/([^/]+)\/desired$/, query: 'node-desired', params: (m) => E.map((node: string) => ({ node }))(segment(m[1]!)) },
  {
    pattern: /^\/api\/v1\/topology$/,
    query: 'topology',
    params: (_m, q) => E.right({ ...at(q), ...(q.has('includeClosed') ? { includeClosed: q.get('includeClosed') === 'true' } : {}) }),
  },
  {
    pattern: /^\/api\/v1\/connections$/,
    query: 'connections',
    params: (_m, q) => {
      const p: Record<string, unknown> = at(q);
      for (const k of ['state', 'node', 'endpoint', 'service', 'actor']) if (q.has(k)) p[k] = q.get(k);
      if (q.has('includeClosed')) p.includeClosed = q.get('includeClosed') === 'true';
      return E.right(p);
    },
  },
];

const NO_SUCH_RESOURCE = (path: string) =>
  `no such resource ${path.length > 200 ? `${path.slice(0, 200)}...` : path}; see /api/v1/{services,endpoints,connections,nodes,addresses,status,history/ID,replay?until=} (lists also take ?at=TIME|POSITION)`;

type Send = (status: number, body: unknown, headers?: Record<string, string>) => void;
/** A body that is not JSON (the metrics' text format). */
type SendText = (status: number, contentType: string, text: string) => void;

/** /metrics: the process's registry in the Prometheus text format (src/runtime/metrics.ts). */
export interface HttpMetrics {
  readonly contentType: string;
  text(): Promise<string>;
}

/**
 * Who may read /metrics on the API: whoever may ask "status" (operator, auditor), since it tells
 * as much about the mesh (counts by service, node and state; nothing about single connections).
 */
const METRICS_LIKE_QUERY = 'status';

/** The dashboard's live feed: whoever may ask the `topology` query, within its scope (a client: its own connections). */
const STREAM_PATH = '/api/v1/events/stream';
const STREAM_LIKE_QUERY = 'topology';

/** The dashboard on the API: its page, and the live stream over this process's view. */
export interface HttpDashboard {
  readonly live: LiveSource;
  readonly limits?: StreamLimits;
}

const handle = async (
  req: IncomingMessage,
  res: ServerResponse,
  send: Send,
  sendText: SendText,
  ctx: () => QueryContext,
  log: Logger,
  access: HttpAccess | undefined,
  metrics: HttpMetrics | undefined,
  streams: EventStreams | undefined,
): Promise<void> => {
  const method = req.method ?? '';
  if (method === 'OPTIONS') return send(204, undefined, { allow: ALLOW });
  if (method !== 'GET' && method !== 'HEAD') return send(405, { error: METHOD_NOT_SERVED }, { allow: ALLOW });
  const target = req.url ?? '';
  if (target.length > MAX_TARGET_LENGTH) return send(414, { error: `the request target is ${target.length} characters long, at most ${MAX_TARGET_LENGTH}` });
  // Origin form only ("/path?query"): no absolute URL, no "*", no "//host" authority.
  if (!target.startsWith('/') || target.startsWith('//')) return send(400, { error: 'invalid request target: expected a path such as /api/v1/status' });
  const host = req.headers.host;
  if (host !== undefined && !HOST.test(host)) return send(400, { error: 'invalid Host header' });
  const q = target.indexOf('?');
  const path = q < 0 ? target : target.slice(0, q);
  if (path === '/healthz') return send(200, { ok: true });
  if (streams && isDashboardPath(path)) return serveDashboardAsset(req, res, path, log);
  let scopeOf: (query: string, params: unknown) => E.Either<QueryError, QueryScope> = (_q, params) => E.right({ params });
  let who = '';
  if (access) {
    const actor = await access.authenticate(req.headers.authorization);
    if (E.isLeft(actor)) return send(401, { error: actor.left }, { 'www-authenticate': 'Bearer' });
    who = actor.right;
    scopeOf = (query, params) => access.scope(actor.right, query, params);
  }
  if (path === STREAM_PATH && streams) {
    const scope = scopeOf(STREAM_LIKE_QUERY, {});
    if (E.isLeft(scope)) return send(statusOf(scope.left.code), { error: `the event stream is for the roles that may ask "${STREAM_LIKE_QUERY}": ${scope.left.message}` });
    const only = (scope.right.params as { actor?: string }).actor;
    const header = req.headers.authorization;
    return streams.open(req, res, {
      actor: who,
      ...(only !== undefined ? { only } : {}),
      ...(scope.right.filter ? { filter: scope.right.filter } : {}),
      // The token may expire and the identity be revoked while the stream is open.
      stillValid: async () => {
        if (!access) return E.right(undefined);
        const again = await access.authenticate(header);
        return E.isLeft(again) ? again : E.mapLeft((e: QueryError) => e.message)(access.scope(again.right, STREAM_LIKE_QUERY, {}));
      },
    });
  }
  if (path === '/metrics' && metrics) {
    const scope = scopeOf(METRICS_LIKE_QUERY, {});
    if (E.isLeft(scope)) return send(statusOf(scope.left.code), { error: `/metrics is for the roles that may ask "${METRICS_LIKE_QUERY}" (operator, auditor): ${scope.left.message}` });
    return sendText(200, metrics.contentType, await metrics.text());
  }
  for (const r of routes) {
    const m = path.match(r.pattern);
    if (!m) continue;
    // URLSearchParams does not throw: a malformed escape stays as it is, and the decoders refuse the value.
    const params = r.params(m, new URLSearchParams(q < 0 ? '' : target.slice(q + 1)));
    if (E.isLeft(params)) return send(statusOf(params.left.code), { error: params.left.message });
    const scope = scopeOf(r.query, params.right);
    if (E.isLeft(scope)) return send(statusOf(scope.left.code), { error: scope.left.message });
    let out: E.Either<QueryError, unknown>;
    try {
      out = await runQuery(ctx(), r.query, scope.right.params);
    } catch (e) {
      log.error('HTTP query failed', { query: r.query, error: errorText(e) });
      return send(500, { error: 'internal error; see the control plane\'s log' });
    }
    const filtered = E.flatMap(scope.right.filter ?? E.right)(out);
    return E.isRight(filtered) ? send(200, filtered.right) : send(statusOf(filtered.left.code), { error: filtered.left.message });
  }
  send(404, { error: NO_SUCH_RESOURCE(path) });
};

/** The HTTP API's certificate and key (PEM): on an authenticated mesh, the deployment's server certificate. */
export interface HttpTls {
  readonly cert: string;
  readonly key: string;
}

/**
 * A request handler with its answers (JSON or text) and the guard around it: nothing a request
 * does may take the process down; what throws is logged and answered 500.
 */
const guarded =
  (log: Logger, handler: (req: IncomingMessage, send: Send, sendText: SendText, res: ServerResponse) => Promise<void>) =>
  (req: IncomingMessage, res: ServerResponse): void => {
    // A client that goes away mid-request is not an error of ours.
    req.on('error', (e) => log.debug('HTTP request stream error', { error: errorText(e) }));
    res.on('error', (e) => log.debug('HTTP response stream error', { error: errorText(e) }));
    const send: Send = (status, body, headers = {}) => {
      if (res.headersSent) return;
      const text = body === undefined ? '' : JSON.stringify(body, bigintsAsStrings) + '\n';
      // Answers are the mesh as it is now (or as of a moment asked for): never kept by a cache.
      res.writeHead(status, { ...(body === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }), 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', ...headers });
      res.end(text);
    };
    const sendText: SendText = (status, contentType, text) => {
      if (res.headersSent) return;
      res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
      res.end(text);
    };
    const failed = (e: unknown) => {
      log.error('HTTP handler failed', { method: req.method, url: (req.url ?? '').slice(0, 200), error: errorText(e), stack: e instanceof Error ? e.stack : undefined });
      if (!res.headersSent) send(500, { error: 'internal error; see the control plane\'s log' });
      else res.destroy();
    };
    // The handler is async: whatever it throws arrives here as a rejection.
    handler(req, send, sendText, res).catch(failed);
  };

/** Whether an address to listen on is a loopback one (127.0.0.0/8, ::1, localhost). */
export const isLoopbackHost = (host: string): boolean =>
  host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));

/**
 * The HTTP API on host:port: over TLS when `tls` is given (an authenticated mesh; docs/security.md
 * "HTTP API"), plaintext otherwise (only an --insecure mesh starts it so).
 */
export const startHttpApi = (port: number, host: string, ctx: () => QueryContext, log: Logger, access?: HttpAccess, tls?: HttpTls, metrics?: HttpMetrics, dashboard?: HttpDashboard): Promise<Server> =>
  new Promise((resolve, reject) => {
    const streams = dashboard ? createEventStreams(dashboard.live, log, dashboard.limits) : undefined;
    const handler = guarded(log, (req, send, sendText, res) => handle(req, res, send, sendText, ctx, log, access, metrics, streams));
    const server: Server = tls ? createTlsServer({ cert: tls.cert, key: tls.key, maxHeaderSize: MAX_HEADER_BYTES, minVersion: 'TLSv1.2' }, handler) : createServer({ maxHeaderSize: MAX_HEADER_BYTES }, handler);
    // A client that fails the handshake (plaintext to the TLS port, an unknown CA) is not an error of ours.
    if (tls) server.on('tlsClientError', (e: Error) => log.debug('HTTP API: TLS handshake failed', { error: errorText(e) }));
    // CONNECT asks for a tunnel, not a resource: Node hands its socket to a 'connect' listener and,
    // with none, closes it without an answer. Refused like any other method.
    server.on('connect', (req: IncomingMessage, socket: Duplex) => {
      socket.on('error', (e) => log.debug('HTTP CONNECT socket error', { error: errorText(e) }));
      const text = JSON.stringify({ error: METHOD_NOT_SERVED }) + '\n';
      log.debug('HTTP CONNECT refused', { target: (req.url ?? '').slice(0, 200) });
      socket.end(`HTTP/1.1 405 Method Not Allowed\r\nAllow: ${ALLOW}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`);
    });
    if (streams) {
      // close() waits for every open connection, and an event stream never ends by itself.
      const close = server.close.bind(server);
      server.close = ((cb?: (err?: Error) => void) => (streams.close(), close(cb))) as typeof server.close;
    }
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', (e) => log.error('HTTP server error', { error: errorText(e) }));
      log.info('HTTP API listening', { url: `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}/api/v1/`, tls: tls !== undefined });
      resolve(server);
    });
  });

/**
 * The opt-in metrics listener (--metrics-port): `/metrics` only, plaintext and without a token, for
 * a Prometheus on the same host. It serves aggregate numbers only (labels: states, kinds, reasons,
 * causes, mechanisms and the names of services and nodes; never a connection id or an actor):
 * loopback by default, and a warning when it listens anywhere else (docs/observability.md).
 */
export const startMetricsListener = (port: number, host: string, metrics: HttpMetrics, log: Logger): Promise<Server> =>
  new Promise((resolve, reject) => {
    if (!isLoopbackHost(host)) log.warn('metrics listener off loopback: anyone who reaches it reads the mesh\'s counts by service and node, without a token', { host, port });
    const handler = guarded(log, async (req, send, sendText) => {
      const method = req.method ?? '';
      if (method !== 'GET' && method !== 'HEAD') return send(405, { error: 'only GET /metrics is served here' }, { allow: 'GET, HEAD' });
      const target = req.url ?? '';
      const path = target.split('?', 1)[0];
      if (path !== '/metrics') return send(404, { error: 'this listener serves /metrics only' });
      sendText(200, metrics.contentType, await metrics.text());
    });
    const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, handler);
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.on('error', (e) => log.error('metrics listener error', { error: errorText(e) }));
      log.info('metrics listening', { url: `http://${host.includes(':') ? `[${host}]` : host}:${port}/metrics` });
      resolve(server);
    });
  });
