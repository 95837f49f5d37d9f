// Given/when/then for the event-sourced aggregates:
//
//   given(connection, [requested, selected])      // folds the history with evolve
//     .when({ type: 'CloseConnection', ... })      // runs decide
//     .thenEvents([{ type: 'ConnectionClosed', reason: 'done' }])   // deep-equals the events...
//     .when(closeAgain).thenEvents([]);            // ...and continues from the evolved state
//
//   given(node).when(leave).thenRejected('not-found', 'has not joined');
//
// decide gets a deep-frozen copy of the state, so a decide that mutates its input fails loudly.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import type { Aggregate, DomainError, DomainErrorCode } from '../../aggregates/domain.ts';

export interface Scenario<S, C, Ev> {
  readonly aggregate: Aggregate<S, C, Ev>;
  /** Every event folded so far, in order. */
  readonly history: readonly Ev[];
  /** The state after folding `history` from the aggregate's initial state. */
  readonly state: S;
  when(command: C): Outcome<S, C, Ev>;
}

export interface Outcome<S, C, Ev> {
  readonly command: C;
  readonly result: E.Either<DomainError, readonly Ev[]>;
  /** The emitted events; fails the test when the command was rejected. */
  events(): readonly Ev[];
  /** Asserts exactly these events (deep equality) and continues from the state they produce. */
  thenEvents(expected: readonly Ev[]): Scenario<S, C, Ev>;
  /** Accepts whatever was emitted (check it with events() first) and continues from there. */
  accepted(): Scenario<S, C, Ev>;
  /** Asserts a rejection with this code whose message contains `messageSubstring`; returns the error. */
  thenRejected(code: DomainErrorCode, messageSubstring: string): DomainError;
}

const deepFreeze = <T>(value: T): T => {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
};

const show = (x: unknown): string => JSON.stringify(x);

const scenario = <S, C, Ev>(aggregate: Aggregate<S, C, Ev>, history: readonly Ev[], state: S): Scenario<S, C, Ev> => ({
  aggregate,
  history,
  state,
  when(command) {
    const result = aggregate.decide(command, deepFreeze(structuredClone(state)));
    const events = (): readonly Ev[] => {
      if (E.isLeft(result)) {
        assert.unreachable(`expected ${show((command as { type?: string }).type)} to be accepted, got ${show(result.left)}`);
        throw new Error('unreachable');
      }
      return result.right;
    };
    const continueWith = (evs: readonly Ev[]) => scenario(aggregate, [...history, ...evs], evs.reduce(aggregate.evolve, state));
    return {
      command,
      result,
      events,
      thenEvents(expected) {
        const actual = events();
        assert.equal(actual, expected, `events of ${show((command as { type?: string }).type)}`);
        return continueWith(actual);
      },
      accepted: () => continueWith(events()),
      thenRejected(code, messageSubstring) {
        if (E.isRight(result)) {
          assert.unreachable(`expected a ${code} rejection, got events ${show(result.right)}`);
          throw new Error('unreachable');
        }
        assert.is(result.left.code, code, `rejection code (message: ${result.left.message})`);
        assert.ok(
          result.left.message.includes(messageSubstring),
          `rejection message ${show(result.left.message)} should contain ${show(messageSubstring)}`,
        );
        return result.left;
      },
    };
  },
});

/** The aggregate's state after `events`, ready for a command. */
export const given = <S, C, Ev>(aggregate: Aggregate<S, C, Ev>, events: readonly Ev[] = []): Scenario<S, C, Ev> =>
  scenario(aggregate, events, events.reduce(aggregate.evolve, aggregate.initialState));
