// The one argument parser of the nsm command line, node:util parseArgs (see main.ts for why),
// used twice over the same option declarations (src/cli/options.ts):
//
// - `locate` finds the command in argv. Options may come before it (`nsm --server URL ls
//   nodes`, `nsm --json status`), so it must know which options take a value: it scans with every
//   option of every command, each name having one type everywhere (checked here). The command is
//   the first positional; for a command with subcommands of their own flags (`endpoint run`), the
//   next positional may name one. What is left, options before the command included, is the
//   command's arguments.
// - `parseCommand` parses those arguments strictly with the command's options and the common
//   ones: an unknown option or a missing value is one line, `unknown option '--x'; see nsm ls --help`.
import { parseArgs } from 'node:util';
import { fail } from './kit.ts';
import { common, type Flag, type Flags } from './options.ts';

/** What the parser needs of a command. */
export interface Parsable {
  readonly flags: Flags;
  readonly subcommands?: Readonly<Record<string, Parsable>>;
}

/** The command's options and the common ones, as parseArgs parses them. */
export const optionsOf = <F extends Flags>(flags: F) => ({ ...common, ...flags });

/** parseArgs over a command's arguments, strict: the values typed by its option declarations. */
const parseStrict = <F extends Flags>(args: string[], flags: F) => parseArgs({ args, options: optionsOf(flags), allowPositionals: true, strict: true });
export type Parsed<F extends Flags> = ReturnType<typeof parseStrict<F>>;

/** A command's arguments, parsed; anything wrong is a CliError naming the command's help. */
export const parseCommand = <F extends Flags>(args: readonly string[], flags: F, seeHelp: string): Parsed<F> => {
  try {
    return parseStrict([...args], flags);
  } catch (e) {
    // parseArgs: "Unknown option '--x'. To specify a positional argument starting with a '-', ...": the first sentence.
    const first = (e as Error).message.split('\n')[0]!.split('. ')[0]!.replace(/\.$/, '');
    return fail(`${first.replace(/^Unknown option/, 'unknown option')}; ${seeHelp}`);
  }
};

const allFlags = (commands: Iterable<Parsable>): Map<string, Flag> => {
  const seen = new Map<string, Flag>(Object.entries(common));
  const add = (c: Parsable) => {
    for (const [name, f] of Object.entries(c.flags)) {
      const before = seen.get(name);
      if (before && (before.type !== f.type || before.short !== f.short)) {
        throw new Error(`--${name} is declared as ${before.type}${before.short ? ` -${before.short}` : ''} and as ${f.type}${f.short ? ` -${f.short}` : ''}: the argument scanner needs one type per option name`);
      }
      seen.set(name, f);
    }
    for (const s of Object.values(c.subcommands ?? {})) add(s);
  };
  for (const c of commands) add(c);
  return seen;
};

export type Located<C extends Parsable> =
  /** No command: `nsm`, `nsm --json`. */
  | { readonly kind: 'none'; readonly help: boolean }
  /** `nsm help [COMMAND [SUBCOMMAND]]`. */
  | { readonly kind: 'help-for'; readonly path: readonly string[] }
  | { readonly kind: 'unknown'; readonly name: string }
  /** The command (a subcommand's own when one is named), its top-level name, and its arguments. */
  | { readonly kind: 'command'; readonly command: C; readonly path: readonly string[]; readonly args: readonly string[]; readonly help: boolean };

/** Finds the command in argv (see the top of this file). */
export const locate = <C extends Parsable & { readonly subcommands?: Readonly<Record<string, C>> }>(argv: readonly string[], commands: ReadonlyMap<string, C>): Located<C> => {
  const options = Object.fromEntries([...allFlags(commands.values())].map(([name, f]) => [name, { type: f.type, ...(f.short ? { short: f.short } : {}) }]));
  // Not strict: an option unknown to every command reads as a switch; the command's strict parse refuses it.
  const { tokens } = parseArgs({ args: [...argv], options, strict: false, allowPositionals: true, tokens: true });
  const help = tokens.some((t) => t.kind === 'option' && t.name === 'help');
  const positionals = tokens.filter((t) => t.kind === 'positional');
  const first = positionals[0];
  if (!first) return { kind: 'none', help };
  if (first.value === 'help') return { kind: 'help-for', path: positionals.slice(1).map((p) => p.value) };
  const top = commands.get(first.value);
  if (!top) return { kind: 'unknown', name: first.value };
  const second = positionals[1];
  const sub = second && top.subcommands && Object.hasOwn(top.subcommands, second.value) ? top.subcommands[second.value] : undefined;
  const taken = new Set([first.index, ...(sub ? [second!.index] : [])]);
  return {
    kind: 'command',
    command: sub ?? top,
    path: sub ? [first.value, second!.value] : [first.value],
    args: argv.filter((_, i) => !taken.has(i)),
    help,
  };
};
