// A mesh for benchmarks: a private nats-server (temp dir, free port), the control plane as its
// own process (as deployed, so its CPU and memory are its own and measurable), and simulated
// node agents in the benchmark process.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import { createLogger } from '../../infra/log.ts';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';
import { startNodeAgent, type NodeAgent } from '../../node-agent/agent.ts';
import { simulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import { MeshClient } from '../../src/client/index.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface BenchMesh {
  readonly url: string;
  readonly domain: string;
  readonly cpPid: () => number | undefined;
  client(actor: string): Promise<MeshClient>;
  connectRaw(): Promise<NatsConnection>;
  addAgents(nodes: readonly string[], opts?: { livenessIntervalMs?: number }): Promise<void>;
  /** Resident set size of the control-plane process, in bytes (from /proc). */
  controlPlaneRss(): number;
  /** CPU seconds used so far by the control plane, nats-server and this process (from /proc). */
  cpuSeconds(): { controlPlane: number; natsServer: number; benchProcess: number };
  stop(): Promise<void>;
}

const waitForLine = (child: ChildProcess, pattern: RegExp, timeoutMs: number): Promise<void> =>
  new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error(`control plane not ready in ${timeoutMs} ms:\n${buf.slice(-2000)}`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf += d.toString();
      if (pattern.test(buf)) {
        clearTimeout(timer);
        child.stderr!.off('data', onData);
        resolve();
      }
    };
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`control plane exited (${code}) during start:\n${buf.slice(-2000)}`)));
  });

/** utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat, in clock ticks). */
const procCpuSeconds = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
};

export const startBenchMesh = async (opts: { domain?: string; controlPlaneArgs?: string[]; nodeOptions?: string } = {}): Promise<BenchMesh> => {
  const dataDir = mkdtempSync(join(tmpdir(), 'nsm-bench-'));
  const domain = opts.domain ?? 'bench';
  const started = await startNatsServer({ dataDir, port: await freePort(), serverName: 'bench' });
  if (E.isLeft(started)) throw new Error(started.left);
  const nats: RunningNatsServer = started.right;
  const conns: NatsConnection[] = [];
  const agents: NodeAgent[] = [];
  // Per-connection info logs from the agents would drown the table; warnings still show.
  const log = createLogger('bench', {}, undefined, process.env.NSM_LOG_LEVEL ?? 'warn');
  // At info level, for its readiness line; only its warnings and errors are passed on below.
  const cp = spawn(process.execPath, [...(opts.nodeOptions ? opts.nodeOptions.split(' ') : []), '--import', 'tsx', join(ROOT, 'src/cli/entry.ts'), 'control-plane', '--insecure', '--server', nats.url, '--domain', domain, ...(opts.controlPlaneArgs ?? [])], {
    cwd: ROOT,
    // Its own XDG dirs: no pointer or deployment of the user's meshes is read.
    env: { ...process.env, NSM_LOG_LEVEL: 'info', XDG_CONFIG_HOME: join(dataDir, 'xdg-config'), XDG_DATA_HOME: join(dataDir, 'xdg-data') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  try {
    await waitForLine(cp, /control plane running/, 60_000);
  } catch (e) {
    cp.kill('SIGKILL');
    await nats.stop();
    rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  cp.stderr!.on('data', (d: Buffer) => {
    for (const line of d.toString().split('\n')) if (/"level":"(warn|error)"/.test(line)) process.stderr.write(`[control-plane] ${line}\n`);
  });
  const connectRaw = async () => {
    const nc = await connect({ servers: nats.url, maxReconnectAttempts: -1 });
    conns.push(nc);
    return nc;
  };
  return {
    url: nats.url,
    domain,
    cpPid: () => cp.pid,
    connectRaw,
    client: async (actor) => MeshClient.over(await connectRaw(), { domain, actor, timeoutMs: 60_000 }),
    addAgents: async (nodes, o = {}) => {
      const nc = await connectRaw();
      for (const node of nodes) {
        const agent = await startNodeAgent({ nc, domain, node, dataplane: simulatedDataplane(), log: log.child({ node }), heartbeatMs: 5000, livenessIntervalMs: o.livenessIntervalMs ?? 0 });
        agents.push(agent);
      }
      await Promise.all(agents.map((a) => a.ready));
    },
    cpuSeconds: () => ({ controlPlane: procCpuSeconds(cp.pid!), natsServer: procCpuSeconds(nats.pid), benchProcess: procCpuSeconds(process.pid) }),
    controlPlaneRss: () => {
      const status = readFileSync(`/proc/${cp.pid}/status`, 'utf8');
      const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
      return kb * 1024;
    },
    stop: async () => {
      for (const a of agents) await a.stop().catch(() => undefined);
      cp.kill('SIGTERM');
      await new Promise((r) => (cp.exitCode !== null ? r(undefined) : cp.once('exit', r)));
      for (const nc of conns) await nc.close().catch(() => undefined);
      await nats.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
};
