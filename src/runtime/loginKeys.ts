// Which keys nats-server accepts changes with the registry (a key rotated or an identity revoked)
// and with time (a rotated-out key's grace period ends). `nsm up` owns its nats-server, so it
// keeps the server's users in step: it writes nats-auth.conf again and reloads the server after
// each change of identities.json and at the end of each grace period. A reload closes the
// connections of keys no longer listed; their holders log in again with their new key.
import * as E from 'fp-ts/lib/Either.js';
import type { Logger } from '../ports/logger.ts';
import { nextLoginChange } from '../security/identities.ts';
import { writeNatsConfig } from '../security/init.ts';
import type { LiveRegistry } from '../security/live.ts';

/** setTimeout's longest delay; a later grace end is looked at again then. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export interface LoginKeysFollower {
  stop(): void;
}

export const followLoginKeys = (o: { dataDir: string; registry: LiveRegistry; reload: () => Promise<E.Either<string, void>>; log: Logger; now?: () => Date }): LoginKeysFollower => {
  const now = o.now ?? (() => new Date());
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  // One at a time, and once more if something changed meanwhile.
  let running: Promise<void> | undefined;
  let again = false;
  const apply = async (why: string) => {
    const written = writeNatsConfig(o.dataDir);
    if (E.isLeft(written)) return o.log.error('could not write nats-auth.conf; nats-server keeps the keys it had', { reason: why, problem: written.left });
    const reloaded = await o.reload();
    if (E.isLeft(reloaded)) o.log.error('nats-server did not take the new keys', { reason: why, problem: reloaded.left });
    else o.log.info('nats-server reloaded with the keys now valid', { reason: why });
  };
  const update = (why: string): void => {
    if (stopped) return;
    if (running) {
      again = true;
      return;
    }
    running = apply(why).finally(() => {
      running = undefined;
      schedule();
      if (again) {
        again = false;
        update('changed while reloading');
      }
    });
  };
  const schedule = () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
    if (stopped) return;
    const next = nextLoginChange(o.registry.identities, now());
    if (!next) return;
    const delay = Math.min(MAX_DELAY_MS, Math.max(0, next.getTime() - now().getTime()) + 100);
    timer = setTimeout(() => (next.getTime() <= now().getTime() ? update(`a rotated-out key's grace period ended at ${next.toISOString()}`) : schedule()), delay);
    timer.unref();
  };
  o.registry.onChange(() => update('identities.json changed'));
  schedule();
  return {
    stop: () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    },
  };
};
