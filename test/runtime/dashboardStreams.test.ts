// The dashboard's HTTP side on a real server (startHttpApi on a free loopback port) over a model
// folded by the real projections: the page served without a token and with its headers, the API
// and the event stream refused without one, the stream's deltas within each scope, and its
// bounds: streams in all and per identity, a reader that does not read, a token that lapses.
// Authentication is a stand-in here (tokens "op", "alice", "bob"); the real tokens and guard are
// exercised end to end in test/runtime/dashboard.test.ts.
import { request, type IncomingMessage } from 'node:http';
import type { Server } from 'node:http';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { freePort } from '../../infra/net.ts';
import { applyCommits, type MeshModel } from '../../projections/mesh.ts';
import type { StoredCommit } from '../../src/contracts/envelope.ts';
import type { Logger } from '../../src/ports/logger.ts';
import type { QueryContext } from '../../src/read/queries.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { DASHBOARD_CSP } from '../../src/runtime/dashboard.ts';
import { startHttpApi, type HttpAccess } from '../../src/runtime/http.ts';
import { clientTopologyFilter } from '../../src/security/guard.ts';
import { eventually } from '../lib/eventually.ts';
import { suite } from '../lib/harness.ts';
import { commitOf, modelWith, request as requested } from '../lib/workflowFixtures.ts';

const quiet: Logger = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, child: () => quiet };

/** A live view to drive by hand: fold commits, then tell the listeners, as MeshView does. */
class FakeView {
  current: MeshModel = modelWith();
  private readonly listeners = new Set<(m: MeshModel, c: readonly StoredCommit[]) => void>();
  onChange(l: (m: MeshModel, c: readonly StoredCommit[]) => void) {
    this.listeners.add(l);
    return () => void this.listeners.delete(l);
  }
  get listening() {
    return this.listeners.size;
  }
  /** Folds `n` new connections at once and returns their commits (told to no one). */
  connectMany(n: number, actor: string): StoredCommit[] {
    const p = this.current.position;
    const cs = Array.from({ length: n }, (_, i) => commitOf(`connection.many-${p + i + 1}`, [requested(`many-${p + i + 1}`)], p + i + 1, actor));
    this.current = applyCommits(this.current, cs);
    return cs;
  }
  /** Tells the listeners of a batch again (as if it had just been folded). */
  tell(commits: readonly StoredCommit[]) {
    this.current = { ...this.current, position: this.current.position + 1 };
    for (const l of this.listeners) l(this.current, commits);
  }
  connect(id: string, actor: string) {
    const c = commitOf(`connection.${id}`, [requested(id)], this.current.position + 1, actor);
    this.current = applyCommits(this.current, [c]);
    for (const l of this.listeners) l(this.current, [c]);
  }
}

const revoked = new Set<string>();
const access: HttpAccess = {
  authenticate: async (h) => {
    const token = /^Bearer (\w+)$/.exec(h ?? '')?.[1];
    if (!token || !['op', 'alice', 'bob'].includes(token)) return E.left('this mesh requires "Authorization: Bearer <token>"');
    return revoked.has(token) ? E.left('the token has expired') : E.right(token === 'op' ? 'operator' : token);
  },
  scope: (actor, query, params) => {
    if (query !== 'topology') return E.right({ params });
    if (actor === 'operator') return E.right({ params });
    return E.right({ params: { ...(params as object), actor }, filter: clientTopologyFilter(actor) });
  },
};

interface Ctx {
  view: FakeView;
  server?: Server;
  base: string;
}
const s = suite<Ctx>('the dashboard on the HTTP API: page, stream, scopes and bounds', { view: new FakeView(), base: '' });

s.before(async (ctx) => {
  const port = await freePort();
  const queryContext = (): QueryContext => ({ model: ctx.view.current, store: {} as EventStore, heartbeats: new Map() });
  ctx.server = await startHttpApi(port, '127.0.0.1', queryContext, quiet, access, undefined, undefined, {
    live: ctx.view,
    limits: { maxStreams: 4, maxPerActor: 2, maxBufferedBytes: 256 * 1024, heartbeatMs: 300 },
  });
  ctx.base = `http://127.0.0.1:${port}`;
});
s.after(async (ctx) => {
  await new Promise((r) => ctx.server?.close(r));
});

const get = (url: string, token?: string) => fetch(url, { headers: token ? { authorization: `Bearer ${token}` } : {} });

/** An open event stream: what it has received so far, as text. */
interface Reader {
  readonly res: IncomingMessage;
  text(): string;
  readonly ended: Promise<void>;
  close(): void;
}
const openStream = (base: string, token: string): Promise<Reader> =>
  new Promise((resolve, reject) => {
    const req = request(`${base}/api/v1/events/stream`, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      const ended = new Promise<void>((r) => (res.once('end', r), res.once('close', r), res.once('error', () => r())));
      resolve({ res, text: () => text, ended, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
// Complete events only: a stream cut off mid-write ends in part of one (what follows the last blank line).
const deltas = (text: string) =>
  text
    .split('\n\n')
    .slice(0, -1)
    .filter((b) => b.startsWith('event: delta'))
    .map((b) => JSON.parse(b.slice(b.indexOf('data: ') + 6)) as { position: number; connections: { id: string; actor: string }[] });

s('the page is served without a token, with a strict CSP; the API and the stream are not', async (ctx) => {
  const page = await get(`${ctx.base}/`);
  assert.is(page.status, 200);
  assert.is(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.is(page.headers.get('content-security-policy'), DASHBOARD_CSP);
  assert.match(DASHBOARD_CSP, /script-src 'self';/);
  assert.not.match(DASHBOARD_CSP, /unsafe-inline|unsafe-eval|https?:/);
  assert.is(page.headers.get('x-content-type-options'), 'nosniff');
  const html = await page.text();
  assert.not.match(html, /<script>|<style>|\sstyle=|\son\w+=|https?:\/\//, 'no inline script or style, no external origin');
  const js = await get(`${ctx.base}/dashboard/app.js`);
  assert.is(js.status, 200);
  assert.is(js.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.ok((await js.text()).length > 100_000, 'cytoscape is bundled in');
  const again = await fetch(`${ctx.base}/dashboard/app.js`, { headers: { 'if-none-match': js.headers.get('etag')! } });
  assert.is(again.status, 304);
  assert.is((await get(`${ctx.base}/dashboard/nothing.js`)).status, 404);
  for (const path of ['/api/v1/topology', '/api/v1/events/stream', '/api/v1/topology?at=1']) {
    const r = await get(`${ctx.base}${path}`);
    assert.is(r.status, 401, path);
    assert.is(r.headers.get('www-authenticate'), 'Bearer');
    assert.not.match(await r.text(), /"connections"/);
  }
  const ok = await get(`${ctx.base}/api/v1/topology`, 'op');
  assert.is(ok.status, 200);
  assert.is(ok.headers.get('cache-control'), 'no-store', 'data is never cached');
});

s("each stream gets the deltas of its scope: the operator everything, a client only its own connections", async (ctx) => {
  const op = await openStream(ctx.base, 'op');
  const alice = await openStream(ctx.base, 'alice');
  try {
    assert.is(op.res.headers['content-type'], 'text/event-stream; charset=utf-8');
    await eventually('hello', async () => op.text().includes('event: hello') && alice.text().includes('"scope":"own"'));
    ctx.view.connect('b1', 'bob');
    ctx.view.connect('a1', 'alice');
    ctx.view.connect('b2', 'bob');
    await eventually('the operator has seen all three', async () => deltas(op.text()).flatMap((d) => d.connections.map((c) => c.id)).join() === 'b1,a1,b2');
    const mine = deltas(alice.text());
    assert.equal(mine.map((d) => d.connections.map((c) => c.id)), [['a1']], 'alice: her own connection, nothing of bob\'s');
    assert.not.match(alice.text(), /b1|b2|bob/);
  } finally {
    op.close();
    alice.close();
  }
  await eventually('the streams are gone and the view no longer tells', async () => ctx.view.listening === 0);
});

s('at most 2 streams per identity and 4 in all; one more is answered 503', async (ctx) => {
  const open = [await openStream(ctx.base, 'op'), await openStream(ctx.base, 'op')];
  try {
    const third = await get(`${ctx.base}/api/v1/events/stream`, 'op');
    assert.is(third.status, 503);
    assert.match(((await third.json()) as { error: string }).error, /too many dashboard streams open \(2 for operator\)/);
    open.push(await openStream(ctx.base, 'alice'), await openStream(ctx.base, 'bob'));
    const fifth = await get(`${ctx.base}/api/v1/events/stream`, 'alice');
    assert.is(fifth.status, 503);
    assert.match(((await fifth.json()) as { error: string }).error, /4 in all/);
  } finally {
    for (const r of open) r.close();
  }
  await eventually('all closed', async () => ctx.view.listening === 0);
});

s('a reader that stops reading is cut off once 256 KiB wait for it; the others are not', async (ctx) => {
  // 1,000 connections; each round tells the same batch again: a delta of about 100 KB.
  const batch = ctx.view.connectMany(1000, 'op-client');
  const slow = await openStream(ctx.base, 'op');
  const fine = await openStream(ctx.base, 'op');
  const ROUNDS = 150;
  try {
    // Paused, its socket is not read: the kernel's buffers fill (a few MB on loopback), then the server's.
    slow.res.pause();
    for (let round = 1; round <= ROUNDS; round++) {
      ctx.view.tell(batch);
      // The reader that reads keeps up, round by round.
      await eventually('the reading stream has the round', async () => deltas(fine.text()).length >= round, { timeoutMs: 10_000 });
    }
    // Read now: what the server had sent before it cut the stream off, then the end.
    slow.res.resume();
    await slow.ended;
    const got = deltas(slow.text()).length;
    assert.ok(got < ROUNDS, `the slow reader got all ${ROUNDS} rounds: it was never cut off`);
    assert.ok(got > 0, 'it was served until it fell behind');
    assert.is(deltas(fine.text()).length, ROUNDS);
  } finally {
    slow.close();
    fine.close();
  }
});

s('a token that lapses ends the stream at the next heartbeat, with the reason', async (ctx) => {
  const bob = await openStream(ctx.base, 'bob');
  try {
    await eventually('a keepalive', async () => bob.text().includes(': keepalive'));
    revoked.add('bob');
    await bob.ended;
    assert.match(bob.text(), /event: end\ndata: \{"error":"the token has expired"\}/);
  } finally {
    revoked.delete('bob');
    bob.close();
  }
});

s.run();
