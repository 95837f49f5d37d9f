// Dual stack over an IPv6 underlay, on the default secure mesh: `nsm up` (authenticated, TLS)
// runs the control plane; two Linux agents run as their own agent identities, each programming a
// node namespace whose only underlay address is IPv6 (fd31::/64, no IPv4 at all on the underlay);
// the operator registers a dual-stack endpoint with `--prefix fd00:10::/64 --prefix
// 10.60.0.0/24`; a client identity connects through `nsm connect`. VXLAN and WireGuard both
// carry `ping -6` and `ping -4`, full-size packets included, and the tunnels are seen to use the
// IPv6 underlay (the VXLAN device's remote6, the WireGuard peer's [addr]:port endpoint).
// Everything the test makes carries a per-run prefix and is removed at the end, also on failure.
// The same over an IPv4 underlay, and the kernel mechanism: ipv6.test.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from '../lib/harness.ts';
import { runId } from '../lib/nats.ts';
import { closeAndCheck, connectCli, pingBoth, type DualLab } from '../lib/dualStack.ts';
import {
  NSM_BIN,
  leftovers,
  pingIn,
  requireNetnsLab,
  sh,
  startProcess,
  sweepAbandonedRuns,
  sweepOnExit,
  sweepSync,
  underlayAddress6,
  type LabNode,
  type LabProcess,
} from '../lib/netns.ts';
import { startSecureUp, type SecureUp } from '../lib/secureUp.ts';

interface Ctx {
  run?: string;
  dir?: string;
  mesh?: SecureUp;
  lab?: DualLab;
  processes: LabProcess[];
  unguard?: () => void;
}

const s = suite<Ctx>('e2e: dual stack over an IPv6 underlay, on the default secure mesh', { processes: [] });

const stopAll = async (ctx: Ctx) => {
  // Endpoints first (they unregister), then agents, then the mesh; then whatever is left of the run.
  for (const p of [...ctx.processes].reverse()) await p.stop(3000);
  await ctx.mesh?.stop();
  if (ctx.run) sweepSync(ctx.run);
  if (ctx.dir) rmSync(ctx.dir, { recursive: true, force: true });
  ctx.unguard?.();
};

s.before(async (ctx) => {
  requireNetnsLab();
  sweepAbandonedRuns();
  const run = (ctx.run = runId());
  const dir = (ctx.dir = mkdtempSync(join(tmpdir(), `nsm-lab-${run}-`)));
  ctx.unguard = sweepOnExit({ run, stop: () => stopAll(ctx) });
  const ns = (role: string) => `${run}-${role}`;
  const addNamespace = async (role: string) => {
    await sh(['ip', 'netns', 'add', ns(role)]);
    await sh(['ip', '-n', ns(role), 'link', 'set', 'lo', 'up']);
    return ns(role);
  };
  try {
    // The underlay: a bridge, one veth per node, IPv6 addresses only.
    const ul = await addNamespace('ul');
    await sh(['ip', '-n', ul, 'link', 'add', 'br0', 'type', 'bridge']);
    await sh(['ip', '-n', ul, 'link', 'set', 'br0', 'up']);
    const nodes = new Map<string, LabNode>();
    for (const [i, name] of [[1, 'n1'], [2, 'n2']] as const) {
      const nodeNs = await addNamespace(name);
      await sh(['ip', '-n', ul, 'link', 'add', `p${i}`, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', nodeNs]);
      await sh(['ip', '-n', ul, 'link', 'set', `p${i}`, 'master', 'br0', 'up']);
      // nodad: usable at once, not after duplicate address detection.
      await sh(['ip', '-n', nodeNs, 'addr', 'add', `${underlayAddress6(i)}/64`, 'dev', 'ul0', 'nodad']);
      await sh(['ip', '-n', nodeNs, 'link', 'set', 'ul0', 'up']);
      nodes.set(name, { name, netns: nodeNs, underlay: underlayAddress6(i), stateDir: join(dir, `state-${name}`) });
    }
    await addNamespace('client');
    await addNamespace('ep');

    // nsm up's own node ("hub", simulated dataplane) holds no workload; n1 and n2 are Linux agents.
    const mesh = (ctx.mesh = await startSecureUp({ nodes: ['hub', 'n1', 'n2'], clients: ['alice'] }));
    for (const n of nodes.values()) {
      const agent = startProcess(
        `agent-${n.name}`,
        [NSM_BIN, 'agent', '--dataplane', 'linux', '--node', n.name, '--netns', n.netns, '--underlay', n.underlay, '--state-dir', n.stateDir, '--server', mesh.natsUrl],
        dir,
        { ...mesh.env(`agent:${n.name}`), NSM_LOG_LEVEL: 'info' },
      );
      ctx.processes.push(agent);
      n.agent = agent;
      await agent.waitFor(/"node agent ready"/, 30000);
    }
    const svc = await mesh.nsm('operator', ['service', 'register', 'dual']);
    assert.is(svc.code, 0, svc.stderr);
    const ep = startProcess(
      'endpoint-ep6',
      [NSM_BIN, 'endpoint', 'run', 'icmp-responder', '--name', 'ep6', '--service', 'dual', '--node', 'n2', '--netns', ns('ep'), '--prefix', 'fd00:10::/64', '--prefix', '10.60.0.0/24', '--server', mesh.natsUrl],
      dir,
      { ...mesh.env('operator'), NSM_LOG_LEVEL: 'info' },
    );
    ctx.processes.push(ep);
    await ep.waitFor(/"msg":"registered"/, 30000);
    ctx.lab = {
      nodes,
      ns,
      nsm: async (args, timeoutMs) => {
        const r = await mesh.nsm('alice', args, timeoutMs);
        return { code: r.code, stdout: r.stdout, stderr: r.stderr };
      },
      ping: (role, address, o) => pingIn(ns(role), address, o),
    };
  } catch (e) {
    await stopAll(ctx);
    throw e;
  }
});

s.after(async (ctx) => {
  await stopAll(ctx);
  if (ctx.run) assert.equal(leftovers(ctx.run), [], 'nothing of the run is left');
});

s('the nodes joined with their IPv6 underlay addresses', async (ctx) => {
  const r = await ctx.mesh!.nsm('operator', ['--json', 'ls', 'nodes']);
  assert.is(r.code, 0, r.stderr);
  const nodes = JSON.parse(r.stdout) as { name: string; underlayAddress?: string }[];
  assert.equal(nodes.filter((n) => n.name !== 'hub').map((n) => [n.name, n.underlayAddress]), [['n1', 'fd31::11'], ['n2', 'fd31::12']]);
});

s('VXLAN over IPv6: a pair per family, ping -6 and ping -4 at full MTU both ways; the device tunnels to fd31::12', async (ctx) => {
  const lab = ctx.lab!;
  const id = `${ctx.run}v6`;
  const conn = await connectCli(lab, id, 'dual', 'vxlan', 'nsm-v6');
  assert.equal(conn.mechanism, { local: 'kernel', remote: 'vxlan' });
  assert.equal(conn.context!.ipContext.srcIpAddrs, ['fd00:10::3/128', '10.60.0.3/32']);
  assert.equal(conn.context!.ipContext.dstIpAddrs, ['fd00:10::2/128', '10.60.0.2/32']);
  // VXLAN over IPv6 takes 70 bytes of the underlay's 1500 (50 over IPv4).
  assert.is(conn.context!.mtu, 1430);
  assert.equal(await pingBoth(lab, 'client', conn, { mtu: 1430 }), ['IPv6', 'IPv4']);
  await pingBoth(lab, 'ep', conn, { reverse: true });
  const devs = JSON.parse(await sh(['ip', '-n', lab.nodes.get('n1')!.netns, '-d', '-json', 'link', 'show', 'type', 'vxlan'])) as { ifname: string; linkinfo: { info_data: Record<string, unknown> } }[];
  assert.equal(devs.map((d) => [d.linkinfo.info_data.remote6, d.linkinfo.info_data.local6]), [['fd31::12', 'fd31::11']], 'one VXLAN device on n1, over the IPv6 underlay');
  await closeAndCheck(lab, id, 'nsm-v6', 'ep');
});

s('WireGuard over IPv6: ping -6 and ping -4 at full MTU both ways; the peer is [fd31::12]:port', async (ctx) => {
  const lab = ctx.lab!;
  const id = `${ctx.run}w6`;
  const conn = await connectCli(lab, id, 'dual', 'wireguard', 'nsm-w6');
  assert.equal(conn.mechanism, { local: 'kernel', remote: 'wireguard' });
  assert.is(conn.context!.mtu, 1420);
  assert.equal(await pingBoth(lab, 'client', conn, { mtu: 1420 }), ['IPv6', 'IPv4']);
  await pingBoth(lab, 'ep', conn, { reverse: true });
  const n1 = lab.nodes.get('n1')!.netns;
  const wg = JSON.parse(await sh(['ip', '-n', n1, '-json', 'link', 'show'])) as { ifname: string }[];
  const endpoints = (await Promise.all(wg.filter((l) => l.ifname.startsWith('nw')).map(async (l) => (await sh(['ip', 'netns', 'exec', n1, 'wg', 'show', l.ifname, 'endpoints'])).trim())))
    .flatMap((out) => out.split('\n').map((line) => line.split('\t')[1] ?? ''));
  assert.is(endpoints.length, 1, `one WireGuard peer on n1: ${JSON.stringify(endpoints)}`);
  assert.match(endpoints[0]!, /^\[fd31::12\]:\d+$/);
  await closeAndCheck(lab, id, 'nsm-w6', 'ep');
});

s.run();
