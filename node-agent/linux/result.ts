// The Linux dataplane's steps are long sequences of commands where each depends on the previous
// one having worked. They are written as async functions returning Either with early returns;
// these helpers keep that readable.
import * as E from 'fp-ts/lib/Either.js';
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { CommandError } from './exec.ts';

export type Outcome<A> = E.Either<string, A>;

/** Runs a command task and keeps only its message on failure. */
export const step = async <A>(t: TE.TaskEither<CommandError, A>): Promise<Outcome<A>> => E.mapLeft((e: CommandError) => e.message)(await t());

/** Like step, for commands whose output does not matter. */
export const stepDone = async (t: TE.TaskEither<CommandError, unknown>): Promise<Outcome<void>> => E.map(() => undefined)(await step(t));

/** Records what a step changed, so that a repair can say what it repaired. */
export class Changes {
  readonly list: string[] = [];
  add(what: string): void {
    this.list.push(what);
  }
}
