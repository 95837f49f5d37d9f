// The node agent's side of path tokens: before it programs or removes a side it checks the
// connection's signed path (the client's and the control plane's tokens, for this node, this
// generation and these addresses); once a side is programmed it signs its own segment.
import * as E from 'fp-ts/lib/Either.js';
import type { SideSpec } from '../contracts/nodeCommands.ts';
import type { IdentityRegistry } from './identities.ts';
import type { Signer } from './keys.ts';
import { agentToken, verifyPathChain } from './pathToken.ts';

export interface AgentSecurity {
  /** Public keys and roles of the mesh's identities (identities.json). */
  readonly registry: IdentityRegistry;
  /** The agent's own key (its NATS identity). */
  readonly signer: Signer;
}

/** Why the agent must not act on this side; undefined: the path checks out. */
export const pathProblem = async (security: AgentSecurity, spec: SideSpec, now: Date): Promise<string | undefined> => {
  const r = await verifyPathChain(spec.path?.pathSegments, {
    registry: security.registry,
    connectionId: spec.connectionId,
    generation: spec.generation,
    node: spec.node,
    side: spec.side,
    addresses: spec.addresses,
    now,
    checkExpiry: spec.desired === 'present',
  });
  return E.isLeft(r) ? `refused: ${r.left}` : undefined;
};

/** The agent's signed segment for a side it has programmed. */
export const programmedToken = (security: AgentSecurity, spec: SideSpec, now: Date): string | undefined =>
  spec.path
    ? agentToken({ signer: security.signer, actor: `agent:${spec.node}`, segments: spec.path.pathSegments, side: spec.side, connectionId: spec.connectionId, generation: spec.generation, now })
    : undefined;
