// nsm revoke: an identity's keys are refused from now on, by nats-server and by the mesh (docs/security.md).
import { resolve } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import { reloadServerOn } from '../../../infra/natsServer.ts';
import { defaultDataDir } from '../../client/index.ts';
import { hasDeployment } from '../../security/init.ts';
import { clusterServerDir, readCluster } from '../../security/cluster.ts';
import { revokeIdentity } from '../../security/keyManagement.ts';
import { defineCommand } from '../command.ts';
import { checkDomain, defaultDomain, fail, must } from '../kit.ts';
import { str } from '../options.ts';

/**
 * Reloads the nats-servers nsm up runs on the deployment on this host (its single server, or the
 * cluster servers of cluster/server-K), so the key change applies now; what happened, for the output.
 * Cluster servers on other hosts reload when their nsm up sees its copy of identities.json change.
 */
export const applyToServer = async (dir: string): Promise<{ status: 'reloaded' | 'not-running' | 'failed'; text: string }> => {
  const cluster = readCluster(dir);
  const dirs = [dir, ...(E.isRight(cluster) && cluster.right ? cluster.right.servers.map((s) => clusterServerDir(dir, s.index)) : [])];
  const reloaded: string[] = [];
  const failed: string[] = [];
  for (const d of dirs) {
    const r = await reloadServerOn(d);
    if (E.isLeft(r)) failed.push(`nats-server on ${d} did not reload: ${r.left}`);
    else if (r.right === 'reloaded') reloaded.push(d);
  }
  if (failed.length > 0) return { status: 'failed', text: `${failed.join('; ')}; nats-auth.conf is written, reload it (kill -HUP) or restart nsm up` };
  return reloaded.length > 0
    ? { status: 'reloaded', text: `nats-server on ${reloaded.join(', ')} reloaded: it accepts the keys valid now (connections of keys no longer valid are closed)` }
    : { status: 'not-running', text: `no nats-server runs on ${dir}: nats-auth.conf is written, and nsm up uses it when it starts` };
};

export const revoke = defineCommand({
  name: 'revoke',
  group: 'setup',
  usage: ['nsm revoke ACTOR [--dir DIR] [--domain D]     (refuse every key of an identity from now on)'],
  description: `
Revokes an identity of the deployment in DIR: an operator, auditor or client name, or agent:<node>.
From now on nats-server refuses its keys (a nats-server that nsm up runs on DIR is reloaded at once,
which closes the identity's connections), and the control plane and agents refuse its commands,
queries, API tokens and the path tokens it signed. Its credentials file is removed. The change is
recorded in the log (nsm history identities). To let it act again, give it a new key: nsm init --rotate ACTOR.
The control plane is not revoked but rotated. See docs/security.md.`,
  flags: {
    dir: str('DIR', 'the deployment', { defaultText: '$XDG_DATA_HOME/nsm/<domain>, else ~/.local/share/nsm/<domain>' }),
  },
  common: ['domain', 'json'],
  async run({ values: v, positionals }, ctx) {
    const domain = checkDomain(v.domain ?? defaultDomain());
    const dir = resolve(v.dir ?? defaultDataDir(domain));
    const actor = positionals[0] ?? fail(`missing ACTOR; ${ctx.seeHelp}`);
    if (positionals.length > 1) fail(`one identity at a time; ${ctx.seeHelp}`);
    if (!hasDeployment(dir)) fail(`${dir} holds no deployment (nsm init --dir ${dir} --domain ${domain} creates one)`);
    const r = must(revokeIdentity({ dir, actor, now: new Date() }));
    const server = await applyToServer(dir);
    ctx.out(v, { dir, domain, actor: r.identity.actor, revokedAt: r.identity.revokedAt, removedCredentials: r.removedCreds ?? null, server }, () =>
      [
        `${r.identity.actor} (${r.identity.role}) revoked at ${r.identity.revokedAt}`,
        `  ${server.text}`,
        r.removedCreds ? `  removed its credentials file ${r.removedCreds}` : `  it had no credentials file in ${dir}`,
        `  copy identities.json to every host of the mesh: running control planes and agents refuse ${r.identity.actor} within a second of reading it`,
      ].join('\n'),
    );
  },
});
