// The soak on the Linux dataplane (root): network namespaces as in test/lib/netns.ts's lab
// (an underlay bridge in "<run>-ul", one namespace per node with ul0 = 172.31.0.(10+i)/24,
// workloads and endpoints in namespaces of their own), agents on the linux dataplane, and every
// mesh process its own OS process (startSoakMesh). Names carry the run's prefix, so the lab's
// sweeper removes whatever a killed soak left (sweepAbandonedRuns), and the counters below can
// tell the mesh's own kernel objects from anything else on the host.
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MESH_INTERFACE, TABLE_FIRST, TABLE_LAST } from '../../node-agent/linux/names.ts';
import { startSoakMesh, type MeshLayout, type SoakMesh } from './soakMesh.ts';

export interface SoakLab {
  readonly run: string;
  readonly mesh: SoakMesh;
  ns(role: string): string;
  /** Counts of the mesh's kernel objects, in the lab's namespaces and on the host. */
  kernelCounts(): Promise<Record<string, number>>;
  stop(): Promise<void>;
}

/** A command's JSON output; undefined when it fails (a namespace deleted meanwhile). */
const json = <T>(argv: readonly string[]): Promise<T | undefined> =>
  new Promise((resolve) =>
    execFile(argv[0]!, argv.slice(1), { encoding: 'utf8', timeout: 20_000, maxBuffer: 64 * 2 ** 20 }, (e, stdout) => {
      if (e) return resolve(undefined);
      try {
        resolve(JSON.parse(stdout || 'null') as T);
      } catch {
        resolve(undefined);
      }
    }),
  );

const inMeshTable = (table: string | number | undefined): boolean => {
  const t = Number(table);
  return Number.isInteger(t) && t >= TABLE_FIRST && t <= TABLE_LAST;
};

/** nft objects of a ruleset listing: tables, chains, rules, sets, maps, elements... (not the metainfo line). */
const nftObjects = (ruleset: { nftables?: Record<string, { name?: string; table?: string }>[] } | undefined, keep: (o: { name?: string; table?: string }) => boolean = () => true): number =>
  (ruleset?.nftables ?? []).filter((o) => !('metainfo' in o)).filter((o) => keep(Object.values(o)[0] ?? {})).length;

export const startSoakLab = async (l: Omit<MeshLayout, 'dataplane' | 'agentArgs' | 'endpointArgs' | 'dir'> & { readonly clients: readonly string[]; readonly livenessInterval: string }): Promise<SoakLab> => {
  const { requireNetnsLab, sweepAbandonedRuns, sweepSync, sh, underlayAddress } = await import('../../test/lib/netns.ts');
  const { runId } = await import('../../test/lib/nats.ts');
  requireNetnsLab();
  sweepAbandonedRuns();
  const run = runId();
  const ns = (role: string) => `${run}-${role}`;
  // Named like the lab's directories, so that the sweeper removes it if this process is killed.
  const dir = mkdtempSync(join(tmpdir(), `nsm-lab-${run}-`));
  const addNamespace = async (role: string) => {
    await sh(['ip', 'netns', 'add', ns(role)]);
    await sh(['ip', '-n', ns(role), 'link', 'set', 'lo', 'up']);
    return ns(role);
  };
  let mesh: SoakMesh | undefined;
  const stop = async () => {
    await mesh?.stop().catch(() => undefined);
    sweepSync(run);
  };
  process.once('exit', () => sweepSync(run));
  try {
    const ul = await addNamespace('ul');
    await sh(['ip', '-n', ul, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh(['ip', '-n', ul, 'link', 'set', 'br0', 'up']);
    const underlay = new Map<string, string>();
    let i = 0;
    for (const node of l.nodes) {
      i++;
      const nodeNs = await addNamespace(node);
      await sh(['ip', '-n', ul, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', nodeNs]);
      await sh(['ip', '-n', ul, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      await sh(['ip', '-n', nodeNs, 'addr', 'add', `${underlayAddress(i)}/24`, 'dev', 'ul0']);
      await sh(['ip', '-n', nodeNs, 'link', 'set', 'ul0', 'up']);
      underlay.set(node, underlayAddress(i));
    }
    for (const c of l.clients) await addNamespace(c);
    mesh = await startSoakMesh({
      ...l,
      dir,
      dataplane: 'linux',
      agentArgs: (node) => ['--netns', ns(node), '--underlay', underlay.get(node)!, '--liveness-interval', l.livenessInterval],
      // The endpoint process creates its namespace (and deletes it when it stops cleanly).
      endpointArgs: (e) => ['--netns', ns(e.name)],
    });
    const tag = run.slice(0, 7);
    const kernelCounts = async () => {
      const mine = ((await json<{ name: string }[]>(['ip', '-json', 'netns', 'list'])) ?? []).map((n) => n.name).filter((n) => n.startsWith(`${run}-`));
      let interfaces = 0;
      let routes = 0;
      let rules = 0;
      let nft = 0;
      for (const n of mine) {
        if (n === ns('ul')) continue;
        // Everything in a lab namespace but loopback and the lab's own underlay port is the mesh's.
        const links = (await json<{ ifname: string }[]>(['ip', '-n', n, '-json', 'link', 'show'])) ?? [];
        interfaces += links.filter((x) => x.ifname !== 'lo' && x.ifname !== 'ul0').length;
        const rs = (await json<{ dev?: string; table?: string }[]>(['ip', '-n', n, '-json', '-4', 'route', 'show', 'table', 'all'])) ?? [];
        routes += rs.filter((r) => inMeshTable(r.table) || (r.dev !== undefined && r.dev !== 'lo' && r.dev !== 'ul0')).length;
        rules += ((await json<{ table?: string }[]>(['ip', '-n', n, '-json', '-4', 'rule', 'show'])) ?? []).filter((r) => inMeshTable(r.table)).length;
        nft += nftObjects(await json(['ip', 'netns', 'exec', n, 'nft', '-j', 'list', 'ruleset']));
      }
      // On the host: the mesh's by name (its interface names, the run's ids) or by table range.
      const rootLinks = (await json<{ ifname: string; ifalias?: string }[]>(['ip', '-json', 'link', 'show'])) ?? [];
      const hostInterfaces = rootLinks.filter((x) => x.ifname.includes(run) || x.ifname.includes(tag) || (MESH_INTERFACE.test(x.ifname) && (x.ifalias ?? '').startsWith(`nsm:${l.domain}:`))).length;
      const hostRoutes = ((await json<{ table?: string }[]>(['ip', '-json', '-4', 'route', 'show', 'table', 'all'])) ?? []).filter((r) => inMeshTable(r.table)).length;
      const hostRules = ((await json<{ table?: string }[]>(['ip', '-json', '-4', 'rule', 'show'])) ?? []).filter((r) => inMeshTable(r.table)).length;
      const hostNft = nftObjects(await json(['nft', '-j', 'list', 'ruleset']), (o) => /nsm/i.test(o.table ?? o.name ?? ''));
      const wireguardGo = readdirSync('/proc').filter((e) => /^\d+$/.test(e)).filter((pid) => {
        try {
          const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
          return (argv[0] ?? '').endsWith('wireguard-go') && argv.slice(1).some((a) => a.includes(tag));
        } catch {
          return false;
        }
      }).length;
      return {
        'lab.namespaces': mine.length,
        'lab.interfaces': interfaces,
        'lab.routes': routes,
        'lab.rules': rules,
        'lab.nftObjects': nft,
        'host.interfaces': hostInterfaces,
        'host.routes': hostRoutes,
        'host.rules': hostRules,
        'host.nftObjects': hostNft,
        'host.wireguardGo': wireguardGo,
      };
    };
    return { run, mesh, ns, kernelCounts, stop };
  } catch (e) {
    await stop();
    throw e;
  }
};
