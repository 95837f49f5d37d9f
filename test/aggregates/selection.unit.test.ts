import * as assert from 'uvu/assert';
import type { Labels, Match } from '../../aggregates/domain.ts';
import { matchEndpoints, selectEndpoint, type Candidate } from '../../aggregates/selection.ts';
import { suite } from '../lib/harness.ts';

const ep = (name: string, labels: Labels, node = 'node-b', load = 0): Candidate => ({ name, node, labels, load });
const gold = ep('nse-gold', { tier: 'gold', region: 'eu' });
const silver = ep('nse-silver', { tier: 'silver', region: 'eu' });
const us = ep('nse-us', { tier: 'gold', region: 'us' });
const all = [gold, silver, us];
const names = (cs: readonly Candidate[]) => cs.map((c) => c.name);
const match = (sourceSelector: Labels, selectors: Labels[], fallthrough = false): Match => ({
  sourceSelector,
  routes: selectors.map((destinationSelector) => ({ destinationSelector })),
  fallthrough,
});

const m = suite('selection: matchEndpoints (original NSM semantics)');

m('no matches: every endpoint', () => {
  assert.equal(names(matchEndpoints([], { app: 'web' }, all)), ['nse-gold', 'nse-silver', 'nse-us']);
});

m('the first match whose source selector is a subset of the client labels decides', () => {
  const matches = [match({ app: 'web' }, [{ tier: 'silver' }]), match({}, [{ tier: 'gold' }])];
  assert.equal(names(matchEndpoints(matches, { app: 'web', team: 'a' }, all)), ['nse-silver']);
  // a client without app=web skips the first match and lands on the catch-all
  assert.equal(names(matchEndpoints(matches, { app: 'db' }, all)), ['nse-gold', 'nse-us']);
});

m('matches are tried in order: an earlier applicable match wins over a more specific later one', () => {
  const matches = [match({}, [{ region: 'us' }]), match({ app: 'web' }, [{ tier: 'silver' }])];
  assert.equal(names(matchEndpoints(matches, { app: 'web' }, all)), ['nse-us']);
});

m('a source selector needs every key: a partial overlap does not apply', () => {
  const matches = [match({ app: 'web', env: 'prod' }, [{ tier: 'silver' }])];
  assert.equal(names(matchEndpoints(matches, { app: 'web', env: 'dev' }, all)), ['nse-gold', 'nse-silver', 'nse-us']);
});

m('destination selectors are matched against each endpoint\'s labels; several routes union', () => {
  const matches = [match({}, [{ tier: 'gold', region: 'us' }, { tier: 'silver' }])];
  assert.equal(names(matchEndpoints(matches, {}, all)), ['nse-silver', 'nse-us']);
});

m('a match that yields nothing falls through when it says so', () => {
  const matches = [match({ app: 'web' }, [{ tier: 'platinum' }], true), match({ app: 'web' }, [{ region: 'eu' }])];
  assert.equal(names(matchEndpoints(matches, { app: 'web' }, all)), ['nse-gold', 'nse-silver']);
});

m('a match that yields nothing without fallthrough leaves no endpoint', () => {
  const matches = [match({ app: 'web' }, [{ tier: 'platinum' }], false), match({}, [{ region: 'eu' }])];
  assert.equal(matchEndpoints(matches, { app: 'web' }, all), []);
});

m('a match with no routes and no fallthrough leaves no endpoint', () => {
  assert.equal(matchEndpoints([match({ app: 'web' }, [])], { app: 'web' }, all), []);
});

m('fallthrough past the last match: no applicable match left, so every endpoint', () => {
  const matches = [match({ app: 'web' }, [{ tier: 'platinum' }], true)];
  assert.equal(names(matchEndpoints(matches, { app: 'web' }, all)), ['nse-gold', 'nse-silver', 'nse-us']);
});

m('fallthrough does not skip a match that yields endpoints', () => {
  const matches = [match({}, [{ tier: 'silver' }], true), match({}, [{ tier: 'gold' }])];
  assert.equal(names(matchEndpoints(matches, {}, all)), ['nse-silver']);
});

m('"{{.key}}" in a destination value takes the client\'s label', () => {
  const matches = [match({}, [{ region: '{{.region}}' }])];
  assert.equal(names(matchEndpoints(matches, { region: 'us' }, all)), ['nse-us']);
  assert.equal(names(matchEndpoints(matches, { region: 'eu' }, all)), ['nse-gold', 'nse-silver']);
  // spaces inside the braces and text around the template are allowed
  const composed = [match({}, [{ zone: 'z-{{ .region }}-1' }])];
  assert.equal(names(matchEndpoints(composed, { region: 'eu' }, [ep('a', { zone: 'z-eu-1' }), ep('b', { zone: 'z-us-1' })])), ['a']);
});

m('a template naming a label the client lacks expands to empty and matches only an empty value', () => {
  const matches = [match({}, [{ region: '{{.region}}' }])];
  assert.equal(matchEndpoints(matches, {}, all), []);
  assert.equal(names(matchEndpoints(matches, {}, [...all, ep('nse-blank', { region: '' })])), ['nse-blank']);
});

m.run();

const s = suite('selection: selectEndpoint (placement)');

const input = (endpoints: readonly Candidate[], over: Partial<Parameters<typeof selectEndpoint>[0]> = {}) => ({
  service: 'secure-net',
  matches: [] as Match[],
  clientLabels: { app: 'web' } as Labels,
  clientNode: 'node-a',
  endpoints,
  exclude: [] as string[],
  ...over,
});

s('prefers an endpoint on the client\'s node even when it is more loaded', () => {
  const local = ep('nse-local', {}, 'node-a', 9);
  const remote = ep('nse-remote', {}, 'node-b', 0);
  const r = selectEndpoint(input([remote, local]));
  assert.equal(r, { kind: 'selected', endpoint: local, considered: 2 });
});

s('without a local endpoint, the least loaded wins', () => {
  const r = selectEndpoint(input([ep('a', {}, 'node-b', 3), ep('b', {}, 'node-c', 1), ep('c', {}, 'node-b', 2)]));
  assert.is(r.kind === 'selected' && r.endpoint.name, 'b');
});

s('equal load: ties broken by name', () => {
  const r = selectEndpoint(input([ep('zeta', {}, 'node-b', 1), ep('alpha', {}, 'node-c', 1), ep('mid', {}, 'node-b', 1)]));
  assert.is(r.kind === 'selected' && r.endpoint.name, 'alpha');
});

s('among several local endpoints, least loaded then name', () => {
  const r = selectEndpoint(
    input([ep('l-b', {}, 'node-a', 1), ep('l-a', {}, 'node-a', 1), ep('l-c', {}, 'node-a', 0), ep('remote', {}, 'node-b', 0)]),
  );
  assert.is(r.kind === 'selected' && r.endpoint.name, 'l-c');
});

s('matching comes before placement: a local endpoint that does not match is not chosen', () => {
  const r = selectEndpoint(
    input([ep('local-silver', { tier: 'silver' }, 'node-a'), ep('remote-gold', { tier: 'gold' }, 'node-b', 7)], {
      matches: [match({}, [{ tier: 'gold' }])],
    }),
  );
  assert.equal(r, { kind: 'selected', endpoint: ep('remote-gold', { tier: 'gold' }, 'node-b', 7), considered: 1 });
});

s('excluded endpoints are never chosen', () => {
  const r = selectEndpoint(input([ep('local', {}, 'node-a'), ep('remote', {}, 'node-b', 5)], { exclude: ['local'] }));
  assert.equal(r, { kind: 'selected', endpoint: ep('remote', {}, 'node-b', 5), considered: 1 });
});

s('none registered: a reason naming the service', () => {
  assert.equal(selectEndpoint(input([])), { kind: 'none', reason: 'no endpoint is registered for network service "secure-net"' });
});

s('all excluded: a reason listing the exclusions', () => {
  assert.equal(selectEndpoint(input([ep('a', {}), ep('b', {})], { exclude: ['a', 'b'] })), {
    kind: 'none',
    reason: 'every endpoint of "secure-net" is excluded (a, b)',
  });
});

s('nothing matches: a reason with the client labels', () => {
  assert.equal(selectEndpoint(input([gold], { matches: [match({}, [{ tier: 'silver' }])] })), {
    kind: 'none',
    reason: 'no endpoint of "secure-net" matches the client\'s labels {"app":"web"}',
  });
});

s.run();
