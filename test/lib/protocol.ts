// Wire format between test/lib/harness.ts (inside each test process) and
// test/run.ts (the parent). Kept separate so the runner never imports the
// harness: importing it would register the harness's exit hook in the runner.

/** Every protocol line starts with this; the runner strips such lines from the output it streams. */
export const MARKER_PREFIX = '@@nsm-test-';
/** Printed once, at process exit, with a FileResult. */
export const RESULT_MARKER = `${MARKER_PREFIX}result `;
/** Printed per test (only under the runner) so a killed or crashed file still yields partial counts. */
export const PROGRESS_MARKER = `${MARKER_PREFIX}progress `;
/** The runner sets this in the child's environment; the harness emits progress lines only then. */
export const PROTOCOL_ENV = 'NSM_TEST_PROTOCOL';

export interface Failure {
  /** "suite > test", or "suite > after hook" for failures not attributable to a test. */
  test: string;
  /** First line of the error, or why the test never ran. */
  reason: string;
}

export interface FileResult {
  file: string;
  registered: number;
  passed: number;
  /** Failed tests, tests never run or interrupted, and suite-level hook failures not attributed to a test. */
  failed: number;
  skipped: number;
  /** Hooks that threw, of any kind (informational: their effect is already in `failed`). */
  hookFailures: number;
  failures: Failure[];
}

export interface Progress {
  event: 'start' | 'pass' | 'fail';
  test: string;
}

export type ProtocolRecord =
  | { kind: 'result'; result: FileResult }
  | { kind: 'progress'; progress: Progress };

/** Parses one complete marker line (without its newline); undefined if it is not a valid protocol line. */
export function parseMarkerLine(line: string): ProtocolRecord | undefined {
  try {
    if (line.startsWith(RESULT_MARKER)) {
      return { kind: 'result', result: JSON.parse(line.slice(RESULT_MARKER.length)) as FileResult };
    }
    if (line.startsWith(PROGRESS_MARKER)) {
      return { kind: 'progress', progress: JSON.parse(line.slice(PROGRESS_MARKER.length)) as Progress };
    }
  } catch {
    // Malformed JSON: treat as ordinary output rather than crash the runner.
  }
  return undefined;
}

/**
 * Splits a child's stdout into pass-through text and protocol records. Text is
 * forwarded as soon as it arrives (uvu prints progress dots without newlines);
 * only a possible marker is held back until its line is complete. Markers are
 * recognised mid-line too, because a test may leave an unterminated line behind.
 */
export class MarkerFilter {
  private buf = '';
  private readonly onText: (text: string) => void;
  private readonly onRecord: (record: ProtocolRecord) => void;

  constructor(onText: (text: string) => void, onRecord: (record: ProtocolRecord) => void) {
    this.onText = onText;
    this.onRecord = onRecord;
  }

  push(chunk: string): void {
    this.buf += chunk;
    for (;;) {
      const at = this.buf.indexOf(MARKER_PREFIX);
      if (at === -1) {
        const keep = partialPrefixLength(this.buf);
        this.emit(this.buf.slice(0, this.buf.length - keep));
        this.buf = this.buf.slice(this.buf.length - keep);
        return;
      }
      this.emit(this.buf.slice(0, at));
      const nl = this.buf.indexOf('\n', at);
      if (nl === -1) {
        this.buf = this.buf.slice(at);
        return;
      }
      this.take(this.buf.slice(at, nl));
      this.buf = this.buf.slice(nl + 1);
    }
  }

  end(): void {
    const rest = this.buf;
    this.buf = '';
    if (rest.startsWith(MARKER_PREFIX)) this.take(rest);
    else this.emit(rest);
  }

  private take(line: string): void {
    const record = parseMarkerLine(line);
    if (record) this.onRecord(record);
    else this.emit(`${line}\n`);
  }

  private emit(text: string): void {
    if (text) this.onText(text);
  }
}

/** Length of the longest suffix of `s` that could be the start of a marker. */
function partialPrefixLength(s: string): number {
  for (let n = Math.min(MARKER_PREFIX.length - 1, s.length); n > 0; n--) {
    if (s.endsWith(MARKER_PREFIX.slice(0, n))) return n;
  }
  return 0;
}
