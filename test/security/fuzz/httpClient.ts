// A raw HTTP/1.1 client for the HTTP fuzz: sends the bytes it is given, reads one answer (its
// status, headers and body, framed by Content-Length, chunks or the close), and says when there
// was none: the connection reset or closed before a status line, or no answer in time. It reuses
// the connection while the server keeps it open (keep-alive), and opens a new one when not.
import { connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: string;
}
export type Outcome = { readonly ok: true; readonly answer: Answer; readonly closed: boolean } | { readonly ok: false; readonly why: string };

const HEAD_END = Buffer.from('\r\n\r\n');

/** One answer from a buffer, or undefined while incomplete. `closed`: the peer has closed (the body runs to the end). */
const parse = (buf: Buffer, head: boolean, closed: boolean): { answer: Answer; used: number; close: boolean } | undefined => {
  let start = 0;
  for (;;) {
    const end = buf.indexOf(HEAD_END, start);
    if (end < 0) return undefined;
    const lines = buf.subarray(start, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? '');
    if (!m) throw new Error(`not an HTTP answer: ${JSON.stringify(buf.subarray(start, start + 80).toString('latin1'))}`);
    const status = Number(m[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const bodyAt = end + 4;
    // An interim answer (100 Continue): the real one follows.
    if (status >= 100 && status < 200) {
      start = bodyAt;
      continue;
    }
    const close = /close/i.test(headers.connection ?? '');
    if (head || status === 204 || status === 304) return { answer: { status, headers, body: '' }, used: bodyAt, close };
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      if (buf.length - bodyAt < n) return undefined;
      return { answer: { status, headers, body: buf.subarray(bodyAt, bodyAt + n).toString('utf8') }, used: bodyAt + n, close };
    }
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      let at = bodyAt;
      let body = '';
      for (;;) {
        const eol = buf.indexOf('\r\n', at);
        if (eol < 0) return undefined;
        const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16);
        if (size === 0) return buf.length >= eol + 4 ? { answer: { status, headers, body }, used: eol + 4, close } : undefined;
        if (buf.length < eol + 2 + size + 2) return undefined;
        body += buf.subarray(eol + 2, eol + 2 + size).toString('utf8');
        at = eol + 2 + size + 2;
      }
    }
    // No length: the body runs until the server closes.
    if (!closed) return close ? undefined : { answer: { status, headers, body: '' }, used: bodyAt, close };
    return { answer: { status, headers, body: buf.subarray(bodyAt).toString('utf8') }, used: buf.length, close: true };
  }
};

/** A connection that sends one request at a time and reopens when the server has closed it. */
export class Conn {
  private socket: Socket | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private closed = false;
  private error: string | undefined;
  private wake: (() => void) | undefined;
  constructor(
    private readonly port: number,
    private readonly timeoutMs = 10000,
    /** Over TLS, trusting this CA (the HTTP API of an authenticated mesh); plaintext without. */
    private readonly ca?: string,
  ) {}

  private open(): Promise<void> {
    this.buf = Buffer.alloc(0);
    this.closed = false;
    this.error = undefined;
    const s = (this.socket = this.ca ? tlsConnect({ port: this.port, host: '127.0.0.1', ca: this.ca }) : tcpConnect(this.port, '127.0.0.1'));
    s.setNoDelay(true);
    s.on('data', (d: Buffer) => {
      this.buf = this.buf.length ? Buffer.concat([this.buf, d]) : d;
      this.wake?.();
    });
    // A server that refuses a request before reading all of it closes with data unread, which
    // the kernel turns into a reset: an answer already received still counts.
    s.on('error', (e) => {
      this.error = (e as NodeJS.ErrnoException).code ?? e.message;
      this.wake?.();
    });
    s.on('close', () => {
      this.closed = true;
      this.wake?.();
    });
    return new Promise((resolve, reject) => {
      s.once(this.ca ? 'secureConnect' : 'connect', resolve);
      s.once('error', reject);
    });
  }

  /** Sends the request and reads its answer. `fresh`: on a new connection of its own, closed after. */
  async send(request: Buffer, o: { head?: boolean; fresh?: boolean } = {}): Promise<Outcome> {
    if (o.fresh || !this.socket || this.closed || this.error) {
      this.socket?.destroy();
      try {
        await this.open();
      } catch (e) {
        return { ok: false, why: `cannot connect: ${(e as Error).message}` };
      }
    }
    const s = this.socket!;
    const deadline = Date.now() + this.timeoutMs;
    s.write(request);
    for (;;) {
      let got: ReturnType<typeof parse>;
      try {
        got = parse(this.buf, o.head ?? false, this.closed || this.error !== undefined);
      } catch (e) {
        s.destroy();
        this.socket = undefined;
        return { ok: false, why: (e as Error).message };
      }
      if (got) {
        this.buf = this.buf.subarray(got.used);
        const closing = got.close || this.closed || this.error !== undefined || o.fresh === true;
        if (closing) {
          s.destroy();
          this.socket = undefined;
        }
        return { ok: true, answer: got.answer, closed: closing };
      }
      if (this.closed || this.error) {
        this.socket = undefined;
        return { ok: false, why: this.error ? `connection ${this.error} before an answer` : `connection closed before an answer${this.buf.length ? ` (${JSON.stringify(this.buf.subarray(0, 80).toString('latin1'))})` : ''}` };
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        s.destroy();
        this.socket = undefined;
        return { ok: false, why: `no answer within ${this.timeoutMs} ms` };
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(t);
          this.wake = undefined;
          resolve();
        };
      });
    }
  }

  close(): void {
    this.socket?.destroy();
    this.socket = undefined;
  }
}
