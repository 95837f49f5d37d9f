// The authenticated leafnode link between domains (docs/federation.md, "Security").
//
// nats-server 2.9 lets a leafnode remote authenticate with a user and password (nkey seeds on
// remotes came in 2.10.9), over TLS. So the hub's `nsm init --peers b,c` makes one leaf user
// per peer domain, with a random password, and writes its credentials file (peers/<peer>.leaf,
// 0600: user, password, the hub's CA) for the operator to copy to that domain's host, which
// joins with `nsm up --join nats-leaf://HUB:PORT --leaf-creds peers/<peer>.leaf`.
//
// What crosses the link is fixed by the leaf user's permissions on the hub (publish: what the
// peer may send into the federation; subscribe: what the hub passes to it), checked per
// message; the joining domain also refuses its own internal subjects from the hub (deny_imports)
// and keeps them from leaving (deny_exports).
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import * as E from 'fp-ts/lib/Either.js';
import { AGGREGATE_NAMES } from '../../aggregates/index.ts';
import { leafnodesConfig } from '../../infra/nats/leafnodes.ts';
import { DOMAIN_PATTERN } from '../contracts/subjects.ts';
import type { Permissions } from './identities.ts';

export interface LeafPeer {
  readonly peer: string;
  readonly user: string;
  readonly password: string;
}

export interface LeafCredentials extends LeafPeer {
  /** The hub's domain. */
  readonly hub: string;
  /** PEM of the CA that signed the hub's certificate. */
  readonly ca: string;
}

export const leafUser = (peer: string): string => `peer-${peer}`;
export const newLeafPeer = (peer: string): LeafPeer => ({ peer, user: leafUser(peer), password: randomBytes(24).toString('base64url') });

/** Replies and JetStream acks go to control planes' private inboxes (src/security/identities.ts inboxPrefixFor). */
const CONTROL_PLANE_INBOXES = '_INBOX.control-plane.>';
/** What JetStream stream sourcing across the link uses: create replies, deliveries, flow control. */
const SOURCING = ['$JSC.R.>', '$JS.S.>', '$JS.FC.>'];

/**
 * The hub's permissions for peer `p`'s leaf connection. Publish (from p): its own interdomain
 * commands and queries to any domain (its name is in the subject: it cannot speak for another),
 * its heartbeat, replies to control planes, and consumers on other domains' registry events
 * only. Subscribe (to p): commands and queries addressed to p, heartbeats, replies, and the
 * consumer API of p's own JetStream domain (the hub's server sources p's registry through it;
 * p narrows it with its deny_imports).
 */
export const leafPermissions = (p: string): Permissions => ({
  publish: {
    allow: [`nsm.*.fed.${p}.cmd.*`, `nsm.*.fed.${p}.query.*`, `nsm.${p}.fed.hb`, CONTROL_PLANE_INBOXES, '$JS.*.API.CONSUMER.CREATE.*.*.nsm.*.evt.endpoint.>', ...SOURCING],
  },
  subscribe: {
    allow: [`nsm.${p}.fed.*.cmd.*`, `nsm.${p}.fed.*.query.*`, 'nsm.*.fed.hb', CONTROL_PLANE_INBOXES, `$JS.${p}.API.CONSUMER.>`, ...SOURCING],
  },
});

/** A domain's internal subjects: nothing under them crosses a leaf link in either direction. */
const internalSubjects = (d: string): string[] => ['cmd.>', 'evt.>', 'node.>', 'hb.*', 'query.>', 'reply.>', 'notify.>', 'seal', 'progress.>'].map((s) => `nsm.${d}.${s}`);

/**
 * What a joining domain `d` refuses from the hub: its own internal subjects (only its fed
 * subjects may come in), and JetStream API use beyond consumers on its registry events.
 */
export const joinerDenyImports = (d: string): string[] => [
  ...internalSubjects(d),
  `$JS.${d}.API.STREAM.>`,
  `$JS.${d}.API.DIRECT.>`,
  `$JS.${d}.API.CONSUMER.DURABLE.>`,
  `$JS.${d}.API.CONSUMER.DELETE.>`,
  `$JS.${d}.API.CONSUMER.MSG.>`,
  `$JS.${d}.API.CONSUMER.CREATE.*`,
  `$JS.${d}.API.CONSUMER.CREATE.*.*`,
  ...AGGREGATE_NAMES.filter((a) => a !== 'endpoint').map((a) => `$JS.${d}.API.CONSUMER.CREATE.*.*.nsm.${d}.evt.${a}.>`),
];

/** What a joining domain never sends to the hub: its internal subjects. */
export const joinerDenyExports = internalSubjects;

const str = (x: unknown): x is string => typeof x === 'string' && x.length > 0;

export const parseLeafCredentials = (text: string, where: string): E.Either<string, LeafCredentials> => {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return E.left(`${where} is not an nsm leaf credentials file (not JSON)`);
  }
  if (raw?.nsm !== 'leaf-credentials') return E.left(`${where} is not an nsm leaf credentials file`);
  for (const k of ['hub', 'peer', 'user', 'password', 'ca'] as const) if (!str(raw[k])) return E.left(`${where}: field "${k}" is missing`);
  if (!DOMAIN_PATTERN.test(raw.hub as string) || !DOMAIN_PATTERN.test(raw.peer as string)) return E.left(`${where}: hub and peer must be domain names`);
  return E.right({ hub: raw.hub as string, peer: raw.peer as string, user: raw.user as string, password: raw.password as string, ca: raw.ca as string });
};

export const readLeafCredentials = (file: string): E.Either<string, LeafCredentials> => {
  try {
    return parseLeafCredentials(readFileSync(file, 'utf8'), file);
  } catch (e) {
    return E.left(`cannot read leaf credentials ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
};

/** Mode 0600; never replaces an existing file. */
export const writeLeafCredentials = (file: string, c: LeafCredentials): void => {
  writeFileSync(file, JSON.stringify({ nsm: 'leaf-credentials', version: 1, ...c }, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
};

/** The hub's URL with the leaf user's name and password in it (how a 2.9 remote authenticates). */
export const leafUrlWith = (url: string, c: Pick<LeafCredentials, 'user' | 'password'>): string => {
  const u = new URL(url);
  u.username = encodeURIComponent(c.user);
  u.password = encodeURIComponent(c.password);
  return u.toString().replace(/\/$/, '');
};

/** The peers file of a hub: its leaf users (0600: it holds their passwords). */
export const parsePeers = (text: string, where: string): E.Either<string, LeafPeer[]> => {
  try {
    const raw = JSON.parse(text) as { peers?: unknown };
    if (!Array.isArray(raw.peers)) return E.left(`${where}: no "peers" list`);
    const out: LeafPeer[] = [];
    for (const p of raw.peers as Record<string, unknown>[]) {
      if (!str(p.peer) || !str(p.user) || !str(p.password) || !DOMAIN_PATTERN.test(p.peer)) return E.left(`${where}: a peer entry is malformed`);
      out.push({ peer: p.peer, user: p.user, password: p.password });
    }
    return E.right(out);
  } catch {
    return E.left(`${where} is not JSON`);
  }
};
export const serializePeers = (domain: string, peers: readonly LeafPeer[]): string => JSON.stringify({ version: 1, domain, peers }, null, 2) + '\n';

/**
 * The leafnodes block of an authenticated domain's nats-server: a hub listens over TLS with the
 * deployment's server certificate (its leaf users are in nats-auth.conf); a joining domain
 * connects with its leaf credentials, checks the hub's certificate against the hub's CA, and
 * keeps its internal subjects to itself.
 */
export const secureLeafnodesConfig = (o: {
  readonly domain: string;
  readonly hub?: { readonly port: number; readonly host?: string; readonly tls: { certFile: string; keyFile: string; caFile: string } };
  readonly joins?: readonly { readonly url: string; readonly creds: LeafCredentials; readonly caFile: string }[];
}): string =>
  leafnodesConfig({
    ...(o.hub ? { hub: { port: o.hub.port, ...(o.hub.host ? { host: o.hub.host } : {}), tls: o.hub.tls } } : {}),
    remotes: (o.joins ?? []).map((j) => ({
      url: leafUrlWith(j.url, j.creds),
      caFile: j.caFile,
      denyImports: joinerDenyImports(o.domain),
      denyExports: joinerDenyExports(o.domain),
    })),
  });
