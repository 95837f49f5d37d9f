// Messages the control plane takes from core NATS subjects, checked for where they really come
// from. NATS permissions say who may *publish* to a subject, but not where an answer goes: a
// request's reply subject is whatever its sender wrote, and the server itself (a JetStream API
// answer, a direct get, a push consumer's delivery) publishes to it with the account's rights.
// So a query whose reply subject is "nsm.<d>.evt.x" would have the control plane append its
// answer to the event log, and a JetStream request answered to "nsm.<d>.hb.n1" would look like
// node n1's heartbeat. The control plane answers only into the asker's own inbox, and takes as a
// heartbeat only what an agent sends.
import * as E from 'fp-ts/lib/Either.js';
import type { Msg } from 'nats';
import type { Subjects } from '../contracts/subjects.ts';
import * as D from '../contracts/decode.ts';
import { inboxPrefixFor } from './identities.ts';

/**
 * Whether `reply` is an inbox only `actor` can read: on an authenticated mesh its private prefix
 * `_INBOX.<actor>.` (its permissions let nobody else subscribe there; a peer domain's queries are
 * answered to its control plane's, `_INBOX.control-plane.`); on an insecure mesh any `_INBOX.`.
 */
export const replyIsInboxOf = (actor: string, reply: string | undefined, secure: boolean): boolean => {
  if (!reply) return false;
  const prefix = secure ? `${inboxPrefixFor(actor.startsWith('peer:') ? 'control-plane' : actor)}.` : '_INBOX.';
  return reply.startsWith(prefix) && reply.length > prefix.length;
};

const heartbeatBody = D.object({ node: D.string({ min: 1, max: 64 }) }, { connections: D.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }) });

/** A node agent's heartbeat (node-agent/agent.ts): published on nsm.<d>.hb.<node>, no reply, no headers, `{node, connections}` for that node. */
export const decodeHeartbeat = (subjects: Subjects, m: Pick<Msg, 'subject' | 'reply' | 'headers' | 'data'>): E.Either<string, { node: string; connections?: number }> => {
  const prefix = `nsm.${subjects.domain}.hb.`;
  if (!m.subject.startsWith(prefix)) return E.left(`not a heartbeat subject (${m.subject}): a message delivered here by the server`);
  const node = m.subject.slice(prefix.length);
  if (m.reply) return E.left('a heartbeat has no reply subject');
  if (m.headers) return E.left('a heartbeat has no headers (a JetStream answer addressed here?)');
  const parsed = D.parseJson(m.data, 4096);
  const body = E.isRight(parsed) ? heartbeatBody(parsed.right, 'heartbeat') : parsed;
  if (E.isLeft(body)) return E.left(D.formatDecodeError(body.left));
  if (body.right.node !== node) return E.left(`the heartbeat of node ${body.right.node} on the subject of node ${node}`);
  return E.right({ node, ...(body.right.connections !== undefined ? { connections: body.right.connections } : {}) });
};
