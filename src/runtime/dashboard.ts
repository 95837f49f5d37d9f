// The dashboard's I/O: its static page (bundled by esbuild from src/dashboard/page/ and
// node_modules/cytoscape, in memory, on the first request), the live stream of topology deltas
// (server-sent events over an authenticated fetch), and the local proxy of `nsm dashboard`.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import type { MeshModel } from '../../projections/mesh.ts';
import type { StoredCommit } from '../contracts/envelope.ts';
import type { QueryError } from '../contracts/replies.ts';
import { errorText, type Logger } from '../ports/logger.ts';
import { topologyDelta } from '../read/topology.ts';

const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'dashboard', 'page');

/**
 * No inline script or style, nothing from another origin: the page, its script and stylesheet
 * come from this server and talk only to it. `data:` images: the empty favicon.
 */
export const DASHBOARD_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

export interface Asset {
  readonly contentType: string;
  readonly body: Buffer;
  readonly etag: string;
}

const asset = (contentType: string, body: Buffer | string): Asset => {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return { contentType, body: b, etag: `"${createHash('sha256').update(b).digest('base64url').slice(0, 22)}"` };
};

/** The page's files by request path, built once (esbuild bundles the script with cytoscape). */
export type Assets = ReadonlyMap<string, Asset>;

let built: Promise<Assets> | undefined;

export const buildDashboardAssets = async (): Promise<Assets> => {
  // Imported when first needed: a process that never serves the page never loads esbuild.
  const esbuild = await import('esbuild');
  const out = await esbuild.build({
    entryPoints: [join(PAGE_DIR, 'main.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    minify: true,
    target: ['chrome100', 'firefox100', 'safari15'],
    legalComments: 'none',
    logLevel: 'silent',
  });
  const js = out.outputFiles[0]!.contents;
  return new Map([
    ['/', asset('text/html; charset=utf-8', readFileSync(join(PAGE_DIR, 'index.html')))],
    ['/dashboard/app.js', asset('text/javascript; charset=utf-8', Buffer.from(js))],
    ['/dashboard/app.css', asset('text/css; charset=utf-8', readFileSync(join(PAGE_DIR, 'app.css')))],
  ]);
};

/** The assets, built on the first call (about a second on the 2-core VM) and kept. */
export const dashboardAssets = (): Promise<Assets> => {
  built ??= buildDashboardAssets().catch((e) => {
    built = undefined;
    throw e;
  });
  return built;
};

const STATIC_HEADERS = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  // Revalidated on every load (ETag): a new version of the page is never hidden by a cache.
  'cache-control': 'no-cache',
};

/** Whether a request path is one of the page's (served without a token: they hold no data). */
export const isDashboardPath = (path: string): boolean => path === '/' || path === '/index.html' || path.startsWith('/dashboard/') || path === '/favicon.ico';

/** Serves a page path: 200 or 304, 404 for an unknown file under /dashboard/. */
export const serveDashboardAsset = async (req: IncomingMessage, res: ServerResponse, path: string, log: Logger): Promise<void> => {
  if (path === '/favicon.ico') {
    res.writeHead(204, STATIC_HEADERS);
    return void res.end();
  }
  let assets: Assets;
  try {
    assets = await dashboardAssets();
  } catch (e) {
    log.error('dashboard: cannot build the page', { error: errorText(e) });
    res.writeHead(500, { 'content-type': 'application/json' });
    return void res.end(JSON.stringify({ error: 'the dashboard page could not be built; see the log' }) + '\n');
  }
  const a = assets.get(path === '/index.html' ? '/' : path);
  if (!a) {
    res.writeHead(404, { 'content-type': 'application/json', ...STATIC_HEADERS });
    return void res.end(JSON.stringify({ error: `no such file ${path.slice(0, 200)}; the dashboard is at /` }) + '\n');
  }
  if (req.headers['if-none-match'] === a.etag) {
    res.writeHead(304, { etag: a.etag, ...STATIC_HEADERS });
    return void res.end();
  }
  res.writeHead(200, { 'content-type': a.contentType, 'content-length': a.body.length, etag: a.etag, ...STATIC_HEADERS });
  res.end(req.method === 'HEAD' ? undefined : a.body);
};

/** Where the live model is: MeshView's onChange and current (src/read/meshView.ts). */
export interface LiveSource {
  onChange(l: (m: MeshModel, commits: readonly StoredCommit[]) => void): () => void;
  readonly current: MeshModel;
}

export interface StreamLimits {
  /** Streams open at once, in all; one more is answered 503. */
  readonly maxStreams: number;
  /** Streams open at once per identity. */
  readonly maxPerActor: number;
  /** Bytes written to a stream and not yet taken by its reader; past it the stream is closed (the page reconnects and reloads). */
  readonly maxBufferedBytes: number;
  /** A comment line this often keeps proxies from timing the stream out, and the token is checked again. */
  readonly heartbeatMs: number;
}

export const DEFAULT_STREAM_LIMITS: StreamLimits = { maxStreams: 64, maxPerActor: 8, maxBufferedBytes: 4 * 1024 * 1024, heartbeatMs: 15_000 };

/** Who holds a stream and what of the mesh it may see. */
export interface StreamGrant {
  /** Who the token names ('' on an insecure mesh). */
  readonly actor: string;
  /** A client's scope: only this requester's connections (the guard's narrowing of the topology query). */
  readonly only?: string;
  /** The guard's check on what is sent (a client's: its own connections and nothing else). */
  readonly filter?: (delta: unknown) => E.Either<QueryError, unknown>;
  /** Still allowed? Asked at every heartbeat: an expired token or a revoked identity ends the stream. */
  readonly stillValid: () => Promise<E.Either<string, unknown>>;
}

interface OpenStream {
  readonly grant: StreamGrant;
  readonly res: ServerResponse;
  closed: boolean;
}

export interface EventStreams {
  /** Opens a stream on this response (its request was authenticated and authorized). */
  open(req: IncomingMessage, res: ServerResponse, grant: StreamGrant): void;
  readonly count: () => number;
  close(): void;
}

const sse = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

/**
 * The live feed of the dashboard: after each fold of the view, the delta of the picture within
 * each stream's scope (computed once per scope, not per stream). Bounded: at most maxStreams
 * streams (maxPerActor each), and a stream whose reader does not keep up is closed once
 * maxBufferedBytes wait for it, so a slow reader costs at most that much memory.
 */
export const createEventStreams = (source: LiveSource, log: Logger, limits: StreamLimits = DEFAULT_STREAM_LIMITS): EventStreams => {
  const streams = new Set<OpenStream>();
  let unsubscribe: (() => void) | undefined;
  let heartbeat: NodeJS.Timeout | undefined;
  let lastPosition = source.current.position;

  const end = (s: OpenStream, why: string, event?: string) => {
    if (s.closed) return;
    s.closed = true;
    streams.delete(s);
    if (event && !s.res.destroyed) s.res.end(event);
    else s.res.destroy();
    log.debug('dashboard stream closed', { actor: s.grant.actor, why });
    if (streams.size === 0) stopListening();
  };

  const write = (s: OpenStream, text: string) => {
    if (s.closed) return;
    // A response writes through to its socket: what waits for the reader is in the socket's buffer.
    const buffered = Math.max(s.res.writableLength, s.res.socket?.writableLength ?? 0);
    if (buffered + text.length > limits.maxBufferedBytes) {
      log.info('dashboard stream closed: its reader does not keep up', { actor: s.grant.actor, buffered });
      return end(s, 'slow reader');
    }
    s.res.write(text);
  };

  const onChange = (m: MeshModel, commits: readonly StoredCommit[]) => {
    // A bulk fold (a catch-up) tells no commits: the picture must be read again.
    if (commits.length === 0) {
      if (m.position !== lastPosition) for (const s of [...streams]) write(s, sse('resync', { position: m.position }));
      lastPosition = m.position;
      return;
    }
    lastPosition = m.position;
    const perScope = new Map<string, string | null>();
    for (const s of [...streams]) {
      const key = s.grant.only ?? '\u0000all';
      let text = perScope.get(key);
      if (text === undefined) {
        const d = topologyDelta(m, commits, s.grant.only !== undefined ? { actor: s.grant.only } : {});
        const checked = d && s.grant.filter ? s.grant.filter(d) : E.right(d);
        if (E.isLeft(checked)) {
          log.error('dashboard stream: a delta failed the scope check and was withheld', { actor: s.grant.actor, error: checked.left.message });
          text = null;
        } else text = checked.right ? sse('delta', checked.right) : null;
        perScope.set(key, text);
      }
      if (text) write(s, text);
    }
  };

  const beat = async () => {
    for (const s of [...streams]) {
      const v = await s.grant.stillValid().catch((e: unknown) => E.left(errorText(e)));
      if (E.isLeft(v)) end(s, v.left, sse('end', { error: v.left }));
      else write(s, ': keepalive\n\n');
    }
  };

  const startListening = () => {
    if (unsubscribe) return;
    lastPosition = source.current.position;
    unsubscribe = source.onChange(onChange);
    heartbeat = setInterval(() => void beat(), limits.heartbeatMs);
    heartbeat.unref();
  };
  const stopListening = () => {
    unsubscribe?.();
    unsubscribe = undefined;
    if (heartbeat) clearInterval(heartbeat);
    heartbeat = undefined;
  };

  return {
    open: (req, res, grant) => {
      const mine = [...streams].filter((s) => s.grant.actor === grant.actor).length;
      if (streams.size >= limits.maxStreams || mine >= limits.maxPerActor) {
        const body = JSON.stringify({ error: `too many dashboard streams open (${mine >= limits.maxPerActor ? `${limits.maxPerActor} for ${grant.actor || 'this identity'}` : `${limits.maxStreams} in all`}); close a page or try again later` }) + '\n';
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '5', 'cache-control': 'no-store' });
        return void res.end(body);
      }
      const s: OpenStream = { grant, res, closed: false };
      streams.add(s);
      startListening();
      req.socket.setKeepAlive(true);
      // Tokens are never in the URL (the page sends Authorization); nothing here is logged with one.
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-content-type-options': 'nosniff', 'x-accel-buffering': 'no' });
      const m = source.current;
      write(s, sse('hello', { position: m.position, scope: grant.only !== undefined ? 'own' : 'all' }));
      res.on('close', () => end(s, 'reader gone'));
    },
    count: () => streams.size,
    close: () => {
      for (const s of [...streams]) end(s, 'server stopping', sse('end', { error: 'the server is stopping' }));
      stopListening();
    },
  };
};

/**
 * `nsm dashboard`'s local server: the page from this package, and every /api/ request passed to
 * a mesh's HTTP API (over TLS trusting `ca` when given) with its Authorization header. Plain HTTP
 * on loopback only: the browser talks to it without having to trust the deployment's CA, and
 * the token it carries never crosses a network in the clear.
 */
export const startDashboardProxy = (o: { port: number; target: URL; ca?: string; log: Logger }): Promise<Server> =>
  new Promise((resolve, reject) => {
    const { target, log } = o;
    const base = target.pathname.replace(/\/+$/, '');
    const server = createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
      req.on('error', () => undefined);
      res.on('error', () => undefined);
      const url = req.url ?? '';
      const path = url.split('?', 1)[0]!;
      const method = req.method ?? '';
      if (method !== 'GET' && method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ error: 'only GET is served' }) + '\n');
      }
      if (!url.startsWith('/') || url.startsWith('//')) {
        res.writeHead(400, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ error: 'invalid request target' }) + '\n');
      }
      if (isDashboardPath(path)) return void serveDashboardAsset(req, res, path, log).catch((e) => (log.error('dashboard proxy: serving the page failed', { error: errorText(e) }), res.destroy()));
      if (!path.startsWith('/api/') && path !== '/healthz') {
        res.writeHead(404, { 'content-type': 'application/json' });
        return void res.end(JSON.stringify({ error: 'this server passes /api/ on to the mesh and serves the dashboard at /' }) + '\n');
      }
      const headers: Record<string, string> = { accept: req.headers.accept ?? '*/*' };
      if (req.headers.authorization) headers.authorization = req.headers.authorization;
      const send = target.protocol === 'https:' ? httpsRequest : httpRequest;
      const up = send(
        { protocol: target.protocol, hostname: target.hostname, port: target.port, path: `${base}${url}`, method, headers, ...(o.ca ? { ca: o.ca } : {}), timeout: 30_000 },
        (answer) => {
          const pass: Record<string, string | string[]> = {};
          for (const h of ['content-type', 'cache-control', 'www-authenticate', 'retry-after', 'x-content-type-options']) {
            const v = answer.headers[h];
            if (v !== undefined) pass[h] = v;
          }
          res.writeHead(answer.statusCode ?? 502, pass);
          // The event stream too: pipe() holds the mesh's socket back while the browser is slow.
          answer.pipe(res);
          answer.on('error', () => res.destroy());
        },
      );
      // A stream is idle between events for up to a heartbeat: the timeout is for a mesh that never answers.
      up.on('response', () => up.setTimeout(0));
      up.on('timeout', () => up.destroy(new Error('the mesh did not answer within 30 s')));
      up.on('error', (e) => {
        log.warn('dashboard proxy: the mesh\'s API failed', { target: target.origin, error: errorText(e) });
        if (!res.headersSent) {
          res.writeHead(502, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ error: `the mesh's API at ${target.origin} failed: ${errorText(e)}` }) + '\n');
        } else res.destroy();
      });
      res.on('close', () => up.destroy());
      up.end();
    });
    server.once('error', reject);
    server.listen(o.port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server);
    });
  });

/** `nsm dashboard`: the proxy until SIGINT, SIGTERM or SIGHUP, then closed with its open streams. */
export const runDashboardProxy = async (o: { port: number; target: URL; ca?: string; log: Logger; said: (line: string) => void }): Promise<void> => {
  const server = await startDashboardProxy(o);
  o.said(`dashboard: http://127.0.0.1:${o.port}/ (the mesh's API ${o.target.origin}${o.ca ? ', its certificate checked against the CA given' : ''}); sign in with a token from nsm token. Stop with Ctrl-C.`);
  await new Promise<void>((resolve) => {
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => resolve());
  });
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
};
