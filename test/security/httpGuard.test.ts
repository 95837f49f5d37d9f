// The last lines of defence, tested by making them needed: the guard around the HTTP handler
// (whatever throws while a request is handled is logged and answered 500, and the server answers
// the next request), and the fatal-error policy of the long-running processes (an exception or
// rejection nothing handles is logged with level error, what runs is stopped within a bound, and
// the process exits 1).
import { spawn } from 'node:child_process';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { emptyMesh } from '../../projections/mesh.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { startHttpApi, type HttpAccess } from '../../src/runtime/http.ts';
import type { QueryContext } from '../../src/read/queries.ts';
import { suite } from '../lib/harness.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

type Ctx = { servers: Server[] };
const s = suite<Ctx>('the HTTP guard and the fatal-error policy', { servers: [] });
s.after(async (ctx) => {
  for (const srv of ctx.servers) await new Promise((r) => srv.close(r));
});

const lines: string[] = [];
const log = createLogger('http-guard-test', {}, (l) => lines.push(l), 'debug');
const logged = (msg: string) => lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === msg);

const serve = async (ctx: Ctx, query: () => QueryContext, access?: HttpAccess) => {
  const srv = await startHttpApi(0, '127.0.0.1', query, log, access);
  ctx.servers.push(srv);
  return `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
};

const working: QueryContext = { model: emptyMesh, store: {} as EventStore, heartbeats: new Map() };

s('whatever throws while a request is handled is logged and answered 500; the next request is served', async (ctx) => {
  let broken = true;
  const base = await serve(ctx, () => {
    if (broken) throw new Error('the read model is gone');
    return working;
  });
  const r = await fetch(`${base}/api/v1/status`);
  assert.is(r.status, 500);
  assert.equal(await r.json(), { error: "internal error; see the control plane's log" }, 'the cause stays in the log');
  const line = logged('HTTP query failed')[0];
  assert.ok(line, 'logged');
  assert.is(line!.level, 'error');
  assert.is(line!.error, 'the read model is gone');
  broken = false;
  const again = await fetch(`${base}/api/v1/status`);
  assert.is(again.status, 200);
  assert.is(((await again.json()) as { position: number }).position, 0);
});

s('an authenticator or scope that throws: 500, logged, and the server serves on', async (ctx) => {
  const base = await serve(ctx, () => working, {
    authenticate: async (h) => {
      if (h === 'Bearer explode') throw new TypeError('authenticator bug');
      return h === 'Bearer good' || h === 'Bearer scope-bug' ? E.right(h.slice(7)) : E.left('no');
    },
    scope: (actor, _q, params) => {
      if (actor === 'scope-bug') throw new RangeError('scope bug');
      return E.right({ params });
    },
  });
  const auth = (t: string) => ({ headers: { authorization: `Bearer ${t}` } });
  const exploded = await fetch(`${base}/api/v1/status`, auth('explode'));
  assert.is(exploded.status, 500);
  const scoped = await fetch(`${base}/api/v1/status`, auth('scope-bug'));
  assert.is(scoped.status, 500);
  assert.equal(logged('HTTP handler failed').map((l) => [l.level, l.error]), [['error', 'authenticator bug'], ['error', 'scope bug']]);
  assert.is((await fetch(`${base}/api/v1/status`, auth('good'))).status, 200);
  assert.is((await fetch(`${base}/api/v1/status`, auth('bad'))).status, 401);
});

const runFixture = (mode: string): Promise<{ code: number | null; stderr: string; ms: number }> =>
  new Promise((resolve, reject) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--import', `file://${root}/node_modules/tsx/dist/loader.mjs`, path.join(root, 'test/fixtures/fatal/process.ts'), mode], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NSM_LOG_LEVEL: 'info' } });
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => (child.kill('SIGKILL'), reject(new Error(`the fixture (${mode}) did not exit within 20 s; stderr:\n${stderr}`))), 20000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr, ms: Date.now() - started });
    });
  });
const jsonLines = (text: string) => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

s('an uncaught exception or an unhandled rejection: logged with level error, stopped in order, exit 1', async () => {
  for (const [mode, msg, error] of [['throw', 'uncaught exception: stopping', 'boom'], ['reject', 'unhandled promise rejection: stopping', 'nobody handles this']] as const) {
    const r = await runFixture(mode);
    assert.is(r.code, 1, `${mode}: ${r.stderr}`);
    assert.match(r.stderr, /running\n/);
    const fatal = jsonLines(r.stderr).find((l) => l.msg === msg);
    assert.ok(fatal, `${mode}: "${msg}" logged: ${r.stderr}`);
    assert.is(fatal!.level, 'error');
    assert.is(fatal!.error, error);
    assert.match(String(fatal!.stack), /fixtures\/fatal\/process\.ts/);
    // The stops ran, last started first, before the exit.
    assert.ok(r.stderr.indexOf('stop 2 ran') < r.stderr.indexOf('stop 1 ran') && r.stderr.indexOf('stop 2 ran') > 0, r.stderr);
    assert.ok(jsonLines(r.stderr).some((l) => l.msg === 'stopped after a fatal error; exiting with status 1' && l.level === 'error'));
  }
});

s('a stop that hangs after a fatal error does not keep the process alive', async () => {
  const r = await runFixture('hang');
  assert.is(r.code, 1, r.stderr);
  assert.ok(jsonLines(r.stderr).some((l) => l.msg === 'stopping took too long after a fatal error; exiting' && l.level === 'error'), r.stderr);
  assert.not.match(r.stderr, /stop 1 ran/);
});

s.run();
