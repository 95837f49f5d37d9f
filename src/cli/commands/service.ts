// nsm service register|unregister: the registry's network services.
import { defineCommand } from '../command.ts';
import { CLIENT_OPTIONS, dnsField, serviceDnsFlags, str, strs } from '../options.ts';
import { must, fail } from '../kit.ts';
import { parseMatch } from '../parse.ts';

export const service = defineCommand({
  name: 'service',
  group: 'use',
  usage: [
    "nsm service register NAME [--payload IP|ETHERNET] [--family IPv4|IPv6]... [--match 'SRC=>DST[|DST][;fallthrough]']...",
    '                     [--dns-server ADDR|endpoint]... [--dns-search DOMAIN]...',
    'nsm service unregister NAME',
  ],
  description: `
Registers a network service, or unregisters it. --match routes clients whose labels contain SRC
to endpoints whose labels contain one of the DST selectors; ;fallthrough tries the next match when
no endpoint fits. SRC and DST are comma-separated key=value lists and may be empty; a destination
value may be a {{.key}} template of the client's labels, e.g.
  --match 'tier=gold=>class=premium' --match '=>class=standard;fallthrough'
--family restricts the address families its connections carry (an endpoint with a prefix of
another family is refused); without it a connection gets a pair of every family its endpoint
offers.
--dns-server and --dns-search give every connection to it DNS (after its endpoint's own, if
any): the client namespace's resolv.conf on the Linux dataplane (docs/dataplane.md).
Prints "service NAME registered" ("(no change)" when it already was).`,
  flags: {
    payload: str('KIND', 'what the service carries (register)', { choices: ['IP', 'ETHERNET'], defaultText: 'IP' }),
    match: strs('RULE', "a match, 'SRC=>DST[|DST...][;fallthrough]', in order (register)"),
    family: strs('F', 'an address family its connections carry (register; repeatable)', { choices: ['IPv4', 'IPv6'], defaultText: "whichever its endpoints' prefixes offer" }),
    ...serviceDnsFlags,
  },
  common: CLIENT_OPTIONS,
  async run({ values: v, positionals: [verb, name] }, ctx) {
    const svc = ctx.checkName('service name', name);
    if (verb === 'register') {
      const payload = v.payload ?? 'IP';
      if (payload !== 'IP' && payload !== 'ETHERNET') fail(`--payload ${JSON.stringify(payload)}: expected IP or ETHERNET`);
      const matches = (v.match ?? []).map((m) => must(parseMatch(m)));
      const families = (v.family ?? []).map((f) => (f === 'IPv4' || f === 'IPv6' ? f : fail(`--family ${JSON.stringify(f)}: expected IPv4 or IPv6`)));
      return ctx.send(v, 'service.register', { name: svc, payload: payload as 'IP' | 'ETHERNET', matches, ...(families.length > 0 ? { ipFamilies: families } : {}), ...dnsField(v) }, `service ${svc} registered`);
    }
    if (verb === 'unregister') return ctx.send(v, 'service.unregister', { name: svc }, `service ${svc} unregistered`);
    fail(`unknown "nsm service ${verb ?? ''}"; use register or unregister`);
  },
});
