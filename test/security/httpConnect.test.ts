// Regression (found by test/security/fuzz/http.test.ts): a CONNECT request got no answer at all.
// Node hands a CONNECT request's socket to the server's 'connect' listener and, without one,
// closes it unanswered; the API now refuses it with 405 and Allow like every other method it does
// not serve, and keeps serving.
import { connect as tcpConnect } from 'node:net';
import type { Server } from 'node:http';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { startHttpApi } from '../../src/runtime/http.ts';
import type { QueryContext } from '../../src/read/queries.ts';
import { suite } from '../lib/harness.ts';

const s = suite<{ server?: Server; port?: number; logs: string[] }>('HTTP API: CONNECT is refused with an answer', { logs: [] });

s.before(async (ctx) => {
  const log = createLogger('http', {}, (l) => ctx.logs.push(l), 'debug');
  // No query is ever run here: what is asked is refused before.
  const queries = (): QueryContext => {
    throw new Error('no query expected');
  };
  ctx.server = await startHttpApi(0, '127.0.0.1', queries, log);
  ctx.port = (ctx.server.address() as { port: number }).port;
});
s.after((ctx) => void ctx.server?.close());

const exchange = (port: number, request: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => (socket.destroy(), reject(new Error(`no answer within 5 s to ${JSON.stringify(request)}`))), 5000);
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (data += d));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(data);
    });
    socket.write(request);
  });

s('CONNECT gets 405 with Allow and a JSON error; the server keeps answering', async (ctx) => {
  for (const target of ['127.0.0.1:22', 'evil.example:443', '/api/v1/status']) {
    const answer = await exchange(ctx.port!, `CONNECT ${target} HTTP/1.1\r\nHost: ${target.startsWith('/') ? '127.0.0.1' : target}\r\n\r\n`);
    assert.match(answer, /^HTTP\/1\.1 405 Method Not Allowed\r\n/, `CONNECT ${target}: ${JSON.stringify(answer)}`);
    assert.match(answer, /\r\nAllow: GET, HEAD, OPTIONS\r\n/);
    assert.match(answer, /\r\n\r\n\{"error":"only GET is served/);
  }
  const health = await exchange(ctx.port!, 'GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
  assert.match(health, /^HTTP\/1\.1 200 /);
});

s.run();
