import * as assert from 'uvu/assert';
import { randomUUID } from 'node:crypto';
import { eventually } from './lib/eventually.ts';
import { suite } from './lib/harness.ts';
import { must, startTestMesh, type TestMesh } from './lib/mesh.ts';

const s = suite<{ mesh?: TestMesh }>('smoke: one connection end to end (simulated dataplane)', {});
s.before(async (ctx) => {
  ctx.mesh = await startTestMesh({ nodes: ['node-a'] });
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s('register, connect, establish, close', async (ctx) => {
  const c = await ctx.mesh!.client('alice');
  must(await c.send('service.register', { name: 'icmp' }), 'register service');
  must(await c.send('endpoint.register', { name: 'ep1', networkServiceNames: ['icmp'], node: 'node-a', prefix: '10.10.0.0/24' }), 'register endpoint');
  const id = randomUUID();
  must(await c.send('connection.request', { connectionId: id, networkService: 'icmp', clientNode: 'node-a' }), 'request');
  const settled = must(await c.waitForConnection(id, 10000), 'wait');
  assert.is(settled.state, 'established');
  const conn = must(await c.query<{ state: string; context: { ipContext: { srcIpAddrs: string[] } } }>('connection', { id }));
  assert.is(conn.state, 'established');
  assert.equal(conn.context.ipContext.srcIpAddrs, ['10.10.0.3/32']);
  const dp = ctx.mesh!.agents.get('node-a')!.dataplane;
  assert.is(dp.programmed.size, 2);
  must(await c.send('connection.close', { connectionId: id }), 'close');
  for (let i = 0; i < 50 && dp.programmed.size > 0; i++) await new Promise((r) => setTimeout(r, 50));
  assert.is(dp.programmed.size, 0);
  // The process manager sends the removals, then releases the pool: the agent can finish
  // removing the sides before the release is stored.
  const addrs = await eventually('addresses released', async () => {
    const a = must(await c.query<unknown[]>('addresses'));
    return a.length === 0 ? a : undefined;
  }, { describe: async () => must(await c.query<unknown[]>('addresses')) });
  assert.equal(addrs, []);
});
s.run();
