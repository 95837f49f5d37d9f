// The processes of a soak, each its own OS process so that its memory, descriptors and NATS
// subscriptions are its own: a private nats-server with its monitoring port, the control plane,
// one agent per node, the endpoints (`nsm endpoint run icmp-responder`). On the simulated
// dataplane nothing else is needed; with `real` (root) the nodes, workloads and endpoints are
// network namespaces of a lab built the way test/lib/netns.ts builds one (an underlay bridge,
// one namespace per node, agents on the linux dataplane), except that the control plane runs
// as its own process here rather than inside the soak.
//
// Every Node.js process is started with --expose-gc and bench/lib/soakProbe.mjs over an IPC
// channel: `memory()` answers with its memory after a full garbage collection.
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection } from 'nats';
import { startNatsServer, type RunningNatsServer } from '../../infra/natsServer.ts';
import { freePort } from '../../infra/net.ts';
import { MeshClient } from '../../src/client/index.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const MAIN = join(ROOT, 'src', 'cli', 'entry.ts');
const PROBE = pathToFileURL(join(ROOT, 'bench', 'lib', 'soakProbe.mjs')).href;

// ---- /proc ---------------------------------------------------------------------------------------

export const rssBytes = (pid: number): number => {
  try {
    return Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) * 1024;
  } catch {
    return NaN;
  }
};

export const fdCount = (pid: number): number => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return NaN;
  }
};

/** utime + stime in seconds (fields 14 and 15 of /proc/<pid>/stat, in clock ticks of 1/100 s). */
export const cpuSeconds = (pid: number): number => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[11]) + Number(f[12])) / 100;
  } catch {
    return NaN;
  }
};

// ---- processes -----------------------------------------------------------------------------------

export interface SoakProcess {
  readonly name: string;
  readonly pid: number;
  /** The name its NATS connection gives itself (connz), to count its subscriptions. */
  readonly natsName?: string;
  readonly logFile: string;
  /** Memory after a full GC (via the probe); undefined when it does not answer in time. With `snapshot`, a heap snapshot is written there first. */
  memory(timeoutMs?: number, snapshot?: string): Promise<NodeJS.MemoryUsage | undefined>;
  waitFor(pattern: RegExp, timeoutMs: number): Promise<void>;
  alive(): boolean;
  readonly exited: Promise<number | null>;
  /** SIGTERM, SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

/** Every process started here: killed when the soak exits, however it exits. */
const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

/** `node --expose-gc --import probe --import tsx src/cli/entry.ts ARGS` with its output in a log file. */
export const spawnNsm = (name: string, args: readonly string[], o: { dir: string; env: NodeJS.ProcessEnv; natsName?: string }): SoakProcess => {
  const logFile = join(o.dir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child: ChildProcess = spawn(process.execPath, ['--expose-gc', '--import', PROBE, '--import', 'tsx', MAIN, ...args], {
    cwd: ROOT,
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  children.add(child);
  child.once('exit', () => children.delete(child));
  // The soak keeps only a short tail of each process's output (its own memory is not measured,
  // but a run of hours must not hold every log line either).
  let tail = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    log.write(d);
    tail = (tail + d.toString()).slice(-8192);
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((r) =>
    child.once('exit', (code, signal) => {
      exitCode = code ?? (signal ? -1 : null);
      log.end();
      for (const w of waiters) w();
      r(code);
    }),
  );
  let probeSeq = 0;
  const answers = new Map<number, (m: NodeJS.MemoryUsage | undefined) => void>();
  child.on('message', (m: { soakProbe?: number; memory?: NodeJS.MemoryUsage }) => {
    const done = typeof m?.soakProbe === 'number' ? answers.get(m.soakProbe) : undefined;
    if (done) {
      answers.delete(m.soakProbe!);
      done(m.memory);
    }
  });
  child.on('error', () => undefined);
  const alive = () => exitCode === undefined;
  return {
    name,
    pid: child.pid!,
    ...(o.natsName ? { natsName: o.natsName } : {}),
    logFile,
    exited,
    alive,
    memory: (timeoutMs = 15_000, snapshot?: string) =>
      new Promise((resolve) => {
        if (!alive() || !child.connected) return resolve(undefined);
        const n = ++probeSeq;
        const timer = setTimeout(() => {
          answers.delete(n);
          resolve(undefined);
        }, timeoutMs);
        answers.set(n, (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        try {
          child.send({ soakProbe: n, ...(snapshot ? { snapshot } : {}) }, (e) => {
            if (e) {
              clearTimeout(timer);
              answers.delete(n);
              resolve(undefined);
            }
          });
        } catch {
          clearTimeout(timer);
          answers.delete(n);
          resolve(undefined);
        }
      }),
    waitFor: (pattern, timeoutMs) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (pattern.test(tail)) {
            cleanup();
            resolve();
          } else if (!alive()) {
            cleanup();
            reject(new Error(`${name} exited (${exitCode}) before printing ${pattern}:\n${tail.slice(-3000)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${tail.slice(-3000)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    stop: async (graceMs = 5000) => {
      if (!alive()) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
    kill: async () => {
      if (!alive()) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
};

// ---- nats-server monitoring ----------------------------------------------------------------------

export interface NatsFigures {
  readonly rss: number;
  /** Client connections, and subscriptions by connection name ("" for unnamed). */
  readonly connections: number;
  readonly subscriptions: number;
  readonly subscriptionsByName: ReadonlyMap<string, number>;
  readonly connectionsByName: ReadonlyMap<string, number>;
  /** JetStream consumers in all, and per stream. */
  readonly consumers: number;
  readonly streams: readonly { name: string; messages: number; bytes: number; subjects: number; consumers: number }[];
}

const getJson = async (url: string): Promise<Record<string, unknown>> => {
  const r = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return (await r.json()) as Record<string, unknown>;
};

/** From the monitoring port (-m / http): /varz, /connz?subs=1, /jsz?accounts=true&streams=true&consumers=true. */
export const natsFigures = async (monitorUrl: string): Promise<NatsFigures> => {
  const [varz, connz, jsz] = await Promise.all([
    getJson(`${monitorUrl}/varz`),
    getJson(`${monitorUrl}/connz?subs=1&limit=10000`),
    getJson(`${monitorUrl}/jsz?accounts=true&streams=true&consumers=true`),
  ]);
  const subscriptionsByName = new Map<string, number>();
  const connectionsByName = new Map<string, number>();
  let subscriptions = 0;
  const conns = (connz.connections as { name?: string; subscriptions?: number; subscriptions_list?: string[] }[] | undefined) ?? [];
  for (const c of conns) {
    const n = c.subscriptions_list?.length ?? c.subscriptions ?? 0;
    const name = c.name ?? '';
    subscriptions += n;
    subscriptionsByName.set(name, (subscriptionsByName.get(name) ?? 0) + n);
    connectionsByName.set(name, (connectionsByName.get(name) ?? 0) + 1);
  }
  type StreamDetail = { name: string; state?: { messages?: number; bytes?: number; num_subjects?: number; consumer_count?: number }; consumer_detail?: unknown[] };
  const accounts = (jsz.account_details as { stream_detail?: StreamDetail[] }[] | undefined) ?? [];
  const streams = accounts.flatMap((a) => a.stream_detail ?? []).map((s) => ({
    name: s.name,
    messages: s.state?.messages ?? 0,
    bytes: s.state?.bytes ?? 0,
    subjects: s.state?.num_subjects ?? NaN,
    consumers: s.consumer_detail?.length ?? s.state?.consumer_count ?? 0,
  }));
  return {
    rss: Number(varz.mem ?? NaN),
    connections: conns.length,
    subscriptions,
    subscriptionsByName,
    connectionsByName,
    consumers: typeof jsz.consumers === 'number' ? jsz.consumers : streams.reduce((a, s) => a + s.consumers, 0),
    streams,
  };
};

// ---- the mesh ------------------------------------------------------------------------------------

export interface SoakEndpointSpec {
  readonly name: string;
  readonly node: string;
  readonly prefix: string;
  /** Killed and brought back during the churn (the others stay up and are sampled). */
  readonly victim: boolean;
}

export interface SoakMesh {
  readonly domain: string;
  readonly url: string;
  readonly monitorUrl: string;
  /** nats-server's Go profiling port (/debug/pprof/heap), for a look inside when its memory grows. */
  readonly profileUrl: string;
  readonly dir: string;
  readonly nats: RunningNatsServer;
  readonly controlPlane: SoakProcess;
  readonly agents: ReadonlyMap<string, SoakProcess>;
  /** The endpoint processes running now, by endpoint name. */
  readonly endpoints: Map<string, SoakProcess>;
  connectRaw(name: string): Promise<NatsConnection>;
  client(actor: string): Promise<MeshClient>;
  startEndpoint(e: SoakEndpointSpec): Promise<SoakProcess>;
  stop(): Promise<void>;
}

export interface MeshLayout {
  readonly domain: string;
  readonly nodes: readonly string[];
  readonly endpointExpiration: string;
  /** Extra arguments for the control plane and the agents. */
  readonly controlPlaneArgs?: readonly string[];
  readonly agentArgs?: (node: string) => readonly string[];
  /** Extra arguments for an endpoint process (the linux one names its namespace). */
  readonly endpointArgs?: (e: SoakEndpointSpec) => readonly string[];
  readonly dataplane: 'simulated' | 'linux';
  /** Where the run's files go (logs, nats data, agent state). */
  readonly dir?: string;
}

export const startSoakMesh = async (l: MeshLayout): Promise<SoakMesh> => {
  const dir = l.dir ?? mkdtempSync(join(tmpdir(), 'nsm-soak-'));
  mkdirSync(dir, { recursive: true });
  const monitorPort = await freePort();
  const profPort = await freePort();
  const started = await startNatsServer({ dataDir: join(dir, 'nats'), port: await freePort(), serverName: 'soak', extraConfig: `http: "127.0.0.1:${monitorPort}"\nprof_port: ${profPort}` });
  if (E.isLeft(started)) throw new Error(started.left);
  const nats = started.right;
  const conns: NatsConnection[] = [];
  const processes: SoakProcess[] = [];
  // Their own XDG dirs: no pointer, credentials or data of the user's meshes is read.
  const env = { NSM_LOG_LEVEL: 'info', XDG_CONFIG_HOME: join(dir, 'xdg-config'), XDG_DATA_HOME: join(dir, 'xdg-data') };
  const common = ['--server', nats.url, '--domain', l.domain];
  const endpoints = new Map<string, SoakProcess>();
  const stop = async () => {
    // Endpoints first (they unregister), then agents, then the control plane and NATS.
    await Promise.all([...endpoints.values()].map((p) => p.stop(3000)));
    await Promise.all(processes.map((p) => p.stop(5000)));
    for (const nc of conns) await nc.close().catch(() => undefined);
    await nats.stop();
  };
  try {
    const controlPlane = spawnNsm('control-plane', ['control-plane', '--insecure', ...common, ...(l.controlPlaneArgs ?? [])], { dir, env, natsName: 'nsm-control-plane' });
    processes.push(controlPlane);
    await controlPlane.waitFor(/control plane running/, 90_000);
    const agents = new Map<string, SoakProcess>();
    for (const node of l.nodes) {
      const a = spawnNsm(
        `agent-${node}`,
        ['agent', '--insecure', '--dataplane', l.dataplane, '--node', node, '--state-dir', join(dir, `state-${node}`), ...common, ...(l.agentArgs?.(node) ?? [])],
        { dir, env, natsName: `nsm-agent-${node}` },
      );
      processes.push(a);
      agents.set(node, a);
    }
    for (const a of agents.values()) await a.waitFor(/"node agent ready"/, 90_000);
    const connectRaw = async (name: string) => {
      const nc = await connect({ servers: nats.url, name, maxReconnectAttempts: -1, reconnectTimeWait: 200 });
      conns.push(nc);
      return nc;
    };
    return {
      domain: l.domain,
      url: nats.url,
      monitorUrl: `http://127.0.0.1:${monitorPort}`,
      profileUrl: `http://127.0.0.1:${profPort}`,
      dir,
      nats,
      controlPlane,
      agents,
      endpoints,
      connectRaw,
      client: async (actor) => MeshClient.over(await connectRaw(`soak ${actor}`), { domain: l.domain, actor, timeoutMs: 30_000 }),
      startEndpoint: async (e) => {
        const p = spawnNsm(
          `endpoint-${e.name}`,
          [
            'endpoint', 'run', 'icmp-responder', '--dataplane', l.dataplane, '--name', e.name, '--service', 'soak', '--node', e.node,
            '--prefix', e.prefix, '--expiration', l.endpointExpiration, ...common, ...(l.endpointArgs?.(e) ?? []),
          ],
          // Its NATS connection is named after its actor ("nsm <actor>"), one per endpoint.
          { dir, env: { ...env, NSM_ACTOR: `endpoint-${e.name}` }, natsName: `nsm endpoint-${e.name}` },
        );
        endpoints.set(e.name, p);
        await p.waitFor(/"msg":"registered"/, 60_000);
        return p;
      },
      stop,
    };
  } catch (e) {
    await stop().catch(() => undefined);
    throw e;
  }
};

export const removeDir = (dir: string) => rmSync(dir, { recursive: true, force: true });
