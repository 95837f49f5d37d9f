// Every subject and stream name the mesh uses, in one place, derived from the domain.

export const DOMAIN_PATTERN = /^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$/;
export const DOMAIN_HINT = 'use 1-32 lowercase letters, digits or "-"';

export interface Subjects {
  readonly domain: string;
  event(stream: string): string;
  readonly allEvents: string;
  command(aggregate: string, verb: string): string;
  readonly allCommands: string;
  reply(commandId: string): string;
  nodeCommands(node: string): string;
  readonly allNodeCommands: string;
  heartbeat(node: string): string;
  readonly allHeartbeats: string;
  query(name: string): string;
  readonly allQueries: string;
  /** Seal records of the audit chain (one subject, so its last sequence orders the appends). */
  readonly seal: string;
  /** Progress reports of a long operation (a projection rebuild), by operation id. */
  progress(id: string): string;
  readonly streams: { readonly events: string; readonly commands: string; readonly nodeCommands: string; readonly seals: string };
  /** Object store bucket of projection snapshots. */
  readonly snapshotBucket: string;
}

export const subjectsFor = (domain: string): Subjects => {
  const p = `nsm.${domain}`;
  const upper = domain.toUpperCase().replace(/-/g, '_');
  return {
    domain,
    event: (stream) => `${p}.evt.${stream}`,
    allEvents: `${p}.evt.>`,
    command: (aggregate, verb) => `${p}.cmd.${aggregate}.${verb}`,
    allCommands: `${p}.cmd.>`,
    reply: (commandId) => `${p}.reply.${commandId}`,
    nodeCommands: (node) => `${p}.node.${node}.cmd`,
    allNodeCommands: `${p}.node.*.cmd`,
    heartbeat: (node) => `${p}.hb.${node}`,
    allHeartbeats: `${p}.hb.*`,
    query: (name) => `${p}.query.${name}`,
    allQueries: `${p}.query.>`,
    seal: `${p}.seal`,
    progress: (id) => `${p}.progress.${id}`,
    streams: { events: `NSM_${upper}_EVENTS`, commands: `NSM_${upper}_COMMANDS`, nodeCommands: `NSM_${upper}_NODE`, seals: `NSM_${upper}_SEALS` },
    snapshotBucket: `nsm_${domain.replace(/-/g, '_')}_snapshots`,
  };
};

/** The stream name ("connection.<id>") from an event subject. */
export const streamFromEventSubject = (subjects: Subjects, subject: string): string =>
  subject.slice(`nsm.${subjects.domain}.evt.`.length);
