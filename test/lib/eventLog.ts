// Reading a store's whole log in a test, and waiting until it holds what a test counted
// elsewhere: commits seen on the plain event subject can arrive before the stream has stored them.
import type { StoredCommit } from '../../src/contracts/envelope.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { eventually } from './eventually.ts';

export const readLog = async (store: Pick<EventStore, 'readAll'>): Promise<StoredCommit[]> => {
  const out: StoredCommit[] = [];
  for await (const c of store.readAll(0n)) out.push(c);
  return out;
};

/** How many streams have at least one event of this type. */
export const streamsWith = (commits: readonly StoredCommit[], type: string): number =>
  new Set(commits.filter((c) => c.events.some((e) => e.type === type)).map((c) => c.stream)).size;

/** The whole log, once at least `n` streams in it have an event of `type`. */
export const logWithEvery = (store: Pick<EventStore, 'readAll'>, type: string, n: number): Promise<StoredCommit[]> =>
  eventually(`${type} in ${n} streams of the log`, async () => {
    const cs = await readLog(store);
    return streamsWith(cs, type) >= n ? cs : undefined;
  }, { describe: async () => ({ [type]: streamsWith(await readLog(store), type), of: n }) });
