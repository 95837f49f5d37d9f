// Several clusters on network namespaces, federated over NATS leafnodes, for end-to-end tests
// and the demo of federation (docs/federation.md):
//
//   <run>-ul       one underlay bridge br0 shared by every cluster's nodes (172.31.0.0/24)
//   <run>-<node>   one namespace per node, of whatever cluster; node names are unique in the lab
//   <run>-<role>   workload and endpoint namespaces
//
// Per cluster (domain): a nats-server on loopback with its own JetStream domain and data dir,
// joined to the hub's leafnode port; a control plane in this process with federation on; one
// agent process per node (`nsm agent --dataplane linux`). A registry-only domain (a floating
// registry) has a server and a control plane and no node. Everything carries the run's prefix
// and is removed at the end (see ./netns.ts for the sweeper).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import { createLogger } from '../../infra/log.ts';
import { leafnodesConfig } from '../../infra/nats/leafnodes.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';
import { MeshClient } from '../../src/client/index.ts';
import { startControlPlane, type ControlPlane } from '../../src/runtime/controlPlane.ts';
import type { FederationOptions } from '../../src/runtime/federation.ts';
import type { HealingConfig } from '../../src/workflows/healing.ts';
import { exec, inNs, NSM_BIN, requireNetnsLab, sh, startProcess, sweepAbandonedRuns, sweepSync, underlayAddress, type Exec, type LabNode, type LabProcess } from './netns.ts';
import { runId } from './nats.ts';

export interface LabDomainSpec {
  readonly name: string;
  readonly nodes?: readonly string[];
  readonly tunnelIds?: TunnelIdRange;
  readonly registryOnly?: boolean;
  /** The hub: the other domains' servers join its leafnode port. Default: the first domain. */
  readonly hub?: boolean;
}

export interface LabDomain {
  readonly name: string;
  readonly port: number;
  readonly url: string;
  readonly dataDir: string;
  server: RunningNatsServer;
  readonly cp: ControlPlane;
  readonly nodes: readonly string[];
}

export interface FederationLab {
  readonly run: string;
  readonly dir: string;
  readonly domains: ReadonlyMap<string, LabDomain>;
  readonly nodes: ReadonlyMap<string, LabNode & { readonly domain: string }>;
  ns(role: string): string;
  connectionId(suffix: string): string;
  client(domain: string, actor?: string): Promise<MeshClient>;
  connect(domain: string): Promise<NatsConnection>;
  addNamespace(role: string): Promise<string>;
  startAgent(node: string): Promise<LabProcess>;
  startEndpoint(o: { domain: string; name: string; service: string; node: string; role: string; prefix?: string; expiration?: string }): Promise<LabProcess>;
  /** bin/nsm as a user of `domain` (its server, NSM_DOMAIN=domain). */
  nsm(domain: string, args: readonly string[], timeoutMs?: number): Promise<Exec>;
  ping(role: string, address: string, opts?: { count?: number; timeoutS?: number }): Promise<Exec>;
  /** Stops a domain's nats-server, data kept: its leafnode link, and its own bus, go down. */
  stopServer(domain: string): Promise<void>;
  startServer(domain: string): Promise<void>;
  stop(): Promise<void>;
}

const runs = new Set<string>();
let hooked = false;
const hookExit = () => {
  if (hooked) return;
  hooked = true;
  process.on('exit', () => {
    for (const r of runs) sweepSync(r);
  });
};

export const startFederationLab = async (o: {
  readonly domains: readonly LabDomainSpec[];
  readonly healing?: Partial<HealingConfig>;
  readonly federation?: Partial<FederationOptions>;
  readonly agentArgs?: readonly string[];
}): Promise<FederationLab> => {
  requireNetnsLab();
  sweepAbandonedRuns();
  hookExit();
  const run = runId();
  runs.add(run);
  const dir = mkdtempSync(join(tmpdir(), `nsm-lab-${run}-`));
  const ns = (role: string) => `${run}-${role}`;
  const log = createLogger('federation-lab', { lab: run });
  const processes: LabProcess[] = [];
  const conns = new Set<NatsConnection>();
  const domains = new Map<string, LabDomain>();
  const nodes = new Map<string, LabNode & { domain: string }>();
  const hubSpec = o.domains.find((d) => d.hub) ?? o.domains[0]!;
  const leafPort = await freePort();
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await Promise.all(processes.filter((p) => p.name.startsWith('endpoint-')).map((p) => p.stop(3000)));
    await Promise.all(processes.map((p) => p.stop(3000)));
    for (const d of domains.values()) await d.cp.stop().catch(() => undefined);
    await Promise.all([...conns].map((c) => c.close().catch(() => undefined)));
    for (const d of domains.values()) await d.server.stop().catch(() => undefined);
    sweepSync(run);
    runs.delete(run);
    if (!process.env.NSM_KEEP_LAB_LOGS) {
      rmSync(dir, { recursive: true, force: true });
      for (const d of domains.values()) rmSync(d.dataDir, { recursive: true, force: true });
    }
  };

  const serverConfig = (spec: LabDomainSpec) =>
    spec === hubSpec ? leafnodesConfig({ hub: { port: leafPort, host: '127.0.0.1' } }) : leafnodesConfig({ remotes: [{ url: `nats-leaf://127.0.0.1:${leafPort}` }] });
  const startServer = async (spec: LabDomainSpec, dataDir: string, port: number) => {
    const r = await startNatsServer({ dataDir, port, serverName: `${run}-${spec.name}`, jetstreamDomain: spec.name, extraConfig: serverConfig(spec) });
    if (E.isLeft(r)) throw new Error(r.left);
    return r.right;
  };
  const connectTo = async (url: string) => {
    const nc = await connect({ servers: url, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
    conns.add(nc);
    void nc.closed().then(() => conns.delete(nc));
    return nc;
  };
  const addNamespace = async (role: string) => {
    const name = ns(role);
    await sh(['ip', 'netns', 'add', name]);
    await sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
    return name;
  };
  // The lab's CLI and processes find no credentials or pointers of the host's own meshes.
  const childEnv = { NSM_LOG_LEVEL: 'info', XDG_DATA_HOME: join(dir, 'xdg-data'), XDG_CONFIG_HOME: join(dir, 'xdg-config') };

  try {
    const ul = await addNamespace('ul');
    await sh(['ip', '-n', ul, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh(['ip', '-n', ul, 'link', 'set', 'br0', 'up']);
    let i = 0;
    for (const spec of o.domains) {
      for (const name of spec.nodes ?? []) {
        i++;
        const nodeNs = await addNamespace(name);
        const address = underlayAddress(i);
        await sh(['ip', '-n', ul, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', nodeNs]);
        await sh(['ip', '-n', ul, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
        await sh(['ip', '-n', nodeNs, 'addr', 'add', `${address}/24`, 'dev', 'ul0']);
        await sh(['ip', '-n', nodeNs, 'link', 'set', 'ul0', 'up']);
        nodes.set(name, { name, domain: spec.name, netns: nodeNs, underlay: address, stateDir: join(dir, `state-${name}`) });
      }
    }
    // Servers first (the hub before the others), then wait for every link, then the control planes.
    const servers = new Map<string, { server: RunningNatsServer; dataDir: string; port: number }>();
    for (const spec of [hubSpec, ...o.domains.filter((d) => d !== hubSpec)]) {
      const dataDir = mkdtempSync(join(tmpdir(), `nsm-fedlab-${spec.name}-`));
      const port = await freePort();
      servers.set(spec.name, { server: await startServer(spec, dataDir, port), dataDir, port });
    }
    const hubNc = await connectTo(servers.get(hubSpec.name)!.server.url);
    for (const spec of o.domains.filter((d) => d !== hubSpec)) {
      const deadline = Date.now() + 15000;
      for (;;) {
        try {
          await (await hubNc.jetstreamManager({ domain: spec.name })).getAccountInfo();
          break;
        } catch (e) {
          if (Date.now() > deadline) throw new Error(`the leafnode link to ${spec.name} did not come up: ${(e as Error).message}`);
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    }
    for (const spec of o.domains) {
      const s = servers.get(spec.name)!;
      const cp = await startControlPlane({
        nc: await connectTo(s.server.url),
        domain: spec.name,
        log: log.child({ domain: spec.name }),
        ...(o.healing ? { healing: o.healing } : {}),
        federation: { ...o.federation, ...(spec.tunnelIds ? { tunnelIds: spec.tunnelIds } : {}), ...(spec.registryOnly ? { registryOnly: true } : {}) },
      });
      domains.set(spec.name, { name: spec.name, port: s.port, url: s.server.url, dataDir: s.dataDir, server: s.server, cp, nodes: spec.nodes ?? [] });
    }

    const lab: FederationLab = {
      run,
      dir,
      domains,
      nodes,
      ns,
      connectionId: (suffix) => `${run}${suffix}`,
      connect: (domain) => connectTo(domains.get(domain)!.url),
      client: async (domain, actor = 'tester') => MeshClient.over(await connectTo(domains.get(domain)!.url), { domain, actor, timeoutMs: 20000 }),
      addNamespace,
      startAgent: async (node) => {
        const n = nodes.get(node);
        if (!n) throw new Error(`no node ${node} in this lab`);
        const d = domains.get(n.domain)!;
        const p = startProcess(
          `agent-${node}`,
          [NSM_BIN, 'agent', '--insecure', '--dataplane', 'linux', '--node', node, '--netns', n.netns, '--underlay', n.underlay, '--state-dir', n.stateDir, '--server', d.url, '--domain', d.name, ...(o.agentArgs ?? [])],
          dir,
          childEnv,
        );
        processes.push(p);
        n.agent = p;
        await p.waitFor(/"node agent ready"/, 30000);
        return p;
      },
      startEndpoint: async (e) => {
        const d = domains.get(e.domain)!;
        const p = startProcess(
          `endpoint-${e.name}`,
          [
            NSM_BIN, 'endpoint', 'run', 'icmp-responder', '--name', e.name, '--service', e.service, '--node', e.node, '--netns', ns(e.role),
            ...(e.prefix ? ['--prefix', e.prefix] : []),
            ...(e.expiration ? ['--expiration', e.expiration] : []),
            '--server', d.url, '--domain', d.name,
          ],
          dir,
          childEnv,
        );
        processes.push(p);
        await p.waitFor(/"msg":"registered"/, 30000);
        return p;
      },
      nsm: (domain, args, timeoutMs = 60000) => {
        const d = domains.get(domain)!;
        return exec(['env', `NSM_DOMAIN=${domain}`, `NSM_NATS_URL=${d.url}`, `XDG_DATA_HOME=${childEnv.XDG_DATA_HOME}`, `XDG_CONFIG_HOME=${childEnv.XDG_CONFIG_HOME}`, NSM_BIN, ...args], { timeoutMs });
      },
      ping: (role, address, p = {}) =>
        exec(inNs(ns(role), ['ping', '-n', '-q', '-c', String(p.count ?? 3), '-i', '0.2', '-W', String(p.timeoutS ?? 2), address]), { timeoutMs: 30000 }),
      stopServer: async (domain) => {
        await domains.get(domain)!.server.stop();
      },
      startServer: async (domain) => {
        const d = domains.get(domain)!;
        d.server = await startServer(o.domains.find((s) => s.name === domain)!, d.dataDir, d.port);
      },
      stop,
    };
    for (const n of nodes.keys()) await lab.startAgent(n);
    return lab;
  } catch (e) {
    await stop();
    throw e;
  }
};
