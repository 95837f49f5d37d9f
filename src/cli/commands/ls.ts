// nsm ls services|endpoints|connections|nodes|addresses|peers: the read model as tables, or --json.
import { formatRange } from '../../../aggregates/tunnelPool.ts';
import { env } from '../../client/index.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, fail, must, type ClientValues, type Ctx } from '../kit.ts';
import { bool, CLIENT_OPTIONS, common, str } from '../options.ts';
import { age, labelsText, table } from '../render/table.ts';

type EndpointRow = { name: string; networkServiceNames: string[]; node: string; prefixes?: string[]; prefix?: string; expirationTime?: string; registry?: string; domain?: string; stale?: boolean };

/** An endpoint's prefixes; a registry of an earlier version (another domain's copy) has one `prefix`. */
const prefixesText = (r: { prefixes?: string[]; prefix?: string }): string => (r.prefixes ?? (r.prefix ? [r.prefix] : [])).join(',');

/** `nsm ls endpoints --domain D` (from another domain) or `--all-domains`: the home domain's copy of other registries. */
const remoteEndpoints = (ctx: Ctx, v: ClientValues, domain: string | undefined) =>
  ctx.withClient(v, async (c) => {
    const remote = must(await c.queryAll<EndpointRow>('remote-endpoints', domain ? { domain: checkDomain(domain) } : {}));
    const local = domain ? [] : must(await c.queryAll<EndpointRow>('endpoints')).map((r) => ({ ...r, registry: c.subjects.domain, domain: r.domain ?? c.subjects.domain }));
    const rows = [...local, ...remote];
    ctx.out(v, rows, () =>
      table(
        ['registry', 'name', 'services', 'home domain', 'node', 'prefixes', 'expires'],
        rows.map((r) => [r.registry ?? '', r.name, r.networkServiceNames.join(','), r.domain ?? r.registry ?? '', r.node, prefixesText(r), r.stale ? `${r.expirationTime} (stale)` : (r.expirationTime ?? 'static')]),
      ),
    );
  });

export const ls = defineCommand({
  name: 'ls',
  group: 'use',
  usage: [
    'nsm ls services|endpoints|nodes|addresses|peers',
    "nsm ls endpoints --domain D | --all-domains [--via HOME]   (other domains' registries, from HOME's copy)",
    'nsm ls connections [--all] [--state S] [--node N] [--endpoint E] [--service SVC] [--client ACTOR]',
  ],
  description: `
Lists the read model: services, endpoints (with their number of connections), nodes (with their
last heartbeat), addresses (every address pair handed out), peers (federated domains), or
connections (those not closed, unless --all). People get tables; --json prints the full objects.
ls endpoints --domain D or --all-domains lists other domains' registries from the home domain's
sourced copy; the home domain is --via, else NSM_DOMAIN (docs/federation.md).`,
  flags: {
    all: bool('ls connections: closed ones too'),
    state: str('S', 'ls connections: only those in this state (denied and limited: failed because a policy or a limit refused them)', {
      choices: ['requested', 'endpoint-selected', 'path-planned', 'established', 'waiting', 'down', 'failed', 'closed', 'denied', 'limited'],
    }),
    node: str('N', "ls connections: the client's or the endpoint's node is N"),
    endpoint: str('E', 'ls connections: served by endpoint E'),
    service: str('SVC', 'ls connections: to service SVC'),
    client: str('ACTOR', 'ls connections: asked for by ACTOR'),
    domain: { ...common.domain, help: 'the mesh domain; ls endpoints --domain D lists domain D\'s registry from the home domain\'s copy' },
    'all-domains': bool("ls endpoints: this domain's registry and every other one the home domain holds a copy of"),
    via: str('HOME', "ls endpoints --domain/--all-domains: the home domain whose copies are read", { env: 'NSM_DOMAIN' }),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [what] }, ctx) {
    // Federation: other domains' registries come from the home domain's sourced copy (docs/federation.md).
    if (what === 'endpoints') {
      const home = v.via ?? env('NSM_DOMAIN');
      if (v['all-domains'] || (v.domain !== undefined && home !== undefined && checkDomain(v.domain) !== checkDomain(home))) return remoteEndpoints(ctx, { ...v, ...(home ? { domain: home } : {}) }, v['all-domains'] ? undefined : v.domain);
    }
    await ctx.withClient(v, async (c) => {
      switch (what) {
        case 'services': {
          const rows = must(await c.queryAll<{ name: string; payload: string; matches: unknown[]; ipFamilies?: string[]; updatedAt: string }>('services'));
          return ctx.out(v, rows, () => table(['name', 'payload', 'families', 'matches', 'updated'], rows.map((r) => [r.name, r.payload, r.ipFamilies?.join(',') ?? 'any', r.matches.length, age(r.updatedAt)])));
        }
        case 'endpoints': {
          const rows = must(await c.queryAll<{ name: string; networkServiceNames: string[]; networkServiceLabels: Record<string, { labels: Record<string, string> }>; node: string; prefixes?: string[]; prefix?: string; connections: number; expirationTime: string; domain?: string }>('endpoints'));
          // A floating registry's entries name their home domain (docs/federation.md).
          const floating = rows.some((r) => r.domain);
          return ctx.out(v, rows, () =>
            table(
              ['name', 'services', 'labels', ...(floating ? ['home domain'] : []), 'node', 'prefixes', 'connections', 'expires'],
              rows.map((r) => [r.name, r.networkServiceNames.join(','), r.networkServiceNames.map((s) => labelsText(r.networkServiceLabels[s]?.labels)).filter(Boolean).join(' '), ...(floating ? [r.domain ?? ''] : []), r.node, prefixesText(r), r.connections, r.expirationTime]),
            ),
          );
        }
        case 'connections': {
          const params = {
            ...(v.all ? { includeClosed: true } : {}),
            // "denied" and "limited" are failures with that code (a policy or a limit refused the request).
            ...(v.state ? { state: v.state === 'denied' || v.state === 'limited' ? 'failed' : v.state } : {}),
            ...(v.node ? { node: v.node } : {}),
            ...(v.endpoint ? { endpoint: v.endpoint } : {}),
            ...(v.service ? { service: v.service } : {}),
            ...(v.client ? { actor: v.client } : {}),
          };
          const all = must(await c.queryAll<Record<string, any>>('connections', params));
          const rows = v.state === 'denied' || v.state === 'limited' ? all.filter((r) => r.failure?.code === v.state) : all;
          return ctx.out(v, rows, () =>
            table(
              ['id', 'service', 'state', 'endpoint', 'client node', 'mechanism', 'client addr', 'endpoint addr', 'updated'],
              rows.map((r) => [r.id, r.networkService, r.healing ? `${r.state} (healing: ${r.healing.cause})` : r.failure?.code === 'denied' || r.failure?.code === 'limited' ? `failed (${r.failure.code})` : r.state, r.networkServiceEndpointName, r.clientNode, r.mechanism ? [r.mechanism.local, r.mechanism.remote].filter(Boolean).join('+') : '', r.context?.ipContext.srcIpAddrs.join(','), r.context?.ipContext.dstIpAddrs.join(','), age(r.updatedAt)]),
            ),
          );
        }
        case 'nodes': {
          const rows = must(await c.queryAll<{ name: string; status: string; dataplane: string; mechanisms: string[]; mtu: number; underlayAddress?: string; lastHeartbeat?: string }>('nodes'));
          return ctx.out(v, rows, () => table(['name', 'status', 'dataplane', 'mechanisms', 'mtu', 'underlay', 'heartbeat'], rows.map((r) => [r.name, r.status, r.dataplane, r.mechanisms.join(','), r.mtu, r.underlayAddress, r.lastHeartbeat ? age(r.lastHeartbeat) : 'never'])));
        }
        case 'addresses': {
          const rows = must(await c.queryAll<{ endpoint: string; connectionId: string; family?: string; src: string; dst: string }>('addresses'));
          return ctx.out(v, rows, () => table(['endpoint', 'connection', 'family', 'client addr', 'endpoint addr'], rows.map((r) => [r.endpoint, r.connectionId, r.family, r.src, r.dst])));
        }
        case 'peers': {
          const rows = must(await c.query<{ domain: string; status: string; lastHeard?: string; tunnelIds?: { from: number; to: number }; registryOnly?: boolean; conflict?: string }[]>('peers'));
          const problems = rows.some((r) => r.conflict);
          return ctx.out(v, rows, () =>
            table(
              ['domain', 'status', 'heard', 'tunnel ids', 'kind', ...(problems ? ['problem'] : [])],
              rows.map((r) => [r.domain, r.status, r.lastHeard ? age(r.lastHeard) : 'never', r.tunnelIds ? formatRange(r.tunnelIds) : '', r.registryOnly ? 'registry' : 'cluster', ...(problems ? [r.conflict ? `CONFLICT: ${r.conflict}` : ''] : [])]),
            ),
          );
        }
        default:
          fail(`nsm ls ${what ?? ''}: expected services, endpoints, connections, nodes, addresses or peers`);
      }
    });
  },
});
