// Connection: one client's connection to a network service, from request to close.
// requested -> endpoint-selected -> path-planned -> (dataplane programmed on each side) ->
// established; failed (with a reason) and closed are terminal for this lifecycle.
import { produce } from 'immer';
import type { Aggregate } from '../domain.ts';
import { decide } from './decide.ts';
import { evolveDraft } from './evolve.ts';
import type { ConnectionCommand, ConnectionEvent, ConnectionState } from './types.ts';

export * from './types.ts';
export { evolveDraft } from './evolve.ts';
export { decideRemoteRequest, localSides, remoteName, tunnelRangeConflict } from './crossDomain.ts';

export const connection: Aggregate<ConnectionState, ConnectionCommand, ConnectionEvent> = {
  name: 'connection',
  initialState: { phase: 'none', excluded: [], generation: 0, programmed: [], removed: [], healCauses: [], heals: 0 },
  decide,
  evolve: (state, event) => produce(state, (draft) => evolveDraft(draft, event)),
};
