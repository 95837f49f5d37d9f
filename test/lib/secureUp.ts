// `nsm up` the way the README runs it, secure by default, as a separate process, with the
// identities a test asks for made first by `nsm init`: the CLI of each identity then runs with
// that identity's credentials. XDG dirs are private to the test, so the user's own pointers and
// data are never read or written.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../infra/net.ts';
import { runId } from './nats.ts';
import { isAlive, runNsm, startNsm, type NsmProcess, type NsmResult } from './nsmProcess.ts';

export interface SecureUp {
  /** The running `nsm up` (replaced by restart()). */
  readonly up: NsmProcess;
  readonly domain: string;
  readonly node: string;
  readonly dataDir: string;
  readonly natsUrl: string;
  /** The HTTP API, over TLS: trust caFile. */
  readonly httpUrl: string;
  readonly caFile: string;
  /** The environment of the CLI run as this identity ("operator" finds its credentials through the pointer). */
  env(identity?: string): NodeJS.ProcessEnv;
  /** Runs `nsm ARGS` as the identity. */
  nsm(identity: string, args: readonly string[], timeoutMs?: number): Promise<NsmResult>;
  /** Stops `nsm up` (SIGTERM) and starts it again on the same data dir and ports. */
  restart(): Promise<NsmProcess>;
  stop(): Promise<void>;
}

export const startSecureUp = async (o: { clients?: readonly string[]; nodes?: readonly string[]; upArgs?: readonly string[]; domain?: string } = {}): Promise<SecureUp> => {
  const tmp = mkdtempSync(join(tmpdir(), 'nsm-secure-up-'));
  const domain = o.domain ?? `s${runId()}`.slice(0, 32).toLowerCase();
  const node = o.nodes?.[0] ?? 'n1';
  const dataDir = join(tmp, 'data');
  const base: NodeJS.ProcessEnv = { XDG_CONFIG_HOME: join(tmp, 'config'), XDG_DATA_HOME: join(tmp, 'xdg-data'), NSM_DOMAIN: domain, NSM_LOG_LEVEL: 'info', NSM_CREDS: '', NSM_NATS_URL: '', NSM_ACTOR: '', NSM_NODE: node };
  const procs: NsmProcess[] = [];
  const cleanup = async () => {
    for (const p of procs) {
      const pid = p.logs('nats-server started')[0]?.pid;
      await p.stop('SIGTERM', 15000);
      if (typeof pid === 'number' && isAlive(pid)) process.kill(pid, 'SIGKILL');
    }
    rmSync(tmp, { recursive: true, force: true });
  };
  try {
    const init = await runNsm(['init', '--dir', dataDir, '--domain', domain, '--nodes', (o.nodes ?? [node]).join(','), ...(o.clients?.length ? ['--clients', o.clients.join(',')] : [])], base);
    if (init.code !== 0) throw new Error(`nsm init failed: ${init.stderr}`);
    const natsPort = await freePort();
    const httpPort = await freePort();
    const startUp = async () => {
      const p = startNsm(['up', '--data-dir', dataDir, '--domain', domain, '--node', node, '--nats-port', String(natsPort), '--http-port', String(httpPort), ...(o.upArgs ?? [])], base);
      procs.push(p);
      await p.waitFor(`mesh "${domain}" is up`, 60000);
      return p;
    };
    let up = await startUp();
    const env = (identity = 'operator'): NodeJS.ProcessEnv =>
      identity === 'operator' ? { ...base, NSM_LOG_LEVEL: 'warn' } : { ...base, NSM_LOG_LEVEL: 'warn', NSM_CREDS: join(dataDir, 'creds', `${identity.startsWith('agent:') ? `agent-${identity.slice(6)}` : identity}.creds`) };
    return {
      get up() {
        return up;
      },
      domain,
      node,
      dataDir,
      natsUrl: `nats://127.0.0.1:${natsPort}`,
      httpUrl: `https://127.0.0.1:${httpPort}`,
      caFile: join(dataDir, 'tls', 'ca.pem'),
      env,
      nsm: (identity, args, timeoutMs) => runNsm(args, env(identity), timeoutMs),
      restart: async () => {
        const r = await up.stop('SIGTERM', 20000);
        if (r.code !== 0) throw new Error(`nsm up exited ${r.code ?? r.signal} on SIGTERM: ${r.stderr.slice(-2000)}`);
        up = await startUp();
        return up;
      },
      stop: cleanup,
    };
  } catch (e) {
    await cleanup();
    throw e;
  }
};
