// A whole mesh the way `nsm up` runs it by default, in one test process: a deployment made by
// `nsm init` (CA, server certificate, one nkey identity per role), a private nats-server that
// requires TLS and those identities with least-privilege permissions (its streams made by the
// same setup step as nsm up's), and a control plane and simulated agents that each connect with
// their own credentials. (test/lib/mesh.ts is the insecure mesh most other tests use.) Every log line of every component is kept in `logs`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type ConnectionOptions, type NatsConnection } from 'nats';
import { createLogger, levelPasses } from '../../infra/log.ts';
import type { Logger } from '../../src/ports/logger.ts';
import type { RunningNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';
import { startNodeAgent, type NodeAgent } from '../../node-agent/agent.ts';
import { simulatedDataplane, type SimulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { MeshClient } from '../../src/client/index.ts';
import { startControlPlane, type ControlPlane } from '../../src/runtime/controlPlane.ts';
import { DEFAULT_HEALING, type HealingConfig } from '../../src/workflows/healing.ts';
import { natsAuthOptions, readCredentials, signerOf, type Credentials } from '../../src/security/credentials.ts';
import type { ControlPlaneSecurity } from '../../src/security/guard.ts';
import { loadRegistry, type IdentityRegistry } from '../../src/security/identities.ts';
import { initDeployment, type DeploymentPaths, type InitOptions } from '../../src/security/init.ts';
import { startSecureNatsServer } from '../../src/security/setup.ts';

export interface SecureMeshOptions {
  readonly domain?: string;
  readonly nodes?: string[];
  readonly clients?: string[];
  readonly controlPlane?: boolean;
  readonly healing?: Partial<HealingConfig>;
  readonly agent?: { heartbeatMs?: number; livenessIntervalMs?: number; livenessFailures?: number };
  /** Overrides for the control plane's security (a forged signing key, a short token lifetime). */
  readonly controlPlaneSecurity?: Partial<ControlPlaneSecurity>;
  readonly init?: Partial<InitOptions>;
}

export interface SecureMesh {
  readonly domain: string;
  readonly dir: string;
  readonly paths: DeploymentPaths;
  readonly registry: IdentityRegistry;
  readonly server: RunningNatsServer;
  readonly url: string;
  /** Every JSON log line written by the control plane, the agents and the clients. */
  readonly logs: string[];
  cp?: ControlPlane;
  readonly agents: Map<string, { agent: NodeAgent; dataplane: SimulatedDataplane; nc: NatsConnection }>;
  /** The credentials of an actor ("control-plane", "operator", "agent:n1", "alice", ...). */
  creds(actor: string): Credentials;
  /** A NATS connection authenticated as the actor, over TLS. */
  connectAs(actor: string, extra?: Partial<ConnectionOptions>): Promise<NatsConnection>;
  /** The SDK as the actor (its signer signs the client's path segment). */
  client(actor: string): Promise<MeshClient>;
  startControlPlane(security?: Partial<ControlPlaneSecurity>): Promise<ControlPlane>;
  addNode(name: string): Promise<SimulatedDataplane>;
  stopNode(name: string): Promise<void>;
  log(component: string): Logger;
  stop(): Promise<void>;
}

export const startSecureTestMesh = async (opts: SecureMeshOptions = {}): Promise<SecureMesh> => {
  const domain = opts.domain ?? 'sec';
  const dir = mkdtempSync(join(tmpdir(), 'nsm-test-secure-'));
  const init = initDeployment({ dir, domain, nodes: opts.nodes ?? [], clients: opts.clients ?? [], ...opts.init });
  if (E.isLeft(init)) throw new Error(`nsm init: ${init.left}`);
  const paths = init.right.paths;
  const reg = loadRegistry(paths.identities);
  if (E.isLeft(reg)) throw new Error(reg.left);
  const credsCache = new Map<string, Credentials>();
  const creds = (actor: string): Credentials => {
    const known = credsCache.get(actor);
    if (known) return known;
    const id = reg.right.byActor(actor);
    if (!id) throw new Error(`no identity acts as ${actor}`);
    const c = readCredentials(paths.creds(id.name, id.role));
    if (E.isLeft(c)) throw new Error(c.left);
    credsCache.set(actor, c.right);
    return c.right;
  };
  const port = await freePort();
  // As nsm up does: the setup step makes the streams, then only the deployment's identities remain.
  const started = await startSecureNatsServer({
    dataDir: dir,
    port,
    serverName: `test-secure-${port}`,
    streams: { leaseTtlMs: opts.healing?.leaseTtlMs ?? DEFAULT_HEALING.leaseTtlMs },
  });
  if (E.isLeft(started)) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(started.left);
  }
  const server = started.right.server;
  const logs: string[] = [];
  const stderrLevel = process.env.NSM_LOG_LEVEL ?? 'warn';
  const passes = (line: string) => levelPasses(/"level":"(\w+)"/.exec(line)?.[1] ?? 'info', stderrLevel);
  const log = (component: string) =>
    createLogger(component, { domain }, (line) => {
      logs.push(line);
      if (passes(line)) process.stderr.write(line + '\n');
    }, 'debug');
  const conns = new Set<NatsConnection>();
  const connectAs = async (actor: string, extra: Partial<ConnectionOptions> = {}) => {
    const nc = await connect({ servers: server.url, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...natsAuthOptions(creds(actor)), ...extra });
    conns.add(nc);
    void nc.closed().then(() => conns.delete(nc));
    return nc;
  };
  const mesh: SecureMesh = {
    domain,
    dir,
    paths,
    registry: reg.right,
    server,
    url: server.url,
    logs,
    agents: new Map(),
    creds,
    connectAs,
    log,
    client: async (actor) => MeshClient.over(await connectAs(actor), { domain, actor, timeoutMs: 20000, signer: signerOf(creds(actor)) }),
    startControlPlane: async (over = {}) => {
      mesh.cp = await startControlPlane({
        nc: await connectAs('control-plane'),
        domain,
        log: log('control-plane'),
        ...(opts.healing ? { healing: opts.healing } : {}),
        security: { registry: reg.right, signer: signerOf(creds('control-plane')), ...opts.controlPlaneSecurity, ...over },
      });
      return mesh.cp;
    },
    addNode: async (name) => {
      const dataplane = simulatedDataplane();
      const actor = `agent:${name}`;
      const nc = await connectAs(actor);
      const agent = await startNodeAgent({
        nc,
        domain,
        node: name,
        dataplane,
        log: log('agent'),
        heartbeatMs: 1000,
        ...opts.agent,
        security: { registry: reg.right, signer: signerOf(creds(actor)) },
      });
      mesh.agents.set(name, { agent, dataplane, nc });
      return dataplane;
    },
    stopNode: async (name) => {
      const a = mesh.agents.get(name);
      if (!a) throw new Error(`no agent for node ${name}`);
      await a.agent.stop();
      await a.nc.close();
      mesh.agents.delete(name);
    },
    stop: async () => {
      for (const a of mesh.agents.values()) await a.agent.stop().catch(() => undefined);
      await mesh.cp?.stop().catch(() => undefined);
      await Promise.all([...conns].map((c) => c.close().catch(() => undefined)));
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    if (opts.controlPlane !== false) await mesh.startControlPlane();
    for (const n of opts.nodes ?? []) await mesh.addNode(n);
    for (const a of mesh.agents.values()) await a.agent.ready;
  } catch (e) {
    await mesh.stop();
    throw e;
  }
  return mesh;
};
