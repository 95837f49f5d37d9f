// The identity registry in the log (aggregates/identity.ts): at start and after every change of
// identities.json, the control plane appends what changed (an identity added, its key rotated,
// revoked, reinstated, removed), so `nsm history identities` and an audit of the log show who could act
// when. Replicas may record the same change at once: the stream's expected version lets one of
// them append it, and the others then find nothing left to record.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { IDENTITIES_STREAM_ID, type ObservedIdentity } from '../../aggregates/identity.ts';
import { execErrorMessage, execute, type ExecDeps } from '../command/execute.ts';
import { streamName } from '../contracts/envelope.ts';
import type { Logger } from '../ports/logger.ts';
import { CONTROL_PLANE_ACTOR, type Identity, type IdentityRegistry } from '../security/identities.ts';

const observed = (i: Identity): ObservedIdentity => ({
  actor: i.actor,
  role: i.role,
  publicKey: i.publicKey,
  ...(i.retiredKeys ? { retiredKeys: i.retiredKeys.map(({ publicKey, retiredAt, loginUntil }) => ({ publicKey, retiredAt, loginUntil })) } : {}),
  ...(i.revokedAt ? { revokedAt: i.revokedAt } : {}),
});

export const recordRegistry = async (deps: ExecDeps, registry: IdentityRegistry, o: { domain: string; now: () => Date; log: Logger }): Promise<void> => {
  const id = randomUUID();
  const r = await execute(
    deps,
    streamName('identities', IDENTITIES_STREAM_ID),
    () => ({ type: 'ObserveRegistry', identities: registry.identities.map(observed) }),
    { commandId: id, correlationId: id, causationId: id, actor: CONTROL_PLANE_ACTOR, domain: o.domain, now: o.now, lane: CONTROL_PLANE_ACTOR },
  );
  if (E.isLeft(r)) o.log.error('could not record the identity registry in the log; it is recorded at the next change or start', { error: execErrorMessage(r.left) });
  else if (r.right.events.length > 0) o.log.info('identity registry recorded in the log', { events: r.right.events.map((e) => `${e.type} ${(e.data as { actor?: string }).actor ?? ""}`) });
};
