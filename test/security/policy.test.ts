// Authorization policy: the rules as pure functions, the aggregate that keeps them, the
// connection that is denied by one, and the whole thing against an authenticated mesh.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { connection, type ConnectionCommand, type ConnectionRequest } from '../../aggregates/connection/index.ts';
import { DEFAULT_POLICY, evaluatePolicy, policy, type Policy, type PolicyRule } from '../../aggregates/policy.ts';
import { given } from '../lib/gwt.ts';
import { suite } from '../lib/harness.ts';
import { must } from '../lib/mesh.ts';
import { startSecureTestMesh, type SecureMesh } from '../lib/secureMesh.ts';

const rule = (over: Partial<PolicyRule> & { name: string; action: PolicyRule['action'] }): PolicyRule => ({
  clients: [],
  clientLabels: {},
  services: [],
  requireLabels: {},
  forbidLabels: {},
  ...over,
});

const rules: Policy = {
  defaultAction: 'deny',
  rules: [
    rule({ name: 'no-mallory', action: 'deny', clients: ['mallory'] }),
    rule({ name: 'web-tier', action: 'allow', clientLabels: { tier: 'web' }, services: ['db'], requireLabels: { env: 'prod' }, forbidLabels: { debug: '*' } }),
    rule({ name: 'alice-any', action: 'allow', clients: ['alice'] }),
  ],
};

const s = suite<{ mesh?: SecureMesh }>('authorization policy', {});

s('the first rule that applies decides; none: the default', () => {
  const q = (client: string, labels: Record<string, string>, service: string) => evaluatePolicy(rules, { client, labels, service });
  assert.equal(q('mallory', { tier: 'web', env: 'prod' }, 'db'), { allowed: false, rule: 'no-mallory', reason: 'policy rule "no-mallory" denies mallory access to db' });
  assert.equal(q('bob', { tier: 'web', env: 'prod' }, 'db'), { allowed: true, rule: 'web-tier' });
  const missing = q('bob', { tier: 'web' }, 'db');
  assert.ok(!missing.allowed && missing.rule === 'web-tier' && missing.reason.includes('only with labels env=prod; missing env=prod'), JSON.stringify(missing));
  const debug = q('bob', { tier: 'web', env: 'prod', debug: 'yes' }, 'db');
  assert.ok(!debug.allowed && debug.reason.includes('forbids bob to connect to db with debug=yes'), JSON.stringify(debug));
  assert.equal(q('alice', {}, 'anything'), { allowed: true, rule: 'alice-any' });
  const none = q('bob', {}, 'db');
  assert.ok(!none.allowed && none.rule === 'default' && none.reason.includes('the default is deny'), JSON.stringify(none));
  assert.equal(evaluatePolicy(DEFAULT_POLICY, { client: 'anyone', labels: {}, service: 'x' }), { allowed: true, rule: 'default' });
});

s('the policy aggregate: set, add at a position, remove, no duplicates', () => {
  const set = { type: 'SetPolicy' as const, policy: rules };
  const scenario = given(policy).when(set).thenEvents([{ type: 'PolicySet', change: 'set', policy: rules }]);
  scenario.when(set).thenEvents([]);
  const first = rule({ name: 'first', action: 'deny', services: ['secret'] });
  const added = scenario.when({ type: 'AddPolicyRule', rule: first, position: 0 }).accepted();
  assert.equal(added.state.policy.rules.map((r) => r.name), ['first', 'no-mallory', 'web-tier', 'alice-any']);
  assert.is(added.state.version, 2);
  added.when({ type: 'AddPolicyRule', rule: first }).thenEvents([]);
  added.when({ type: 'AddPolicyRule', rule: { ...first, action: 'allow' } }).thenRejected('conflict', 'a policy rule named "first" exists');
  const removed = added.when({ type: 'RemovePolicyRule', name: 'web-tier' }).accepted();
  assert.equal(removed.state.policy.rules.map((r) => r.name), ['first', 'no-mallory', 'alice-any']);
  removed.when({ type: 'RemovePolicyRule', name: 'web-tier' }).thenRejected('not-found', 'no policy rule is named "web-tier"');
  given(policy).when({ type: 'SetPolicy', policy: { defaultAction: 'allow', rules: [first, first] } }).thenRejected('invalid', 'two policy rules are named "first"');
});

s('a denied request is recorded and terminal: ConnectionDenied with the rule', () => {
  const request: ConnectionRequest = { connectionId: 'c1', networkService: 'db', payload: 'IP', labels: { tier: 'web' }, clientNode: 'n1', clientInterface: 'nsm0', mechanismPreferences: [], requestId: 'r1' };
  const cmd: ConnectionCommand = {
    type: 'RequestConnection',
    request,
    registry: { service: { payload: 'IP', matches: [] }, endpoints: [{ name: 'ep', node: 'n1', labels: {}, load: 0 }] },
    policy: { policy: rules, client: 'bob' },
  };
  const denied = given(connection).when(cmd).thenEvents([
    { type: 'ConnectionRequested', ...request },
    { type: 'ConnectionDenied', rule: 'web-tier', reason: 'policy rule "web-tier" lets bob connect to db only with labels env=prod; missing env=prod' },
  ]);
  assert.is(denied.state.phase, 'failed');
  assert.equal(denied.state.failure, { code: 'denied', reason: 'policy rule "web-tier" lets bob connect to db only with labels env=prod; missing env=prod' });
  denied.when({ type: 'CloseConnection', connectionId: 'c1', reason: 'x' }).thenEvents([{ type: 'ConnectionClosed', reason: 'x' }]);
  // Allowed by the policy (alice without the web tier's label reaches her own rule): selection goes on as before.
  const ok = given(connection).when({ ...cmd, request: { ...request, labels: {} }, policy: { policy: rules, client: 'alice' } }).events();
  assert.equal(ok.map((e) => e.type), ['ConnectionRequested', 'EndpointSelected']);
});

s('against an authenticated mesh: operators set the policy, clients are held to it', async (ctx) => {
  const mesh = (ctx.mesh = await startSecureTestMesh({ domain: 'pol', nodes: ['n1'], clients: ['alice', 'bob'] }));
  const op = await mesh.client('operator');
  must(await op.send('service.register', { name: 'db' }));
  must(await op.send('service.register', { name: 'web' }));
  must(await op.send('endpoint.register', { name: 'ep-db', node: 'n1', networkServiceNames: ['db', 'web'], prefix: '10.70.0.0/24' }));
  // No policy yet: everything is allowed, and the query says why.
  const initial = must(await op.query<{ version: number; policy: Policy }>('policy'));
  assert.equal(initial, { version: 0, policy: DEFAULT_POLICY });
  must(await op.send('policy.set', { policy: { defaultAction: 'deny', rules: [rule({ name: 'web-for-all', action: 'allow', services: ['web'] }), rule({ name: 'db-for-alice', action: 'allow', clients: ['alice'], services: ['db'], requireLabels: { app: 'billing' } })] } }));
  must(await op.send('policy.add', { rule: rule({ name: 'block-bob-db', action: 'deny', clients: ['bob'], services: ['db'] }), position: 0 }));

  const alice = await mesh.client('alice');
  const bob = await mesh.client('bob');
  const connect = async (c: typeof alice, id: string, service: string, labels: Record<string, string> = {}) => {
    must(await c.send('connection.request', { connectionId: id, networkService: service, clientNode: 'n1', labels }));
    return must(await c.waitForConnection(id, 15000));
  };
  assert.equal(await connect(alice, 'a-db', 'db', { app: 'billing' }), { state: 'established' });
  const noLabel = await connect(alice, 'a-db-nolabel', 'db');
  assert.is(noLabel.state, 'failed');
  assert.match(noLabel.reason!, /policy rule "db-for-alice" lets alice connect to db only with labels app=billing/);
  const bobDb = await connect(bob, 'b-db', 'db', { app: 'billing' });
  assert.equal(bobDb, { state: 'failed', reason: 'policy rule "block-bob-db" denies bob access to db' });
  assert.equal(await connect(bob, 'b-web', 'web'), { state: 'established' });

  // The denial is an event in the history, with the rule that denied it.
  const history = must(await bob.query<{ event: { type: string; actor: string; data: { rule?: string } } }[]>('history', { id: 'b-db' }));
  assert.equal(history.map((h) => h.event.type), ['ConnectionRequested', 'ConnectionDenied']);
  assert.equal(history[1]!.event.data.rule, 'block-bob-db');
  assert.is(history[1]!.event.actor, 'bob');
  const failed = must(await op.query<{ id: string; failure?: { code: string } }[]>('connections', { state: 'failed' }));
  assert.equal(failed.filter((r) => r.failure?.code === 'denied').map((r) => r.id).sort(), ['a-db-nolabel', 'b-db']);
  // The policy's own history: who changed it, and how.
  const changes = must(await op.query<{ event: { type: string; actor: string; data: { change: string } } }[]>('history', { id: 'mesh' }));
  assert.equal(changes.map((h) => [h.event.data.change, h.event.actor]), [['set', 'operator'], ['add', 'operator']]);
  // Clients may not read or change the policy: the server refuses the subject.
  const peek = await alice.query('policy');
  assert.ok(E.isLeft(peek) && /Permissions Violation for Publish to "nsm\.pol\.query\.alice\.policy"/.test(peek.left.message), JSON.stringify(peek));
  const change = await alice.send('policy.remove', { name: 'block-bob-db' });
  assert.ok(E.isLeft(change) && /Permissions Violation for Publish to "nsm\.pol\.cmd\.policy\.remove\.alice"/.test(change.left.message), JSON.stringify(change));
});

s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s.run();
