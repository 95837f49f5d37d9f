// The help of the nsm command line: the overview (`nsm --help`) and each command's
// (`nsm <command> --help`, `nsm help <command>`), made from the commands' declarations.
import { GROUPS, type AnyCommand, type Group } from '../command.ts';
import { common, type Flag } from '../options.ts';

const label = (name: string, f: Flag) => `${f.short ? `-${f.short}, ` : ''}--${name}${f.value ? ` ${f.value}` : ''}${f.multiple ? '...' : ''}`;

const details = (f: Flag) =>
  [f.choices ? `choices: ${f.choices.join(', ')}` : '', f.defaultText !== undefined ? `default: ${f.defaultText}` : '', f.env ? `env: ${f.env}` : ''].filter(Boolean).join('; ');

const WIDTH = 28;
const flagLines = (flags: readonly (readonly [string, Flag])[]): string[] =>
  flags.flatMap(([name, f]) => {
    const l = label(name, f);
    const more = details(f);
    const pad = ' '.repeat(WIDTH + 4);
    const head = l.length <= WIDTH ? [`  ${l.padEnd(WIDTH)}  ${f.help}`] : [`  ${l}`, `${pad}${f.help}`];
    return more ? [...head, `${pad}(${more})`] : head;
  });

/** `nsm <command> --help`. */
export const commandHelp = (c: AnyCommand): string => {
  const own = Object.entries(c.flags) as [string, Flag][];
  const shared = c.common.filter((n) => !(n in c.flags)).map((n) => [n, common[n]] as [string, Flag]);
  const help: [string, Flag] = ['help', common.help];
  const env = [...own, ...shared].filter(([, f]) => f.env).map(([n, f]) => `  ${f.env!.padEnd(16)}  the default of --${n}`);
  const subs = Object.values(c.subcommands ?? {});
  return [
    'Usage:',
    ...c.usage.map((u) => `  ${u}`),
    '',
    c.description.trim(),
    '',
    ...(own.length > 0 ? ['Options:', ...flagLines(own), ''] : []),
    'Common options:',
    ...flagLines([...shared, help]),
    '',
    'Environment:',
    ...env,
    ...Object.entries(c.environment ?? {}).map(([name, what]) => `  ${name.padEnd(16)}  ${what}`),
    `  ${'NSM_LOG_LEVEL'.padEnd(16)}  debug, info (default), warn, error, silent; with debug an unexpected error prints its stack`,
    ...(subs.length > 0 ? ['', `Subcommands with options of their own: ${subs.map((s) => `nsm ${s.name} --help`).join(', ')}`] : []),
    '',
  ].join('\n');
};

/** `nsm --help`: every command's synopsis, in the groups of GROUPS. */
export const overview = (commands: readonly AnyCommand[]): string =>
  [
    'nsm - Network Service Mesh, event-sourced on NATS',
    ...(Object.keys(GROUPS) as Group[]).flatMap((g) => ['', GROUPS[g], ...commands.filter((c) => c.group === g).flatMap((c) => c.usage.map((u) => `  ${u}`))]),
    '',
    "Each command's options, their defaults and the environment variables behind them: nsm <command> --help",
    '(or nsm help <command>), e.g. nsm up --help, nsm endpoint run --help. docs/cli.md has the whole reference.',
    '',
  ].join('\n');
