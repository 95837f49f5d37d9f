// StoredCommits built the way the store hands them out (global positions, per-stream versions),
// for folding projections by hand in unit tests.
import type { DomainEvent } from '../../aggregates/index.ts';
import { asPosition, type EventEnvelope, type StoredCommit } from '../../src/contracts/envelope.ts';
import { schemaOf } from '../../src/contracts/upcast.ts';

/** The time of the commit at `position`: one second apart from 2030-01-01. */
export const timeAt = (position: number): string => new Date(Date.UTC(2030, 0, 1, 0, 0, position)).toISOString();

/** A fresh log: each call appends one commit of `events` to `stream`, by `actor`. */
export const commitLog = (defaultActor = 'operator') => {
  let position = 0;
  const versions = new Map<string, number>();
  return (stream: string, events: readonly DomainEvent[], actor = defaultActor): StoredCommit => {
    position++;
    const first = (versions.get(stream) ?? 0) + 1;
    versions.set(stream, first + events.length - 1);
    const envelopes: EventEnvelope<DomainEvent>[] = events.map((data, i) => ({
      id: `evt-${position}-${i}`,
      type: data.type,
      stream,
      version: first + i,
      time: timeAt(position),
      correlationId: `corr-${stream}`,
      causationId: `cmd-${position}`,
      domain: 'test',
      actor,
      schema: schemaOf(data.type),
      data,
    }));
    return { commitId: `commit-${position}`, stream, events: envelopes, revision: first + events.length - 1, position: asPosition(position) };
  };
};
