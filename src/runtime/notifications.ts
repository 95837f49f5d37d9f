// Tells each client about its own connections: after a connection's commit is stored, the
// commit is published on nsm.<domain>.notify.<actor>.connection.<id>, where actor is whoever
// requested the connection. Clients wait on that subject rather than on the event stream's, so
// that permissions can let them see their own connections and nothing else.
import * as E from 'fp-ts/lib/Either.js';
import type { Commit, StoredCommit } from '../contracts/envelope.ts';
import type { EventStore } from '../ports/eventStore.ts';

export const withConnectionNotifications = (
  store: EventStore,
  /** Sees every commit this process stored (the live view folds it right away when it can). */
  stored: (commit: StoredCommit) => void,
  /** The requester of a connection already known to the read model. */
  requesterOf: (connectionId: string) => string | undefined,
  /** The commit as stored, with its log position (so the client can read its own write). */
  publish: (actor: string, commit: Commit & { readonly position: bigint }) => void,
): EventStore => ({
  ...store,
  append: (commit, expected) => async () => {
    const r = await store.append(commit, expected)();
    if (E.isLeft(r) || r.right.duplicate) return r;
    stored({ ...commit, revision: r.right.revision, position: r.right.position });
    if (commit.stream.startsWith('connection.')) {
      const id = commit.stream.slice('connection.'.length);
      // A connection's first commit is its request: the requester is that command's actor.
      const actor = requesterOf(id) ?? commit.events.find((e) => e.type === 'ConnectionRequested')?.actor;
      if (actor) publish(actor, { ...commit, position: r.right.position });
    }
    return r;
  },
});
