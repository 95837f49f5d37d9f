// nsm status: the log position and the counts of the read model, and the NATS cluster under it.
import * as E from 'fp-ts/lib/Either.js';
import { defineCommand } from '../command.ts';
import { must } from '../kit.ts';
import { CLIENT_OPTIONS } from '../options.ts';

interface Peer {
  readonly server: string;
  readonly current: boolean;
  readonly offline?: boolean;
  readonly lag?: number;
  readonly activeSeconds?: number;
}
interface ClusterView {
  readonly name?: string;
  readonly servers: readonly string[];
  readonly controlPlane: { readonly replica: string; readonly connectedTo?: string; readonly leader: boolean };
  readonly lease: { readonly replica: string; readonly renewedAt?: string; readonly thisReplica: boolean } | null;
  readonly streams: readonly ({ readonly stream: string; readonly replicas: number; readonly messages: number; readonly leader?: string; readonly peers: readonly Peer[] } | { readonly stream: string; readonly error: string })[];
}

const peerText = (p: Peer) => `${p.server} ${p.offline ? 'OFFLINE' : p.current ? 'current' : 'behind'}${p.lag ? ` lag ${p.lag}` : ''}${p.activeSeconds !== undefined ? ` (heard ${p.activeSeconds}s ago)` : ''}`;

export const clusterLines = (c: ClusterView): string[] => [
  c.name ? `cluster ${c.name}: ${c.servers.length} servers (${c.servers.join(', ')})` : `server ${c.controlPlane.connectedTo ?? '?'} (no cluster)`,
  `lease: ${c.lease ? `${c.lease.replica}${c.lease.renewedAt ? ` (renewed ${c.lease.renewedAt})` : ''}` : 'held by no control plane'}`,
  `answered by: ${c.controlPlane.replica} on ${c.controlPlane.connectedTo ?? '?'}`,
  'streams:',
  ...c.streams.map((x) =>
    'error' in x
      ? `  ${x.stream.padEnd(28)} cannot be read now: ${x.error}`
      : `  ${x.stream.padEnd(28)} R${x.replicas} ${String(x.messages).padStart(8)} msgs  leader ${x.leader ?? 'NONE'}${x.peers.length > 1 ? `; ${x.peers.filter((p) => p.server !== x.leader).map(peerText).join(', ')}` : ''}`,
  ),
];

export const status = defineCommand({
  name: 'status',
  group: 'use',
  usage: ['nsm status'],
  description: `
The log position and the number of services, endpoints, nodes and connections, and failedSteps:
workflow steps the process manager gave up on (nsm workflow ls). Then the NATS servers under the
mesh, as the answering control plane's JetStream sees them: the cluster and its servers, each
stream's leader and replicas (current or behind, by how many operations, when last heard from),
and which control plane replica holds the lease (runs the workflows and timers).`,
  flags: {},
  common: CLIENT_OPTIONS,
  async run({ values: v }, ctx) {
    await ctx.withClient(v, async (c) => {
      const s = must(await c.query<Record<string, number>>('status'));
      // A control plane of an older version does not know the query: the counts alone then.
      const cluster = await c.query<ClusterView>('cluster');
      ctx.out(v, { ...s, ...(E.isRight(cluster) ? { cluster: cluster.right } : {}) }, () =>
        [...Object.entries(s).map(([k, n]) => `${k}: ${n}`), ...(E.isRight(cluster) ? clusterLines(cluster.right) : [`cluster: not answered (${cluster.left.message})`])].join('\n'),
      );
    });
  },
});
