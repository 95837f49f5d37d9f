// A domain's deployment made by `nsm init` (one node n1, its peers and clients) for tests that
// run two federated domains in process: its identities and each actor's credentials.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as E from 'fp-ts/lib/Either.js';
import type { RunningNatsServer } from '../../infra/natsServer.ts';
import type { NodeAgent } from '../../node-agent/agent.ts';
import type { ControlPlane } from '../../src/runtime/controlPlane.ts';
import { readCredentials, type Credentials } from '../../src/security/credentials.ts';
import { loadRegistry, type IdentityRegistry } from '../../src/security/identities.ts';
import { initDeployment, type DeploymentPaths } from '../../src/security/init.ts';

export interface PeerDomain {
  name: string;
  dir: string;
  paths: DeploymentPaths;
  registry: IdentityRegistry;
  server?: RunningNatsServer;
  cp?: ControlPlane;
  agent?: NodeAgent;
  creds(actor: string): Credentials;
}

/** `nsm init` of domain `name` in a fresh temp dir named after `prefix` (the caller removes `dir`). */
export const peerDeployment = (prefix: string, name: string, peers: string[], clients: string[] = []): PeerDomain => {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-${name}-`));
  const init = initDeployment({ dir, domain: name, nodes: ['n1'], peers, clients });
  if (E.isLeft(init)) throw new Error(init.left);
  const reg = loadRegistry(init.right.paths.identities);
  if (E.isLeft(reg)) throw new Error(reg.left);
  return {
    name,
    dir,
    paths: init.right.paths,
    registry: reg.right,
    creds: (actor) => {
      const id = reg.right.byActor(actor)!;
      const c = readCredentials(init.right.paths.creds(id.name, id.role));
      if (E.isLeft(c)) throw new Error(c.left);
      return c.right;
    },
  };
};
