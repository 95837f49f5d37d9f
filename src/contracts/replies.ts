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

/** `too-large`: the answer does not fit one NATS message; a list query can be asked for a smaller page. */
export type QueryReply<T = unknown> = { readonly ok: true; readonly result: T } | { readonly ok: false; readonly error: string; readonly code?: 'too-large' };
