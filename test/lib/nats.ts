// A private nats-server for one test file: free loopback port, temp data dir, removed at stop.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';

export interface TestNats {
  readonly server: RunningNatsServer;
  readonly url: string;
  readonly dataDir: string;
  connect(): Promise<NatsConnection>;
  /** Stops the server and every connection made through connect(), removes the data dir. */
  stop(): Promise<void>;
  /** Kill and start again on the same port and data dir (JetStream state survives). */
  restart(): Promise<void>;
}

export const runId = (): string => `t${process.pid.toString(36)}${Date.now().toString(36).slice(-4)}`;

export const startTestNats = async (opts: { extraConfig?: string } = {}): Promise<TestNats> => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nsm-test-nats-'));
  const port = await freePort();
  const start = async () => {
    const r = await startNatsServer({ dataDir, port, extraConfig: opts.extraConfig, serverName: `test-${port}` });
    if (E.isLeft(r)) throw new Error(r.left);
    return r.right;
  };
  let server = await start();
  const conns = new Set<NatsConnection>();
  const t: TestNats = {
    get server() {
      return server;
    },
    url: server.url,
    dataDir,
    connect: async () => {
      const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
      conns.add(nc);
      void nc.closed().then(() => conns.delete(nc));
      return nc;
    },
    stop: async () => {
      await Promise.all([...conns].map((c) => c.close().catch(() => undefined)));
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
    restart: async () => {
      await server.kill();
      server = await start();
    },
  };
  return t;
};
