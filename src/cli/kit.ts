// What the commands share: failing with one line (CliError), checking names and ports, the
// defaults from the environment, and a command's context: where its output goes (stdout and
// stderr, or what a test passes to main) and its connection to the mesh.
import { hostname, userInfo } from 'node:os';
import type { Writable } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import { NAME_PATTERN } from '../../aggregates/domain.ts';
import { DOMAIN_HINT, DOMAIN_PATTERN, toActorToken } from '../contracts/subjects.ts';
import { SERVICE_REF_PATTERN, type CommandBody, type CommandKind } from '../contracts/commands.ts';
import { MeshClient, type AccessFlags, type ClientError, env, resolveAccess, resolveIdentities } from '../client/index.ts';
import { parseDuration } from './parse.ts';

/** A failure the user can fix: one line on stderr, `nsm <command>: <message>`, exit code 1. */
export class CliError extends Error {}
export const fail = (msg: string): never => {
  throw new CliError(msg);
};
export const must = <T>(r: E.Either<string | ClientError | { message: string }, T>): T =>
  E.isRight(r) ? r.right : fail(typeof r.left === 'string' ? r.left : r.left.message);

export const defaultDomain = () => env('NSM_DOMAIN') ?? 'default';
export const defaultNode = () => env('NSM_NODE') ?? (hostname().replace(/[^A-Za-z0-9_-]/g, '-').slice(0, 63) || 'node');
// The actor is a subject token: a host name's dots become "_" (toActorToken).
export const defaultActor = () => toActorToken(env('NSM_ACTOR') ?? `${userInfo().username}@${hostname()}`);

export const checkDomain = (d: string) => (DOMAIN_PATTERN.test(d) ? d : fail(`--domain ${JSON.stringify(d)}: ${DOMAIN_HINT}`));
export const port = (s: string | undefined, flag: string, dflt: number) => {
  if (s === undefined) return dflt;
  const n = Number(s);
  return Number.isInteger(n) && n > 0 && n < 65536 ? n : fail(`${flag} ${JSON.stringify(s)}: expected a port number`);
};

/** Where a command writes. process.stdout and process.stderr, unless a test passes its own to main. */
export interface CliIo {
  readonly stdout: Writable & { readonly isTTY?: boolean };
  readonly stderr: Writable & { readonly isTTY?: boolean };
}
export const processIo = (): CliIo => ({ stdout: process.stdout, stderr: process.stderr });

/** The common options a command that talks to the mesh reads (src/cli/options.ts). */
export type ClientValues = AccessFlags & { domain?: string; json?: boolean; actor?: string; timeout?: string };

/** What a command's `run` gets besides its arguments. */
export interface Ctx {
  readonly io: CliIo;
  /** The command as typed: `ls`, `endpoint run`. */
  readonly command: string;
  /** "see nsm ls --help": the end of a message about a missing or wrong argument. */
  readonly seeHelp: string;
  /** A line on stdout. */
  print(text: string): void;
  /** A line on stderr. */
  warn(text: string): void;
  /** The result: JSON with --json, else the text for people. */
  out(v: { json?: boolean }, json: unknown, human: () => string): void;
  /** Says why a pointer in the user's config was passed over (src/client/access.ts): one line each. */
  notes(access: { notes?: readonly string[] }): void;
  /** `missing WHAT; see nsm <command> --help`, or WHAT checked as a name. */
  checkName(what: string, n: string | undefined): string;
  /** A service, or service@domain (federation: a service of another domain, or a floating registry). */
  checkServiceRef(what: string, n: string | undefined): string;
  /** Connected to the mesh for the length of `fn`. */
  withClient<T>(v: ClientValues, fn: (c: MeshClient) => Promise<T>): Promise<T>;
  /** Sends one command and prints `done` (or `done (no change)`). */
  send<K extends CommandKind>(v: ClientValues, kind: K, body: CommandBody<K>, done: string): Promise<void>;
}

export const context = (io: CliIo, command: string): Ctx => {
  const seeHelp = `see nsm ${command} --help`;
  const ctx: Ctx = {
    io,
    command,
    seeHelp,
    print: (text) => void io.stdout.write(text + '\n'),
    warn: (text) => void io.stderr.write(text + '\n'),
    out: (v, json, human) => ctx.print(v.json ? JSON.stringify(json, null, 2) : human()),
    notes: (access) => {
      for (const n of access.notes ?? []) ctx.warn(`nsm: ${n}`);
    },
    checkName: (what, n) =>
      n === undefined ? fail(`missing ${what}; ${seeHelp}`) : NAME_PATTERN.test(n) ? n : fail(`${what} ${JSON.stringify(n)}: use 1-63 letters, digits, "-" or "_"`),
    checkServiceRef: (what, n) =>
      n === undefined
        ? fail(`missing ${what}; ${seeHelp}`)
        : SERVICE_REF_PATTERN.test(n)
          ? n
          : fail(`${what} ${JSON.stringify(n)}: a service name (1-63 letters, digits, "-" or "_"), optionally @domain`),
    withClient: async (v, fn) => {
      const domain = checkDomain(v.domain ?? defaultDomain());
      const timeoutMs = v.timeout ? must(parseDuration(v.timeout, '--timeout')) * 1000 : 10000;
      // The operator's credentials, found without flags on the host that ran nsm init / nsm up.
      const access = must(resolveAccess(v, domain, { role: 'operator', name: 'operator' }));
      ctx.notes(access);
      const explicitActor = v.actor ?? env('NSM_ACTOR');
      // With credentials the actor is the identity's unless one is named.
      const actor = explicitActor !== undefined ? toActorToken(explicitActor) : access.credentials ? undefined : defaultActor();
      const client = must(
        await MeshClient.connect(access.url, {
          domain,
          timeoutMs,
          ...(actor !== undefined ? { actor } : {}),
          ...(access.credentials ? { credentials: access.credentials } : {}),
          ...(access.tlsCaFile ? { tlsCaFile: access.tlsCaFile } : {}),
        }),
      );
      try {
        return await fn(client);
      } finally {
        await client.close();
      }
    },
    send: (v, kind, body, done) =>
      ctx.withClient(v, async (c) => {
        const r = must(await c.send(kind, body));
        ctx.out(v, r, () => ('noop' in r && r.noop ? `${done} (no change)` : done));
      }),
  };
  return ctx;
};

/** A mesh process's identity: its credentials unless --insecure, which connects without any. */
export const processAccess = (ctx: Ctx, v: AccessFlags & { insecure?: boolean }, domain: string, role: 'control-plane' | 'agent', name: string) => {
  const access = must(resolveAccess(v.insecure ? { ...v, creds: undefined } : v, domain, { role, name }));
  ctx.notes(access);
  if (v.insecure) return { url: access.url, ...(access.tlsCaFile ? { tlsCaFile: access.tlsCaFile } : {}) };
  if (!access.credentials) fail(`no credentials found for ${role === 'agent' ? `agent:${name}` : role}: pass --creds FILE (or NSM_CREDS), or --insecure for a mesh without authentication`);
  return access;
};

export const identitiesOf = (v: AccessFlags, access: { credentialsFile?: string }, domain: string) => {
  const f = resolveIdentities(v, access.credentialsFile, domain);
  return f ? { identitiesFile: f } : {};
};
