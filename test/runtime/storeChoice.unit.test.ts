// --store / --esdb-url / NSM_STORE / NSM_ESDB_URL for nsm up and nsm control-plane.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { chooseStore, redactUrl } from '../../src/runtime/storeChoice.ts';
import { suite } from '../lib/harness.ts';

const s = suite('nsm --store option');
const env = (vars: Record<string, string>) => (k: string) => vars[k];
const none = env({});

s('JetStream by default; EventStoreDB by flag or environment', () => {
  assert.equal(chooseStore({}, none), E.right({ kind: 'jetstream' }));
  assert.equal(chooseStore({ store: 'esdb', 'esdb-url': 'esdb://127.0.0.1:2113?tls=false' }, none), E.right({ kind: 'esdb', url: 'esdb://127.0.0.1:2113?tls=false' }));
  assert.equal(
    chooseStore({}, env({ NSM_STORE: 'esdb', NSM_ESDB_URL: 'esdb+discover://cluster.local:2113' })),
    E.right({ kind: 'esdb', url: 'esdb+discover://cluster.local:2113' }),
  );
  assert.equal(chooseStore({ store: 'jetstream' }, env({ NSM_STORE: 'esdb', NSM_ESDB_URL: 'esdb://h:2113' })), E.right({ kind: 'jetstream' }), 'the flag wins');
  assert.equal(chooseStore({}, env({ NSM_ESDB_URL: 'esdb://h:2113' })), E.right({ kind: 'jetstream' }), 'a URL alone does not switch stores');
  assert.equal(chooseStore({ store: 'esdb', 'esdb-url': 'esdb://a:1' }, env({ NSM_ESDB_URL: 'esdb://b:2' })), E.right({ kind: 'esdb', url: 'esdb://a:1' }));
});

s('mistakes are named', () => {
  const err = (r: E.Either<string, unknown>) => (E.isLeft(r) ? r.left : 'accepted');
  assert.match(err(chooseStore({ store: 'esdb' }, none)), '--store esdb needs --esdb-url');
  assert.match(err(chooseStore({ store: 'mongo' }, none)), '--store "mongo": expected jetstream or esdb');
  assert.match(err(chooseStore({ 'esdb-url': 'esdb://h:2113' }, none)), '--esdb-url is only used with --store esdb');
  assert.match(err(chooseStore({ store: 'esdb', 'esdb-url': 'https://h:2113' }, none)), 'expected esdb://host:port');
  const withSecret = err(chooseStore({ store: 'esdb', 'esdb-url': 'http://admin:changeit@h:2113' }, none));
  assert.not.match(withSecret, 'changeit', 'the password is not repeated');
});

s('redactUrl hides user and password only', () => {
  assert.is(redactUrl('esdb://admin:changeit@db:2113?tls=true'), 'esdb://***@db:2113?tls=true');
  assert.is(redactUrl('esdb://db:2113?tls=false'), 'esdb://db:2113?tls=false');
});

s.run();
