// Several domains in one process, each with its own nats-server (its own JetStream domain) on
// loopback, joined by leafnodes to a hub, its own control plane and simulated node agents. For
// integration tests of the federation protocol and its benchmark; test/lib/federationLab.ts
// runs the same on namespace nodes with the Linux dataplane.
//
// INSECURE on purpose (no authentication, no TLS), like test/lib/mesh.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import { createLogger } from '../../infra/log.ts';
import type { Logger } from '../../src/ports/logger.ts';
import { leafnodesConfig } from '../../infra/nats/leafnodes.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';
import { startNodeAgent, type NodeAgent } from '../../node-agent/agent.ts';
import { simulatedDataplane, type SimulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { MeshClient } from '../../src/client/index.ts';
import { startControlPlane, type ControlPlane } from '../../src/runtime/controlPlane.ts';
import type { FederationOptions } from '../../src/runtime/federation.ts';
import type { HealingConfig } from '../../src/workflows/healing.ts';

export interface DomainSpec {
  readonly name: string;
  /** Simulated nodes of this domain (none for a registry-only domain). */
  readonly nodes?: readonly string[];
  readonly tunnelIds?: TunnelIdRange;
  readonly registryOnly?: boolean;
  /** The hub: the others join its leafnode port. Default: the first domain. */
  readonly hub?: boolean;
  /** Node facts the agents report (the simulated dataplane has none of its own). */
  readonly underlay?: (node: string) => string;
  /** Where other domains' nodes reach a node (behind NAT). */
  readonly external?: (node: string) => string;
}

export interface TestDomain {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  readonly url: string;
  server: RunningNatsServer;
  cp?: ControlPlane;
  readonly agents: Map<string, { agent: NodeAgent; dataplane: SimulatedDataplane; nc: NatsConnection }>;
  /** A client of this domain (closed with the federation). */
  client(actor?: string): Promise<MeshClient>;
  connect(): Promise<NatsConnection>;
  startControlPlane(): Promise<ControlPlane>;
  addNode(name: string): Promise<SimulatedDataplane>;
}

export interface TestFederation {
  readonly domains: ReadonlyMap<string, TestDomain>;
  domain(name: string): TestDomain;
  /** Stops a domain's nats-server, its data kept (the leafnode link and the domain's bus go down). */
  stopServer(name: string): Promise<void>;
  /** Starts it again on the same port and data (JetStream state survives). */
  startServer(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface FederationTestOptions {
  readonly domains: readonly DomainSpec[];
  readonly healing?: Partial<HealingConfig>;
  readonly federation?: Partial<FederationOptions>;
  readonly agent?: { heartbeatMs?: number; livenessIntervalMs?: number };
  readonly log?: Logger;
}

/** Waits until the hub sees every leaf (their JetStream domains answer across the link). */
const waitForLinks = async (hub: TestDomain, others: readonly TestDomain[], timeoutMs = 15000) => {
  const nc = await hub.connect();
  const deadline = Date.now() + timeoutMs;
  try {
    for (const d of others) {
      for (;;) {
        try {
          const jsm = await nc.jetstreamManager({ domain: d.name });
          await jsm.getAccountInfo();
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`the leafnode link to domain ${d.name} did not come up: ${(e as Error).message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
  } finally {
    await nc.close();
  }
};

export const startTestFederation = async (o: FederationTestOptions): Promise<TestFederation> => {
  const log = o.log ?? createLogger('test-federation');
  const hubSpec = o.domains.find((d) => d.hub) ?? o.domains[0]!;
  const leafPort = await freePort();
  const conns = new Set<NatsConnection>();
  const domains = new Map<string, TestDomain>();

  const configOf = (spec: DomainSpec) =>
    spec === hubSpec ? leafnodesConfig({ hub: { port: leafPort, host: '127.0.0.1' } }) : leafnodesConfig({ remotes: [{ url: `nats-leaf://127.0.0.1:${leafPort}` }] });
  const startServer = async (spec: DomainSpec, dataDir: string, port: number) => {
    const r = await startNatsServer({ dataDir, port, serverName: `fed-${spec.name}-${port}`, jetstreamDomain: spec.name, extraConfig: configOf(spec) });
    if (E.isLeft(r)) throw new Error(r.left);
    return r.right;
  };

  const stop = async () => {
    for (const d of domains.values()) for (const a of d.agents.values()) await a.agent.stop().catch(() => undefined);
    for (const d of domains.values()) await d.cp?.stop().catch(() => undefined);
    await Promise.all([...conns].map((c) => c.close().catch(() => undefined)));
    for (const d of domains.values()) {
      await d.server.stop().catch(() => undefined);
      rmSync(d.dataDir, { recursive: true, force: true });
    }
  };

  try {
    for (const spec of o.domains) {
      const dataDir = mkdtempSync(join(tmpdir(), `nsm-fed-${spec.name}-`));
      const port = await freePort();
      const server = await startServer(spec, dataDir, port);
      const url = server.url;
      const d: TestDomain = {
        name: spec.name,
        dataDir,
        port,
        url,
        server,
        agents: new Map(),
        connect: async () => {
          const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 100 });
          conns.add(nc);
          void nc.closed().then(() => conns.delete(nc));
          return nc;
        },
        client: async (actor = 'tester') => {
          return MeshClient.over(await d.connect(), { domain: spec.name, actor, timeoutMs: 20000 });
        },
        startControlPlane: async () => {
          d.cp = await startControlPlane({
            nc: await d.connect(),
            domain: spec.name,
            log: log.child({ domain: spec.name }),
            ...(o.healing ? { healing: o.healing } : {}),
            federation: { ...o.federation, ...(spec.tunnelIds ? { tunnelIds: spec.tunnelIds } : {}), ...(spec.registryOnly ? { registryOnly: true } : {}) },
          });
          return d.cp;
        },
        addNode: async (name) => {
          const dataplane = simulatedDataplane();
          const nc = await d.connect();
          const agent = await startNodeAgent({
            nc,
            domain: spec.name,
            node: name,
            dataplane,
            log: log.child({ domain: spec.name, component: 'agent' }),
            heartbeatMs: 1000,
            livenessIntervalMs: 0,
            ...(spec.underlay ? { underlayAddress: spec.underlay(name) } : {}),
            ...(spec.external ? { externalAddress: spec.external(name) } : {}),
            publicKeys: { wireguard: Buffer.from(`${spec.name}/${name}`.padEnd(32, '.')).toString('base64') },
            ...o.agent,
          });
          d.agents.set(name, { agent, dataplane, nc });
          await agent.ready;
          return dataplane;
        },
      };
      domains.set(spec.name, d);
    }
    const hub = domains.get(hubSpec.name)!;
    await waitForLinks(hub, [...domains.values()].filter((d) => d !== hub));
    for (const spec of o.domains) await domains.get(spec.name)!.startControlPlane();
    for (const spec of o.domains) for (const n of spec.nodes ?? []) await domains.get(spec.name)!.addNode(n);
  } catch (e) {
    await stop();
    throw e;
  }

  return {
    domains,
    domain: (name) => {
      const d = domains.get(name);
      if (!d) throw new Error(`no domain ${name} in this federation`);
      return d;
    },
    stopServer: async (name) => {
      const d = domains.get(name)!;
      await d.server.stop();
    },
    startServer: async (name) => {
      const d = domains.get(name)!;
      const spec = o.domains.find((s) => s.name === name)!;
      d.server = await startServer(spec, d.dataDir, d.port);
    },
    stop,
  };
};
