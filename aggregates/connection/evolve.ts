// How each event changes a connection's state, as an immer recipe: the aggregate's evolve and
// the connections projection share it.
import { castDraft, type Draft } from 'immer';
import type { ConnectionEvent, ConnectionState } from './types.ts';

/** How many heal cause ids a connection remembers (redelivered causes arrive soon after the first). */
const REMEMBERED_CAUSES = 32;

/** The state transition as an immer recipe, shared with the connections projection. */
export const evolveDraft = (s: Draft<ConnectionState>, event: ConnectionEvent): void => {
  switch (event.type) {
    case 'ConnectionRequested': {
      const { type: _t, ...request } = event;
      s.phase = 'requested';
      s.request = castDraft(request);
      if (request.expirationTime) s.expirationTime = request.expirationTime;
      if (request.domain) s.remoteDomain = request.domain;
      break;
    }
    case 'ConnectionRedirected':
      // In the registry that answered, the request is done: it went to the endpoint's home domain.
      if (s.request?.remoteClient) {
        s.phase = 'closed';
        s.closeReason = `redirected to domain ${event.domain}${event.endpoint ? ` (endpoint ${event.endpoint})` : ''}`;
      } else if (event.local) delete s.remoteDomain;
      else {
        s.remoteDomain = event.domain;
        if (event.endpoint) s.redirectEndpoint = event.endpoint;
      }
      break;
    case 'EndpointSelected':
      s.phase = 'endpoint-selected';
      s.endpoint = { name: event.endpoint, node: event.endpointNode };
      s.excluded = [...event.excluded];
      // The old plan stops being desired: its sides are replaced by the next plan or removed.
      if (event.replaces) delete s.plan;
      delete s.waitingSince;
      delete s.down;
      break;
    case 'PathPlanned': {
      const { type: _t, generation, ...plan } = event;
      s.phase = 'path-planned';
      s.generation = generation;
      s.plan = castDraft(plan);
      s.programmed = [];
      s.removed = [];
      break;
    }
    case 'DataplaneProgrammed': {
      s.programmed.push(event.side);
      // Agent segments follow the client's and the control plane's: client side 2, endpoint side 3.
      // The path came from an event, which must not be mutated: it is replaced.
      const at = event.side === 'client' ? 2 : 3;
      const token = event.token;
      if (token && s.plan && s.plan.path.pathSegments[at]) {
        s.plan.path = { ...s.plan.path, pathSegments: s.plan.path.pathSegments.map((p, i) => (i === at ? { ...p, token } : p)) };
      }
      break;
    }
    case 'ConnectionEstablished':
      s.phase = 'established';
      break;
    case 'DataplaneFailed':
    case 'DatapathDown':
      break;
    case 'ConnectionFailed':
      s.phase = 'failed';
      s.failure = { code: event.code, reason: event.reason };
      break;
    case 'ConnectionDenied':
      s.phase = 'failed';
      s.failure = { code: 'denied', reason: event.reason };
      break;
    case 'ConnectionLimited':
      s.phase = 'failed';
      s.failure = { code: 'limited', reason: event.reason };
      break;
    case 'ConnectionClosed':
      s.phase = 'closed';
      s.closeReason = event.reason;
      break;
    case 'DataplaneRemoved':
      s.removed.push(event.side);
      break;
    case 'ConnectionHealing':
      s.healing ??= { cause: event.cause, inPlace: event.inPlace, startedAt: event.startedAt, ...(event.oldEndpoint ? { oldEndpoint: event.oldEndpoint } : {}) };
      s.healing.cause = event.cause;
      s.healing.inPlace = event.inPlace;
      s.healCauses.push(event.causeId);
      if (s.healCauses.length > REMEMBERED_CAUSES) s.healCauses.splice(0, s.healCauses.length - REMEMBERED_CAUSES);
      break;
    case 'ConnectionWaiting':
      s.phase = 'waiting';
      s.waitingSince = event.since;
      delete s.endpoint;
      delete s.plan;
      break;
    case 'ConnectionHealed':
      s.lastHeal = { cause: event.cause, inPlace: s.healing?.inPlace ?? false, at: new Date(Date.parse(event.startedAt) + event.durationMs).toISOString() };
      s.heals += 1;
      delete s.healing;
      break;
    case 'ConnectionDown':
      s.phase = 'down';
      s.down = { node: event.node, since: event.since, ...(event.domain ? { domain: event.domain } : {}) };
      break;
    case 'ConnectionRefreshed':
      s.expirationTime = event.expirationTime;
      if (event.path && s.plan && s.generation === event.path.generation) s.plan.path = { ...s.plan.path, pathSegments: castDraft(event.path.pathSegments) };
      break;
    case 'ConnectionExpired':
      break;
  }
};

