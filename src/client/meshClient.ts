// The SDK that the CLI, node agents and tests use to talk to a mesh: durable commands with
// an answer, queries, and waiting for a connection to settle.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { connect, type NatsConnection, type Subscription } from 'nats';
import type { ConnectionEvent } from '../../aggregates/connection/index.ts';
import { COMMAND_MAX_BYTES } from '../../infra/nats/streams.ts';
import { subjectsFor, toActorToken, type Subjects } from '../contracts/subjects.ts';
import type { CommandBody, CommandKind } from '../contracts/commands.ts';
import type { Commit } from '../contracts/envelope.ts';
import type { CommandReply, QueryReply } from '../contracts/replies.ts';
import { connectionAuth, signerOf, type Credentials } from '../security/credentials.ts';
import type { Signer } from '../security/keys.ts';
import { clientSegment } from '../security/pathToken.ts';
import { sleep } from '../lib/time.ts';
import { serverList } from '../lib/servers.ts';
import { publishRetrying } from '../../infra/nats/publish.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();

/** waitForConnection also asks for the connection's state, first after POLL_MS, then less often. */
const POLL_MS = 250;
const POLL_MAX_MS = 2000;

export type OkReply = Extract<CommandReply, { ok: true }>;
export type ClientError = { readonly code: string; readonly message: string };
/** Where a connection ended up: established, failed or closed, and why when it is not established. */
export type Settled = { readonly state: string; readonly reason?: string };


export interface MeshClientOptions {
  readonly domain: string;
  readonly actor: string;
  readonly timeoutMs?: number;
  /** Signs the client's path segment on connection requests and refreshes (authenticated meshes). */
  readonly signer?: Signer;
  /**
   * How long a command's publish is tried again (same msgID) while JetStream does not answer:
   * a cluster electing a new stream leader (docs/operations.md). Default 30 s.
   */
  readonly publishWithinMs?: number;
  /** Told of each publish attempt that failed and is made again (benchmarks count them). */
  readonly onPublishRetry?: (attempt: number, error: unknown) => void;
}

/** Longer than a stream leader election (about 4 s), well inside the duplicate window (2 min). */
export const DEFAULT_SEND_WITHIN_MS = 30_000;

export interface ConnectOptions extends Omit<MeshClientOptions, 'actor'> {
  /** Required without credentials; with them it must be theirs. */
  readonly actor?: string;
  /** Authenticate as this identity, over TLS (src/security/credentials.ts). */
  readonly credentials?: Credentials;
  /** A CA file that overrides the one in the credentials. */
  readonly tlsCaFile?: string;
}

/** The least a client needs to live with: a token stays valid this long even for a short-lived request. */
const CLIENT_TOKEN_MIN_SECONDS = 3600;

const connectError = (url: string, e: unknown): string => {
  const code = (e as { code?: string }).code;
  const msg = (e as Error).message;
  if (code === 'AUTHORIZATION_VIOLATION') return `NATS at ${url} refused the credentials (authorization violation): wrong credentials for this mesh?`;
  if (/certificate|self.signed|TLS|SSL/i.test(msg) || code === 'tls') return `cannot reach NATS at ${url} over TLS: ${msg} (check --tls-ca, or is the server insecure?)`;
  return `cannot reach NATS at ${url}: ${msg}`;
};

export class MeshClient {
  readonly subjects: Subjects;
  /** The actor as it appears in subjects (see ACTOR_PATTERN). */
  readonly actor: string;
  private constructor(
    readonly nc: NatsConnection,
    private readonly opts: MeshClientOptions,
    private readonly owned: boolean,
  ) {
    this.subjects = subjectsFor(opts.domain);
    this.actor = toActorToken(opts.actor);
  }

  static async connect(url: string, opts: ConnectOptions): Promise<E.Either<ClientError, MeshClient>> {
    const creds = opts.credentials;
    if (creds && opts.actor !== undefined && opts.actor !== creds.actor) {
      return E.left({ code: 'invalid', message: `the credentials are ${creds.actor}'s; they cannot act as ${opts.actor}` });
    }
    const actor = creds?.actor ?? opts.actor;
    if (actor === undefined) return E.left({ code: 'invalid', message: 'an actor or credentials are needed' });
    const auth = connectionAuth(creds, opts.tlsCaFile);
    try {
      const nc = await connect({ servers: serverList(url), timeout: 3000, name: `nsm ${actor}`, ...auth });
      const signer = opts.signer ?? (creds ? signerOf(creds) : undefined);
      return E.right(new MeshClient(nc, { ...opts, actor, ...(signer ? { signer } : {}) }, true));
    } catch (e) {
      return E.left({ code: 'unavailable', message: connectError(url, e) });
    }
  }

  static over(nc: NatsConnection, opts: MeshClientOptions): MeshClient {
    return new MeshClient(nc, opts, false);
  }

  /**
   * Sends a command durably and waits for the control plane's answer. A timeout does not mean
   * the command was lost: it stays queued and will be carried out when a control plane runs.
   */
  async send<K extends CommandKind>(
    kind: K,
    body: CommandBody<K>,
    o: { id?: string; correlationId?: string; causationId?: string; timeoutMs?: number; wait?: boolean } = {},
  ): Promise<E.Either<ClientError, OkReply | { queued: true; commandId: string }>> {
    const id = o.id ?? randomUUID();
    const timeout = o.timeoutMs ?? this.opts.timeoutMs ?? 10000;
    const wait = o.wait ?? true;
    body = this.signed(kind, body);
    let sub: Subscription | undefined;
    try {
      // Subscribed before the publish, so the answer cannot come first; its timer starts once the command is stored.
      sub = wait ? this.nc.subscribe(this.subjects.reply(this.actor, id), { max: 1 }) : undefined;
    } catch (e) {
      // A connection closed for good (reconnects exhausted, or closed by its owner) throws here:
      // an answer like any other failure to reach the mesh, not an exception for every caller.
      return E.left({ code: 'unavailable', message: `not connected to NATS: ${(e as Error).message}` });
    }
    const data = enc.encode(
      JSON.stringify({ id, actor: this.actor, body, ...(o.correlationId ? { correlationId: o.correlationId } : {}), ...(o.causationId ? { causationId: o.causationId } : {}) }),
    );
    // The command stream refuses larger messages; say so in the caller's terms before trying.
    if (data.byteLength > COMMAND_MAX_BYTES) {
      sub?.unsubscribe();
      return E.left({ code: 'invalid', message: `${kind}: command too large (${data.byteLength} bytes, at most ${COMMAND_MAX_BYTES})` });
    }
    const [aggregate, verb] = kind.split('.') as [string, string];
    try {
      // Same msgID on every attempt: a stream leader lost mid-publish (a cluster electing another)
      // delays the command, and it is stored once however many attempts it took.
      await publishRetrying(this.nc.jetstream(), this.subjects.command(aggregate, verb, this.actor), data, {
        msgID: id,
        withinMs: this.opts.publishWithinMs ?? DEFAULT_SEND_WITHIN_MS,
        ...(this.opts.onPublishRetry ? { onRetry: this.opts.onPublishRetry } : {}),
      });
    } catch (e) {
      sub?.unsubscribe();
      const code = (e as { code?: string }).code;
      const message = code === '503' ? `no command stream for domain "${this.opts.domain}" answered: is a mesh running there?` : (e as Error).message;
      return E.left({ code: 'unavailable', message });
    }
    if (!sub) return E.right({ queued: true, commandId: id });
    const noAnswer: ClientError = { code: 'timeout', message: `no answer within ${timeout} ms; the command ${id} is queued and will run when a control plane is up` };
    let timer: NodeJS.Timeout | undefined;
    const answered = sub;
    try {
      const expired = new Promise<'expired'>((r) => (timer = setTimeout(() => r('expired'), timeout)));
      const first = answered[Symbol.asyncIterator]().next();
      const got = await Promise.race([first, expired]);
      if (got === 'expired' || got.done) return E.left(noAnswer);
      const r = JSON.parse(dec.decode(got.value.data)) as CommandReply;
      return r.ok ? E.right(r) : E.left({ code: r.error.code, message: r.error.message });
    } catch {
      return E.left(noAnswer);
    } finally {
      clearTimeout(timer);
      answered.unsubscribe();
    }
  }

  /** Connection requests and refreshes carry the client's signed path segment when it has a key. */
  private signed<K extends CommandKind>(kind: K, body: CommandBody<K>): CommandBody<K> {
    const signer = this.opts.signer;
    if (!signer || (kind !== 'connection.request' && kind !== 'connection.refresh')) return body;
    const b = body as CommandBody<'connection.request'> | CommandBody<'connection.refresh'>;
    if (b.token) return body;
    const segment = clientSegment({
      signer,
      actor: this.actor,
      connectionId: b.connectionId,
      ...('networkService' in b ? { service: b.networkService } : {}),
      now: new Date(),
      lifetimeSeconds: Math.max(b.expirationSeconds ?? 0, CLIENT_TOKEN_MIN_SECONDS),
    });
    return { ...(body as object), token: segment.token } as CommandBody<K>;
  }

  async query<T = unknown>(name: string, params: unknown = {}, timeoutMs?: number): Promise<E.Either<ClientError, T>> {
    try {
      const m = await this.nc.request(this.subjects.query(this.actor, name), enc.encode(JSON.stringify(params)), { timeout: timeoutMs ?? this.opts.timeoutMs ?? 10000 });
      const r = JSON.parse(dec.decode(m.data)) as QueryReply<T>;
      // The kind of failure (forbidden, not-found, invalid, unavailable); "query" from servers that do not say.
      return r.ok ? E.right(r.result) : E.left({ code: r.code ?? 'query', message: r.error });
    } catch (e) {
      const code = (e as { code?: string }).code;
      return E.left({
        code: 'unavailable',
        message: code === '503' ? `no control plane answers queries for domain "${this.opts.domain}"` : (e as Error).message,
      });
    }
  }

  /**
   * A list query read page by page (an answer must fit one NATS message). A page too large for
   * one message (large rows: a connection is a few KiB) is asked for again in halves.
   */
  async queryAll<T>(name: string, params: Record<string, unknown> = {}, pageSize = 1000): Promise<E.Either<ClientError, T[]>> {
    const out: T[] = [];
    let limit = pageSize;
    for (let offset = 0; ; ) {
      const page = await this.query<T[]>(name, { ...params, limit, offset });
      if (E.isLeft(page)) {
        if (page.left.code === 'too-large' && limit > 1) {
          limit = Math.ceil(limit / 2);
          continue;
        }
        return page;
      }
      out.push(...page.right);
      if (page.right.length < limit) return E.right(out);
      offset += page.right.length;
    }
  }

  /** Resolves with the connection's settled state: established, failed (or denied) or closed. */
  async waitForConnection(id: string, timeoutMs: number): Promise<E.Either<ClientError, Settled>> {
    const settles = (ev: ConnectionEvent) =>
      ev.type === 'ConnectionEstablished' || ev.type === 'ConnectionFailed' || ev.type === 'ConnectionDenied' || ev.type === 'ConnectionLimited' || ev.type === 'ConnectionClosed';
    const deadline = Date.now() + timeoutMs;
    const asked = async (minPosition?: string): Promise<Settled | undefined> => {
      const params = { id, ...(minPosition !== undefined ? { minPosition: Number(minPosition) } : {}) };
      const now = await this.query<{ state: string; failure?: { reason: string }; closeReason?: string }>('connection', params, Math.max(100, deadline - Date.now()));
      if (E.isLeft(now) || !['established', 'failed', 'closed'].includes(now.right.state)) return undefined;
      return { state: now.right.state, ...(now.right.failure ? { reason: now.right.failure.reason } : now.right.closeReason ? { reason: now.right.closeReason } : {}) };
    };
    const timeout: ClientError = { code: 'timeout', message: `connection ${id} did not settle within ${timeoutMs} ms` };
    // The control plane announces the connection's commits to the actor that asked for it; the
    // query, asked again with a growing interval, covers a connection asked for by someone else.
    const sub = this.nc.subscribe(this.subjects.notify(this.actor, `connection.${id}`));
    const messages = sub[Symbol.asyncIterator]();
    try {
      // Subscribed first, so an event after this query cannot be missed.
      const now = await asked();
      if (now) return E.right(now);
      let next = messages.next();
      let pollMs = POLL_MS;
      for (let left = deadline - Date.now(); left > 0; left = deadline - Date.now()) {
        let timer: NodeJS.Timeout | undefined;
        const tick = new Promise<'tick'>((r) => (timer = setTimeout(() => r('tick'), Math.min(pollMs, left))));
        const got = await Promise.race([next, tick]).finally(() => clearTimeout(timer));
        if (got === 'tick') {
          const polled = await asked();
          if (polled) return E.right(polled);
          pollMs = Math.min(POLL_MAX_MS, pollMs * 2);
          continue;
        }
        if (got.done) break;
        const commit = JSON.parse(dec.decode(got.value.data)) as Commit & { position?: string };
        if (commit.events.some((env) => settles(env.data as ConnectionEvent))) {
          // Read-your-writes: answer once the read model shows it too, so the caller's next
          // query (addresses, endpoint) sees the settled connection. The control plane holds the
          // answer until its model has the commit's position.
          for (;;) {
            const confirmed = await asked(commit.position);
            if (confirmed) return E.right(confirmed);
            if (Date.now() > deadline) return E.left(timeout);
            await sleep(10);
          }
        }
        next = messages.next();
      }
      return E.left(timeout);
    } catch {
      return E.left(timeout);
    } finally {
      sub.unsubscribe();
    }
  }

  async close(): Promise<void> {
    if (this.owned) await this.nc.close();
  }
}
