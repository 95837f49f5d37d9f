// Tells each client about its own connections: after a connection's commit is stored, the
// commit is published on nsm.<domain>.notify.<actor>.connection.<id>, where actor is whoever
// requested the connection. Clients wait on that subject rather than on the event stream's, so
// that permissions can let them see their own connections and nothing else.
import * as E from 'fp-ts/lib/Either.js';
import type { Commit } from './contracts/envelope.ts';
import type { EventStore } from './eventStore.ts';

export const withConnectionNotifications = (
  store: EventStore,
  /** The requester of a connection already known to the read model. */
  requesterOf: (connectionId: string) => string | undefined,
  publish: (actor: string, commit: Commit) => void,
): EventStore => ({
  ...store,
  append: (commit, expected) => async () => {
    const r = await store.append(commit, expected)();
    if (E.isRight(r) && !r.right.duplicate && commit.stream.startsWith('connection.')) {
      const id = commit.stream.slice('connection.'.length);
      // A connection's first commit is its request: the requester is that command's actor.
      const actor = requesterOf(id) ?? commit.events.find((e) => e.type === 'ConnectionRequested')?.actor;
      if (actor) publish(actor, commit);
    }
    return r;
  },
});
