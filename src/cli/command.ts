// What a command of the nsm command line is: its synopsis and description for the help, its
// flags, and its run. Each lives in src/cli/commands/<name>.ts; commands/index.ts lists them.
import type { Parsed } from './args.ts';
import type { Ctx } from './kit.ts';
import type { CommonName, Flags } from './options.ts';

/** The overview's sections, in order (`nsm --help`). */
export const GROUPS = {
  setup: 'Set up identities (nkeys, TLS, NATS permissions) for a deployment:',
  run: 'Run a mesh (authenticated and over TLS unless --insecure):',
  use: `Use it (--server URL or NSM_NATS_URL, --domain D or NSM_DOMAIN, --json for scripts;
        --creds FILE or NSM_CREDS, --tls-ca FILE or NSM_TLS_CA; on the host of nsm init/up the
        operator's credentials are found without flags):`,
  audit: 'Audit (reads the log and seals straight from JetStream; see docs/audit.md):',
} as const;
export type Group = keyof typeof GROUPS;

export interface Command<F extends Flags = Flags> {
  /** As typed: `ls`, `endpoint run`. */
  readonly name: string;
  readonly group: Group;
  /** The synopsis, one line per form; lines that go on start with spaces. */
  readonly usage: readonly string[];
  /** What it does, for its help: paragraphs of plain text. */
  readonly description: string;
  /** Its own flags. Every command accepts the common ones too; one declared here again (same type) shows its own help. */
  readonly flags: F;
  /** The common options its help lists: those it reads. */
  readonly common: readonly CommonName[];
  /** Verbs with flags of their own (`endpoint run`), dispatched to as commands. */
  readonly subcommands?: Readonly<Record<string, AnyCommand>>;
  /** Environment variables it reads besides the defaults of its flags, with what they do. */
  readonly environment?: Readonly<Record<string, string>>;
  /** Runs until stopped (up, control-plane, agent): it installs its own fatal-error policy. */
  readonly longRunning?: boolean;
  /** The arguments to parse, from those given (`nsm up --config FILE` puts the file's options first). */
  readonly expand?: (args: readonly string[], ctx: Ctx) => string[];
  run(input: Parsed<F>, ctx: Ctx): Promise<void>;
}

// The registry holds commands of any flags; each is type-checked where it is defined.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyCommand = Command<any>;

/** A command, with its values typed by its flags. */
export const defineCommand = <const F extends Flags>(c: Command<F>): Command<F> => c;
