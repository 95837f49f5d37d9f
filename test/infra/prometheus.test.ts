// infra/prometheus/ as shipped, checked by Debian's promtool: the scrape configuration, the alerting
// rules, and the rules' own unit tests (alerts.test.yml: a node lost, connections waiting, slow
// heals fire; heals after an outage do not). Fails, not skips, without the prometheus package.
import * as assert from 'uvu/assert';
import { suite } from '../lib/harness.ts';
import { promtool } from '../lib/prometheus.ts';

const s = suite('infra/prometheus: scrape configuration and alerting rules', {});

s('promtool check config: the shipped scrape configuration and its rules file are valid', () => {
  const r = promtool('check', 'config', 'prometheus.yml');
  assert.is(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS: prometheus\.yml is valid prometheus config file syntax/);
  assert.match(r.output, /SUCCESS: 8 rules found/);
});

s('promtool check rules: the alerting rules are valid', () => {
  const r = promtool('check', 'rules', 'alerts.yml');
  assert.is(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS: 8 rules found/);
});

s('promtool test rules: each alert fires when it should and not otherwise', () => {
  const r = promtool('test', 'rules', 'alerts.test.yml');
  assert.is(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS/);
});

s.run();
