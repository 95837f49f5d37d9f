// What the control plane answers on nsm.<domain>.reply.<commandId> once a command is handled.

export type ReplyErrorCode =
  | 'invalid'
  | 'unknown-command'
  | 'not-found'
  | 'conflict'
  | 'wrong-state'
  | 'pool-exhausted'
  | 'unsupported'
  | 'unavailable'
  | 'forbidden';

export type CommandReply =
  | {
      readonly ok: true;
      readonly commandId: string;
      readonly stream: string;
      readonly events: readonly { readonly type: string; readonly version: number }[];
      /** Log position of the commit, as a decimal string (positions are 64-bit). */
      readonly position?: string;
      /** Nothing changed: the command was already applied or asked for the current state. */
      readonly noop: boolean;
    }
  | { readonly ok: false; readonly commandId: string; readonly error: { readonly code: ReplyErrorCode; readonly message: string } };

/**
 * Why a query was not answered, as a kind, so that no consumer (the HTTP status, the SDK) reads
 * it from the words of the message: `forbidden` (the asker may not ask this), `not-found` (no
 * such connection, nothing in the log under that id, no such peer), `invalid` (bad parameters,
 * or a question this server cannot answer as asked), `unavailable` (the store or the read model
 * cannot answer now; asking again later may work), `too-large` (the answer does not fit one NATS
 * message; a list query can be asked for a smaller page).
 */
export type QueryErrorCode = 'forbidden' | 'not-found' | 'invalid' | 'unavailable' | 'too-large';
export const QUERY_ERROR_CODES: readonly QueryErrorCode[] = ['forbidden', 'not-found', 'invalid', 'unavailable', 'too-large'];
export interface QueryError {
  readonly code: QueryErrorCode;
  readonly message: string;
}
export const queryError = (code: QueryErrorCode, message: string): QueryError => ({ code, message });

/** `code` beside `error` since it was added; older servers answer without it. */
export type QueryReply<T = unknown> = { readonly ok: true; readonly result: T } | { readonly ok: false; readonly error: string; readonly code?: QueryErrorCode };
