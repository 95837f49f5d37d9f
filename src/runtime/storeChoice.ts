// Which event store a control plane uses: --store jetstream|esdb and --esdb-url, or NSM_STORE
// and NSM_ESDB_URL. JetStream stays the default, and NATS is needed either way (commands,
// node commands, queries and checkpoints travel on it).
import * as E from 'fp-ts/lib/Either.js';

export type StoreChoice = { readonly kind: 'jetstream' } | { readonly kind: 'esdb'; readonly url: string };

const ESDB_URL = /^esdb(\+discover)?:\/\/[^\s]+$/;

/** The URL without its user and password, for logs and messages. */
export const redactUrl = (url: string): string => url.replace(/^([a-z+]+:\/\/)[^@/]*@/i, '$1***@');

export const chooseStore = (
  flags: { readonly store?: string; readonly 'esdb-url'?: string },
  env: (name: string) => string | undefined,
): E.Either<string, StoreChoice> => {
  const kind = flags.store ?? env('NSM_STORE') ?? 'jetstream';
  if (kind === 'jetstream') {
    // NSM_ESDB_URL alone may be set for other processes; an explicit flag here is a mistake.
    return flags['esdb-url'] !== undefined ? E.left('--esdb-url is only used with --store esdb') : E.right({ kind: 'jetstream' });
  }
  if (kind !== 'esdb') return E.left(`--store ${JSON.stringify(kind)}: expected jetstream or esdb`);
  const url = flags['esdb-url'] ?? env('NSM_ESDB_URL');
  if (url === undefined) return E.left('--store esdb needs --esdb-url URL or NSM_ESDB_URL, e.g. esdb://127.0.0.1:2113?tls=false');
  if (!ESDB_URL.test(url)) return E.left(`--esdb-url ${JSON.stringify(redactUrl(url))}: expected esdb://host:port[?options] or esdb+discover://host:port[?options]`);
  return E.right({ kind: 'esdb', url });
};
