// `nsm endpoint run icmp-responder`: a network service endpoint as a long-running process. It
// makes sure its network namespace exists, registers itself (with that namespace, so the node
// agent puts the endpoint side of each connection there), refreshes the registration every third
// of its expiry, reports the connections it serves, and unregisters when stopped.
//
// icmp-responder: nothing in this process answers packets. Once the agent has put a
// connection's address on the endpoint's interface, the Linux kernel in the endpoint namespace
// answers ICMP echo itself; this process keeps loopback up and the registration alive.
import * as E from 'fp-ts/lib/Either.js';
import type { Labels } from '../../aggregates/domain.ts';
import { createLogger } from '../../infra/log.ts';
import { errorText } from '../ports/logger.ts';
import { deleteNamedNetns, ensureNamedNetns, ip, netnsExists, netnsLabel, parseNetns, type Netns } from '../../node-agent/linux/netns.ts';
import type { MeshClient } from '../client/index.ts';
import { prefixFields, splitServiceRef } from '../contracts/commands.ts';
import { keepEndpointRegistered } from '../client/index.ts';

export const ENDPOINT_KINDS = ['icmp-responder'] as const;
export type EndpointKind = (typeof ENDPOINT_KINDS)[number];

export interface EndpointRunOptions {
  readonly kind: EndpointKind;
  readonly name: string;
  readonly services: readonly string[];
  readonly labels: Labels;
  readonly node: string;
  /** One per family; none: the control plane's default. */
  readonly prefixes?: readonly string[];
  readonly excludedPrefixes?: readonly string[];
  /** DNS its clients get (endpoint.register's dns). */
  readonly dns?: { readonly servers: readonly string[]; readonly searchDomains?: readonly string[] };
  readonly expirationSeconds: number;
  readonly netns: string;
  readonly dataplane: 'linux' | 'simulated';
}

export class EndpointRunError extends Error {}

interface Served {
  readonly id: string;
  readonly state: string;
  readonly interfaces?: { endpoint: string };
  readonly context?: { ipContext: { srcIpAddrs: string[]; dstIpAddrs: string[] } };
}

/** Prepares the namespace; says whether this process created it (and so should delete it at exit). */
const prepareNamespace = async (netns: string): Promise<{ ns: Netns; created: boolean }> => {
  const parsed = parseNetns(netns);
  if (E.isLeft(parsed)) throw new EndpointRunError(parsed.left);
  const ns = parsed.right;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new EndpointRunError('running an endpoint on the linux dataplane needs root (it creates and configures its network namespace); use --dataplane simulated to try without');
  }
  let created = false;
  if (ns.kind === 'named') {
    const r = await ensureNamedNetns(ns.name);
    if (E.isLeft(r)) throw new EndpointRunError(`cannot create network namespace ${ns.name}: ${r.left.message}`);
    created = r.right;
  } else if (!netnsExists(ns)) {
    throw new EndpointRunError(`network namespace ${netnsLabel(ns)} does not exist (only named namespaces are created)`);
  }
  const lo = await ip(ns, ['link', 'set', 'dev', 'lo', 'up'])();
  if (E.isLeft(lo)) throw new EndpointRunError(`cannot bring loopback up in ${netnsLabel(ns)}: ${lo.left.message}`);
  return { ns, created };
};

/**
 * Runs until SIGINT or SIGTERM. Resolves after unregistering and cleaning up; rejects with an
 * EndpointRunError when the endpoint cannot start.
 */
export const runEndpoint = async (client: MeshClient, o: EndpointRunOptions): Promise<void> => {
  const log = createLogger('endpoint', { endpoint: o.name, kind: o.kind });
  const linux = o.dataplane === 'linux';
  const prepared = linux ? await prepareNamespace(o.netns) : undefined;
  const cleanupNamespace = async () => {
    if (prepared?.created && prepared.ns.kind === 'named') {
      const r = await deleteNamedNetns(prepared.ns.name)();
      if (E.isLeft(r)) log.warn('could not delete the namespace this endpoint created', { error: r.left.message });
      else log.info('deleted the namespace this endpoint created', { netns: prepared.ns.name });
    }
  };

  const body = {
    name: o.name,
    networkServiceNames: [...o.services],
    // Labels are per service name: "svc@floating" carries the labels of svc.
    networkServiceLabels: Object.fromEntries(o.services.map((s) => [splitServiceRef(s).service, { labels: { ...o.labels } }])),
    node: o.node,
    ...prefixFields(o.prefixes),
    ...(o.excludedPrefixes && o.excludedPrefixes.length > 0 ? { excludedPrefixes: [...o.excludedPrefixes] } : {}),
    ...(linux ? { netns: o.netns } : {}),
    ...(o.dns ? { dns: { servers: [...o.dns.servers], ...(o.dns.searchDomains ? { searchDomains: [...o.dns.searchDomains] } : {}) } } : {}),
  };
  // Registered now, and refreshed every third of its expiration until stopped.
  const kept = await keepEndpointRegistered(client, body, { expirationSeconds: o.expirationSeconds, log });
  if (E.isLeft(kept)) {
    await cleanupNamespace();
    throw new EndpointRunError(kept.left);
  }
  log.info('registered', { services: o.services, node: o.node, netns: linux ? o.netns : undefined, expirationSeconds: o.expirationSeconds, dataplane: o.dataplane });
  process.stderr.write(
    `endpoint ${o.name} (${o.kind}) serves ${o.services.join(', ')} on node ${o.node}` +
      (linux ? ` in network namespace ${o.netns}; the kernel there answers ping on each connection's address` : ' (simulated dataplane: no packets are answered)') +
      '\nStop with Ctrl-C: it unregisters.\n',
  );

  // Tell the operator which connections reach this endpoint, as they come and go. Only the
  // connections it serves now are asked for and remembered: one that is gone (closed, or healed
  // onto another endpoint) is said once and forgotten, or a long-running endpoint would keep
  // every connection it ever served.
  const served = new Map<string, string>();
  let watching = false;
  const watch = setInterval(() => {
    if (watching) return;
    watching = true;
    void client
      .queryAll<Served>('connections', { endpoint: o.name })
      .then((r) => {
        if (E.isLeft(r)) return;
        const now = new Set<string>();
        for (const c of r.right) {
          now.add(c.id);
          if (served.get(c.id) === c.state) continue;
          const first = !served.has(c.id);
          served.set(c.id, c.state);
          if (first && c.state === 'failed') continue;
          log.info(`connection ${c.state}`, {
            connectionId: c.id,
            clientAddresses: c.context?.ipContext.srcIpAddrs,
            endpointAddresses: c.context?.ipContext.dstIpAddrs,
            interface: c.interfaces?.endpoint,
          });
        }
        for (const id of served.keys()) {
          if (now.has(id)) continue;
          served.delete(id);
          log.info('connection no longer served here (closed, or moved to another endpoint)', { connectionId: id });
        }
      })
      .finally(() => (watching = false));
  }, 2000);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) return;
      stopping = true;
      clearInterval(watch);
      log.info('stopping', { signal });
      void (async () => {
        await kept.right.stop({ timeoutMs: 5000 });
        await cleanupNamespace().catch((e) => log.warn('namespace cleanup failed', { error: errorText(e) }));
        resolve();
      })();
    };
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.once(sig, () => stop(sig));
  });
};
