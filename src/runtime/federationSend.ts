// Durable commands to another domain's control plane: a JetStream publish to
// nsm.<to>.fed.<self>.cmd.<verb>, which only that domain's command stream captures (its interest
// crosses the leafnode link). The msgID is the command id: a retried send is stored once.
import type { NatsConnection } from 'nats';
import { peerActor, subjectsFor } from '../contracts/subjects.ts';
import type { CommandBody, CommandKind } from '../contracts/commands.ts';
import { RetryLater } from '../command/execute.ts';

type InterdomainVerb = CommandKind extends infer K ? (K extends `interdomain.${infer V}` ? V : never) : never;

export type InterdomainSender = <V extends InterdomainVerb>(
  to: string,
  verb: V,
  body: CommandBody<`interdomain.${V}` & CommandKind>,
  meta: { id: string; correlationId?: string; causationId?: string },
) => Promise<void>;

const enc = new TextEncoder();

/** Throws RetryLater when the other domain does not take it (link down, no control plane there): the step is retried. */
export const interdomainSender = (nc: NatsConnection, self: string, timeoutMs: number): InterdomainSender => {
  const js = nc.jetstream();
  return async (to, verb, body, meta) => {
    const data = enc.encode(
      JSON.stringify({
        id: meta.id,
        actor: peerActor(self),
        body,
        ...(meta.correlationId ? { correlationId: meta.correlationId } : {}),
        ...(meta.causationId ? { causationId: meta.causationId } : {}),
      }),
    );
    try {
      await js.publish(subjectsFor(to).fedCommand(self, verb), data, { msgID: meta.id, timeout: timeoutMs });
    } catch (e) {
      const code = (e as { code?: string }).code;
      const why = code === '503' ? `domain ${to} is not reachable (no route to its command stream)` : (e as Error).message;
      throw new RetryLater(`interdomain ${verb} to ${to}: ${why}`);
    }
  };
};
