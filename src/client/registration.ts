// Keeps an endpoint registered: registers it with an expiration and re-registers (refreshes)
// every third of it, as the original NSM's endpoints do, so that one missed refresh is not a
// death. Stopping either unregisters (a clean exit) or just stops refreshing (the registration
// then lapses and the control plane heals the endpoint's connections elsewhere).
import * as E from 'fp-ts/lib/Either.js';
import { errorText, type Logger } from '../ports/logger.ts';
import type { MeshClient } from './meshClient.ts';
import type { CommandBody } from '../contracts/commands.ts';

export const DEFAULT_ENDPOINT_EXPIRATION_SECONDS = 60;

export interface KeptRegistration {
  /** unregister: true removes it now; false lets it lapse at its expiration. timeoutMs bounds the unregister. */
  stop(opts?: { unregister?: boolean; timeoutMs?: number }): Promise<void>;
}

export const keepEndpointRegistered = async (
  client: MeshClient,
  body: Omit<CommandBody<'endpoint.register'>, 'expirationSeconds'>,
  opts: { readonly expirationSeconds?: number; readonly log: Logger },
): Promise<E.Either<string, KeptRegistration>> => {
  const expirationSeconds = opts.expirationSeconds ?? DEFAULT_ENDPOINT_EXPIRATION_SECONDS;
  const register = () => client.send('endpoint.register', { ...body, expirationSeconds });
  const first = await register();
  if (E.isLeft(first)) return E.left(`could not register endpoint ${body.name}: ${first.left.message}`);
  let stopped = false;
  let inFlight: Promise<unknown> = Promise.resolve();
  const timer = setInterval(() => {
    inFlight = register().then((r) => {
      if (E.isLeft(r) && !stopped) opts.log.warn('endpoint refresh failed; retrying at the next interval', { endpoint: body.name, error: r.left.message });
    }, (e) => opts.log.warn('endpoint refresh crashed', { endpoint: body.name, error: errorText(e) }));
  }, (expirationSeconds * 1000) / 3);
  return E.right({
    stop: async ({ unregister = true, timeoutMs } = {}) => {
      stopped = true;
      clearInterval(timer);
      // A refresh still on its way must not register the endpoint again after it is unregistered.
      await inFlight;
      if (!unregister) return;
      const r = await client.send('endpoint.unregister', { name: body.name }, timeoutMs !== undefined ? { timeoutMs } : {});
      if (E.isLeft(r) && r.left.code !== 'not-found') opts.log.warn('could not unregister endpoint', { endpoint: body.name, error: r.left.message });
      else opts.log.info('unregistered', { endpoint: body.name });
    },
  });
};
