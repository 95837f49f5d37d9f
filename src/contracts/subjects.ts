// Every subject and stream name the mesh uses, in one place, derived from the domain.

export const DOMAIN_PATTERN = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
export const DOMAIN_HINT = 'use 1-32 lowercase letters, digits or "-"';

/**
 * Who sends a command or asks a query is a token of its subject, so that NATS permissions can
 * pin each identity to its own subjects (a user may publish only nsm.<d>.cmd.*.*.<itself>).
 * Subject tokens cannot hold ".", "*", ">" or spaces.
 */
export const ACTOR_PATTERN = /^[A-Za-z0-9_:@+=-]{1,128}$/;
export const ACTOR_HINT = 'letters, digits and _ : @ + = - (no dots or spaces), at most 128';
/** A name made into an actor token: other characters become "_". */
export const toActorToken = (s: string): string => s.replace(/[^A-Za-z0-9_:@+=-]/g, '_').slice(0, 128) || '_';

export interface Subjects {
  readonly domain: string;
  event(stream: string): string;
  readonly allEvents: string;
  command(aggregate: string, verb: string, actor: string): string;
  readonly allCommands: string;
  reply(actor: string, commandId: string): string;
  /** Progress of one stream for the actor that owns it (a client's own connections). */
  notify(actor: string, stream: string): string;
  nodeCommands(node: string): string;
  readonly allNodeCommands: string;
  heartbeat(node: string): string;
  readonly allHeartbeats: string;
  query(actor: string, name: string): string;
  readonly allQueries: string;
  /** Seal records of the audit chain (one subject, so its last sequence orders the appends). */
  readonly seal: string;
  /** Progress reports of a long operation (a projection rebuild), by operation id. */
  progress(id: string): string;
  /**
   * Federation (docs/federation.md), everything another domain sends here: durable commands
   * from domain `from` (stored in this domain's command stream), its queries, and this domain's
   * heartbeat that peers listen to. All under nsm.<domain>.fed, so one prefix names what may
   * cross a leafnode link.
   */
  fedCommand(from: string, verb: string): string;
  /** The command stream's subjects for commands from these peers (any peer when absent). */
  fedCommands(peers?: readonly string[]): string[];
  fedQuery(from: string, name: string): string;
  fedQueries(peers?: readonly string[]): string[];
  readonly fedHeartbeat: string;
  readonly streams: {
    readonly events: string;
    readonly commands: string;
    readonly nodeCommands: string;
    readonly seals: string;
    /** Read-only copies of other domains' registry events, kept by stream sourcing (no subjects of its own). */
    readonly remote: string;
  };
  /** Object store bucket of projection snapshots (its stream: OBJ_<bucket>). */
  readonly snapshotBucket: string;
  /** KV bucket of the process manager's checkpoints (its stream: KV_<bucket>). */
  readonly checkpointBucket: string;
  /** KV bucket of the control-plane replicas' leadership lease (its stream: KV_<bucket>). */
  readonly leaseBucket: string;
}

export const subjectsFor = (domain: string): Subjects => {
  const p = `nsm.${domain}`;
  const upper = domain.toUpperCase().replace(/-/g, '_');
  return {
    domain,
    event: (stream) => `${p}.evt.${stream}`,
    allEvents: `${p}.evt.>`,
    command: (aggregate, verb, actor) => `${p}.cmd.${aggregate}.${verb}.${actor}`,
    allCommands: `${p}.cmd.>`,
    reply: (actor, commandId) => `${p}.reply.${actor}.${commandId}`,
    notify: (actor, stream) => `${p}.notify.${actor}.${stream}`,
    nodeCommands: (node) => `${p}.node.${node}.cmd`,
    allNodeCommands: `${p}.node.*.cmd`,
    heartbeat: (node) => `${p}.hb.${node}`,
    allHeartbeats: `${p}.hb.*`,
    query: (actor, name) => `${p}.query.${actor}.${name}`,
    allQueries: `${p}.query.*.*`,
    seal: `${p}.seal`,
    progress: (id) => `${p}.progress.${id}`,
    fedCommand: (from, verb) => `${p}.fed.${from}.cmd.${verb}`,
    fedCommands: (peers) => (peers ? peers.map((from) => `${p}.fed.${from}.cmd.*`) : [`${p}.fed.*.cmd.*`]),
    fedQuery: (from, name) => `${p}.fed.${from}.query.${name}`,
    fedQueries: (peers) => (peers ? peers.map((from) => `${p}.fed.${from}.query.*`) : [`${p}.fed.*.query.*`]),
    fedHeartbeat: `${p}.fed.hb`,
    streams: {
      events: `NSM_${upper}_EVENTS`,
      commands: `NSM_${upper}_COMMANDS`,
      nodeCommands: `NSM_${upper}_NODE`,
      seals: `NSM_${upper}_SEALS`,
      remote: `NSM_${upper}_REMOTE`,
    },
    snapshotBucket: `nsm_${domain.replace(/-/g, '_')}_snapshots`,
    checkpointBucket: `nsm_${domain.replace(/-/g, '_')}_checkpoints`,
    leaseBucket: `nsm_${domain.replace(/-/g, '_')}_lease`,
  };
};

/** A peer domain as an actor: the sender of its interdomain commands and queries. */
export const peerActor = (domain: string): string => `peer:${domain}`;
export const domainOfPeerActor = (actor: string): string | undefined => (actor.startsWith('peer:') ? actor.slice('peer:'.length) : undefined);

/**
 * "nsm.<d>.cmd.<aggregate>.<verb>.<actor>" -> its parts; "nsm.<d>.fed.<from>.cmd.<verb>" is the
 * command "interdomain.<verb>" from actor "peer:<from>". undefined when it has another shape.
 */
export const parseCommandSubject = (subjects: Subjects, subject: string): { kind: string; actor: string } | undefined => {
  const fed = `nsm.${subjects.domain}.fed.`;
  if (subject.startsWith(fed)) {
    const tokens = subject.slice(fed.length).split('.');
    if (tokens.length !== 3 || tokens[1] !== 'cmd' || !DOMAIN_PATTERN.test(tokens[0]!)) return undefined;
    return { kind: `interdomain.${tokens[2]}`, actor: peerActor(tokens[0]!) };
  }
  const prefix = `nsm.${subjects.domain}.cmd.`;
  if (!subject.startsWith(prefix)) return undefined;
  const tokens = subject.slice(prefix.length).split('.');
  if (tokens.length !== 3) return undefined;
  return { kind: `${tokens[0]}.${tokens[1]}`, actor: tokens[2]! };
};

/** "nsm.<d>.query.<actor>.<name>" -> its parts. */
export const parseQuerySubject = (subjects: Subjects, subject: string): { actor: string; name: string } | undefined => {
  // A message the server delivers to a query subject on behalf of a JetStream consumer keeps its
  // stream subject: only a real query subject names an asker.
  const prefix = `nsm.${subjects.domain}.query.`;
  if (!subject.startsWith(prefix)) return undefined;
  const tokens = subject.slice(prefix.length).split('.');
  return tokens.length === 2 ? { actor: tokens[0]!, name: tokens[1]! } : undefined;
};

/**
 * Whether some subject matches both patterns ("*" one token, ">" one or more at the end). Two
 * domains' streams must never overlap: a publish into one domain's subject would be stored by
 * whichever stream captures it, across the leafnode link too.
 */
export const subjectsOverlap = (a: string, b: string): boolean => {
  const ta = a.split('.');
  const tb = b.split('.');
  for (let i = 0; ; i++) {
    const x = ta[i];
    const y = tb[i];
    if (x === undefined && y === undefined) return true;
    if (x === '>') return y !== undefined;
    if (y === '>') return x !== undefined;
    if (x === undefined || y === undefined) return false;
    if (x !== '*' && y !== '*' && x !== y) return false;
  }
};

/** The durable consumer an agent reads its node's commands with (its NATS permissions name it). */
export const agentConsumerName = (node: string) => `agent-${node}`;
