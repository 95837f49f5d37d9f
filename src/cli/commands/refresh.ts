// nsm refresh ID: a connection's registration renewed (connections requested with --expiration).
import { defineCommand } from '../command.ts';
import { fail, must } from '../kit.ts';
import { CLIENT_OPTIONS, str } from '../options.ts';
import { parseDuration } from '../parse.ts';

export const refresh = defineCommand({
  name: 'refresh',
  group: 'use',
  usage: ['nsm refresh ID [--expiration 60s]'],
  description: `
Refreshes a connection: it now expires --expiration from now unless refreshed again. A connection
requested with nsm connect --expiration that is not refreshed in time is closed.`,
  flags: {
    expiration: str('DURATION', 'the connection expires this long from now', { defaultText: '60s' }),
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [id] }, ctx) {
    if (!id) fail(`missing connection ID; ${ctx.seeHelp}`);
    const expirationSeconds = Math.ceil(must(parseDuration(v.expiration ?? '60s', '--expiration')));
    return ctx.send(v, 'connection.refresh', { connectionId: id!, expirationSeconds }, `connection ${id} refreshed for ${expirationSeconds} s`);
  },
});
