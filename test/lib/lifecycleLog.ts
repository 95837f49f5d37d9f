// Writes a large, realistic log straight into an event store: nodes, a service, endpoints, then
// connections that go through their whole lifecycle (request and selection, allocation, plan,
// programming, establishment, close, release, removal: 11 events in 9 commits). Commits are
// chained as execute() chains them, so verify and the sealer accept the log. Used by the
// projection rebuild test and bench/rebuild.ts.
import * as E from 'fp-ts/lib/Either.js';
import { commitHash, GENESIS_HASH } from '../../src/audit/hash.ts';
import type { Commit, EventEnvelope } from '../../src/contracts/envelope.ts';
import { schemaOf } from '../../src/contracts/upcast.ts';
import type { EventStore, ExpectedVersion } from '../../src/ports/eventStore.ts';

export const EVENTS_PER_CONNECTION = 11;
export const COMMITS_PER_CONNECTION = 9;

interface Tip {
  revision: ExpectedVersion;
  version: number;
  hash: string;
}

export interface LifecycleLogOptions {
  readonly store: EventStore;
  /** Connections to write (each EVENTS_PER_CONNECTION events). */
  readonly connections: number;
  /** Endpoints; also the number of appends in flight (one lane per endpoint keeps each pool in order). */
  readonly endpoints?: number;
  readonly nodes?: number;
  readonly domain?: string;
  /** Unique prefix for ids, so several logs can share a store. */
  readonly prefix?: string;
  readonly onProgress?: (events: number) => void;
}

export const writeLifecycleLog = async (o: LifecycleLogOptions): Promise<{ events: number; commits: number }> => {
  const endpoints = o.endpoints ?? 64;
  const nodes = o.nodes ?? 4;
  const domain = o.domain ?? 'bench';
  const prefix = o.prefix ?? 'x';
  const tips = new Map<string, Tip>();
  let events = 0;
  let commits = 0;
  let clock = Date.UTC(2030, 0, 1);
  const time = () => new Date((clock += 3)).toISOString();

  const append = async (stream: string, data: readonly Record<string, unknown>[], actor: string, correlationId: string) => {
    const tip = tips.get(stream) ?? { revision: 'none' as const, version: 0, hash: GENESIS_HASH };
    const commitId = `${prefix}-${commits}-${stream}`;
    const at = time();
    const envs: EventEnvelope[] = data.map((d, i) => ({
      id: `${commitId}-${i}`,
      type: String(d.type),
      stream,
      version: tip.version + i + 1,
      time: at,
      correlationId,
      causationId: correlationId,
      domain,
      actor,
      schema: schemaOf(String(d.type)),
      data: d as { type: string },
    }));
    commits++;
    const base = { commitId, stream, events: envs, prevHash: tip.hash };
    const commit: Commit = { ...base, hash: commitHash(base) };
    const r = await o.store.append(commit, tip.revision)();
    if (E.isLeft(r)) throw new Error(`append to ${stream}: ${r.left.message}`);
    tips.set(stream, { revision: r.right.revision, version: tip.version + envs.length, hash: commit.hash! });
    events += envs.length;
    if (commits % 1000 === 0) o.onProgress?.(events);
  };

  const nodeName = (i: number) => `${prefix}-node-${i % nodes}`;
  for (let n = 0; n < nodes; n++) {
    await append(`node.${nodeName(n)}`, [{ type: 'NodeJoined', spec: { name: nodeName(n), mechanisms: ['kernel', 'vxlan', 'wireguard'], dataplane: 'simulated', mtu: 1500, publicKeys: {} } }], `agent:${nodeName(n)}`, `join-${n}`);
  }
  const service = `${prefix}-svc`;
  await append(`service.${service}`, [{ type: 'NetworkServiceRegistered', spec: { name: service, payload: 'IP', matches: [] } }], 'operator', 'svc');
  const epName = (e: number) => `${prefix}-ep-${e}`;
  const octet = (e: number) => `10.${Math.floor(e / 250) % 250}.${e % 250}`;
  for (let e = 0; e < endpoints; e++) {
    const spec = { name: epName(e), networkServiceNames: [service], networkServiceLabels: {}, node: nodeName(e), prefixes: [`${octet(e)}.0/24`], excludedPrefixes: [] };
    await append(`endpoint.${epName(e)}`, [{ type: 'EndpointRegistered', spec, expirationTime: '2031-01-01T00:00:00.000Z' }], 'operator', `ep-${e}`);
  }

  const lifecycle = async (i: number, e: number) => {
    const id = `${prefix}-conn-${i}`;
    const stream = `connection.${id}`;
    const ep = epName(e);
    const pool = `pool.${ep}`;
    const clientNode = nodeName(i + 1);
    const endpointNode = nodeName(e);
    const remote = clientNode !== endpointNode;
    const corr = `req-${id}`;
    const host = 3 + (i % 120) * 2;
    const src = `${octet(e)}.${host}/32`;
    const dst = `${octet(e)}.${host - 1}/32`;
    await append(stream, [
      { type: 'ConnectionRequested', connectionId: id, networkService: service, payload: 'IP', labels: { app: 'bench' }, clientNode, clientInterface: `nsm${i}`.slice(0, 15), mechanismPreferences: [], requestId: corr },
      { type: 'EndpointSelected', endpoint: ep, endpointNode, considered: endpoints, excluded: [] },
    ], 'operator', corr);
    await append(pool, [{ type: 'AddressesAllocated', connectionId: id, pairs: [{ prefix: `${octet(e)}.0/24`, src, dst }] }], 'control-plane', corr);
    await append(stream, [{
      type: 'PathPlanned',
      generation: 1,
      mechanism: remote ? { local: 'kernel', remote: 'wireguard' } : { local: 'kernel' },
      context: { ipContext: { srcIpAddrs: [src], dstIpAddrs: [dst], srcRoutes: [{ prefix: dst }], dstRoutes: [{ prefix: src }], excludedPrefixes: [] }, dnsContext: { configs: [] }, ethernetContext: {}, mtu: remote ? 1420 : 1500 },
      path: { index: 0, pathSegments: [{ name: `client@${clientNode}`, id }, { name: ep, id }] },
      clientInterface: `nsm${i}`.slice(0, 15),
      endpointInterface: `nse${i}`.slice(0, 15),
    }], 'control-plane', corr);
    await append(stream, [{ type: 'DataplaneProgrammed', generation: 1, node: clientNode, side: 'client' }], `agent:${clientNode}`, corr);
    await append(stream, [{ type: 'DataplaneProgrammed', generation: 1, node: endpointNode, side: 'endpoint' }, { type: 'ConnectionEstablished', generation: 1 }], `agent:${endpointNode}`, corr);
    await append(stream, [{ type: 'ConnectionClosed', reason: 'bench' }], 'operator', `close-${id}`);
    await append(pool, [{ type: 'AddressesReleased', connectionId: id }], 'control-plane', `close-${id}`);
    await append(stream, [{ type: 'DataplaneRemoved', generation: 1, node: clientNode, side: 'client' }], `agent:${clientNode}`, `close-${id}`);
    await append(stream, [{ type: 'DataplaneRemoved', generation: 1, node: endpointNode, side: 'endpoint' }], `agent:${endpointNode}`, `close-${id}`);
  };

  // One lane per endpoint: a pool's commits stay in order, the lanes run side by side.
  let next = 0;
  await Promise.all(
    Array.from({ length: endpoints }, async (_, e) => {
      for (let i = next++; i < o.connections; i = next++) await lifecycle(i, e);
    }),
  );
  o.onProgress?.(events);
  return { events, commits };
};
