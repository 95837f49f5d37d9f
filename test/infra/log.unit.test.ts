// infra/log.ts (pino): the line format the tests and operators read, NSM_LOG_LEVEL, and redaction
// of secrets. Lines are caught with a sink function, which gets each one synchronously.
import * as assert from 'uvu/assert';
import { createLogger, levelPasses, REDACTED, SECRET_FIELDS } from '../../infra/log.ts';
import { suite } from '../lib/harness.ts';

const capture = (component: string, base: Record<string, unknown> = {}, level?: string) => {
  const lines: string[] = [];
  const log = createLogger(component, base, (l) => lines.push(l), level);
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
};

const s = suite('logging through pino');

s('one JSON object per line: time (ISO), level name, component, msg, base fields, fields', () => {
  const { log, lines, parsed } = capture('control-plane', { domain: 'demo' }, 'debug');
  log.info('side programmed', { connectionId: 'c-1', position: 42, ok: true, tags: ['a'] });
  assert.is(lines.length, 1, 'written inside the call');
  assert.not.ok(lines[0]!.includes('\n'), 'the sink gets the line without its newline');
  const [line] = parsed();
  assert.match(String(line!.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.ok(Math.abs(Date.parse(String(line!.time)) - Date.now()) < 5000);
  const { time: _t, ...rest } = line!;
  assert.equal(rest, { level: 'info', component: 'control-plane', domain: 'demo', msg: 'side programmed', connectionId: 'c-1', position: 42, ok: true, tags: ['a'] });
  // What tests match on as text.
  assert.ok(lines[0]!.includes('"msg":"side programmed"') && lines[0]!.includes('"connectionId":"c-1"') && lines[0]!.includes('"level":"info"'));
  assert.not.ok('pid' in line! || 'hostname' in line!, 'no pino base fields');
});

s('every level by name; a message is never a format string', () => {
  const { log, parsed } = capture('x', {}, 'debug');
  log.debug('d');
  log.info('100% %s %d %%');
  log.warn('w');
  log.error('e');
  assert.equal(parsed().map((l) => [l.level, l.msg]), [['debug', 'd'], ['info', '100% %s %d %%'], ['warn', 'w'], ['error', 'e']]);
});

s('levels: the setting given, else NSM_LOG_LEVEL, else info; unknown is info; silent is nothing', () => {
  const saved = process.env.NSM_LOG_LEVEL;
  try {
    const levelsWritten = (setting: string | undefined, env: string | undefined) => {
      if (env === undefined) delete process.env.NSM_LOG_LEVEL;
      else process.env.NSM_LOG_LEVEL = env;
      const { log, parsed } = capture('x', {}, setting);
      for (const l of ['debug', 'info', 'warn', 'error'] as const) log[l](l);
      return parsed().map((l) => l.level);
    };
    assert.equal(levelsWritten(undefined, undefined), ['info', 'warn', 'error']);
    assert.equal(levelsWritten(undefined, 'warn'), ['warn', 'error']);
    assert.equal(levelsWritten(undefined, 'DEBUG'), ['debug', 'info', 'warn', 'error']);
    assert.equal(levelsWritten('error', 'debug'), ['error'], 'the argument wins over the environment');
    assert.equal(levelsWritten(undefined, 'chatty'), ['info', 'warn', 'error']);
    assert.equal(levelsWritten(undefined, 'silent'), []);
    // Children keep their parent's level.
    process.env.NSM_LOG_LEVEL = 'debug';
    const { log, parsed } = capture('x', {}, 'warn');
    log.child({ a: 1 }).info('no');
    log.child({ a: 1 }).warn('yes');
    assert.equal(parsed().map((l) => l.msg), ['yes']);
  } finally {
    if (saved === undefined) delete process.env.NSM_LOG_LEVEL;
    else process.env.NSM_LOG_LEVEL = saved;
  }
  assert.ok(levelPasses('warn', 'info'));
  assert.not.ok(levelPasses('debug', 'info'));
  assert.ok(levelPasses('error', 'nonsense'));
  assert.not.ok(levelPasses('error', 'silent'));
});

s('child fields add to the base; a later field replaces an earlier one, written once', () => {
  const { log, lines, parsed } = capture('secure-federation', { domain: 'a' }, 'debug');
  const agent = log.child({ domain: 'b', component: 'agent' }).child({ node: 'n1' });
  agent.info('heartbeat', { node: 'n2' });
  log.info('own', { msg: 'a field named msg is the message, as before' });
  assert.equal(parsed().map(({ time: _t, ...l }) => l), [
    { level: 'info', component: 'agent', domain: 'b', node: 'n2', msg: 'heartbeat' },
    { level: 'info', component: 'secure-federation', domain: 'a', msg: 'a field named msg is the message, as before' },
  ]);
  for (const line of lines) {
    for (const key of ['component', 'domain', 'node', 'msg']) assert.ok((line.match(new RegExp(`"${key}":`, 'g')) ?? []).length <= 1, `${key} once in ${line}`);
  }
});

s('bigints are written as strings; circular values do not throw', () => {
  const { log, parsed } = capture('x', {}, 'debug');
  const c: Record<string, unknown> = { x: 1 };
  c.self = c;
  log.info('revision', { revision: 12345678901234567890n, nested: { at: [1n, 2n] }, c });
  const [line] = parsed();
  assert.is(line!.revision, '12345678901234567890');
  assert.equal(line!.nested, { at: ['1', '2'] });
  assert.is((line!.c as Record<string, unknown>).x, 1);
});

s('secrets are redacted: seed, password, token, authorization, creds..., at any depth, in fields and bindings', () => {
  const { log, lines, parsed } = capture('x', { token: 'BASE-TOKEN-1' }, 'debug');
  const secrets = {
    seed: 'SUACSSL3UAHUDXKFSNVUZRF5UHPMWZ6BFDTJ7M6USDXIEDNPPQYYYCU3VY',
    password: 'hunter2-PASSWORD',
    token: 'eyJhbGciOiJFZDI1NTE5In0.TOKEN.sig',
    authorization: 'Bearer API-TOKEN-XYZ',
    creds: '-----BEGIN NATS USER JWT----- CREDS',
  };
  log.info('top level', secrets);
  log.warn('nested', { identity: { name: 'alice', seed: 'SUNESTEDSEEDXXXXXXXXXXXXXXXXXXXXXXXXXXXX' }, leaf: { remote: { url: 'x', password: 'NESTED-PASSWORD' } }, path: [{ name: 'a', token: 'PATH-TOKEN-IN-ARRAY' }] });
  log.child({ apiToken: 'CHILD-API-TOKEN', session: { secret: 'CHILD-NESTED-SECRET' } }).error('from a child', { headers: { Authorization: 'Bearer HEADER-TOKEN' } });
  const text = lines.join('\n');
  for (const secret of ['BASE-TOKEN-1', ...Object.values(secrets), 'SUNESTEDSEED', 'NESTED-PASSWORD', 'PATH-TOKEN-IN-ARRAY', 'CHILD-API-TOKEN', 'CHILD-NESTED-SECRET', 'HEADER-TOKEN']) {
    assert.not.ok(text.includes(secret), `${secret} must not be written: ${text}`);
  }
  const [top, nested, child] = parsed();
  assert.equal(Object.fromEntries(Object.keys(secrets).map((k) => [k, top![k]])), Object.fromEntries(Object.keys(secrets).map((k) => [k, REDACTED])));
  assert.is(top!.token, REDACTED);
  assert.equal(nested!.identity, { name: 'alice', seed: REDACTED }, 'the rest of the object is kept');
  assert.equal(nested!.leaf, { remote: { url: 'x', password: REDACTED } });
  assert.equal(nested!.path, [{ name: 'a', token: REDACTED }]);
  assert.is(child!.apiToken, REDACTED);
  assert.equal(child!.session, { secret: REDACTED });
  assert.equal(child!.headers, { Authorization: REDACTED });
  assert.ok(SECRET_FIELDS.length >= 10);
});

s('redaction copies: the caller\'s objects are left as they were', () => {
  const { log } = capture('x', {}, 'debug');
  const identity = { name: 'alice', seed: 'SU-KEEP' };
  const fields = { identity, password: 'keep-me' };
  log.info('m', fields);
  assert.equal(fields, { identity: { name: 'alice', seed: 'SU-KEEP' }, password: 'keep-me' });
});

s.run();
