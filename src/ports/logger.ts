// The logging port: structured lines with a level, a message and fields. The adapter is
// infra/log.ts (JSON lines on stderr, through pino); tests pass their own sinks.

export type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
}

/** The message of whatever was thrown. */
export const errorText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
