// HTTP JSON API over the same queries the NATS query service answers.
import { createServer, type Server } from 'node:http';
import * as E from 'fp-ts/lib/Either.js';
import { bigintsAsStrings, type Logger } from '../infra/log.ts';
import { runQuery, type QueryContext } from './queries.ts';
import type { QueryScope } from './security/guard.ts';

/** An authenticated mesh's API: who is asking (bearer token) and what they may see. */
export interface HttpAccess {
  authenticate(authorization: string | undefined): E.Either<string, string>;
  scope(actor: string, query: string, params: unknown): E.Either<string, QueryScope>;
}

/** `?at=TIME|POSITION`: the answer as of that moment, replayed from the log. */
const at = (q: URLSearchParams): Record<string, unknown> => (q.has('at') ? { at: q.get('at') } : {});

const routes: { pattern: RegExp; query: string; params: (m: RegExpMatchArray, q: URLSearchParams) => Record<string, unknown> }[] = [
  { pattern: /^\/api\/v1\/services$/, query: 'services', params: (_m, q) => at(q) },
  { pattern: /^\/api\/v1\/endpoints$/, query: 'endpoints', params: (_m, q) => at(q) },
  { pattern: /^\/api\/v1\/nodes$/, query: 'nodes', params: (_m, q) => at(q) },
  { pattern: /^\/api\/v1\/addresses$/, query: 'addresses', params: (_m, q) => at(q) },
  { pattern: /^\/api\/v1\/status$/, query: 'status', params: (_m, q) => at(q) },
  {
    pattern: /^\/api\/v1\/replay$/,
    query: 'replay',
    params: (_m, q) => ({ until: q.get('until') ?? q.get('at') ?? '', ...(q.has('includeClosed') ? { includeClosed: q.get('includeClosed') === 'true' } : {}) }),
  },
  { pattern: /^\/api\/v1\/connections\/([^/]+)$/, query: 'connection', params: (m, q) => ({ id: decodeURIComponent(m[1]!), ...at(q) }) },
  { pattern: /^\/api\/v1\/policy$/, query: 'policy', params: () => ({}) },
  { pattern: /^\/api\/v1\/peers$/, query: 'peers', params: () => ({}) },
  { pattern: /^\/api\/v1\/remote-endpoints$/, query: 'remote-endpoints', params: (_m, q) => (q.has('domain') ? { domain: q.get('domain') } : {}) },
  { pattern: /^\/api\/v1\/history\/([^/]+)$/, query: 'history', params: (m) => ({ id: decodeURIComponent(m[1]!) }) },
  { pattern: /^\/api\/v1\/nodes\/([^/]+)\/desired$/, query: 'node-desired', params: (m) => ({ node: decodeURIComponent(m[1]!) }) },
  {
    pattern: /^\/api\/v1\/connections$/,
    query: 'connections',
    params: (_m, q) => {
      const p: Record<string, unknown> = at(q);
      for (const k of ['state', 'node', 'endpoint', 'service', 'actor']) if (q.has(k)) p[k] = q.get(k);
      if (q.has('includeClosed')) p.includeClosed = q.get('includeClosed') === 'true';
      return p;
    },
  },
];

export const startHttpApi = (port: number, host: string, ctx: () => QueryContext, log: Logger, access?: HttpAccess): Promise<Server> =>
  new Promise((resolve, reject) => {
    const server = createServer((req, res) => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body, bigintsAsStrings) + '\n');
      };
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method !== 'GET') return send(405, { error: 'only GET is served; send commands with the nsm CLI or over NATS' });
      if (url.pathname === '/healthz') return send(200, { ok: true });
      for (const r of routes) {
        const m = url.pathname.match(r.pattern);
        if (!m) continue;
        let scope: QueryScope = { params: r.params(m, url.searchParams) };
        if (access) {
          const actor = access.authenticate(req.headers.authorization);
          if (E.isLeft(actor)) return send(401, { error: actor.left });
          const scoped = access.scope(actor.right, r.query, scope.params);
          if (E.isLeft(scoped)) return send(/^forbidden/.test(scoped.left) ? 403 : 404, { error: scoped.left });
          scope = scoped.right;
        }
        runQuery(ctx(), r.query, scope.params).then(
          (out) => (E.isRight(out) ? send(200, scope.filter ? scope.filter(out.right) : out.right) : send(/does not exist|nothing has happened/.test(out.left) ? 404 : 400, { error: out.left })),
          (e) => send(500, { error: (e as Error).message }),
        );
        return;
      }
      send(404, { error: `no such resource ${url.pathname}; see /api/v1/{services,endpoints,connections,nodes,addresses,status,history/ID,replay?until=} (lists also take ?at=TIME|POSITION)` });
    });
    server.once('error', reject);
    server.listen(port, host, () => {
      log.info('HTTP API listening', { url: `http://${host}:${port}/api/v1/` });
      resolve(server);
    });
  });
