// Long-running processes: a whole single-node mesh (`nsm up`), a control plane replica, an agent.
import type { Server } from 'node:http';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import { createLogger, errorText, type Logger } from '../../infra/log.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { startNodeAgent, type NodeAgent } from '../../node-agent/agent.ts';
import type { Dataplane } from '../../node-agent/dataplane.ts';
import { simulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { startControlPlane, type ControlPlane } from '../controlPlane.ts';
import { startHttpApi } from '../http.ts';

export class StartupError extends Error {}

const dataplaneFor = (kind: string, log: Logger): Dataplane => {
  if (kind === 'simulated') {
    log.warn('simulated dataplane: connections are recorded and reported established, but no interface is created and no packet is forwarded');
    return simulatedDataplane();
  }
  if (kind === 'linux') throw new StartupError('the linux dataplane is not implemented yet; run with --dataplane simulated');
  throw new StartupError(`--dataplane ${JSON.stringify(kind)}: expected simulated or linux`);
};

const connectNats = async (url: string, name: string): Promise<NatsConnection> => {
  try {
    return await connect({ servers: url, name, maxReconnectAttempts: -1, reconnectTimeWait: 500 });
  } catch (e) {
    throw new StartupError(`cannot reach NATS at ${url}: ${errorText(e)}`);
  }
};

/** Stops everything in reverse order on SIGINT/SIGTERM, then exits. */
const untilSignal = (log: Logger, stops: (() => Promise<unknown>)[]): Promise<void> =>
  new Promise((resolve) => {
    let stopping = false;
    const onSignal = (sig: string) => {
      if (stopping) return;
      stopping = true;
      log.info('stopping', { signal: sig });
      (async () => {
        for (const stop of [...stops].reverse()) await stop().catch((e) => log.warn('stop failed', { error: errorText(e) }));
        log.info('stopped');
        resolve();
        process.exit(0);
      })();
    };
    process.once('SIGINT', () => onSignal('SIGINT'));
    process.once('SIGTERM', () => onSignal('SIGTERM'));
  });

export const runUp = async (o: { domain: string; dataDir: string; natsPort: number; httpPort: number; node: string; dataplane: string }) => {
  const log = createLogger('nsm-up', { domain: o.domain });
  const stops: (() => Promise<unknown>)[] = [];
  const dataplane = dataplaneFor(o.dataplane, log);
  let nats: RunningNatsServer | undefined;
  try {
    const started = await startNatsServer({ dataDir: o.dataDir, port: o.natsPort, serverName: `nsm-${o.domain}-${o.node}` });
    if (E.isLeft(started)) throw new StartupError(started.left);
    nats = started.right;
    stops.push(() => nats!.stop());
    log.info('nats-server started', { url: nats.url, dataDir: o.dataDir, pid: nats.pid });
    const nc = await connectNats(nats.url, 'nsm-control-plane');
    stops.push(() => nc.close());
    const cp = await startControlPlane({ nc, domain: o.domain, log: createLogger('control-plane', { domain: o.domain }) });
    stops.push(() => cp.stop());
    const http = await startHttpApi(o.httpPort, '127.0.0.1', () => cp.queryContext(), log).catch((e) => {
      throw new StartupError(`HTTP API cannot listen on 127.0.0.1:${o.httpPort}: ${errorText(e)}`);
    });
    stops.push(() => new Promise((r) => http.close(r)));
    const anc = await connectNats(nats.url, `nsm-agent-${o.node}`);
    stops.push(() => anc.close());
    const agent = await startNodeAgent({ nc: anc, domain: o.domain, node: o.node, dataplane, log: createLogger('agent', { domain: o.domain }) });
    stops.push(() => agent.stop());
    await agent.ready;
    process.stderr.write(
      `\nmesh "${o.domain}" is up\n  NATS      ${nats.url}\n  HTTP API  http://127.0.0.1:${o.httpPort}/api/v1/\n  node      ${o.node} (${dataplane.kind} dataplane)\n  data      ${o.dataDir}\n` +
        `Try: nsm --help   (from another shell; add --server ${nats.url} if not the default)\nStop with Ctrl-C.\n\n`,
    );
  } catch (e) {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    throw e;
  }
  await untilSignal(log, stops);
};

export const runControlPlane = async (o: { url: string; domain: string; httpPort?: number }) => {
  const log = createLogger('control-plane', { domain: o.domain });
  const nc = await connectNats(o.url, 'nsm-control-plane');
  const cp: ControlPlane = await startControlPlane({ nc, domain: o.domain, log });
  const stops: (() => Promise<unknown>)[] = [() => nc.close(), () => cp.stop()];
  if (o.httpPort !== undefined) {
    const http: Server = await startHttpApi(o.httpPort, '127.0.0.1', () => cp.queryContext(), log);
    stops.push(() => new Promise((r) => http.close(r)));
  }
  log.info('control plane running', { url: o.url });
  await untilSignal(log, stops);
};

export const runAgent = async (o: { url: string; domain: string; node: string; dataplane: string }) => {
  const log = createLogger('agent', { domain: o.domain });
  const dataplane = dataplaneFor(o.dataplane, log);
  const nc = await connectNats(o.url, `nsm-agent-${o.node}`);
  const agent: NodeAgent = await startNodeAgent({ nc, domain: o.domain, node: o.node, dataplane, log });
  await agent.ready;
  await untilSignal(log, [() => nc.close(), () => agent.stop()]);
};
