// nats-server configuration for joining domains with leafnodes (docs/federation.md): a hub
// listens for leaf connections (`nsm up --leaf-port P`), another domain's server connects to it
// (`nsm up --join nats-leaf://HOST:P`). Each server runs its own JetStream domain, so streams,
// KV buckets and the JetStream API stay local to it; only plain subjects with interest on the
// other side cross, and a domain's subjects all start with nsm.<domain>.
export interface LeafHub {
  readonly port: number;
  readonly host?: string;
  /** TLS for leaf connections (authenticated deployments). */
  readonly tls?: { readonly certFile: string; readonly keyFile: string; readonly caFile: string };
}

export interface LeafRemote {
  /** nats-leaf://[user:password@]host:port */
  readonly url: string;
  /** CA that signed the hub's certificate, when the hub requires TLS. */
  readonly caFile?: string;
  /** Subjects this server refuses to receive from the hub (what a joining domain keeps to itself). */
  readonly denyImports?: readonly string[];
  /** Subjects this server does not send to the hub. */
  readonly denyExports?: readonly string[];
}

const list = (xs: readonly string[]) => `[${xs.map((x) => JSON.stringify(x)).join(', ')}]`;

export const leafnodesConfig = (o: { hub?: LeafHub; remotes?: readonly LeafRemote[] }): string => {
  if (!o.hub && (!o.remotes || o.remotes.length === 0)) return '';
  const lines = ['leafnodes {'];
  if (o.hub) {
    lines.push(`  listen: ${JSON.stringify(`${o.hub.host ?? '0.0.0.0'}:${o.hub.port}`)}`);
    if (o.hub.tls) lines.push(`  tls { cert_file: ${JSON.stringify(o.hub.tls.certFile)}, key_file: ${JSON.stringify(o.hub.tls.keyFile)}, ca_file: ${JSON.stringify(o.hub.tls.caFile)}, timeout: 5 }`);
  }
  if (o.remotes && o.remotes.length > 0) {
    lines.push('  remotes: [');
    for (const r of o.remotes) {
      const parts = [`url: ${JSON.stringify(r.url)}`];
      if (r.caFile) parts.push(`tls: { ca_file: ${JSON.stringify(r.caFile)} }`);
      if (r.denyImports && r.denyImports.length > 0) parts.push(`deny_imports: ${list(r.denyImports)}`);
      if (r.denyExports && r.denyExports.length > 0) parts.push(`deny_exports: ${list(r.denyExports)}`);
      lines.push(`    { ${parts.join(', ')} }`);
    }
    lines.push('  ]');
  }
  lines.push('}');
  return lines.join('\n');
};

/** "nats-leaf://host:port" (user and password allowed), checked before nats-server sees it. */
export const checkLeafUrl = (url: string): string | undefined => {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return `"${url}" is not a URL like nats-leaf://hub.example.org:7422`;
  }
  if (u.protocol !== 'nats-leaf:' && u.protocol !== 'tls:' && u.protocol !== 'nats:') return `"${url}": the scheme must be nats-leaf:// (or tls:// or nats://)`;
  if (!u.hostname || !u.port) return `"${url}": give the hub's host and leafnode port, like nats-leaf://hub:7422`;
  return undefined;
};
