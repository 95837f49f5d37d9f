// A whole mesh in one test process: private nats-server, control plane, simulated node agents.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection } from 'nats';
import { createLogger } from '../../infra/log.ts';
import { startNodeAgent, type NodeAgent } from '../../node-agent/agent.ts';
import { simulatedDataplane, type SimulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { MeshClient } from '../../src/client.ts';
import { startControlPlane, type ControlPlane, type ControlPlaneOptions } from '../../src/controlPlane.ts';
import { startTestNats, type TestNats } from './nats.ts';

export interface TestMesh {
  readonly nats: TestNats;
  readonly domain: string;
  cp?: ControlPlane;
  readonly agents: Map<string, { agent: NodeAgent; dataplane: SimulatedDataplane; nc: NatsConnection }>;
  client(actor?: string): Promise<MeshClient>;
  startControlPlane(): Promise<ControlPlane>;
  addNode(name: string): Promise<SimulatedDataplane>;
  stop(): Promise<void>;
}

export const startTestMesh = async (opts: { nodes?: string[]; domain?: string; controlPlane?: boolean; audit?: ControlPlaneOptions['audit'] } = {}): Promise<TestMesh> => {
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
      mesh.cp = await startControlPlane({ nc: await nats.connect(), domain, log: log.child({ component: 'control-plane' }), ...(opts.audit ? { audit: opts.audit } : {}) });
      return mesh.cp;
    },
    addNode: async (name) => {
      const dataplane = simulatedDataplane();
      const nc = await nats.connect();
      const agent = await startNodeAgent({ nc, domain, node: name, dataplane, log: log.child({ component: 'agent' }), heartbeatMs: 1000 });
      mesh.agents.set(name, { agent, dataplane, nc });
      return dataplane;
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
