import * as E from '/work/wt/dataplane/node_modules/fp-ts/lib/Either.js';
import { createLinuxDataplane } from '/work/wt/dataplane/node-agent/linux/linuxDataplane.ts';
import { createLogger } from '/work/wt/dataplane/infra/log.ts';
import { sh } from '/work/wt/dataplane/test/lib/netns.ts';
for (const n of ['zzb-n', 'zzb-w', 'zzb-e']) { await sh(['ip', 'netns', 'add', n]); }
try {
const dp = await createLinuxDataplane({ domain: 'x', nodeNetns: { kind: 'named', name: 'zzb-n' }, stateDir: '/tmp/zzb-state', log: createLogger('t') });
if (E.isLeft(dp)) throw new Error(dp.left);
const base = { connectionId: 'abc123', generation: 1, node: 'n', desired: 'present' as const, networkService: 's', payload: 'IP' as const, mechanism: { local: 'kernel' as const }, mtu: 1500 };
for (let i = 0; i < 3; i++) {
let t = performance.now();
const r1 = await dp.right.program({ ...base, side: 'client', interfaceName: 'nsm0', netns: 'zzb-w', addresses: ['10.1.0.3/32'], routes: ['10.1.0.2/32'] })();
const t1 = performance.now() - t; t = performance.now();
const r2 = await dp.right.program({ ...base, side: 'endpoint', interfaceName: 'nse0', netns: 'zzb-e', addresses: ['10.1.0.2/32'], routes: ['10.1.0.3/32'] })();
const t2 = performance.now() - t;
console.log(E.isLeft(r1) ? r1.left : 'ok', E.isLeft(r2) ? r2.left : 'ok', t1.toFixed(1), t2.toFixed(1));
}
let t = performance.now();
await dp.right.remove({ connectionId: 'abc123', side: 'client', generation: 1 })();
await dp.right.remove({ connectionId: 'abc123', side: 'endpoint', generation: 1 })();
console.log('remove', (performance.now() - t).toFixed(1));
t = performance.now();
for (let i = 0; i < 20; i++) await sh(['ip', '-n', 'zzb-n', '-json', '-d', 'link', 'show']);
console.log('ip link show x20', (performance.now() - t).toFixed(1));
t = performance.now();
for (let i = 0; i < 20; i++) await sh(['nsenter', '--net=/run/netns/zzb-n', 'sysctl', '-q', '-w', 'net.ipv4.conf.lo.forwarding=1']);
console.log('nsenter sysctl x20', (performance.now() - t).toFixed(1));
} finally {
for (const n of ['zzb-n', 'zzb-w', 'zzb-e']) await sh(['ip', 'netns', 'del', n]);
}
