// `npm run demo`: a guided tour of the mesh on this host, with the real Linux dataplane.
//
// Creates namespaces for two nodes (joined by an underlay bridge), a client and an endpoint;
// runs a private nats-server, the control plane and one agent per node; connects the client
// to an icmp-responder endpoint on the other node, pings across, shows `nsm ls connections`
// and `nsm history`, closes the connection and removes everything, also on Ctrl-C.
//
//   sudo npm run demo [-- --mechanism wireguard|vxlan]
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import { exitWhenFlushed } from '../infra/stdio.ts';
import { addressOf, inNs, leftovers, startLab, type ConnectionView, type Exec, type Lab } from '../test/lib/netns.ts';

const { values: args } = parseArgs({ options: { mechanism: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
const out = (s = '') => process.stdout.write(s + '\n');
const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (process.stdout.isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const indent = (s: string) => s.trimEnd().split('\n').map((l) => `    ${l}`).join('\n');
const step = (n: number, title: string) => out(`\n${bold(`${n}. ${title}`)}`);
const shows = (cmd: string, r: Exec) => {
  out(dim(`  $ ${cmd}`));
  if (r.stdout.trim()) out(indent(r.stdout));
  if (r.code !== 0 && r.stderr.trim()) out(indent(r.stderr));
};

if (args.help) {
  out('usage: sudo npm run demo [-- --mechanism wireguard|vxlan]');
  await exitWhenFlushed(0);
}
const mechanism = args.mechanism ?? 'wireguard';
if (mechanism !== 'wireguard' && mechanism !== 'vxlan') {
  process.stderr.write(`--mechanism ${JSON.stringify(mechanism)}: expected wireguard or vxlan (the demo joins two nodes)\n`);
  await exitWhenFlushed(2);
}
if (typeof process.getuid === 'function' && process.getuid() !== 0) {
  process.stderr.write(
    'npm run demo needs root: it creates network namespaces, veth pairs, a bridge and VXLAN/WireGuard\n' +
      'interfaces on this host (all removed at the end). Run it as root, e.g.: sudo npm run demo\n',
  );
  await exitWhenFlushed(1);
}
// nats-server is not checked here: as root, the lab's server start installs it when missing (infra/natsServer.ts).
for (const [tool, pkg] of [['ip', 'iproute2'], ['wg', 'wireguard-tools'], ['ping', 'iputils-ping']] as const) {
  if (spawnSync(tool, tool === 'ip' ? ['-V'] : ['--version'], { stdio: 'ignore' }).error) {
    process.stderr.write(`npm run demo needs ${tool}: apt-get install --no-install-recommends ${pkg}\n`);
    await exitWhenFlushed(1);
  }
}

const fail = (what: string, r?: Exec): never => {
  throw new Error(`${what}${r ? `: ${(r.stderr || r.stdout).trim()}` : ''}`);
};

const demo = async (lab: Lab) => {
  const node = (n: string) => lab.nodes.get(n)!;
  out(dim(`  node-a: namespace ${node('node-a').netns}, underlay ${node('node-a').underlay}`));
  out(dim(`  node-b: namespace ${node('node-b').netns}, underlay ${node('node-b').underlay}`));
  out(dim(`  nats-server ${lab.nats.url} (private, removed at the end); control plane in this process`));

  step(2, 'One agent per node programs that node: `nsm agent --dataplane linux --netns <node namespace> ...`');
  for (const n of ['node-a', 'node-b']) {
    await lab.startAgent(n);
    const ready = node(n).agent!.output().split('\n').find((l) => l.includes('"linux dataplane ready"'));
    const facts = ready ? (JSON.parse(ready) as { mechanisms: string[]; wireguard?: string; underlay: string; mtu: number }) : undefined;
    out(`  ${n}: agent running (pid ${node(n).agent!.child.pid}); mechanisms ${facts?.mechanisms.join(', ')}; WireGuard ${facts?.wireguard ?? 'none'}; underlay MTU ${facts?.mtu}`);
  }
  out(dim('  Each node made its own WireGuard key; only the public key went to the control plane.'));

  const nsm = async (argv: string[], show = `nsm ${argv.join(' ')}`) => {
    const r = await lab.nsm(argv);
    shows(show, r);
    return r;
  };

  step(3, 'Register a network service and run an endpoint for it on node-b');
  if ((await nsm(['service', 'register', 'icmp'])).code !== 0) fail('service register');
  const epNs = lab.ns('endpoint');
  out(dim(`  $ nsm endpoint run icmp-responder --name responder --service icmp --node node-b --netns ${epNs} --prefix 10.200.0.0/24 &`));
  await lab.startEndpoint({ name: 'responder', service: 'icmp', node: 'node-b', role: 'endpoint', prefix: '10.200.0.0/24' });
  out('    endpoint responder registered; the kernel in its namespace will answer ping on each connection\'s address');

  step(4, `Connect a workload on node-a to the service, over ${mechanism}`);
  const clientNs = await lab.addNamespace('client');
  out(dim(`  (the workload is the namespace ${clientNs})`));
  const id = lab.connectionId('demo');
  const r = await nsm(['connect', 'icmp', '--node', 'node-a', '--netns', clientNs, '--interface', 'nsm-1', '--mechanism', mechanism, '--id', id, '--wait']);
  if (r.code !== 0) fail('nsm connect', r);
  const view = JSON.parse((await lab.nsm(['--json', 'ls', 'connections'])).stdout) as ConnectionView[];
  const conn = view.find((c) => c.id === id) ?? fail('the connection is not listed');
  const target = addressOf(conn.context!.ipContext.dstIpAddrs[0]!);
  shows(`ip -n ${clientNs} -brief address show nsm-1`, await execShow(['ip', '-n', clientNs, '-brief', 'address', 'show', 'nsm-1']));
  shows(`ip -n ${clientNs} route`, await execShow(['ip', '-n', clientNs, 'route']));

  step(5, 'Ping the endpoint through the connection');
  const ping = await execShow(inNs(clientNs, ['ping', '-c', '3', '-i', '0.3', target]));
  shows(`ip netns exec ${clientNs} ping -c 3 ${target}`, ping);
  if (ping.code !== 0) fail('ping', ping);

  step(6, 'What the mesh knows');
  await nsm(['ls', 'connections']);
  await nsm(['ls', 'nodes']);
  await nsm(['history', id]);

  step(7, 'Close the connection: interfaces, routes and tunnels go away');
  if ((await nsm(['close', id])).code !== 0) fail('nsm close');
  for (let i = 0; i < 50; i++) {
    const links = await execShow(['ip', '-n', clientNs, '-brief', 'link']);
    if (!links.stdout.includes('nsm-1')) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  shows(`ip -n ${clientNs} -brief link`, await execShow(['ip', '-n', clientNs, '-brief', 'link']));
};

const execShow = (argv: string[]): Promise<Exec> =>
  new Promise((res) => {
    const p = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
    res({ code: p.status, stdout: p.stdout ?? '', stderr: p.stderr ?? '' });
  });

const main = async () => {
  out(bold('Network Service Mesh demo: two nodes, a client and an icmp-responder endpoint on this host'));
  out('Everything is created in network namespaces with a per-run prefix and removed at the end (also on Ctrl-C).');
  step(1, 'Namespaces for two nodes, joined by an underlay bridge; a private NATS and the control plane');
  process.env.NSM_LOG_LEVEL ??= 'warn';
  // The lab itself removes everything on SIGINT/SIGTERM and exits; say so.
  for (const sig of ['SIGINT', 'SIGTERM'] as const) process.once(sig, () => out(`\n${bold('Interrupted')}: removing everything the demo created...`));
  const lab = await startLab({ nodes: ['node-a', 'node-b'], domain: 'demo', agents: false });
  let ok = false;
  try {
    await demo(lab);
    ok = true;
  } finally {
    step(8, 'Clean up');
    const run = lab.run;
    await lab.stop();
    const left = leftovers(run);
    out(left.length === 0 ? `  removed every namespace, interface, process and socket of run ${run}` : `  left over: ${left.join(', ')}`);
  }
  out(ok ? `\n${bold('Done.')} Next: docs/dataplane.md, or run a mesh yourself with "sudo nsm up --dataplane linux".` : '');
};

// Flushed before exit: `sudo npm run demo | tee demo.log` would otherwise lose all but 64 KiB.
main().then(
  () => exitWhenFlushed(0),
  (e) => {
    process.stderr.write(`\ndemo failed: ${(e as Error).message}\n`);
    return exitWhenFlushed(1);
  },
);
