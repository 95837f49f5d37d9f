// Plain aligned tables for people; scripts use --json.

export const table = (headers: readonly string[], rows: readonly (readonly unknown[])[]): string => {
  const cells = rows.map((r) => r.map((c) => (c === undefined || c === null || c === '' ? '-' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: readonly string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(headers.map((h) => h.toUpperCase())), ...cells.map(line)].join('\n');
};

export const labelsText = (l: Readonly<Record<string, string>> | undefined): string =>
  l && Object.keys(l).length > 0 ? Object.entries(l).map(([k, v]) => `${k}=${v}`).join(',') : '';

export const age = (iso: string | undefined, now = Date.now()): string => {
  if (!iso) return '';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  return s < 120 ? `${s}s ago` : s < 7200 ? `${Math.round(s / 60)}m ago` : `${Math.round(s / 3600)}h ago`;
};
