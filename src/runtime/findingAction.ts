// A leader acting on what its detector found: one command under an id derived from the finding,
// so that a finding seen again on the next tick, or by two replicas that briefly both believe
// they lead, is decided once (the store dedupes on the commit id).
import * as E from 'fp-ts/lib/Either.js';
import type { Logger } from '../ports/logger.ts';
import type { EventStore } from '../ports/eventStore.ts';
import { execErrorMessage, execute } from '../command/execute.ts';
import type { MeshView } from '../read/meshView.ts';
import type { Repository } from '../command/repository.ts';
import type { FindingAction } from '../workflows/healing.ts';


export interface FindingDeps {
  readonly store: EventStore;
  readonly repo: Repository;
  readonly view: MeshView;
  readonly domain: string;
  readonly log: Logger;
  readonly now: () => Date;
}

// Ids become message ids and envelope ids: keep them to characters every adapter takes.
const idOf = (finding: string) => finding.replace(/[^A-Za-z0-9_.:-]/g, '_');

/** Appends the finding's decision as `actor`; a failure is logged as `onFailure`, for a later tick to retry. */
export const actOnFinding = async (deps: FindingDeps, actor: string, a: FindingAction, onFailure: string): Promise<void> => {
  const id = idOf(a.id);
  const r = await execute(deps, a.stream, a.command, { commandId: id, correlationId: id, causationId: id, actor, domain: deps.domain, now: deps.now });
  if (E.isLeft(r)) deps.log.warn(onFailure, { ...a.what, error: execErrorMessage(r.left) });
  else if (r.right.events.length > 0) {
    deps.log.info(String(a.what.finding), { ...a.what, events: r.right.events.map((e) => e.type) });
    // Done once the view shows it, so the next tick does not find it again.
    if (r.right.position !== undefined) await deps.view.waitFor(Number(r.right.position)).catch(() => undefined);
  }
};
