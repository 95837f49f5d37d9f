// streamOf (used to queue a command before it is built) names the same stream as route does.
// The sample bodies go through the real decoder, as a command off the wire does: a sample that
// does not decode fails the test (it would be testing a command nobody can send).
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { COMMAND_KINDS, decodeCommand } from '../../src/contracts/commands.ts';
import { route, streamOf } from '../../src/command/routes.ts';
import { emptyMesh } from '../../projections/mesh.ts';
import { suite } from '../lib/harness.ts';

const bodies: Record<string, unknown> = {
  'service.register': { name: 's1' },
  'service.unregister': { name: 's1' },
  'endpoint.register': { name: 'e1', networkServiceNames: ['s1'], node: 'n1' },
  'endpoint.unregister': { name: 'e1' },
  'node.join': { name: 'n1', mechanisms: ['kernel'], dataplane: 'simulated' },
  'node.leave': { name: 'n1' },
  'connection.request': { connectionId: 'c1', networkService: 's1', clientNode: 'n1' },
  'connection.refresh': { connectionId: 'c1', expirationSeconds: 60 },
  'connection.close': { connectionId: 'c1' },
  'connection.report': { connectionId: 'c1', node: 'n1', side: 'client', generation: 1, result: 'programmed' },
  'policy.set': { policy: { defaultAction: 'allow', rules: [] } },
  'policy.add': { rule: { name: 'r', action: 'allow' } },
  'policy.remove': { name: 'r' },
  'interdomain.request': { connectionId: 'c1', networkService: 's1', clientInterface: 'nsm0', client: { name: 'n1', mechanisms: ['kernel', 'vxlan'], mtu: 1500 } },
  'interdomain.state': { connectionId: 'c1', generation: 1, phase: 'waiting', endpointProgrammed: false },
  'interdomain.report': { connectionId: 'c1', node: 'n1', generation: 1, result: 'programmed' },
  'interdomain.close': { connectionId: 'c1' },
  'interdomain.redirect': { connectionId: 'c1', domain: 'b', endpoint: 'e1' },
  'interdomain.endpoint': { op: 'unregister', name: 'e1' },
  'workflow.retry': { position: '42' },
  'limits.set': { role: 'client', limits: { pending: 10 } },
};

const s = suite('command routing');
s('every sample body decodes as its command kind', () => {
  const problems = COMMAND_KINDS.flatMap((kind) => {
    if (!bodies[kind]) return [`${kind}: no sample body`];
    const decoded = decodeCommand(kind, kind.startsWith('interdomain.') ? 'peer:b' : 'a', { id: 'x', body: bodies[kind] });
    return E.isLeft(decoded) ? [`${kind}: ${decoded.left.path}: ${decoded.left.message}`] : [];
  });
  assert.equal(problems, []);
});
s('every command kind: streamOf agrees with route', () => {
  for (const kind of COMMAND_KINDS) {
    assert.ok(bodies[kind], `a sample body for ${kind}`);
    const decoded = decodeCommand(kind, kind.startsWith('interdomain.') ? 'peer:b' : 'a', { id: 'x', body: bodies[kind] });
    if (E.isLeft(decoded)) return assert.unreachable(`the sample body of ${kind} does not decode: ${decoded.left.path}: ${decoded.left.message}`);
    const msg = decoded.right;
    assert.is(streamOf(msg), route(msg, emptyMesh, new Date(0)).stream, kind);
  }
});
s.run();
