// Load, decide, append with the expected version; on a conflict reload and decide again,
// a bounded number of times.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { DomainError } from '../../aggregates/domain.ts';
import { commitHash } from '../audit/hash.ts';
import type { Commit, EventEnvelope, StoredCommit } from '../contracts/envelope.ts';
import { schemaOf } from '../contracts/upcast.ts';
import type { EventStore, StoreError } from '../ports/eventStore.ts';
import { aggregateOf, type Repository } from './repository.ts';
import type { AnyAggregateCommand, CommandOfStream } from '../../aggregates/index.ts';

export interface CommandMeta {
  /** Becomes the commit id: a command retried within the duplicate window is stored once. */
  readonly commandId: string;
  readonly correlationId: string;
  readonly causationId: string;
  readonly actor: string;
  readonly domain: string;
  readonly now: () => Date;
  /** Whose work this is (the requester), so that decisions queued on one stream take turns between requesters. */
  readonly lane?: string;
}

export type ExecError =
  | { readonly kind: 'domain'; readonly error: DomainError }
  | { readonly kind: 'store'; readonly error: StoreError }
  | { readonly kind: 'conflict'; readonly message: string };

export interface ExecResult {
  readonly stream: string;
  readonly events: readonly EventEnvelope[];
  readonly position?: bigint;
  readonly duplicate: boolean;
  /** Aggregate state after the command. */
  readonly state: unknown;
  /** Undo of what onDecided recorded; call once the read model holds the commit. */
  readonly settle?: () => void;
}

export interface ExecHooks {
  /** Runs right after a decision with events, before the append: may return an undo. */
  onDecided?(events: readonly unknown[]): (() => void) | void;
}

export const MAX_ATTEMPTS = 10;

export interface ExecDeps {
  readonly store: EventStore;
  /**
   * Also serializes decisions per stream inside this process (Repository.exclusive). Without
   * that, concurrent workflow steps on one stream (allocations from one endpoint's pool) all
   * decide on the same revision, all but one conflict, and retrying them together makes the
   * cost grow with the square of the load.
   */
  readonly repo: Repository;
}

export const execute = <S extends string>(
  deps: ExecDeps,
  stream: S,
  /** The command (one of the stream's aggregate's), or a function building it from current context right before the decision. */
  command: CommandOfStream<S> | (() => CommandOfStream<S>),
  meta: CommandMeta,
  hooks: ExecHooks = {},
): Promise<E.Either<ExecError, ExecResult>> => deps.repo.exclusive(stream, () => decideAndAppend(deps, stream, command, meta, hooks), meta.lane);

const decideAndAppend = async (
  deps: ExecDeps,
  stream: string,
  command: AnyAggregateCommand | (() => AnyAggregateCommand),
  meta: CommandMeta,
  hooks: ExecHooks,
): Promise<E.Either<ExecError, ExecResult>> => {
  const agg = aggregateOf(stream);
  if (!agg) return E.left({ kind: 'domain', error: { code: 'invalid', message: `unknown stream ${stream}` } });
  let forceFresh = false;
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const loaded = await deps.repo.load(stream, { fresh: forceFresh });
    if (E.isLeft(loaded)) return E.left({ kind: 'store', error: loaded.left });
    // Built after the (asynchronous) load and decided without a pause, so context read here
    // (endpoint loads) plus onDecided cannot interleave with another decision.
    const cmd = typeof command === 'function' ? command() : command;
    const decision = agg.decide(cmd, loaded.right.state);
    // A cached state can lag behind another replica's append. A decision with events is checked
    // by the expected version on append; a rejection or a no-op is not, so confirm it against the
    // store (a report for a path this replica has not seen yet is not stale, it is early).
    if ((E.isLeft(decision) || decision.right.length === 0) && !loaded.right.fresh) {
      forceFresh = true;
      attempt--;
      continue;
    }
    if (E.isLeft(decision)) return E.left({ kind: 'domain', error: decision.left });
    const data = decision.right;
    if (data.length === 0) return E.right({ stream, events: [], duplicate: false, state: loaded.right.state });
    const time = meta.now().toISOString();
    const events: EventEnvelope[] = data.map((d, i) => ({
      id: randomUUID(),
      type: (d as { type: string }).type,
      stream,
      version: loaded.right.count + i + 1,
      time,
      correlationId: meta.correlationId,
      causationId: meta.causationId,
      domain: meta.domain,
      actor: meta.actor,
      schema: schemaOf((d as { type: string }).type),
      data: d as { type: string },
    }));
    const prevHash = loaded.right.hash;
    const commit: Commit = { commitId: meta.commandId, stream, events, prevHash, hash: commitHash({ commitId: meta.commandId, stream, events, prevHash }) };
    const undo = hooks.onDecided?.(data) ?? undefined;
    const appended = await deps.store.append(commit, loaded.right.revision)();
    if (E.isLeft(appended) || appended.right.duplicate) undo?.();
    if (E.isLeft(appended)) {
      if (appended.left.kind === 'wrong-expected-version') {
        forceFresh = true;
        continue;
      }
      return E.left({ kind: 'store', error: appended.left });
    }
    if (appended.right.duplicate) {
      // Stored earlier under this command id: report what is stored, not what we just built.
      const fresh = await deps.repo.load(stream, { fresh: true });
      return E.right({ stream, events: [], position: appended.right.position, duplicate: true, state: E.isRight(fresh) ? fresh.right.state : loaded.right.state });
    }
    const stored: StoredCommit = { ...commit, revision: appended.right.revision, position: appended.right.position };
    const after = data.reduce((s, e) => agg.evolve(s, e), loaded.right.state);
    // The state just decided on, folded once: the cache takes it as it is.
    deps.repo.remember(stored, after, loaded.right.count + events.length);
    return E.right({ stream, events, position: appended.right.position, duplicate: false, state: after, ...(undo ? { settle: undo } : {}) });
  }
  return E.left({ kind: 'conflict', message: `gave up on ${stream} after ${MAX_ATTEMPTS} version conflicts` });
};

export const execErrorMessage = (e: ExecError): string =>
  e.kind === 'domain' ? e.error.message : e.kind === 'store' ? `event store ${e.error.kind}: ${e.error.message}` : e.message;

/** An infrastructure failure: the event must be redelivered and the step retried. */
export class RetryLater extends Error {}

/** One step of a workflow: a domain refusal is an answer (returned), anything else is retried later (thrown). */
export const executeStep = async <S extends string>(deps: ExecDeps, stream: S, command: CommandOfStream<S> | (() => CommandOfStream<S>), meta: CommandMeta, hooks?: ExecHooks) => {
  const r = await execute(deps, stream, command, meta, hooks);
  if (E.isLeft(r) && r.left.kind !== 'domain') throw new RetryLater(execErrorMessage(r.left));
  return r;
};
