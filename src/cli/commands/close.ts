// nsm close ID: a connection closed; its dataplane sides removed, its addresses released.
import { defineCommand } from '../command.ts';
import { fail } from '../kit.ts';
import { CLIENT_OPTIONS } from '../options.ts';

export const close = defineCommand({
  name: 'close',
  group: 'use',
  usage: ['nsm close ID'],
  description: `
Closes the connection: the dataplane sides are removed and the addresses released. Prints
"connection ID closed".`,
  flags: {},
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [id] }, ctx) {
    if (!id) fail(`missing connection ID; ${ctx.seeHelp}`);
    return ctx.send(v, 'connection.close', { connectionId: id! }, `connection ${id} closed`);
  },
});
