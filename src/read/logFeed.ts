// One reading of the log for the whole control plane. The main subscription pushes every commit
// here once; the process manager and the sealer follow it from their own positions: they read
// the store until they reach the live feed, then take commits from it. Without this, each of
// them ran a consumer of its own and every commit was delivered and decoded three times.
import type { StoredCommit } from '../contracts/envelope.ts';
import type { SubscribeHandlers, Subscription, EventStore } from '../ports/eventStore.ts';

export interface LogFeed {
  /** Called by the main subscription, in log order, for every commit. */
  push(commit: StoredCommit): void;
  /** Same contract as EventStore.subscribeAll: commits after `after`, in order, one at a time. */
  follow(after: bigint, handlers: SubscribeHandlers): Promise<Subscription>;
}

export const createLogFeed = (store: EventStore, livePosition: () => bigint): LogFeed => {
  const followers = new Set<(c: StoredCommit) => void>();
  return {
    push: (commit) => {
      for (const f of followers) f(commit);
    },
    follow: async (after, handlers) => {
      let last = after;
      let stopped = false;
      const queue: StoredCommit[] = [];
      let markCaughtUp!: () => void;
      const caughtUp = new Promise<void>((r) => (markCaughtUp = r));
      let catchingUp = true;
      const target = livePosition();

      const deliver = async (c: StoredCommit): Promise<boolean> => {
        if (c.position <= last) return true;
        try {
          await handlers.onCommit(c);
        } catch (e) {
          stopped = true;
          handlers.onError?.({ kind: 'unavailable', message: `follower failed at position ${c.position}: ${(e as Error).message}` });
          return false;
        }
        last = c.position;
        return true;
      };
      let running = false;
      const drain = async (): Promise<void> => {
        if (running) return;
        running = true;
        try {
          while (!stopped && !catchingUp && queue.length > 0) {
            if (!(await deliver(queue.shift()!))) break;
          }
        } finally {
          running = false;
        }
      };
      const live = (c: StoredCommit) => {
        if (stopped) return;
        queue.push(c);
        void drain();
      };
      // Listen first, so nothing pushed while the store is read is missed (duplicates are skipped).
      followers.add(live);
      if (after < target) {
        try {
          for await (const c of store.readAll(after, target)) {
            if (stopped || !(await deliver(c))) break;
          }
        } catch (e) {
          // The store could not be read (a server lost in a cluster): this follower never started.
          stopped = true;
          followers.delete(live);
          throw e;
        }
      }
      catchingUp = false;
      markCaughtUp();
      void drain();
      return {
        caughtUp,
        stop: async () => {
          stopped = true;
          followers.delete(live);
          while (running) await new Promise((r) => setImmediate(r));
        },
      };
    },
  };
};
