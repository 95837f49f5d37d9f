// Commands as they travel on nsm.<domain>.cmd.<aggregate>.<verb>, with the decoders the
// control plane runs before anything else happens.
import * as E from 'fp-ts/lib/Either.js';
import { MECHANISM_TYPES, NAME_HINT, NAME_PATTERN, type Labels, type Match, type MechanismType, type Payload } from '../../aggregates/domain.ts';
import type { Policy, PolicyRule } from '../../aggregates/policy.ts';
import { FAMILIES, parseAddress, parseCidr, parseInterfaceAddress, type Family } from '../../aggregates/ip.ts';
import { prefixProblem } from '../../aggregates/endpoint.ts';
import { DNS_AT_ENDPOINT } from '../../aggregates/domain.ts';
import { ACTOR_HINT, ACTOR_PATTERN, DOMAIN_PATTERN } from './subjects.ts';
import * as D from './decode.ts';
import { workloadNetns } from './netnsRef.ts';

export const ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;
const ID_HINT = 'use 1-64 letters, digits, "-" or "_"';

// Ids and names key the read models' maps: never the name of an Object.prototype member (D.key).
export const name = D.key(D.string({ min: 1, max: 63, pattern: NAME_PATTERN, patternHint: NAME_HINT }));
export const id = D.key(D.string({ min: 1, max: 64, pattern: ID_PATTERN, patternHint: ID_HINT }));
// Label keys and values follow Kubernetes label syntax, so they are safe anywhere they are shown or matched.
const labelKey = D.string({ min: 1, max: 63, pattern: /^[A-Za-z0-9]([A-Za-z0-9_.\/-]{0,61}[A-Za-z0-9])?$/, patternHint: 'a label key: letters, digits, "-", "_", ".", "/"' });
const labelValue = D.string({ max: 63, pattern: /^([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?$/, patternHint: 'a label value: letters, digits, "-", "_", "."' });
export const labels: D.Decoder<Labels> = D.record(labelKey, labelValue, { max: 32 });
// Destination selectors may also hold "{{.key}}" templates that refer to the client's labels.
const selectorValue = D.string({ max: 63, pattern: /^[A-Za-z0-9_.{} -]*$/, patternHint: 'a label value or a {{.key}} template' });
const selector: D.Decoder<Labels> = D.record(labelKey, selectorValue, { max: 32 });
export const cidr = D.refine(D.string({ min: 1, max: 43 }), (s) => {
  const r = parseCidr(s);
  return E.isLeft(r) ? r.left : undefined;
});
/** An interface address "a.b.c.d/len" or "x:y::z/len": host bits allowed, unlike a prefix. */
export const interfaceAddress = D.refine(D.string({ min: 4, max: 49, pattern: /^[0-9a-fA-F.:]+\/\d{1,3}$/, patternHint: 'an address with prefix length, like 10.0.0.2/24 or fd00::2/64' }), (s) => {
  const r = parseInterfaceAddress(s);
  return E.isLeft(r) ? r.left : undefined;
});
export const ipFamily: D.Decoder<Family> = D.literal(...FAMILIES);
/** A named namespace (ip netns); which paths are accepted is the operator's choice (netnsProblem). */
export const netns = D.string({ min: 1, max: 255, pattern: /^[A-Za-z0-9_.\/-]+$/, patternHint: 'a namespace name or path' });
const payload: D.Decoder<Payload> = D.literal('IP', 'ETHERNET');
export const mechanism: D.Decoder<MechanismType> = D.literal(...MECHANISM_TYPES);
/** A Linux interface name: at most 15 characters. */
export const interfaceName = D.string({ min: 1, max: 15, pattern: /^[A-Za-z0-9_-]+$/, patternHint: 'a Linux interface name' });
const actor = D.key(D.string({ min: 1, max: 128, pattern: ACTOR_PATTERN, patternHint: ACTOR_HINT }));
/** A signed path token (src/security/pathToken.ts): three base64url parts. */
export const pathToken = D.string({ min: 5, max: 4096, pattern: /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/, patternHint: 'a path token (header.payload.signature, base64url)' });

const policyRule: D.Decoder<PolicyRule> = D.map(
  D.object(
    { name, action: D.literal('allow', 'deny') },
    {
      clients: D.array(D.string({ min: 1, max: 128, pattern: /^(\*|[A-Za-z0-9_:@+=-]+)$/, patternHint: `"*" or a client identity (${ACTOR_HINT})` }), { max: 256 }),
      clientLabels: labels,
      services: D.array(D.string({ min: 1, max: 63, pattern: /^(\*|[A-Za-z0-9][A-Za-z0-9_-]*)$/, patternHint: `"*" or a service name (${NAME_HINT})` }), { max: 256 }),
      requireLabels: labels,
      forbidLabels: D.record(labelKey, D.string({ max: 63, pattern: /^(\*|([A-Za-z0-9]([A-Za-z0-9_.-]{0,61}[A-Za-z0-9])?)?)$/, patternHint: 'a label value or "*"' }), { max: 32 }),
    },
  ),
  (r) => ({
    name: r.name,
    action: r.action,
    clients: r.clients ?? [],
    clientLabels: r.clientLabels ?? {},
    services: r.services ?? [],
    requireLabels: r.requireLabels ?? {},
    forbidLabels: r.forbidLabels ?? {},
  }),
);
export const policyDecoder: D.Decoder<Policy> = D.map(
  D.object({ rules: D.array(policyRule, { max: 1000 }) }, { defaultAction: D.literal('allow', 'deny') }),
  (p) => ({ defaultAction: p.defaultAction ?? 'allow', rules: p.rules }),
);

/** "svc" or "svc@domain": a service of this domain or of another one (federation). */
export const SERVICE_REF_PATTERN = new RegExp(`^${NAME_PATTERN.source.slice(1, -1)}(@${DOMAIN_PATTERN.source.slice(1, -1)})?$`);
export const serviceRef = D.refine(D.string({ min: 1, max: 96, pattern: SERVICE_REF_PATTERN, patternHint: `a service name, or service@domain (${NAME_HINT})` }), (ref) => {
  const { service, domain } = splitServiceRef(ref);
  return D.PROTOTYPE_KEYS.has(service) || (domain !== undefined && D.PROTOTYPE_KEYS.has(domain)) ? `invalid value ${JSON.stringify(ref)}: the name of a JavaScript object member is reserved` : undefined;
});
/** "svc@domain" -> its parts; a plain name has no domain. */
export const splitServiceRef = (ref: string): { service: string; domain?: string } => {
  const at = ref.indexOf('@');
  return at < 0 ? { service: ref } : { service: ref.slice(0, at), domain: ref.slice(at + 1) };
};
export const domainName = D.key(D.string({ min: 1, max: 32, pattern: DOMAIN_PATTERN, patternHint: 'a domain name' }));
export const address = D.refine(D.string({ min: 1, max: 45, pattern: /^[0-9a-fA-F.:]+$/, patternHint: 'an IP address' }), (s) =>
  parseAddress(s) ? undefined : `"${s}" is not an IPv4 or IPv6 address`,
);
const publicKeys = D.record(name, D.string({ min: 1, max: 256, pattern: /^[A-Za-z0-9+\/=_-]+$/, patternHint: 'a base64 public key' }), { max: 8 });
const tunnelRange = D.refine(D.object({ from: D.integer({ min: 0, max: 2 ** 24 }), to: D.integer({ min: 0, max: 2 ** 24 }) }), (r) => (r.from > r.to ? 'from must not exceed to' : undefined));

/** A node as another domain sees it (interdomain requests and states). */
export const remoteNodeBody = D.object(
  { name, mechanisms: D.array(mechanism, { min: 1, max: 8 }), mtu: D.integer({ min: 576, max: 65535 }) },
  { address, publicKeys, localPrefixes: D.array(cidr, { max: 256 }), tunnelIds: tunnelRange },
);
const ipContext = D.object({
  srcIpAddrs: D.array(interfaceAddress, { max: 16 }),
  dstIpAddrs: D.array(interfaceAddress, { max: 16 }),
  srcRoutes: D.array(D.object({ prefix: cidr }), { max: 64 }),
  dstRoutes: D.array(D.object({ prefix: cidr }), { max: 64 }),
  excludedPrefixes: D.array(cidr, { max: 256 }),
});
const connectionContext = D.object({
  ipContext,
  dnsContext: D.object({ configs: D.array(D.object({ dnsServerIps: D.array(address, { max: 8 }), searchDomains: D.array(D.string({ min: 1, max: 253 }), { max: 8 }) }), { max: 8 }) }),
  ethernetContext: D.object({}, { srcMac: D.string({ min: 1, max: 17 }), dstMac: D.string({ min: 1, max: 17 }), vlanTag: D.integer({ min: 0, max: 4095 }) }),
  mtu: D.integer({ min: 0, max: 65535 }),
});
export const tunnelParameters = D.object({
  id: D.integer({ min: 0, max: 2 ** 24 }),
  vni: D.integer({ min: 1, max: 2 ** 24 - 1 }),
  vxlanPort: D.integer({ min: 1, max: 65535 }),
  wireguardPort: D.integer({ min: 1, max: 65535 }),
});
const failureCode = D.literal('no-endpoint', 'no-mechanism', 'node-unknown', 'address', 'dataplane', 'denied', 'limited');

const match: D.Decoder<Match> = D.map(
  D.object(
    { routes: D.array(D.object({ destinationSelector: selector }, { weight: D.integer({ min: 0, max: 1000 }) }), { max: 16 }) },
    { sourceSelector: selector, fallthrough: D.boolean },
  ),
  (m) => ({ sourceSelector: m.sourceSelector ?? {}, routes: m.routes, fallthrough: m.fallthrough ?? false }),
);

/** A DNS name: dot-separated labels of letters, digits and "-" (a search domain). */
export const dnsName = D.string({ min: 1, max: 253, pattern: /^[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?$/, patternHint: 'a domain name like svc.example' });
/** A name server: an address, or "endpoint" (the endpoint's own address on each connection). */
const dnsServer = D.refine(D.string({ min: 1, max: 45, pattern: /^([0-9a-fA-F.:]+|endpoint)$/, patternHint: 'an IP address or "endpoint"' }), (s) =>
  s === DNS_AT_ENDPOINT || parseAddress(s) ? undefined : `"${s}" is not an IPv4 or IPv6 address (or "endpoint")`,
);
/** The DNS a service or an endpoint offers its clients (glibc reads at most 3 name servers and 6 search domains). */
export const offeredDns = D.object({ servers: D.array(dnsServer, { min: 1, max: 3 }) }, { searchDomains: D.array(dnsName, { max: 6 }) });

/** `prefix` or `prefixes`, not both; one prefix per family; no exclusion swallowing a whole prefix. */
function endpointPrefixProblem(b: { prefix?: string; prefixes?: string[]; excludedPrefixes?: string[] }): { at: string; message: string } | undefined {
  if (b.prefix !== undefined && b.prefixes !== undefined) return { at: 'prefixes', message: 'give prefix or prefixes, not both' };
  const prefixes = b.prefixes ?? (b.prefix !== undefined ? [b.prefix] : []);
  const problem = prefixProblem(prefixes, b.excludedPrefixes ?? []);
  // With the one-prefix form, the field is called prefix.
  return problem && b.prefix !== undefined ? { ...problem, at: problem.at.replace(/^prefixes\[0\]/, 'prefix') } : problem;
}

/** The body fields for an endpoint's prefixes: one in the form every control plane reads, two as a list. */
export const prefixFields = (prefixes: readonly string[] | undefined): { prefix?: string; prefixes?: string[] } =>
  !prefixes || prefixes.length === 0 ? {} : prefixes.length === 1 ? { prefix: prefixes[0]! } : { prefixes: [...prefixes] };

/** The prefixes an endpoint.register body names, whichever form it uses. */
export const endpointPrefixes = (b: { prefix?: string; prefixes?: readonly string[] }): readonly string[] | undefined => b.prefixes ?? (b.prefix !== undefined ? [b.prefix] : undefined);

export const bodies = {
  'service.register': D.refineAt(
    D.object({ name }, { payload, matches: D.array(match, { max: 32 }), ipFamilies: D.array(ipFamily, { min: 1, max: 2 }), dns: offeredDns }),
    (b) => (b.ipFamilies && new Set(b.ipFamilies).size < b.ipFamilies.length ? { at: 'ipFamilies', message: 'a family is named twice' } : undefined),
  ),
  'service.unregister': D.object({ name }),
  'endpoint.register': D.refineAt(
    D.object(
      // "svc@floating" also registers the endpoint in that floating registry (docs/federation.md).
      { name, networkServiceNames: D.array(serviceRef, { min: 1, max: 16 }), node: name },
      {
        networkServiceLabels: D.record(name, D.object({ labels }), { max: 16 }),
        /** One prefix (older clients); `prefixes` gives one per family. */
        prefix: cidr,
        prefixes: D.array(cidr, { min: 1, max: 2 }),
        excludedPrefixes: D.array(cidr, { max: 64 }),
        expirationSeconds: D.integer({ min: 1, max: 86400 * 365 }),
        netns,
        dns: offeredDns,
      },
    ),
    endpointPrefixProblem,
  ),
  'endpoint.unregister': D.object({ name }),
  'node.join': D.object(
    { name, mechanisms: D.array(mechanism, { min: 1, max: 8 }), dataplane: D.literal('simulated', 'linux') },
    {
      underlayAddress: address,
      mtu: D.integer({ min: 576, max: 65535 }),
      publicKeys,
      localPrefixes: D.array(cidr, { max: 256 }),
      /** Where nodes of other domains reach this one when it is behind NAT (federation). */
      externalAddress: address,
    },
  ),
  'node.leave': D.object({ name }),
  'connection.request': D.object(
    // "svc@domain": a service of another domain of the federation.
    { connectionId: id, networkService: serviceRef, clientNode: name },
    {
      labels,
      clientNetns: netns,
      clientInterface: D.string({ min: 1, max: 15, pattern: /^[A-Za-z0-9_-]+$/, patternHint: 'a Linux interface name (at most 15 characters)' }),
      mechanismPreferences: D.array(mechanism, { max: 8 }),
      expirationSeconds: D.integer({ min: 1, max: 86400 * 365 }),
      token: pathToken,
    },
  ),
  'connection.refresh': D.object({ connectionId: id, expirationSeconds: D.integer({ min: 1, max: 86400 * 365 }) }, { token: pathToken }),
  'connection.close': D.object({ connectionId: id }, { reason: D.string({ max: 256 }) }),
  'connection.report': D.object(
    {
      connectionId: id,
      node: name,
      side: D.literal('client', 'endpoint'),
      generation: D.integer({ min: 1, max: 2 ** 31 }),
      result: D.literal('programmed', 'removed', 'failed', 'broken'),
    },
    // refused: the agent would not act on the side (its path tokens did not check out); nothing
    // about the endpoint is wrong, so the connection fails rather than moving elsewhere.
    { error: D.string({ max: 1024 }), token: pathToken, refused: D.boolean },
  ),
  'policy.set': D.object({ policy: policyDecoder }),
  'policy.add': D.object({ rule: policyRule }, { position: D.integer({ min: 0, max: 1000 }) }),
  'policy.remove': D.object({ name }),
  // Per-role or per-identity limits (aggregates/limits.ts); without `limits` the scope's own are removed.
  'limits.set': D.refine(
    D.object(
      {},
      {
        role: D.literal('client', 'operator', 'peer'),
        identity: actor,
        limits: D.object({}, { connections: D.integer({ min: 0, max: 10_000_000 }), pending: D.integer({ min: 0, max: 10_000_000 }), ratePerSecond: D.integer({ min: 0, max: 10_000_000 }) }),
      },
    ),
    (b) => ((b.role === undefined) === (b.identity === undefined) ? 'give either role or identity' : undefined),
  ),
  // An operator asks for a workflow step the process manager gave up on to be tried again.
  'workflow.retry': D.object({ position: D.string({ min: 1, max: 20, pattern: /^[1-9][0-9]*$/, patternHint: 'a log position (a positive integer)' }) }),
  // Federation: commands between domains' control planes, on nsm.<domain>.fed.<from>.cmd.<verb>,
  // sent by actor "peer:<from>" (docs/federation.md).
  'interdomain.request': D.object(
    { connectionId: id, networkService: name, clientInterface: interfaceName, client: remoteNodeBody },
    { labels, mechanismPreferences: D.array(mechanism, { max: 8 }), endpointHint: name },
  ),
  'interdomain.state': D.object(
    {
      connectionId: id,
      generation: D.integer({ min: 0, max: 2 ** 31 }),
      phase: D.literal('planned', 'waiting', 'failed', 'closed'),
      endpointProgrammed: D.boolean,
    },
    {
      plan: D.object(
        { endpoint: name, node: remoteNodeBody, mechanism: D.object({ local: D.literal('kernel') }, { remote: D.literal('vxlan', 'wireguard') }), context: connectionContext, endpointInterface: interfaceName },
        { tunnel: tunnelParameters },
      ),
      reason: D.string({ max: 1024 }),
      code: failureCode,
    },
  ),
  'interdomain.report': D.object(
    { connectionId: id, node: name, generation: D.integer({ min: 1, max: 2 ** 31 }), result: D.literal('programmed', 'failed', 'broken') },
    { error: D.string({ max: 1024 }) },
  ),
  'interdomain.close': D.object({ connectionId: id }, { reason: D.string({ max: 512 }) }),
  'interdomain.redirect': D.object({ connectionId: id }, { domain: domainName, endpoint: name, reason: D.string({ max: 1024 }) }),
  'interdomain.endpoint': D.refineAt(
    D.object(
      { op: D.literal('register', 'unregister'), name },
      {
        networkServiceNames: D.array(name, { min: 1, max: 16 }),
        networkServiceLabels: D.record(name, D.object({ labels }), { max: 16 }),
        node: name,
        prefix: cidr,
        prefixes: D.array(cidr, { min: 1, max: 2 }),
        excludedPrefixes: D.array(cidr, { max: 64 }),
      },
    ),
    endpointPrefixProblem,
  ),
} as const;

export type CommandKind = keyof typeof bodies;
export const COMMAND_KINDS = Object.keys(bodies) as CommandKind[];
export type CommandBody<K extends CommandKind> = (typeof bodies)[K] extends D.Decoder<infer A> ? A : never;

/** One command of kind K as the control plane receives it. */
export interface CommandMessageOf<K extends CommandKind> {
  readonly kind: K;
  readonly id: string;
  readonly actor: string;
  readonly correlationId?: string;
  readonly causationId?: string;
  readonly body: CommandBody<K>;
}

/**
 * A command of one of the kinds K (default: any), as a union over the kinds: checking `kind`
 * narrows `body`, and a function generic in K can look its kind up in a table of routes.
 */
export type CommandMessage<K extends CommandKind = CommandKind> = { [P in K]: CommandMessageOf<P> }[K];

/** Correlation and causation ids may be any event, command or workflow id: a wider charset than command ids. */
export const traceId = D.string({ min: 1, max: 200, pattern: /^[A-Za-z0-9_.:-]+$/, patternHint: 'an id' });
// The actor is the subject's last token; the body may repeat it, and then it must agree.
const envelopeShape = D.object({ id, body: (v, _p) => E.right(v) }, { actor, correlationId: traceId, causationId: traceId });

export const isCommandKind = (kind: string): kind is CommandKind => (COMMAND_KINDS as string[]).includes(kind);

export const decodeCommand = <K extends CommandKind>(kind: K, subjectActor: string, input: unknown): E.Either<D.DecodeError, CommandMessage<K>> => {
  if (!ACTOR_PATTERN.test(subjectActor)) return E.left({ path: 'subject', message: `actor token ${JSON.stringify(subjectActor)}: ${ACTOR_HINT}` });
  // The actor keys the requesters' usage in the read model (byActor).
  if (D.PROTOTYPE_KEYS.has(subjectActor)) return E.left({ path: 'subject', message: `actor token ${JSON.stringify(subjectActor)}: the name of a JavaScript object member is reserved` });
  const env = envelopeShape(input, '');
  if (E.isLeft(env)) return env;
  if (env.right.actor !== undefined && env.right.actor !== subjectActor) {
    return E.left({ path: 'actor', message: `"${env.right.actor}" differs from the sender named in the subject, "${subjectActor}"` });
  }
  const body = bodies[kind](env.right.body, 'body');
  if (E.isLeft(body)) return body;
  const { actor: _a, ...rest } = env.right;
  // The one place a kind and its body are put together: bodies[kind] decoded this body, which
  // the type system cannot see through a generic K.
  const msg: CommandMessageOf<K> = { ...rest, actor: subjectActor, kind, body: body.right as CommandBody<K> };
  return E.right(msg as unknown as CommandMessage<K>);
};

/**
 * Commands that speak for a node must come from that node's agent: its actor is "agent:<node>".
 * With authentication on, NATS permissions make the subject's actor trustworthy; this check
 * then keeps one node from reporting on or joining as another.
 */
export const senderProblem = (msg: CommandMessage): string | undefined => {
  const node = msg.kind === 'connection.report' ? msg.body.node : msg.kind === 'node.join' ? msg.body.name : undefined;
  if (node === undefined || msg.actor === agentActor(node)) return undefined;
  return `${msg.kind} for node "${node}" must come from its agent ("${agentActor(node)}"), not "${msg.actor}"`;
};

export const agentActor = (node: string): string => `agent:${node}`;

/**
 * A namespace the agents must never be pointed at: anything but a named namespace or a file
 * directly in a directory the operator allows (src/contracts/netnsRef.ts). Checked before any
 * decision, so a refused reference changes nothing.
 */
export const netnsProblem = (msg: CommandMessage, allowedDirs: readonly string[]): string | undefined => {
  const value =
    msg.kind === 'connection.request' ? msg.body.clientNetns : msg.kind === 'endpoint.register' ? msg.body.netns : undefined;
  if (value === undefined) return undefined;
  const r = workloadNetns(value, allowedDirs);
  return E.isLeft(r) ? `${msg.kind === 'connection.request' ? 'body.clientNetns' : 'body.netns'}: ${r.left}` : undefined;
};
