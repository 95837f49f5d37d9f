// The connection workflow's decisions (src/workflows/connection.ts), given/when/then: given a
// connection's state and the mesh, when one of its events is handled, then these steps, with
// their continuations walked against a made-up world (test/lib/workflowTrace.ts).
import * as assert from 'uvu/assert';
import type { ConnectionEvent } from '../../aggregates/connection/index.ts';
import { reactToConnection } from '../../src/workflows/connection.ts';
import { suite } from '../lib/harness.ts';
import { contextOf, envelope, modelWith, planned, poolWith, request, selected, stateOf, tunnelsWith } from '../lib/workflowFixtures.ts';
import { commandOf, trace, type World } from '../lib/workflowTrace.ts';

const s = suite('workflow: connection');

const when = (id: string, history: readonly ConnectionEvent[], event: ConnectionEvent, ctxOver: Parameters<typeof contextOf>[1] = {}, model = modelWith({ [id]: history })) => {
  const all = [...history];
  const state = stateOf(all);
  return { steps: reactToConnection(envelope(`connection.${id}`, event), state, contextOf(model, ctxOver)), model };
};

const allocated = poolWith('10.60.0.0/24', { c1: { src: '10.60.0.5/32', dst: '10.60.0.4/32' } });
const tunnels = tunnelsWith({ c1: 3 });
/** A world where allocations work and the plan leaves the connection planned. */
const happy: World = {
  decide: (stream) => (stream.startsWith('pool.') ? allocated : stream.startsWith('tunnel.') ? tunnels : { phase: 'path-planned' }),
};

s('an endpoint selected across nodes: addresses, then a tunnel id, then the plan with both and the nodes\' facts', () => {
  const { steps } = when('c1', [request('c1'), selected()], selected());
  assert.equal(trace(steps, happy), [
    'execute pool.ep-1 AllocateAddresses (allocate)',
    '  execute tunnel.ids AllocateTunnel (allocate-tunnel)',
    '    execute connection.c1 PlanPath (plan)',
  ]);
  const alloc = commandOf(steps, 'AllocateAddresses', happy)!;
  // The endpoint's own exclusions plus what both nodes route.
  assert.equal(alloc.excludedPrefixes, ['10.60.0.0/30', '172.16.0.0/24', '172.16.1.0/24']);
  const plan = commandOf(steps, 'PlanPath', happy)!;
  assert.equal(plan.allocation, { pairs: [{ prefix: '10.60.0.0/24', src: '10.60.0.5/32', dst: '10.60.0.4/32' }], excludedPrefixes: ['10.60.0.0/30', '172.16.0.0/24', '172.16.1.0/24'] });
  assert.equal(plan.tunnel, { id: 3, vni: 10003, vxlanPort: 4789, wireguardPort: 40003 });
  assert.equal([plan.endpointNetns, plan.clientNodeFacts, plan.endpointNodeFacts], ['ep-ns', { mechanisms: ['kernel', 'vxlan', 'wireguard'], mtu: 1500, underlayAddress: '172.16.0.1' }, { mechanisms: ['kernel', 'vxlan', 'wireguard'], mtu: 1500, underlayAddress: '172.16.1.1' }]);
});

s("the plan offers the endpoint's DNS, then the service's", () => {
  const base = modelWith({ c1: [request('c1'), selected()] });
  const reg = base.registry;
  const model = {
    ...base,
    registry: {
      ...reg,
      services: { ...reg.services, web: { ...reg.services.web!, dns: { servers: ['endpoint'], searchDomains: ['cluster.test'] } } },
      endpoints: { ...reg.endpoints, 'ep-1': { ...reg.endpoints['ep-1']!, dns: { servers: ['10.60.0.53'], searchDomains: ['svc.test'] } } },
    },
  };
  const { steps } = when('c1', [request('c1'), selected()], selected(), {}, model);
  assert.equal(commandOf(steps, 'PlanPath', happy)!.dns, [
    { servers: ['10.60.0.53'], searchDomains: ['svc.test'] },
    { servers: ['endpoint'], searchDomains: ['cluster.test'] },
  ]);
  // Neither offers any: no dns on the plan.
  assert.is('dns' in commandOf(when('c1', [request('c1'), selected()], selected()).steps, 'PlanPath', happy)!, false);
});

s('on one node there is no tunnel id; with a signer the plan carries signed segments; a tunnel range is asked for', () => {
  const { steps } = when('c1', [request('c1'), selected('ep-2', 'n1')], selected('ep-2', 'n1'), {
    planSegments: ({ endpoint, src, dst }) => [{ name: 'signed', id: `${endpoint.name}:${src}->${dst}` }],
  });
  const world: World = { decide: (stream) => (stream.startsWith('pool.') ? poolWith('10.70.0.0/24', { c1: { src: '10.70.0.3/32', dst: '10.70.0.2/32' } }) : { phase: 'path-planned' }) };
  assert.equal(trace(steps, world), ['execute pool.ep-2 AllocateAddresses (allocate)', '  execute connection.c1 PlanPath (plan)']);
  assert.equal(commandOf(steps, 'PlanPath', world)!.pathSegments, [{ name: 'signed', id: 'ep-2:10.70.0.3/32->10.70.0.2/32' }]);
  const ranged = when('c1', [request('c1'), selected()], selected(), { tunnelIds: { from: 1000, to: 1999 } }).steps;
  assert.equal(commandOf(ranged, 'AllocateTunnel', happy)!.range, { from: 1000, to: 1999 });
});

s('no addresses left, or no tunnel id: the connection fails with the reason', () => {
  const { steps } = when('c1', [request('c1'), selected()], selected());
  const exhausted: World = { decide: (stream) => (stream.startsWith('pool.') ? { rejected: { code: 'pool-exhausted', message: 'pool ep-1 is exhausted' } } : {}) };
  assert.equal(trace(steps, exhausted), ['execute pool.ep-1 AllocateAddresses (allocate)', '  rejected: pool ep-1 is exhausted', '  execute connection.c1 FailConnection (fail)']);
  assert.equal(commandOf(steps, 'FailConnection', exhausted), { type: 'FailConnection', connectionId: 'c1', code: 'address', reason: 'pool ep-1 is exhausted' });
  const noTunnel: World = { decide: (stream) => (stream.startsWith('pool.') ? allocated : stream.startsWith('tunnel.') ? { rejected: { code: 'pool-exhausted', message: 'no tunnel id left' } } : {}) };
  assert.equal(trace(steps, noTunnel).slice(-2), ['    rejected: no tunnel id left', '    execute connection.c1 FailConnection (fail)']);
});

s('closed while the addresses were allocated: the plan step gives them back', () => {
  const { steps } = when('c1', [request('c1'), selected()], selected());
  const closedMeanwhile: World = {
    decide: (stream) => (stream.startsWith('pool.') ? allocated : stream.startsWith('tunnel.') ? tunnels : stateOf([request('c1'), selected(), { type: 'ConnectionClosed', reason: 'client closed' }])),
    load: (stream) => (stream.startsWith('pool.') ? allocated : tunnels),
  };
  assert.equal(trace(steps, closedMeanwhile).slice(2), [
    '    execute connection.c1 PlanPath (plan)',
    '      load pool.ep-1',
    '        execute pool.ep-1 ReleaseAddresses (release)',
    '      load tunnel.ids',
    '        execute tunnel.ids ReleaseTunnel (release-tunnel)',
  ]);
});

s('the endpoint went away before the plan: the connection chooses again without it, set up or healing', () => {
  const gone = modelWith({ c1: [request('c1'), selected()] });
  const withoutEp1 = { ...gone, registry: { ...gone.registry, endpoints: { 'ep-2': gone.registry.endpoints['ep-2']! } } };
  const fresh = when('c1', [request('c1'), selected()], selected(), {}, withoutEp1).steps;
  assert.equal(trace(fresh, { model: withoutEp1 }), ['execute connection.c1 HealConnection (heal-c1) selection']);
  const reselect = commandOf(fresh, 'HealConnection', { model: withoutEp1 })!;
  assert.equal([reselect.cause, reselect.exclude], ['endpoint-unregistered', ['ep-1']]);
  const healingHistory: ConnectionEvent[] = [request('c1'), selected(), planned('c1'), { type: 'ConnectionHealing', cause: 'endpoint-expired', causeId: 'x', oldEndpoint: 'ep-1', inPlace: false, startedAt: '2030-01-01T00:00:00.000Z' }, selected('ep-1', 'n2')];
  const again = when('c1', healingHistory, selected('ep-1', 'n2'), {}, { ...withoutEp1, connections: modelWith({ c1: healingHistory }).connections }).steps;
  assert.equal(trace(again, { model: withoutEp1 }), ['execute connection.c1 HealConnection (heal-c1) selection']);
  assert.equal(commandOf(again, 'HealConnection', { model: withoutEp1 })!.exclude, ['ep-1']);
});

s('a plan: both sides commanded present at once; an old generation\'s plan: nothing', () => {
  const history = [request('c1'), selected(), planned('c1')];
  assert.equal(trace(when('c1', history, planned('c1')).steps), ['together (at most 2)', '  node-command n1 client present gen 1', '  node-command n2 endpoint present gen 1']);
  assert.equal(trace(when('c1', [...history, planned('c1', 2)], planned('c1')).steps), []);
});

s('closed or failed: both sides removed, addresses and tunnel id given back', () => {
  const history: ConnectionEvent[] = [request('c1'), selected(), planned('c1'), { type: 'ConnectionClosed', reason: 'done' }];
  assert.equal(trace(when('c1', history, { type: 'ConnectionClosed', reason: 'done' }).steps, { load: (st) => (st.startsWith('pool.') ? allocated : tunnels) }), [
    'together (at most 2)',
    '  node-command n1 client absent gen 1',
    '  node-command n2 endpoint absent gen 1',
    'load pool.ep-1',
    '  execute pool.ep-1 ReleaseAddresses (release)',
    'load tunnel.ids',
    '  execute tunnel.ids ReleaseTunnel (release-tunnel)',
  ]);
  // Nothing allocated, nothing released.
  assert.equal(trace(when('c1', history, { type: 'ConnectionClosed', reason: 'done' }).steps, { load: (st) => (st.startsWith('pool.') ? poolWith('10.60.0.0/24', {}) : tunnelsWith({})) }).filter((l) => l.includes('Release')), []);
});

s('a broken datapath heals in place; a failed side while healing, or the endpoint\'s side, heals elsewhere; stale generations are ignored', () => {
  const established: ConnectionEvent[] = [request('c1'), selected(), planned('c1'), { type: 'ConnectionEstablished', generation: 1 }];
  const down: ConnectionEvent = { type: 'DatapathDown', generation: 1, node: 'n1', side: 'client', error: 'no reply' };
  const m = modelWith({ c1: established });
  const steps = when('c1', established, down, {}, m).steps;
  assert.equal(trace(steps, { model: m }), ['execute connection.c1 HealConnection (heal-c1) selection']);
  assert.equal(commandOf(steps, 'HealConnection', { model: m })!.cause, 'datapath');
  assert.equal(trace(when('c1', established, { ...down, generation: 0 } as ConnectionEvent, {}, m).steps), []);
  const healing: ConnectionEvent[] = [...established, { type: 'ConnectionHealing', cause: 'datapath', causeId: 'x', oldEndpoint: 'ep-1', inPlace: true, startedAt: '2030-01-01T00:00:00.000Z' }];
  const failed: ConnectionEvent = { type: 'DataplaneFailed', generation: 1, node: 'n2', side: 'endpoint', error: 'boom' };
  assert.equal(commandOf(when('c1', healing, failed).steps, 'HealConnection', { model: m })!.cause, 'dataplane');
  // Not healing: the endpoint's side failing moves the connection elsewhere; the client's side failing failed it already.
  assert.equal(commandOf(when('c1', established, failed).steps, 'HealConnection', { model: m })!.cause, 'dataplane');
  const clientFailed: ConnectionEvent = { type: 'DataplaneFailed', generation: 1, node: 'n1', side: 'client', error: 'boom' };
  const failedHistory: ConnectionEvent[] = [...established, clientFailed, { type: 'ConnectionFailed', code: 'dataplane', reason: 'dataplane on node n1 (client side): boom' }];
  assert.equal(trace(when('c1', failedHistory, clientFailed).steps), [], 'the aggregate failed it already');
});

s('a heal that moves the endpoint retires the old endpoint side, gives its addresses back, then plans anew', () => {
  const old = stateOf([request('c1'), selected(), planned('c1')]);
  const moved = selected('ep-2', 'n1', { replaces: { generation: 1, endpoint: { name: 'ep-1', node: 'n2' }, plan: old.plan, sides: ['endpoint'] } });
  const history: ConnectionEvent[] = [request('c1'), selected(), planned('c1'), moved];
  const world: World = { ...happy, load: () => allocated };
  assert.equal(trace(when('c1', history, moved).steps, world), [
    'node-command n2 endpoint absent gen 1',
    'load pool.ep-1',
    '  execute pool.ep-1 ReleaseAddresses (release-old)',
    'execute pool.ep-2 AllocateAddresses (allocate)',
    '  execute connection.c1 PlanPath (plan)',
  ]);
  const waiting: ConnectionEvent = { type: 'ConnectionWaiting', reason: 'no endpoint', since: '2030-01-01T00:00:00.000Z', replaces: { generation: 1, endpoint: { name: 'ep-1', node: 'n2' }, plan: old.plan!, sides: ['client', 'endpoint'] } };
  assert.equal(trace(when('c1', [request('c1'), selected(), planned('c1'), waiting], waiting).steps, world), [
    'together (at most 2)',
    '  node-command n1 client absent gen 1',
    '  node-command n2 endpoint absent gen 1',
    'load pool.ep-1',
    '  execute pool.ep-1 ReleaseAddresses (release-old)',
  ]);
});

s('client side across domains: ask the other domain, report the client side, close both halves; not federated: fail', () => {
  const asked = request('x1', { domain: 'b' });
  assert.equal(trace(when('x1', [asked], asked, { federated: true }).steps), ['federate request']);
  const alone = when('x1', [asked], asked).steps;
  assert.equal(commandOf(alone, 'FailConnection')!.reason, 'domain a is not federated: it cannot reach another domain (docs/federation.md)');
  const mirrored = [asked, selected('ep@b', 'nb@b'), planned('x1', 1, { remote: {} })];
  const programmed: ConnectionEvent = { type: 'DataplaneProgrammed', generation: 1, node: 'n1', side: 'client' };
  assert.equal(trace(when('x1', [...mirrored, programmed], programmed, { federated: true }).steps), ['federate report programmed']);
  const closed: ConnectionEvent = { type: 'ConnectionClosed', reason: 'bye' };
  assert.equal(trace(when('x1', [...mirrored, closed], closed, { federated: true }).steps), ['node-command n1 client absent gen 1', 'federate close']);
  // Closed by the other domain: it knows already.
  const closedThere: ConnectionEvent = { type: 'ConnectionClosed', reason: 'closed in domain b', by: 'b' };
  assert.equal(trace(when('x1', [...mirrored, closedThere], closedThere, { federated: true }).steps), ['node-command n1 client absent gen 1']);
});

s('endpoint side across domains: planned here like a local one, and the client\'s domain hears each step', () => {
  const remoteClient = { domain: 'b', name: 'nb1@b', mechanisms: ['kernel', 'vxlan'], mtu: 1400, publicKeys: {}, address: '172.20.0.1' };
  const asked = request('r1', { clientNode: 'nb1@b', remoteClient });
  const history = [asked, selected(), planned('r1')];
  assert.equal(trace(when('r1', history, planned('r1'), { federated: true }).steps), ['node-command n2 endpoint present gen 1', 'federate state']);
  const limited: ConnectionEvent = { type: 'ConnectionLimited', limit: 'pending', max: 1, current: 1, reason: 'peer:b has 1 connections being set up' };
  assert.equal(trace(when('r1', [asked, limited], limited, { federated: true }).steps), ['federate state']);
  // The plan uses what the other domain said of its node.
  const plan = commandOf(when('r1', [asked, selected()], selected(), { federated: true }).steps, 'PlanPath', { decide: (st) => (st.startsWith('pool.') ? poolWith('10.60.0.0/24', { r1: { src: '10.60.0.5/32', dst: '10.60.0.4/32' } }) : tunnelsWith({ r1: 3 })) });
  assert.equal(plan!.clientNodeFacts, { mechanisms: ['kernel', 'vxlan'], mtu: 1400, underlayAddress: '172.20.0.1' });
});

s.run();
