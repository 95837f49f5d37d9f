// Parsing of the CLI's compact argument forms: labels, durations, match rules.
import * as E from 'fp-ts/lib/Either.js';
import type { Match } from '../../aggregates/domain.ts';

export const parseLabels = (items: readonly string[], flag = '--label'): E.Either<string, Record<string, string>> => {
  const out: Record<string, string> = {};
  for (const item of items) {
    for (const part of item.split(',').filter((p) => p.length > 0)) {
      const eq = part.indexOf('=');
      if (eq <= 0) return E.left(`${flag} ${JSON.stringify(part)}: expected key=value`);
      out[part.slice(0, eq)] = part.slice(eq + 1);
    }
  }
  return E.right(out);
};

/** "90", "90s", "5m", "1h" -> seconds. */
export const parseDuration = (s: string, flag: string): E.Either<string, number> => {
  const m = /^(\d+)(ms|s|m|h)?$/.exec(s.trim());
  if (!m) return E.left(`${flag} ${JSON.stringify(s)}: expected a duration like 30s, 5m or 1h`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return E.right(unit === 'ms' ? n / 1000 : unit === 's' ? n : unit === 'm' ? n * 60 : n * 3600);
};

/**
 * One --match: "SOURCE=>DEST[|DEST...][;fallthrough]", where SOURCE and each DEST are
 * comma-separated key=value selectors (either may be empty).
 * Example: "app=firewall=>role=fw|role=fw-backup;fallthrough".
 */
export const parseMatch = (s: string): E.Either<string, Match> => {
  const [rule, ...flags] = s.split(';');
  const arrow = rule!.indexOf('=>');
  if (arrow < 0) return E.left(`--match ${JSON.stringify(s)}: expected SOURCE=>DEST[|DEST...][;fallthrough], e.g. "app=web=>tier=frontend"`);
  const unknown = flags.filter((f) => f !== 'fallthrough');
  if (unknown.length > 0) return E.left(`--match ${JSON.stringify(s)}: unknown flag "${unknown[0]}" (only "fallthrough")`);
  const source = parseLabels([rule!.slice(0, arrow)], '--match source');
  if (E.isLeft(source)) return source;
  const routes = [];
  for (const dest of rule!.slice(arrow + 2).split('|')) {
    const sel = parseLabels([dest], '--match destination');
    if (E.isLeft(sel)) return sel;
    routes.push({ destinationSelector: sel.right });
  }
  return E.right({ sourceSelector: source.right, routes, fallthrough: flags.includes('fallthrough') });
};
