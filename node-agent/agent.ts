// The node agent: joins its node to the mesh, reconciles the dataplane with the node's desired
// state, then carries out its node's commands from a durable consumer and reports each result
// back to the control plane as a command. Heartbeats on nsm.<domain>.hb.<node>.
import * as E from 'fp-ts/lib/Either.js';
import type { ConsumerMessages, NatsConnection } from 'nats';
import { errorText, type Logger } from '../src/ports/logger.ts';
import { ensureStreams } from '../infra/nats/streams.ts';
import { MeshClient } from '../src/client/index.ts';
import { stableId } from '../src/contracts/ids.ts';
import { agentConsumerName } from '../src/contracts/subjects.ts';
import * as D from '../src/contracts/decode.ts';
import { agentActor } from '../src/contracts/commands.ts';
import { decodeNodeCommand, type SideSpec } from '../src/contracts/nodeCommands.ts';
import { pathProblem, programmedToken, type AgentSecurity } from '../src/security/agentSecurity.ts';
import { FairQueue } from '../src/lib/fairQueue.ts';
import { sideKey, type Dataplane } from './dataplane.ts';
import { AppliedSides } from './appliedSides.ts';
import { sleep, backoff } from '../src/lib/time.ts';
import { consumeDurable } from '../infra/nats/consumers.ts';

export interface NodeAgentOptions {
  readonly nc: NatsConnection;
  readonly domain: string;
  readonly node: string;
  readonly dataplane: Dataplane;
  readonly log: Logger;
  readonly heartbeatMs?: number;
  readonly underlayAddress?: string;
  /** Federation: where nodes of other domains reach this one when it is behind NAT. */
  readonly externalAddress?: string;
  readonly mtu?: number;
  readonly publicKeys?: Readonly<Record<string, string>>;
  /** Prefixes the node routes itself: excluded from address allocation. */
  readonly localPrefixes?: readonly string[];
  /** How often each programmed client side's datapath is probed; 0 turns probing off. */
  readonly livenessIntervalMs?: number;
  /** Consecutive failed probes before the datapath is reported broken. */
  readonly livenessFailures?: number;
  /**
   * Authenticated mesh: the agent checks every connection's signed path before acting and signs
   * its own segment; it leaves stream management to the control plane (it has no right to it).
   */
  readonly security?: AgentSecurity;
  /** Told of each programming and broken datapath (the process's metrics, src/runtime/metrics.ts). */
  readonly observer?: AgentObserver;
}

/** What the agent tells its process's metrics. mechanism: the side's, remote if any (vxlan, wireguard), else local (kernel). */
export interface AgentObserver {
  programmed(mechanism: string, seconds: number, ok: boolean): void;
  broken(mechanism: string): void;
}

const mechanismOf = (spec: SideSpec): string => spec.mechanism.remote ?? spec.mechanism.local;

export const DEFAULT_LIVENESS_INTERVAL_MS = 2000;
export const DEFAULT_LIVENESS_FAILURES = 3;

export interface NodeAgent {
  /** Resolves when the first reconciliation is done and commands are being consumed. */
  readonly ready: Promise<void>;
  /** Sides programmed and not removed (what the heartbeat reports). */
  programmedSides(): number;
  stop(): Promise<void>;
}

type Report = 'programmed' | 'removed' | 'failed' | 'broken';
/** Sides asked for per page when reconciling (a side with its signed path is a few KB; a NATS message holds 1 MB). */
const DESIRED_PAGE = 200;


export const startNodeAgent = async (opts: NodeAgentOptions): Promise<NodeAgent> => {
  const { nc, node, dataplane } = opts;
  const log = opts.log.child({ node });
  const client = MeshClient.over(nc, { domain: opts.domain, actor: agentActor(node) });
  const subjects = client.subjects;
  const jsm = await nc.jetstreamManager({ checkAPI: false });
  if (!opts.security) await ensureStreams(jsm, subjects);
  let stopping = false;
  /** Highest generation acted on per side: older commands arriving late are ignored (./appliedSides.ts). */
  const applied = new AppliedSides();
  /** Client sides that are programmed, for the liveness probe. */
  const probed = new Map<string, { spec: SideSpec; failures: number; reported: boolean }>();

  type Trace = { correlationId?: string; causationId?: string };
  const report = async (spec: Pick<SideSpec, 'connectionId' | 'generation' | 'side'>, result: Report, error?: string, trace: Trace = {}, refused = false) => {
    const id = stableId(`report:${spec.connectionId}:${spec.generation}:${spec.side}:${result}`);
    const token = result === 'programmed' && opts.security && 'path' in spec ? programmedToken(opts.security, spec as SideSpec, new Date()) : undefined;
    const r = await client.send(
      'connection.report',
      { connectionId: spec.connectionId, node, side: spec.side, generation: spec.generation, result, ...(error ? { error } : {}), ...(token ? { token } : {}), ...(refused ? { refused: true } : {}) },
      { id, wait: false, ...trace },
    );
    if (E.isLeft(r)) throw new Error(`could not report ${result} for ${spec.connectionId}: ${r.left.message}`);
  };

  const apply = async (spec: SideSpec, origin: string, trace: Trace = {}) => {
    // Removing what the control plane's own answer no longer lists needs no token.
    const refused = opts.security && origin !== 'reconcile-cleanup' ? await pathProblem(opts.security, spec, new Date()) : undefined;
    if (refused) {
      log.error('refusing to act on a side: its path tokens do not check out', { connectionId: spec.connectionId, side: spec.side, generation: spec.generation, desired: spec.desired, origin, reason: refused });
      if (spec.desired === 'present') await report(spec, 'failed', refused, trace, true);
      return;
    }
    const key = sideKey(spec);
    const seen = applied.get(key);
    // Removal is final for a generation: a "present" redelivered after its "absent" must not
    // bring the side back.
    if (seen && (spec.generation < seen.generation || (spec.generation === seen.generation && (seen.desired === spec.desired || seen.desired === 'absent')))) {
      log.debug('node command already applied', { connectionId: spec.connectionId, side: spec.side, generation: spec.generation, desired: spec.desired });
      // Said again as it was: a redelivery (e.g. after the first report could not be sent) must
      // not turn a failure into "programmed".
      if (spec.generation === seen.generation) await report(spec, seen.desired === 'absent' ? 'removed' : seen.error !== undefined ? 'failed' : 'programmed', seen.error, trace);
      return;
    }
    if (spec.desired === 'present') {
      const started = performance.now();
      const r = await dataplane.program(spec)();
      opts.observer?.programmed(mechanismOf(spec), (performance.now() - started) / 1000, E.isRight(r));
      applied.set(key, { generation: spec.generation, desired: 'present', ...(E.isLeft(r) ? { error: r.left.message } : {}) });
      if (E.isLeft(r)) {
        // An earlier generation's probe would ping addresses this side no longer has.
        probed.delete(key);
        log.warn('programming failed', { connectionId: spec.connectionId, side: spec.side, error: r.left.message, origin });
        await report(spec, 'failed', r.left.message, trace);
      } else {
        log.info('side programmed', { connectionId: spec.connectionId, side: spec.side, generation: spec.generation, origin });
        if (spec.side === 'client') probed.set(key, { spec, failures: 0, reported: false });
        await report(spec, 'programmed', undefined, trace);
      }
    } else {
      const r = await dataplane.remove(spec)();
      if (E.isLeft(r)) {
        log.warn('removal failed', { connectionId: spec.connectionId, side: spec.side, error: r.left.message, origin });
        throw new Error(r.left.message);
      }
      applied.set(key, { generation: spec.generation, desired: 'absent' });
      probed.delete(key);
      log.info('side removed', { connectionId: spec.connectionId, side: spec.side, generation: spec.generation, origin });
      await report(spec, 'removed', undefined, trace);
    }
  };

  const join = async (): Promise<void> => {
    const r = await client.send(
      'node.join',
      {
        name: node,
        mechanisms: [...dataplane.capabilities()],
        dataplane: dataplane.kind,
        ...(opts.underlayAddress ? { underlayAddress: opts.underlayAddress } : {}),
        ...(opts.externalAddress ? { externalAddress: opts.externalAddress } : {}),
        ...(opts.mtu ? { mtu: opts.mtu } : {}),
        ...(opts.publicKeys ? { publicKeys: { ...opts.publicKeys } } : {}),
        ...(opts.localPrefixes && opts.localPrefixes.length > 0 ? { localPrefixes: [...opts.localPrefixes] } : {}),
      },
      { wait: false },
    );
    // An authenticated agent cannot create the command stream: it waits for the control plane to.
    if (E.isLeft(r) && opts.security && r.left.code === 'unavailable' && !stopping) {
      log.warn('waiting for the control plane to create the command stream', { error: r.left.message });
      await sleep(1000);
      return join();
    }
    if (E.isLeft(r)) throw new Error(`could not join: ${r.left.message}`);
  };

  /**
   * The node's desired sides, page by page: a node with thousands of sides does not fit one NATS
   * message. A page too large for one is asked again smaller; a control plane that does not page
   * (an older version) is asked for everything at once.
   */
  const readDesired = async (): Promise<E.Either<string, SideSpec[]>> => {
    const sides: SideSpec[] = [];
    let limit = DESIRED_PAGE;
    let after: string | undefined;
    for (;;) {
      const r = await client.query<{ sides: SideSpec[]; next?: string }>('node-desired', { node, limit, ...(after !== undefined ? { after } : {}) }, 5000);
      if (E.isLeft(r)) {
        if (/more than one NATS message holds/.test(r.left.message) && limit > 1) {
          limit = Math.max(1, Math.floor(limit / 2));
          continue;
        }
        if (after === undefined && /unknown field|invalid query parameters/.test(r.left.message)) {
          const all = await client.query<{ sides: SideSpec[] }>('node-desired', { node }, 5000);
          return E.isRight(all) ? E.right(all.right.sides) : E.left(all.left.message);
        }
        return E.left(r.left.message);
      }
      sides.push(...r.right.sides);
      if (r.right.next === undefined) return E.right(sides);
      after = r.right.next;
    }
  };

  /**
   * Desired state from the control plane's projection against what the dataplane has. At start
   * every desired side is programmed (idempotent: it re-asserts addresses and routes). After a
   * reconnection (a NATS server lost, or the whole cluster restarted) this agent's own record
   * says what it did: a side it applied at the desired generation is left alone, so an outage
   * re-programs nothing that did not change, and only what changed meanwhile is done.
   */
  const reconcile = async (o: { afterReconnect?: boolean } = {}) => {
    let desired: SideSpec[] | undefined;
    for (let attempt = 1; !desired && !stopping; attempt++) {
      const r = await readDesired();
      if (E.isRight(r)) desired = r.right;
      else {
        if (attempt === 1 || attempt % 10 === 0) log.warn('waiting for the control plane to reconcile', { error: r.left });
        await sleep(backoff(attempt, { capMs: 2000 }));
      }
    }
    if (!desired) return;
    const observed = await dataplane.observe()();
    if (E.isLeft(observed)) throw new Error(`cannot read the dataplane: ${observed.left.message}`);
    const want = new Map(desired.map((s) => [sideKey(s), s]));
    let created = 0;
    let removed = 0;
    for (const o of observed.right) {
      if (!want.has(sideKey(o))) {
        log.info('reconcile: removing a side that is no longer wanted', { connectionId: o.connectionId, side: o.side });
        await apply({ ...o, desired: 'absent' } as SideSpec, 'reconcile-cleanup');
        removed++;
      }
    }
    const have = new Map(observed.right.map((o) => [sideKey(o), o]));
    let unchanged = 0;
    for (const s of want.values()) {
      const h = have.get(sideKey(s));
      const done = applied.get(sideKey(s));
      if (o.afterReconnect && h && done && done.generation === s.generation && done.desired === s.desired && done.error === undefined) {
        unchanged++;
        continue;
      }
      if (!h || h.generation !== s.generation) {
        log.info('reconcile: programming a missing side', { connectionId: s.connectionId, side: s.side, generation: s.generation });
        created++;
      }
      // Programming is idempotent; doing it for present sides too re-asserts addresses and routes.
      await apply(s, 'reconcile');
    }
    log.info('reconciled', { desired: want.size, observed: observed.right.length, created, removed, ...(o.afterReconnect ? { unchanged, afterReconnect: true } : {}) });
  };

  let messages: ConsumerMessages | undefined;
  const sides = new FairQueue(dataplane.concurrency ?? 1);
  const consumeLoop = async () => {
    messages = await consumeDurable(
      nc.jetstream(),
      jsm,
      { stream: subjects.streams.nodeCommands, durable: agentConsumerName(node), filterSubject: subjects.nodeCommands(node), ackWaitMs: 30_000, maxAckPending: 1000 },
      256,
      log,
    );
    // Wrapped so that awaiting the setup does not await the endless loop.
    const done = (async () => {
      for await (const m of messages!) {
        const parsed = D.parseJson(m.data, 256 * 1024);
        const cmd = E.isRight(parsed) ? decodeNodeCommand(parsed.right) : parsed;
        if (E.isLeft(cmd)) {
          log.error('refusing a malformed node command', { error: D.formatDecodeError(cmd.left) });
          m.term();
          continue;
        }
        if (cmd.right.spec.node !== node) {
          log.error('refusing a command for another node', { for: cmd.right.spec.node });
          m.term();
          continue;
        }
        const c = cmd.right;
        // One side at a time, in order; different sides side by side, as far as the dataplane allows.
        // Read no further while every slot is busy: the rest wait in JetStream, not here.
        await sides.room(1);
        void sides.enqueue('', sideKey(c.spec), async () => {
          try {
            await apply(c.spec, 'command', { ...(c.correlationId ? { correlationId: c.correlationId } : {}), ...(c.causationId ? { causationId: c.causationId } : {}) });
            m.ack();
          } catch (e) {
            log.warn('node command failed; will retry', { id: c.id, error: errorText(e) });
            m.nak(1000);
          }
        });
      }
      await sides.drain();
    })();
    return { done };
  };

  const probeAll = async () => {
    const threshold = opts.livenessFailures ?? DEFAULT_LIVENESS_FAILURES;
    for (const [key, p] of probed) {
      if (stopping) return;
      const r = await dataplane.probe(p.spec)();
      if (probed.get(key) !== p) continue; // reprogrammed or removed meanwhile
      const detail = E.isLeft(r) ? `probe could not run: ${r.left.message}` : r.right.detail;
      if (E.isRight(r) && r.right.alive) {
        p.failures = 0;
        continue;
      }
      p.failures++;
      if (p.failures >= threshold && !p.reported) {
        p.reported = true;
        log.warn('datapath broken', { connectionId: p.spec.connectionId, generation: p.spec.generation, failures: p.failures, detail });
        opts.observer?.broken(mechanismOf(p.spec));
        try {
          await report(p.spec, 'broken', `${p.failures} liveness probes failed: ${detail ?? 'no answer'}`);
        } catch (e) {
          p.reported = false;
          log.warn('could not report a broken datapath; will retry', { connectionId: p.spec.connectionId, error: errorText(e) });
        }
      }
    }
  };
  let probing = Promise.resolve();
  const livenessMs = opts.livenessIntervalMs ?? DEFAULT_LIVENESS_INTERVAL_MS;
  const probeTimer =
    livenessMs > 0
      ? setInterval(() => {
          probing = probing.then(probeAll).catch((e) => log.warn('liveness probing failed', { error: errorText(e) }));
        }, livenessMs)
      : undefined;

  const programmedSides = () => applied.programmed;
  const heartbeat = () => nc.publish(subjects.heartbeat(node), new TextEncoder().encode(JSON.stringify({ node, connections: programmedSides() })));
  const hbTimer = setInterval(heartbeat, opts.heartbeatMs ?? 5000);

  let loop: Promise<void> | undefined;
  const ready = (async () => {
    await join();
    heartbeat();
    await reconcile();
    if (!stopping) loop = (await consumeLoop()).done;
    log.info('node agent ready', { dataplane: dataplane.kind });
  })();

  // Commands sent while the agent was cut off wait in its durable consumer; what the control
  // plane decided otherwise meanwhile (a side it gave up on) is caught by reconciling again.
  let reconciling: Promise<void> = ready.catch(() => undefined);
  void (async () => {
    for await (const st of nc.status()) {
      if (stopping) break;
      if (st.type !== 'reconnect') continue;
      reconciling = reconciling.then(() => (stopping ? undefined : reconcile({ afterReconnect: true }))).catch((e) => log.warn('reconciling after a reconnection failed', { error: errorText(e) }));
    }
  })();

  return {
    ready,
    programmedSides,
    stop: async () => {
      stopping = true;
      clearInterval(hbTimer);
      if (probeTimer) clearInterval(probeTimer);
      await probing;
      await ready.catch(() => undefined);
      await reconciling;
      messages?.stop();
      await loop?.catch(() => undefined);
    },
  };
};
