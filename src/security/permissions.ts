// Least privilege, enforced by nats-server: what each role may publish and subscribe to, derived
// from the mesh's subjects. The control plane checks the same role rules again on every command
// and query (src/security/authorize.ts); the server's check is the one an identity cannot skip.
import { agentConsumerName } from '../contracts/subjects.ts';
import { subjectsFor } from '../contracts/subjects.ts';
import type { CommandKind } from '../contracts/commands.ts';
import { CONTROL_PLANE_CONSUMER, meshStreams, objectStream } from '../../infra/nats/streams.ts';
import type { QueryName } from '../read/queries.ts';
import { inboxPrefixFor, loginKeys, type Identity, type Permissions, type Role } from './identities.ts';
import { leafPermissions, type LeafPeer } from './leaf.ts';

/** Commands each role may send (all others are refused by the server and the control plane). */
export const ROLE_COMMANDS: Readonly<Record<Role, readonly CommandKind[]>> = {
  // The control plane appends to the log directly; it sends no commands.
  'control-plane': [],
  operator: [
    'service.register',
    'service.unregister',
    'endpoint.register',
    'endpoint.unregister',
    'node.leave',
    'connection.request',
    'connection.close',
    'connection.refresh',
    'policy.set',
    'policy.add',
    'policy.remove',
    'workflow.retry',
    'limits.set',
  ],
  client: ['connection.request', 'connection.close', 'connection.refresh'],
  agent: ['node.join', 'connection.report'],
  auditor: [],
};

/**
 * Queries each role may ask; 'all' reads everything. Clients' answers are cut to their own
 * connections. The auditor reads: every query that only reads, and nothing that makes the control
 * plane work on its behalf beyond answering (no `projections-rebuild`, which folds the whole log
 * and saves a snapshot; `runtime` only without `gc`, see RUNTIME_GC_ROLES).
 */
export const ROLE_QUERIES: Readonly<Record<Role, 'all' | readonly QueryName[]>> = {
  'control-plane': 'all',
  operator: 'all',
  auditor: ['services', 'endpoints', 'connections', 'connection', 'nodes', 'node-desired', 'addresses', 'history', 'status', 'replay', 'policy', 'runtime', 'peers', 'remote-endpoints', 'failed-steps', 'limits', 'cluster', 'topology'],
  client: ['services', 'connections', 'connection', 'history', 'topology'],
  agent: ['node-desired'],
};

/** Roles that may ask `runtime` with `gc: true` (a full garbage collection on the control plane). */
export const RUNTIME_GC_ROLES: readonly Role[] = ['control-plane', 'operator'];

/** Whether a role may ask a query at all (its scope, a client's own connections, is checked by the guard). */
export const mayAsk = (role: Role, name: string): boolean => {
  const allowed = ROLE_QUERIES[role];
  return allowed === 'all' || (allowed as readonly string[]).includes(name);
};


/** The JetStream stream API verbs that change a stream (or its messages). */
const STREAM_CHANGES = ['CREATE', 'UPDATE', 'DELETE', 'PURGE', 'MSG.DELETE'] as const;

/**
 * What no run-time identity may do to the streams the mesh keeps (infra/nats/streams.ts
 * meshStreams): create, update, delete or purge them, or delete a message. `nsm up`'s setup step
 * makes them before any of these identities connects. One exception: the control plane purges
 * the chunks of a replaced snapshot from the snapshot object store (nats.js does that on every
 * put), so PURGE of that one stream stays allowed to it.
 */
export const protectedStreamDenies = (domain: string, o: { allowSnapshotPurge?: boolean } = {}): string[] => {
  const s = subjectsFor(domain);
  const snapshots = objectStream(s.snapshotBucket);
  return meshStreams(s).flatMap(({ name }) =>
    STREAM_CHANGES.filter((v) => !(o.allowSnapshotPurge && v === 'PURGE' && name === snapshots)).map((v) => `$JS.API.STREAM.${v}.${name}`),
  );
};

/** For every role but the control plane: no stream or consumer of the account may be changed or deleted, whatever its name. */
const NO_STREAM_CHANGES = [...STREAM_CHANGES.map((v) => `$JS.API.STREAM.${v}.>`), '$JS.API.CONSUMER.DELETE.>'];

/**
 * Reading the log and its seals straight from JetStream, as `nsm replay`, `nsm audit verify` and
 * `nsm audit export` do (jetStreamEventStore and jetStreamSealStore with create: false): the
 * JetStream account info, the two streams' info, direct get of single events (the time index
 * of --until/--since), and ordered pull consumers filtered on the streams' own subjects. Nothing
 * that writes: no publish to a stream subject, no stream or consumer change or delete. (A
 * consumer created this way delivers to the reader's own inbox; the ordered consumers of nats.js
 * are ephemeral and expire on their own.)
 */
export const logReaderPermissions = (domain: string): string[] => {
  const s = subjectsFor(domain);
  const { events, seals } = s.streams;
  return [
    '$JS.API.INFO',
    `$JS.API.STREAM.INFO.${events}`,
    `$JS.API.STREAM.INFO.${seals}`,
    `$JS.API.DIRECT.GET.${events}`,
    `$JS.API.CONSUMER.CREATE.${events}.*.${s.allEvents}`,
    `$JS.API.CONSUMER.CREATE.${seals}.*.${s.seal}`,
    `$JS.API.CONSUMER.MSG.NEXT.${events}.*`,
    `$JS.API.CONSUMER.MSG.NEXT.${seals}.*`,
  ];
};

/**
 * The control plane's JetStream API: reads of any stream (info, message get, direct get), the
 * info of the agents' durable consumers (their backlogs, for the metrics),
 * consumers on the streams it reads (ordered consumers on the log, the seals, the snapshot store
 * and the copy of peers' registries; its durable consumer of the command stream), purging a
 * replaced snapshot's chunks, and creating and updating the copy of peers' registries
 * (federation: a read-only copy the server keeps by sourcing, no evidence). No stream create,
 * update or delete of any stream it keeps (protectedStreamDenies).
 */
const controlPlaneJetStream = (domain: string): string[] => {
  const s = subjectsFor(domain);
  const { events, seals, commands, remote } = s.streams;
  const snapshots = objectStream(s.snapshotBucket);
  return [
    '$JS.API.INFO',
    '$JS.API.STREAM.NAMES',
    '$JS.API.STREAM.LIST',
    '$JS.API.STREAM.INFO.*',
    '$JS.API.STREAM.MSG.GET.*',
    '$JS.API.DIRECT.GET.>',
    // Ordered consumers (named, with the filter in the subject; the object store's push consumer by the older subject).
    ...[events, seals, remote, snapshots].flatMap((x) => [`$JS.API.CONSUMER.CREATE.${x}`, `$JS.API.CONSUMER.CREATE.${x}.>`, `$JS.API.CONSUMER.INFO.${x}.*`, `$JS.API.CONSUMER.MSG.NEXT.${x}.*`, `$JS.API.CONSUMER.DELETE.${x}.*`]),
    // Its one durable consumer of the command stream, shared by the replicas.
    `$JS.API.CONSUMER.CREATE.${commands}.${CONTROL_PLANE_CONSUMER}`,
    `$JS.API.CONSUMER.DURABLE.CREATE.${commands}.${CONTROL_PLANE_CONSUMER}`,
    `$JS.API.CONSUMER.INFO.${commands}.${CONTROL_PLANE_CONSUMER}`,
    `$JS.API.CONSUMER.MSG.NEXT.${commands}.${CONTROL_PLANE_CONSUMER}`,
    `$JS.ACK.${commands}.>`,
    // The agents' durable consumers, read only: their backlogs are metrics (nsm_node_command_consumer_*;
    // a dead agent's backlog is seen only from outside it). It already reads every message of that stream.
    `$JS.API.CONSUMER.INFO.${s.streams.nodeCommands}.*`,
    // The chunks of a replaced snapshot; flow control of the ordered consumer that reads a snapshot.
    `$JS.API.STREAM.PURGE.${snapshots}`,
    `$JS.FC.${snapshots}.>`,
    // Federation: the copy of peers' registries.
    `$JS.API.STREAM.CREATE.${remote}`,
    `$JS.API.STREAM.UPDATE.${remote}`,
    // Its buckets' own subjects (values and object chunks).
    `$KV.${s.checkpointBucket}.>`,
    `$KV.${s.leaseBucket}.>`,
    `$O.${s.snapshotBucket}.>`,
  ];
};

export const permissionsFor = (domain: string, id: Identity): Permissions => {
  const s = subjectsFor(domain);
  const p = `nsm.${domain}`;
  const inbox = `${inboxPrefixFor(id.actor)}.>`;
  const commands = ROLE_COMMANDS[id.role].map((k) => {
    const [aggregate, verb] = k.split('.') as [string, string];
    return s.command(aggregate, verb, id.actor);
  });
  const queries = ROLE_QUERIES[id.role];
  const querySubjects = queries === 'all' ? [s.query(id.actor, '*')] : queries.map((q) => s.query(id.actor, q));
  switch (id.role) {
    case 'control-plane':
      return {
        publish: {
          // nsm.*.fed.<domain>...: its interdomain commands and queries to peer domains (docs/federation.md).
          allow: [`${p}.>`, `nsm.*.fed.${domain}.cmd.*`, `nsm.*.fed.${domain}.query.*`, ...controlPlaneJetStream(domain), '_INBOX.>'],
          // The log, its seals and every other stream it keeps: not even the one identity that
          // writes them may reshape, purge or delete them (a stolen key included).
          deny: protectedStreamDenies(domain, { allowSnapshotPurge: true }),
        },
        subscribe: { allow: [`${p}.>`, 'nsm.*.fed.hb', inbox] },
      };
    case 'agent': {
      const node = id.name;
      const stream = s.streams.nodeCommands;
      const durable = agentConsumerName(node);
      return {
        publish: {
          allow: [
            ...commands,
            ...querySubjects,
            s.heartbeat(node),
            // Its own durable consumer only, and only with its own node's filter: the server
            // refuses a create request whose filter differs from the one in the subject.
            `$JS.API.CONSUMER.CREATE.${stream}.${durable}.${s.nodeCommands(node)}`,
            `$JS.API.CONSUMER.INFO.${stream}.${durable}`,
            `$JS.API.CONSUMER.MSG.NEXT.${stream}.${durable}`,
            `$JS.ACK.${stream}.${durable}.>`,
          ],
          deny: NO_STREAM_CHANGES,
        },
        subscribe: { allow: [inbox] },
      };
    }
    case 'operator':
      return {
        // The operator audits too: nsm replay, nsm audit verify|export read the log themselves.
        publish: { allow: [...commands, ...querySubjects, ...logReaderPermissions(domain)], deny: NO_STREAM_CHANGES },
        subscribe: { allow: [`${s.reply(id.actor, '>')}`, `${s.notify(id.actor, '>')}`, inbox] },
      };
    case 'client':
      return {
        publish: { allow: [...commands, ...querySubjects], deny: NO_STREAM_CHANGES },
        subscribe: { allow: [`${s.reply(id.actor, '>')}`, `${s.notify(id.actor, '>')}`, inbox] },
      };
    case 'auditor':
      return { publish: { allow: [...querySubjects, ...logReaderPermissions(domain)], deny: NO_STREAM_CHANGES }, subscribe: { allow: [inbox] } };
  }
};

/**
 * The one-time administrative identity of `nsm up`'s setup step (src/security/setup.ts): the
 * whole JetStream API, for creating the mesh's streams before any other identity connects. Its
 * key is made in memory for one start and never written down; once the streams are there, the
 * server's configuration is reloaded without it.
 */
export const SETUP_INBOX_PREFIX = '_INBOX._setup';
export const setupPermissions = (): Permissions => ({
  publish: { allow: ['$JS.API.>'] },
  subscribe: { allow: [`${SETUP_INBOX_PREFIX}.>`] },
});

const list = (xs: readonly string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;
const side = (r: { allow: readonly string[]; deny?: readonly string[] }) =>
  `{ allow: ${list(r.allow)}${r.deny && r.deny.length > 0 ? `, deny: ${list(r.deny)}` : ''} }`;

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
}

/**
 * The authorization and TLS blocks of nats-server's configuration for a deployment (and its peers'
 * leaf users) as they hold at `now`: one user per key an identity may log in with (its current key
 * and rotated-out keys still in their grace period, ./identities.ts loginKeys), none for a revoked
 * identity.
 */
export const natsSecurityConfig = (domain: string, identities: readonly Identity[], tls: TlsFiles, peers: readonly LeafPeer[] = [], setup?: { readonly publicKey: string }, now: Date = new Date()): string =>
  [
    `# Generated by "nsm init" for domain "${domain}": nkey users with least-privilege permissions, TLS.`,
    '# Regenerated from identities.json by "nsm init"; edits here are overwritten.',
    'authorization {',
    '  users: [',
    ...identities.flatMap((id) => {
      if (id.revokedAt) return [`    # ${id.role} ${id.actor}: revoked at ${id.revokedAt}`];
      const perm = permissionsFor(domain, id);
      return loginKeys(id, now).map(
        (key) =>
          `    # ${id.role} ${id.actor}${key === id.publicKey ? '' : ' (rotated-out key, in its grace period)'}\n    { nkey: ${JSON.stringify(key)}, permissions: { publish: ${side(perm.publish)}, subscribe: ${side(perm.subscribe)} } }`,
      );
    }),
    // nats-server 2.9 leafnode remotes authenticate with a user and password (docs/federation.md).
    ...peers.map((lp) => {
      const perm = leafPermissions(lp.peer);
      return `    # leafnode link of peer domain ${lp.peer}\n    { user: ${JSON.stringify(lp.user)}, password: ${JSON.stringify(lp.password)}, permissions: { publish: ${side(perm.publish)}, subscribe: ${side(perm.subscribe)} } }`;
    }),
    ...(setup
      ? [`    # setup: nsm up's one-time administrative identity (creates the streams; removed by a reload once they exist)\n    { nkey: ${JSON.stringify(setup.publicKey)}, permissions: { publish: ${side(setupPermissions().publish)}, subscribe: ${side(setupPermissions().subscribe)} } }`]
      : []),
    '  ]',
    '}',
    'tls {',
    `  cert_file: ${JSON.stringify(tls.certFile)}`,
    `  key_file: ${JSON.stringify(tls.keyFile)}`,
    `  ca_file: ${JSON.stringify(tls.caFile)}`,
    '  timeout: 5',
    '}',
    '',
  ].join('\n');
