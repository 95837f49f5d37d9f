// A multi-node lab on network namespaces, for end-to-end tests, the demo and the benchmark.
//
//   <run>-ul   : the underlay, a bridge br0 with one veth port per node
//   <run>-n1.. : one namespace per node; ul0 = 172.31.0.(10+i)/24 on the underlay
//   <run>-<w>  : workload and endpoint namespaces (logically "on" a node: the agent of that
//                node connects them)
//
// One private nats-server on loopback and one control plane in this process; one agent
// PROCESS per node (`nsm agent --dataplane linux --netns <run>-nX`). The agents run in the
// root namespace and program their node's namespace by name, so NATS stays on loopback and
// nothing of the lab lives in the root namespace. Everything carries the run's prefix and is
// removed at the end, also when a test fails, the process exits or gets SIGINT/SIGTERM; a
// sweeper removes leftovers of this run (and of earlier runs whose process is gone).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { exitWhenFlushed } from '../../infra/stdio.ts';
import { MeshClient } from '../../src/client/index.ts';
import { startControlPlane, type ControlPlane } from '../../src/runtime/controlPlane.ts';
import type { HealingConfig } from '../../src/workflows/healing.ts';
import { allSideInterfaces, bridgeName, sideNames, TABLE_FIRST, TABLE_LAST } from '../../node-agent/linux/names.ts';
import { WG_SOCKET_DIR, wireguardGoPids } from '../../node-agent/linux/tunnels.ts';
import { ETC_NETNS } from '../../node-agent/linux/dns.ts';
import { runId, startTestNats, type TestNats } from './nats.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const NSM_BIN = join(ROOT, 'bin', 'nsm');

/** Fails (not skips) with the reason when this host cannot run the lab. */
export const requireNetnsLab = (): void => {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('this test needs root: it creates network namespaces, veth pairs, VXLAN and WireGuard interfaces (run it as root, e.g. in CI)');
  }
  for (const [tool, pkg] of [['ip', 'iproute2'], ['wg', 'wireguard-tools'], ['nsenter', 'util-linux'], ['sysctl', 'procps'], ['ping', 'iputils-ping']] as const) {
    if (spawnSync(tool, tool === 'ip' ? ['-V'] : ['--version'], { stdio: 'ignore' }).error) throw new Error(`this test needs ${tool} (apt-get install ${pkg})`);
  }
};

export interface Exec {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command (argument array, no shell) and collects its output; never throws. */
export const exec = (argv: readonly string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Exec> =>
  new Promise((done) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], ...(opts.env ? { env: { ...process.env, ...opts.env } } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d) => (stdout += d));
    child.stderr!.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30000);
    child.on('error', (e) => {
      clearTimeout(timer);
      done({ code: null, stdout, stderr: stderr + e.message });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
    if (opts.input !== undefined) child.stdin!.end(opts.input);
  });

/** exec that throws with the command's own words when it fails. */
export const sh = async (argv: readonly string[], opts?: { timeoutMs?: number; input?: string }): Promise<string> => {
  const r = await exec(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} failed (${r.code}): ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
};

export const inNs = (ns: string, argv: readonly string[]): string[] => ['ip', 'netns', 'exec', ns, ...argv];

// ---- the sweeper -----------------------------------------------------------------------------

const listNetns = (): string[] => {
  const r = spawnSync('ip', ['-json', 'netns', 'list'], { encoding: 'utf8' });
  try {
    return (JSON.parse(r.stdout || '[]') as { name: string }[]).map((n) => n.name);
  } catch {
    return [];
  }
};

const pidsIn = (ns: string): number[] =>
  (spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);

const processCommand = (pid: number): string[] | undefined => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return undefined;
  }
};

const isZombie = (pid: number): boolean => {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
};

/**
 * What every WireGuard name of a run's connections contains: their ids start with the run, and a
 * WireGuard name keeps the first 7 characters of the id (node-agent/linux/names.ts). The pid in
 * the run keeps this apart from runs of other live test processes.
 */
const wireguardTag = (run: string): string => run.slice(0, 7);

/** wireguard-go processes whose interface name contains the tag. */
const wireguardGoWith = (tag: string): number[] =>
  readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter((pid) => {
      const argv = processCommand(pid);
      return argv !== undefined && (argv[0] ?? '').endsWith('wireguard-go') && argv.slice(1).some((a) => a.includes(tag)) && !isZombie(pid);
    });

const kill = (pid: number, signal: NodeJS.Signals = 'SIGKILL') => {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
};

/**
 * Removes everything of a run, synchronously (usable from an exit handler): processes inside
 * its namespaces (wireguard-go, ping, iperf3, tcpdump...), the namespaces, wireguard-go
 * processes and sockets named after it.
 */
export const sweepSync = (run: string): string[] => {
  const removed: string[] = [];
  const mine = listNetns().filter((n) => n.startsWith(`${run}-`));
  for (const ns of mine) for (const pid of pidsIn(ns)) {
    kill(pid);
    removed.push(`process ${pid} in ${ns}`);
  }
  for (const pid of wireguardGoWith(wireguardTag(run))) {
    kill(pid);
    removed.push(`wireguard-go ${pid}`);
  }
  for (const ns of mine) {
    spawnSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    removed.push(`netns ${ns}`);
  }
  if (existsSync(WG_SOCKET_DIR)) {
    for (const f of readdirSync(WG_SOCKET_DIR).filter((f) => f.includes(wireguardTag(run)))) {
      try {
        unlinkSync(join(WG_SOCKET_DIR, f));
        removed.push(`socket ${f}`);
      } catch {
        // gone already
      }
    }
  }
  for (const l of rootLinksWith(run)) {
    spawnSync('ip', ['link', 'del', 'dev', l], { stdio: 'ignore' });
    removed.push(`root link ${l}`);
  }
  // Resolver configurations of the run's namespaces (the DNS context, or a test's own).
  for (const d of etcNetnsOf(run)) {
    rmSync(join(ETC_NETNS, d), { recursive: true, force: true });
    removed.push(`${ETC_NETNS}/${d}`);
  }
  return removed;
};

/** Interfaces in the root namespace whose name contains the tag (a lab never makes any there). */
export const rootLinksWith = (tag: string): string[] => {
  const r = spawnSync('ip', ['-json', 'link', 'show'], { encoding: 'utf8' });
  try {
    return (JSON.parse(r.stdout || '[]') as { ifname: string }[]).map((l) => l.ifname).filter((n) => n.includes(tag));
  } catch {
    return [];
  }
};

/** Directories of the run's namespaces in /etc/netns (where `ip netns exec` finds their resolv.conf). */
const etcNetnsOf = (run: string): string[] => (existsSync(ETC_NETNS) ? readdirSync(ETC_NETNS).filter((d) => d.startsWith(`${run}-`)) : []);

/** What is left of a run: namespaces, root-namespace interfaces, wireguard-go processes, sockets, /etc/netns entries. */
export const leftovers = (run: string): string[] => [
  ...etcNetnsOf(run).map((d) => `${ETC_NETNS}/${d}`),
  ...listNetns().filter((n) => n.startsWith(`${run}-`)).map((n) => `netns ${n}`),
  ...rootLinksWith(run).map((l) => `interface ${l} in the root namespace`),
  ...wireguardGoWith(wireguardTag(run)).map((p) => `wireguard-go process ${p}`),
  ...(existsSync(WG_SOCKET_DIR) ? readdirSync(WG_SOCKET_DIR).filter((f) => f.includes(wireguardTag(run))).map((f) => `socket ${WG_SOCKET_DIR}/${f}`) : []),
];

/**
 * Every interface name the Linux dataplane can give a connection on a lab node (both sides, every
 * role): names in the node namespace come from the id, WireGuard names also from the node's key.
 */
export const interfacesOf = (node: { readonly stateDir: string }, connectionId: string): string[] => {
  const keyFile = join(node.stateDir, 'wireguard.key');
  const key = existsSync(keyFile) ? spawnSync('wg', ['pubkey'], { input: readFileSync(keyFile), encoding: 'utf8' }).stdout.trim() : '';
  return [...allSideInterfaces(sideNames(connectionId, 'client', key)), ...allSideInterfaces(sideNames(connectionId, 'endpoint', key)), bridgeName(connectionId)];
};

/** wireguard-go processes and sockets still there for these interface names. */
export const wireguardLeft = (names: readonly string[]): string[] =>
  names.flatMap((n) => [
    ...wireguardGoPids(n).map((p) => `wireguard-go process ${p} for ${n}`),
    ...(existsSync(join(WG_SOCKET_DIR, `${n}.sock`)) ? [`socket ${WG_SOCKET_DIR}/${n}.sock`] : []),
  ]);

/** Stops a lab, then asserts that nothing of its run is left (namespaces, processes, sockets, links). */
export const stopLabAndCheck = async (lab: { readonly run: string; stop(): Promise<unknown> } | undefined): Promise<void> => {
  if (!lab) return;
  await lab.stop();
  assert.equal(leftovers(lab.run), [], 'nothing of the run is left');
};

/** Lab namespaces are "<run>-<role>" where run = runId() = "t" + pid (base 36) + 4 characters. */
const LAB_NETNS = /^(t([0-9a-z]+)[0-9a-z]{4})-([a-z][a-z0-9-]*)$/;

/** Sweeps runs whose test process is gone (killed before its cleanup could run). */
export const sweepAbandonedRuns = (): string[] => {
  const runs = new Set<string>();
  for (const ns of listNetns()) {
    const m = LAB_NETNS.exec(ns);
    if (!m) continue;
    const pid = parseInt(m[2]!, 36);
    const alive = existsSync(`/proc/${pid}`) && !isZombie(pid);
    if (!alive) runs.add(m[1]!);
  }
  // Lab directories (logs, keys) of runs whose process is gone, unless kept on purpose.
  if (!process.env.NSM_KEEP_LAB_LOGS) {
    for (const d of readdirSync(tmpdir()).filter((f) => f.startsWith('nsm-lab-'))) {
      const m = /^nsm-lab-(t([0-9a-z]+)[0-9a-z]{4})-/.exec(d);
      const pid = m ? parseInt(m[2]!, 36) : undefined;
      if (m && pid !== undefined && !(existsSync(`/proc/${pid}`) && !isZombie(pid))) {
        rmSync(join(tmpdir(), d), { recursive: true, force: true });
        runs.add(m[1]!);
      }
    }
  }
  return [...runs].flatMap((r) => sweepSync(r));
};

// ---- processes -------------------------------------------------------------------------------

export interface LabProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly logFile: string;
  /** Everything it wrote to stderr and stdout so far. */
  output(): string;
  /** Resolves when a line matches (or rejects after the timeout, with the output's tail). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  readonly exited: Promise<number | null>;
  /** SIGTERM, SIGKILL after the grace period. */
  stop(graceMs?: number): Promise<void>;
  kill(): Promise<void>;
}

const tail = (s: string, n = 20) => s.trim().split('\n').slice(-n).join('\n');

export const startProcess = (name: string, argv: readonly string[], logDir: string, env: NodeJS.ProcessEnv = {}): LabProcess => {
  const logFile = join(logDir, `${name}.log`);
  const out: WriteStream = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let text = '';
  const waiters = new Set<() => void>();
  const onData = (d: Buffer) => {
    text += d.toString();
    out.write(d);
    for (const w of waiters) w();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => {
    out.end();
    for (const w of waiters) w();
    r(code);
  }));
  let hasExited = false;
  void exited.then(() => (hasExited = true));
  const p: LabProcess = {
    name,
    child,
    logFile,
    output: () => text,
    exited,
    waitFor: (pattern, timeoutMs = 20000) =>
      new Promise((resolveWait, rejectWait) => {
        const check = () => {
          const line = text.split('\n').find((l) => pattern.test(l));
          if (line !== undefined) {
            cleanup();
            resolveWait(line);
          } else if (hasExited || child.exitCode !== null) {
            cleanup();
            rejectWait(new Error(`${name} exited (code ${child.exitCode}) before printing ${pattern}:\n${tail(text)}`));
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          rejectWait(new Error(`${name} did not print ${pattern} within ${timeoutMs} ms:\n${tail(text)}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      }),
    stop: async (graceMs = 5000) => {
      if (hasExited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited;
      clearTimeout(t);
    },
    kill: async () => {
      if (hasExited) return;
      child.kill('SIGKILL');
      await exited;
    },
  };
  return p;
};

// ---- the lab ---------------------------------------------------------------------------------

export interface LabNode {
  readonly name: string;
  readonly netns: string;
  readonly underlay: string;
  readonly stateDir: string;
  agent?: LabProcess;
}

export interface Lab {
  /** The per-run prefix of every name the lab creates. */
  readonly run: string;
  readonly domain: string;
  readonly nats: TestNats;
  readonly cp: ControlPlane;
  readonly dir: string;
  readonly nodes: ReadonlyMap<string, LabNode>;
  /** Namespace name for a role: "<run>-<role>". */
  ns(role: string): string;
  /** A connection id that starts with the run id, so interfaces named after it carry the prefix. */
  connectionId(suffix: string): string;
  client(actor?: string): Promise<MeshClient>;
  /** Creates "<run>-<role>" with loopback up. */
  addNamespace(role: string): Promise<string>;
  startAgent(node: string): Promise<LabProcess>;
  /** `nsm endpoint run icmp-responder ...` as a process; resolves once it is registered. */
  startEndpoint(o: { name: string; service: string; node: string; role: string; prefix?: string; prefixes?: readonly string[]; exclude?: readonly string[]; labels?: Record<string, string>; expiration?: string; args?: readonly string[] }): Promise<LabProcess>;
  /** bin/nsm with the lab's server and domain. */
  nsm(args: readonly string[], timeoutMs?: number): Promise<Exec>;
  /** ping from the role's namespace. */
  ping(role: string, address: string, opts?: PingOptions): Promise<Exec>;
  stop(): Promise<void>;
}

const labs = new Set<{ run: string; stop: () => Promise<void> }>();
let hooksInstalled = false;
const installExitHooks = () => {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', () => {
    for (const l of labs) sweepSync(l.run);
  });
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      void Promise.allSettled([...labs].map((l) => l.stop())).finally(() => exitWhenFlushed(130));
    });
  }
};

/**
 * Sweeps the run when the process exits or is signalled before `stop` ran (what startLab does for
 * its own runs), for tests that build their namespaces around another mesh; returns the undo.
 */
export const sweepOnExit = (entry: { run: string; stop: () => Promise<void> }): (() => void) => {
  installExitHooks();
  labs.add(entry);
  return () => {
    labs.delete(entry);
  };
};

export interface PingOptions {
  count?: number;
  timeoutS?: number;
  size?: number;
  pattern?: string;
  dontFragment?: boolean;
  /** -4 or -6 (ping picks the family from the address otherwise). */
  family?: 'IPv4' | 'IPv6';
  interval?: string;
}

/** ping from a namespace, quiet and numeric, 3 packets 0.2 s apart unless told. */
export const pingIn = (netns: string, address: string, p: PingOptions = {}): Promise<Exec> =>
  exec(
    inNs(netns, [
      'ping', ...(p.family ? [p.family === 'IPv6' ? '-6' : '-4'] : []), '-n', '-q', '-c', String(p.count ?? 3), '-i', p.interval ?? '0.2', '-W', String(p.timeoutS ?? 2),
      ...(p.size !== undefined ? ['-s', String(p.size)] : []),
      ...(p.pattern ? ['-p', p.pattern] : []),
      ...(p.dontFragment ? ['-M', 'do'] : []),
      address,
    ]),
    { timeoutMs: 30000 },
  );

export const UNDERLAY_PREFIX = '172.31.0';
export const underlayAddress = (i: number) => `${UNDERLAY_PREFIX}.${10 + i}`;
/** The IPv6-only underlay of e2e/ipv6Underlay.test.ts: fd31::<10+i>/64. */
export const underlayAddress6 = (i: number) => `fd31::${10 + i}`;

export const startLab = async (o: {
  nodes: readonly string[];
  domain?: string;
  agents?: boolean;
  /** Healing timings of the lab's control plane. */
  healing?: Partial<HealingConfig>;
  /** Extra arguments for every agent process (e.g. --liveness-interval 500ms). */
  agentArgs?: readonly string[];
}): Promise<Lab> => {
  requireNetnsLab();
  sweepAbandonedRuns();
  installExitHooks();
  const run = runId();
  const domain = o.domain ?? 'lab';
  const dir = mkdtempSync(join(tmpdir(), `nsm-lab-${run}-`));
  const ns = (role: string) => `${run}-${role}`;
  const processes: LabProcess[] = [];
  const clients: MeshClient[] = [];
  let nats: TestNats | undefined;
  let cp: ControlPlane | undefined;
  let stopped = false;

  const stop = async () => {
    if (stopped) return;
    stopped = true;
    // Endpoints first (they unregister), then agents, then the control plane and NATS.
    const endpoints = processes.filter((p) => p.name.startsWith('endpoint-'));
    await Promise.all(endpoints.map((p) => p.stop(3000)));
    await Promise.all(processes.map((p) => p.stop(3000)));
    for (const c of clients) await c.close().catch(() => undefined);
    await cp?.stop().catch(() => undefined);
    await nats?.stop().catch(() => undefined);
    sweepSync(run);
    if (!process.env.NSM_KEEP_LAB_LOGS) rmSync(dir, { recursive: true, force: true });
    labs.delete(entry);
  };
  const entry = { run, stop };
  labs.add(entry);

  try {
    const addNamespace = async (role: string) => {
      const name = ns(role);
      await sh(['ip', 'netns', 'add', name]);
      await sh(['ip', '-n', name, 'link', 'set', 'lo', 'up']);
      return name;
    };
    const ul = await addNamespace('ul');
    await sh(['ip', '-n', ul, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh(['ip', '-n', ul, 'link', 'set', 'br0', 'up']);
    const nodes = new Map<string, LabNode>();
    let i = 0;
    for (const name of o.nodes) {
      i++;
      const nodeNs = await addNamespace(name);
      const address = underlayAddress(i);
      await sh(['ip', '-n', ul, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', nodeNs]);
      await sh(['ip', '-n', ul, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      await sh(['ip', '-n', nodeNs, 'addr', 'add', `${address}/24`, 'dev', 'ul0']);
      await sh(['ip', '-n', nodeNs, 'link', 'set', 'ul0', 'up']);
      nodes.set(name, { name, netns: nodeNs, underlay: address, stateDir: join(dir, `state-${name}`) });
    }
    nats = await startTestNats();
    cp = await startControlPlane({ nc: await nats.connect(), domain, log: createLogger('control-plane', { lab: run }), ...(o.healing ? { healing: o.healing } : {}) });
    const natsUrl = nats.url;
    // The lab's CLI and processes find no pointer, credentials or data of the host's own meshes
    // (a user's `nsm up --domain demo` must not send its credentials to the demo's server).
    const xdg = { XDG_CONFIG_HOME: join(dir, 'xdg-config'), XDG_DATA_HOME: join(dir, 'xdg-data') };
    // The lab waits for the agents' and endpoints' info lines, whatever this process logs.
    const childEnv = { NSM_LOG_LEVEL: 'info', ...xdg };

    const lab: Lab = {
      run,
      domain,
      nats,
      cp,
      dir,
      nodes,
      ns,
      connectionId: (suffix) => `${run}${suffix}`,
      client: async (actor = 'tester') => {
        const c = MeshClient.over(await nats!.connect(), { domain, actor, timeoutMs: 20000 });
        clients.push(c);
        return c;
      },
      addNamespace,
      startAgent: async (node) => {
        const n = nodes.get(node);
        if (!n) throw new Error(`no node ${node} in this lab`);
        const p = startProcess(
          `agent-${node}`,
          [NSM_BIN, 'agent', '--insecure', '--dataplane', 'linux', '--node', node, '--netns', n.netns, '--underlay', n.underlay, '--state-dir', n.stateDir, '--server', natsUrl, '--domain', domain, ...(o.agentArgs ?? [])],
          dir,
          childEnv,
        );
        processes.push(p);
        n.agent = p;
        await p.waitFor(/"node agent ready"/, 30000);
        return p;
      },
      startEndpoint: async (e) => {
        const p = startProcess(
          `endpoint-${e.name}`,
          [
            NSM_BIN, 'endpoint', 'run', 'icmp-responder', '--name', e.name, '--service', e.service, '--node', e.node, '--netns', ns(e.role),
            ...(e.prefix ? ['--prefix', e.prefix] : []),
            ...(e.prefixes ?? []).flatMap((p) => ['--prefix', p]),
            ...(e.exclude ?? []).flatMap((x) => ['--exclude', x]),
            ...Object.entries(e.labels ?? {}).flatMap(([k, v]) => ['--label', `${k}=${v}`]),
            ...(e.expiration ? ['--expiration', e.expiration] : []),
            ...(e.args ?? []),
            '--server', natsUrl, '--domain', domain,
          ],
          dir,
          childEnv,
        );
        processes.push(p);
        await p.waitFor(/"msg":"registered"/, 30000);
        return p;
      },
      nsm: (args, timeoutMs = 60000) => exec([NSM_BIN, ...args, '--server', natsUrl, '--domain', domain], { timeoutMs, env: xdg }),
      ping: (role, address, p = {}) => pingIn(ns(role), address, p),
      stop,
    };
    if (o.agents !== false) for (const name of o.nodes) await lab.startAgent(name);
    return lab;
  } catch (e) {
    await stop();
    throw e;
  }
};

/** Connection state rows as `nsm ls connections --json` and the `connection` query return them. */
export interface ConnectionView {
  readonly id: string;
  readonly state: string;
  readonly mechanism?: { local: string; remote?: string };
  readonly context?: { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] }; mtu: number };
  readonly interfaces?: { client: string; endpoint: string };
  readonly failure?: { code: string; reason: string };
}

export const addressOf = (cidr: string): string => cidr.split('/')[0]!;

/** Interfaces of a namespace (names), for "nothing is left" checks. */
export const linksIn = async (ns: string): Promise<{ ifname: string; ifalias?: string; mtu: number; ifindex: number }[]> =>
  JSON.parse(await sh(['ip', '-n', ns, '-json', 'link', 'show'])) as { ifname: string; ifalias?: string; mtu: number; ifindex: number }[];

/** Routes of both families in the mesh's policy-routing tables of a namespace (should be none once its connections are closed). */
export const meshRoutesIn = async (ns: string): Promise<string[]> => {
  const all = (await Promise.all(['-4', '-6'].map(async (f) => JSON.parse(await sh(['ip', '-n', ns, '-json', f, 'route', 'show', 'table', 'all'])) as { dst: string; dev?: string; table?: string }[]))).flat();
  return all.filter((r) => r.table !== undefined && /^\d+$/.test(r.table) && Number(r.table) >= TABLE_FIRST && Number(r.table) <= TABLE_LAST).map((r) => `${r.dst} dev ${r.dev ?? '?'} table ${r.table}`);
};

/** Policy rules of both families. */
export const rulesIn = async (ns: string): Promise<{ priority: number; iif?: string; table?: string }[]> =>
  (await Promise.all(['-4', '-6'].map(async (f) => JSON.parse(await sh(['ip', '-n', ns, '-json', f, 'rule', 'show'])) as { priority: number; iif?: string; table?: string }[]))).flat();
