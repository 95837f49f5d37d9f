// A whole mesh in one test process: private nats-server, control plane, simulated node agents.
// INSECURE on purpose (no authentication, no TLS, no path tokens): most tests are about other
// things. test/lib/secureMesh.ts runs the same parts the way `nsm up` does by default.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection } from 'nats';
import { createLogger } from '../../infra/log.ts';
import { startNodeAgent, type NodeAgent } from '../../node-agent/agent.ts';
import { simulatedDataplane, type SimulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { MeshClient } from '../../src/client/index.ts';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../src/runtime/controlPlane.ts';
import type { HealingConfig } from '../../src/workflows/healing.ts';
import { startTestNats, type TestNats } from './nats.ts';

export interface TestMesh {
  readonly nats: TestNats;
  readonly domain: string;
  cp?: ControlPlane;
  readonly agents: Map<string, { agent: NodeAgent; dataplane: SimulatedDataplane; nc: NatsConnection }>;
  client(actor?: string): Promise<MeshClient>;
  startControlPlane(): Promise<ControlPlane>;
  /** Starts an agent; pass the dataplane of a stopped agent to model a restart on the same host. */
  addNode(name: string, dataplane?: SimulatedDataplane): Promise<SimulatedDataplane>;
  /** Stops the agent (its heartbeats and consumer stop; what it programmed stays). */
  stopNode(name: string): Promise<SimulatedDataplane>;
  stop(): Promise<void>;
}

export interface TestMeshOptions {
  nodes?: string[];
  domain?: string;
  controlPlane?: boolean;
  /** Healing timings for every control plane this mesh starts. */
  healing?: Partial<HealingConfig>;
  /** Agent timings for every node added. */
  agent?: { heartbeatMs?: number; livenessIntervalMs?: number; livenessFailures?: number };
  audit?: ControlPlaneOptions['audit'];
}

export const startTestMesh = async (opts: TestMeshOptions = {}): Promise<TestMesh> => {
  const nats = await startTestNats();
  const domain = opts.domain ?? 'test';
  const log = createLogger('test-mesh');
  const clients: MeshClient[] = [];
  const mesh: TestMesh = {
    nats,
    domain,
    agents: new Map(),
    client: async (actor = `tester-${randomUUID().slice(0, 6)}`) => {
      const c = MeshClient.over(await nats.connect(), { domain, actor, timeoutMs: 20000 });
      clients.push(c);
      return c;
    },
    startControlPlane: async () => {
      mesh.cp = await startControlPlane({ nc: await nats.connect(), domain, log: log.child({ component: 'control-plane' }), ...(opts.healing ? { healing: opts.healing } : {}), ...(opts.audit ? { audit: opts.audit } : {}) });
      return mesh.cp;
    },
    addNode: async (name, existing) => {
      const dataplane = existing ?? simulatedDataplane();
      const nc = await nats.connect();
      const agent = await startNodeAgent({ nc, domain, node: name, dataplane, log: log.child({ component: 'agent' }), heartbeatMs: 1000, ...opts.agent });
      mesh.agents.set(name, { agent, dataplane, nc });
      return dataplane;
    },
    stopNode: async (name) => {
      const a = mesh.agents.get(name);
      if (!a) throw new Error(`no agent for node ${name}`);
      await a.agent.stop();
      await a.nc.close();
      mesh.agents.delete(name);
      return a.dataplane;
    },
    stop: async () => {
      for (const a of mesh.agents.values()) await a.agent.stop().catch(() => undefined);
      await mesh.cp?.stop().catch(() => undefined);
      await nats.stop();
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

export const must = <T>(r: E.Either<{ message: string }, T>, what = 'operation'): T => {
  if (E.isLeft(r)) throw new Error(`${what} failed: ${r.left.message}`);
  return r.right;
};
