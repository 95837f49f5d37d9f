// The nsm command line: finds the command, parses its arguments, runs it. Nothing else: each
// command, with its flags, its help and its run, is src/cli/commands/<name>.ts; the options
// several share are src/cli/options.ts; tables, progress bars and help are src/cli/render/. The
// process edge (closed pipes, fatal errors, exit once stdout and stderr are flushed) is
// src/cli/entry.ts, which bin/nsm runs. Exceptions stop here: every failure becomes one line on
// stderr and a non-zero exit code.
//
// The parser is node:util parseArgs (src/cli/args.ts), kept rather than commander or yargs: it
// already parsed every command, so its values stay typed by the option declarations under strict
// TypeScript, its error messages (which tests assert) stay word for word, and it needs no
// dependency. What it lacks is small and here: finding the command behind global options, which
// it does with its own tokens over the declared options (one type per option name, so it never
// guesses which options take a value), and a help made from the same declarations. commander
// would bring its own help, error wording and exit handling that would all have to be bent back
// (exitOverride, configureOutput, custom help formatting), and untyped option values.
import { StartupError } from '../runtime/processes.ts';
import { env } from '../client/index.ts';
import { locate, parseCommand } from './args.ts';
import type { AnyCommand } from './command.ts';
import { ALL_COMMANDS, COMMANDS } from './commands/index.ts';
import { CliError, context, processIo, type CliIo } from './kit.ts';
import { commandHelp, overview } from './render/help.ts';

/** `nsm help endpoint run`: the command (a subcommand when one is named), or undefined. */
const lookup = (path: readonly string[]): AnyCommand | undefined => {
  const top = path[0] === undefined ? undefined : COMMANDS.get(path[0]);
  const sub = path[1] !== undefined && top?.subcommands && Object.hasOwn(top.subcommands, path[1]) ? top.subcommands[path[1]] : undefined;
  return sub ?? top;
};

const unknownCommand = (io: CliIo, name: string) => {
  io.stderr.write(`nsm: unknown command "${name}"; see nsm --help\n`);
  return 2;
};

/** Runs `nsm ARGV...` and resolves to its exit code; output goes to io (stdout and stderr by default). */
export const main = async (argv: readonly string[], io: CliIo = processIo()): Promise<number> => {
  const found = locate(argv, COMMANDS);
  if (found.kind === 'none') {
    io.stdout.write(overview(ALL_COMMANDS));
    return found.help ? 0 : 2;
  }
  if (found.kind === 'help-for') {
    if (found.path.length === 0) {
      io.stdout.write(overview(ALL_COMMANDS));
      return 0;
    }
    const c = lookup(found.path);
    if (!c) return unknownCommand(io, found.path[0]!);
    io.stdout.write(commandHelp(c));
    return 0;
  }
  if (found.kind === 'unknown') return unknownCommand(io, found.name);
  const { command, path } = found;
  if (found.help) {
    io.stdout.write(commandHelp(command));
    return 0;
  }
  const ctx = context(io, path.join(' '));
  try {
    const args = command.expand ? command.expand(found.args, ctx) : found.args;
    await command.run(parseCommand(args, command.flags, ctx.seeHelp), ctx);
    return 0;
  } catch (e) {
    // One line for people; the stack only when asked for (NSM_LOG_LEVEL=debug).
    const expected = e instanceof CliError || e instanceof StartupError;
    const debug = env('NSM_LOG_LEVEL') === 'debug';
    const text = !expected && debug ? ((e as Error).stack ?? String(e)) : (e instanceof Error ? e.message : String(e)).split('\n')[0];
    io.stderr.write(`nsm ${path[0]}: ${text}\n`);
    return 1;
  }
};

/** The command argv names (`ls`; `endpoint` for `endpoint run`), and whether it runs until stopped. */
export const commandOf = (argv: readonly string[]): { readonly name: string; readonly longRunning: boolean } | undefined => {
  const found = locate(argv, COMMANDS);
  return found.kind === 'command' ? { name: found.path[0]!, longRunning: found.command.longRunning ?? false } : undefined;
};
