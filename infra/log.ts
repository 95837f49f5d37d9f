// Structured logging: one JSON object per line on stderr, with level, component and ids.
// NSM_LOG_LEVEL=debug|info|warn|error|silent (default info).

import { bigintsAsStrings } from '../src/contracts/canonicalJson.ts';
import type { Level, Logger } from '../src/ports/logger.ts';

const ORDER: Record<Level | 'silent', number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

const threshold = (level?: string): number => {
  const v = (level ?? process.env.NSM_LOG_LEVEL ?? 'info').toLowerCase();
  return v in ORDER ? ORDER[v as Level] : ORDER.info;
};

/** Whether a line of this level is written under this setting (NSM_LOG_LEVEL when absent). */
export const levelPasses = (level: string, setting?: string): boolean => (ORDER[level as Level] ?? ORDER.info) >= threshold(setting);

export const createLogger = (
  component: string,
  base: Record<string, unknown> = {},
  sink: (line: string) => void = (l) => process.stderr.write(l + '\n'),
  /** Overrides NSM_LOG_LEVEL for this logger and its children. */
  level?: string,
): Logger => {
  const min = threshold(level);
  const write = (level: Level, msg: string, fields?: Record<string, unknown>) => {
    if (ORDER[level] < min) return;
    sink(JSON.stringify({ time: new Date().toISOString(), level, component, msg, ...base, ...fields }, bigintsAsStrings));
  };
  return {
    debug: (m, f) => write('debug', m, f),
    info: (m, f) => write('info', m, f),
    warn: (m, f) => write('warn', m, f),
    error: (m, f) => write('error', m, f),
    child: (fields) => createLogger(component, { ...base, ...fields }, sink, level),
  };
};
