// A server address as users write it: one URL, or several separated by commas (a cluster).

/** The URLs of a comma-separated list, trimmed, empty entries dropped. */
export const serverList = (urls: string): string[] =>
  urls
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u !== '');
