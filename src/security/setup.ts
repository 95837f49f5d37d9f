// The administrative step of an authenticated mesh (docs/security.md, "Setup step"): nats-server
// is started with one more user than the deployment has, a setup identity whose key is made in
// memory for this start only and never written to disk; with it the mesh's streams and buckets
// are created (infra/nats/streams.ts provisionMesh); then the configuration is reloaded without
// that user, and the server is checked to refuse its key. Only then does any other identity
// connect, and none of them may create, update, purge or delete those streams
// (src/security/permissions.ts): not even the control plane, whose key is the one most exposed.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, nkeyAuthenticator, type ConnectionOptions } from 'nats';
import { errorText } from '../ports/logger.ts';
import { provisionMesh, type ProvisionOptions, type Provisioned } from '../../infra/nats/streams.ts';
import { subjectsFor } from '../contracts/subjects.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { waitForJetStream } from '../../infra/nats/cluster.ts';
import { loadRegistry } from './identities.ts';
import { deploymentPaths, natsConfigOf, writeNatsConfig } from './init.ts';
import { createUserKey } from './keys.ts';
import { SETUP_INBOX_PREFIX } from './permissions.ts';

export interface SecureServerOptions {
  /** nats-server's data directory (its store, configuration, log); the deployment's too unless deploymentDir says otherwise. */
  readonly dataDir: string;
  /** The deployment's directory (nsm init): identities.json, nats-auth.conf. Default: dataDir. */
  readonly deploymentDir?: string;
  /** The include of nats-auth.conf, relative to the server's configuration file. Default: "nats-auth.conf". */
  readonly authInclude?: string;
  readonly host?: string;
  /**
   * One server of a cluster of `size` (./cluster.ts): it takes connections before its JetStream
   * has a quorum, so the setup step waits for the cluster (saying so), and makes the streams
   * with `size` replicas once enough servers are up to hold them, however long that takes.
   */
  readonly cluster?: { readonly size: number };
  /** Where the setup step says what it waits for. */
  readonly say?: (line: string, fields: Record<string, unknown>) => void;
  readonly port: number;
  readonly serverName?: string;
  readonly jetstreamDomain?: string;
  /** More configuration after the authorization block (leafnodes). */
  readonly extraConfig?: string;
  /** How the streams are made: the lease TTL, the federation's peers, replicas. */
  readonly streams: ProvisionOptions;
  readonly readyTimeoutMs?: number;
}

export interface SecureServer {
  readonly server: RunningNatsServer;
  readonly provisioned: Provisioned;
}

export const SETUP_CONFIG = 'nats-setup.conf';

/** Connection options of the one-time setup identity. */
const setupAuth = (seed: string, ca: string): Partial<ConnectionOptions> => ({
  authenticator: nkeyAuthenticator(new TextEncoder().encode(seed)),
  inboxPrefix: SETUP_INBOX_PREFIX,
  tls: { ca },
});

/**
 * In a cluster, the streams are made once enough servers are up to place every replica (and
 * several servers' setup steps may race: each makes what is missing). Until then JetStream
 * refuses ("insufficient resources", "no suitable peers"), or the meta leader changes: tried
 * again, saying why every 5 s.
 */
const provisionWhenPlaced = async (provision: () => Promise<Provisioned>, say: (line: string, fields: Record<string, unknown>) => void, stopped: () => boolean): Promise<Provisioned> => {
  let lastSaid = 0;
  for (;;) {
    try {
      return await provision();
    } catch (e) {
      if (stopped()) throw e;
      if (Date.now() - lastSaid >= 5000) {
        lastSaid = Date.now();
        say('setup step: the streams cannot be placed yet; trying again', { error: errorText(e) });
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
};

/** nats-server for an authenticated deployment, its streams made by the setup step, running with the deployment's users only. */
export const startSecureNatsServer = async (o: SecureServerOptions): Promise<E.Either<string, SecureServer>> => {
  const deployment = o.deploymentDir ?? o.dataDir;
  const paths = deploymentPaths(deployment);
  const registry = loadRegistry(paths.identities);
  if (E.isLeft(registry)) return registry;
  // This version's permissions, also for a deployment made by an older one.
  const written = writeNatsConfig(deployment);
  if (E.isLeft(written)) return written;
  const key = createUserKey();
  const withSetup = natsConfigOf(deployment, { publicKey: key.publicKey });
  if (E.isLeft(withSetup)) return withSetup;
  const setupFile = join(o.dataDir, SETUP_CONFIG);
  writeFileSync(setupFile, withSetup.right, { mode: 0o600 });
  const extra = o.extraConfig ?? '';
  let server: RunningNatsServer | undefined;
  const fail = async (why: string): Promise<E.Either<string, SecureServer>> => {
    await server?.stop().catch(() => undefined);
    return E.left(why);
  };
  try {
    const ca = readFileSync(paths.caFile, 'utf8');
    const auth = setupAuth(key.seed, ca);
    const started = await startNatsServer({
      dataDir: o.dataDir,
      port: o.port,
      ...(o.serverName ? { serverName: o.serverName } : {}),
      ...(o.jetstreamDomain ? { jetstreamDomain: o.jetstreamDomain } : {}),
      ...(o.readyTimeoutMs ? { readyTimeoutMs: o.readyTimeoutMs } : {}),
      ...(o.host ? { host: o.host } : {}),
      extraConfig: `include "${SETUP_CONFIG}"\n${extra}`,
      probe: auth,
      ...(o.cluster ? { readiness: 'connect' as const } : {}),
    });
    if (E.isLeft(started)) return started;
    server = started.right;
    let provisioned: Provisioned;
    const say = o.say ?? (() => undefined);
    try {
      const nc = await connect({ ...auth, servers: server.url, reconnect: false, timeout: 5000, name: 'nsm-setup' });
      try {
        const streams = { ...o.streams, ...(o.cluster ? { replicas: o.cluster.size } : {}) };
        if (o.cluster) {
          const running = server;
          await waitForJetStream(nc, { size: o.cluster.size, say, stopped: () => nc.isClosed() || !running.isRunning() });
          provisioned = await provisionWhenPlaced(() => provisionMesh(nc, subjectsFor(registry.right.domain), streams), say, () => nc.isClosed() || !running.isRunning());
        } else provisioned = await provisionMesh(nc, subjectsFor(registry.right.domain), streams);
      } finally {
        await nc.close().catch(() => undefined);
      }
    } catch (e) {
      return await fail(`setup step: could not create the mesh's streams: ${errorText(e)}`);
    }
    const reloaded = await server.reconfigure(`include ${JSON.stringify(o.authInclude ?? 'nats-auth.conf')}\n${extra}`);
    if (E.isLeft(reloaded)) return await fail(`setup step: ${reloaded.left}`);
    // The setup identity must be gone before anyone else connects.
    const refused = await connect({ ...auth, servers: server.url, reconnect: false, timeout: 5000 }).then(
      async (nc) => (await nc.close(), false),
      (e: { code?: string }) => e.code === 'AUTHORIZATION_VIOLATION',
    );
    if (!refused) return await fail(`setup step: nats-server still accepts the setup identity after reloading without it (see ${server.logFile})`);
    return E.right({ server, provisioned });
  } catch (e) {
    return await fail(`setup step: ${errorText(e)}`);
  } finally {
    rmSync(setupFile, { force: true });
  }
};
