// The control plane process: folds the log into its view, consumes client and agent commands
// from the durable command stream, runs the process manager, and answers queries.
import * as E from 'fp-ts/lib/Either.js';
import type { ConsumerMessages, JsMsg, NatsConnection, Subscription as NatsSub } from 'nats';
import { hostname } from 'node:os';
import { publishRetrying } from '../../infra/nats/publish.ts';
import { errorText, type Logger } from '../ports/logger.ts';
import { bigintsAsStrings } from '../contracts/canonicalJson.ts';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { checkMeshStreams, COMMAND_MAX_BYTES, CONTROL_PLANE_CONSUMER, ensureStreams, meshStreams } from '../../infra/nats/streams.ts';
import { streamsClusterView } from '../../infra/nats/cluster.ts';
import { ACTOR_PATTERN, parseCommandSubject, parseQuerySubject, subjectsFor, toActorToken, type Subjects } from '../contracts/subjects.ts';
import { withConnectionNotifications } from './notifications.ts';
import { Watermark } from './watermark.ts';
import type { Checkpoints } from '../ports/checkpoints.ts';
import { natsCheckpoints } from '../../infra/nats/checkpoints.ts';
import { agentActor, COMMAND_KINDS, decodeCommand, ID_PATTERN, isCommandKind, netnsProblem, senderProblem, type CommandMessage } from '../contracts/commands.ts';
import * as D from '../contracts/decode.ts';
import type { Commit, EventEnvelope, StoredCommit } from '../contracts/envelope.ts';
import type { NodeCommand } from '../contracts/nodeCommands.ts';
import { queryError, type CommandReply, type QueryError, type QueryReply, type ReplyErrorCode } from '../contracts/replies.ts';
import type { EventStore } from '../ports/eventStore.ts';
import { randomUUID } from 'node:crypto';
import { execErrorMessage, execute } from '../command/execute.ts';
import { route, streamOf } from '../command/routes.ts';
import { FairQueue } from '../lib/fairQueue.ts';
import { limitsFor, type LimitedRole } from '../../aggregates/limits.ts';
import { MeshView } from '../read/meshView.ts';
import { DEFAULT_HEALING, type HealingConfig } from '../workflows/healing.ts';
import { startLease } from './lease.ts';
import { startTimers } from './timers.ts';
import { createWorkflowRunner, drivesProcessManager, refusedOutright } from '../workflows/runner.ts';
import { createStepRunner } from '../workflows/stepRunner.ts';
import type { WorkflowEvent } from '../../aggregates/workflow.ts';
import { runQuery, type QueryContext } from '../read/queries.ts';
import { prepareAudit, type AuditOptions, type AuditRuntime } from './audit.ts';
import { Repository } from '../command/repository.ts';
import { createLogFeed } from '../read/logFeed.ts';
import { createGuard, type ControlPlaneSecurity, type Guard } from '../security/guard.ts';
import { decodeHeartbeat, replyIsInboxOf } from '../security/replies.ts';
import type { IdentityRegistry } from '../security/identities.ts';
import { recordRegistry } from './identityRecord.ts';
import { createFederation, type Federation, type FederationOptions } from './federation.ts';
import { backoff, sleep } from '../lib/time.ts';
import { consumeDurable } from '../../infra/nats/consumers.ts';

export interface ControlPlaneOptions {
  readonly nc: NatsConnection;
  readonly domain: string;
  readonly log: Logger;
  /** Defaults to the JetStream store of the domain. */
  readonly store?: EventStore;
  readonly now?: () => Date;
  readonly concurrency?: number;
  /** Death detection and healing timings; defaults in src/workflows/healingDetector.ts. */
  readonly healing?: Partial<HealingConfig>;
  /** Names this replica in the leadership lease and logs. */
  readonly replicaId?: string;
  /** Snapshots of the read model and sealing of the log (docs/audit.md). */
  readonly audit?: AuditOptions;
  /**
   * Identities, roles and the control plane's signing key (src/security/). Absent: an insecure
   * mesh, where every actor may do everything and paths carry no signed tokens.
   */
  readonly security?: ControlPlaneSecurity;
  /** Membership of a federation of domains joined by NATS leafnodes (docs/federation.md). Absent: not federated. */
  readonly federation?: FederationOptions;
  /**
   * Directories whose files a command may name as a workload's or endpoint's namespace (checked
   * with checkNetnsDirs); absent: named namespaces only (src/contracts/netnsRef.ts).
   */
  readonly netnsDirs?: readonly string[];
  /** Attempts at a workflow step failing for another reason than infrastructure before it is recorded as failed (default 5). */
  readonly maxStepAttempts?: number;
  /**
   * Create the streams it uses when they are missing. Default: only on an insecure mesh. An
   * authenticated control plane may not create, update or delete them (docs/security.md): `nsm up`
   * makes them in its setup step, and the control plane only checks that they are there.
   */
  readonly createStreams?: boolean;
  /** Told of commands and appends as they happen (the process's metrics, src/runtime/metrics.ts). */
  readonly observer?: ControlPlaneObserver;
}

/** What the control plane tells its process's metrics; kinds as the subject names them (the observer bounds them). */
export interface ControlPlaneObserver {
  commandHandled(kind: string): void;
  /** reason: the reply's error code, or "shed". */
  commandRefused(kind: string, reason: string): void;
  /** Left for redelivery: infrastructure trouble. */
  commandDeferred(kind: string): void;
  /** A commit this process stored (not a duplicate). */
  appended(commit: Commit): void;
}

export interface ControlPlane {
  readonly view: MeshView;
  readonly store: EventStore;
  readonly subjects: Subjects;
  readonly heartbeats: Map<string, { at: string; connections?: number }>;
  /** Roles and query scopes (the HTTP API answers through it too). */
  readonly guard: Guard;
  /** True while this replica holds the lease and runs the timers. */
  isLeader(): boolean;
  /** What this replica did since it started (replicas share the work). */
  readonly stats: { commandsApplied: number; commandsRejected: number; commandsShed: number; workflowSteps: number };
  readonly audit: AuditRuntime;
  /** What queries (NATS and HTTP) run against: the live model, the store, replays. */
  queryContext(): QueryContext;
  stop(): Promise<void>;
}

const enc = new TextEncoder();
export { CONTROL_PLANE_CONSUMER };
const PM_CHECKPOINT = 'process-manager';
const MAX_EARLY_REDELIVERIES = 20;
const COMMAND_ACK_WAIT_MS = 10_000;
/** Commands delivered and not yet acknowledged: the backlog spread over the senders' lanes. */
const COMMANDS_READ_AHEAD = 20_000;
/**
 * The slots one sender may hold at once: enough for one busy sender to go at full speed, few
 * enough that its appends do not queue up in JetStream ahead of everyone else's.
 */
const laneShare = (slots: number) => Math.max(1, Math.min(slots, 16));
/** Commands of one sender waiting their turn; more are shed (refused at once, not recorded). */
const MAX_QUEUED_PER_SENDER = 2000;
/** How long a control plane waits at start for the mesh streams to answer (leaders elected). */
const STREAMS_WAIT_MS = 60_000;


export const startControlPlane = async (opts: ControlPlaneOptions): Promise<ControlPlane> => {
  const { nc, log } = opts;
  const now = opts.now ?? (() => new Date());
  const subjects = subjectsFor(opts.domain);
  const jsm = await nc.jetstreamManager();
  const js = nc.jetstream();
  const createStreams = opts.createStreams ?? opts.security === undefined;
  if (createStreams) await ensureStreams(jsm, subjects);
  else {
    // Right after a cluster started, a stream may not have a leader yet and does not answer
    // (nats-server 2.9 answered a control plane started at once with a TIMEOUT, and it exited):
    // wait for that, bounded; a stream that is missing is an error at once.
    let there = await checkMeshStreams(jsm, subjects);
    for (const until = Date.now() + STREAMS_WAIT_MS; E.isLeft(there) && there.left.startsWith('cannot read stream') && Date.now() < until; ) {
      log.info('waiting for the mesh streams to answer (a cluster electing their leaders)', { error: there.left });
      await sleep(1000);
      there = await checkMeshStreams(jsm, subjects);
    }
    if (E.isLeft(there)) throw new Error(there.left);
  }
  const view = new MeshView();
  if (opts.security && opts.federation && !opts.federation.peers) throw new Error('an authenticated federation names its peer domains (--peer): each one\'s permissions and subscriptions are its own');
  const guard = createGuard(opts.security && opts.federation ? { ...opts.security, peers: opts.federation.peers } : opts.security);
  const rawStore =
    opts.store ??
    (await jetStreamEventStore(nc, subjects, {
      create: createStreams,
      onForeign: (f) => log.error('a message in the event log is not a commit: stepped over (something other than the control plane wrote it; nsm audit verify reports it)', { position: Number(f.position), reason: f.reason }),
      onResubscribe: (r) => log.warn('reading the log again from where it stood', { position: Number(r.after), why: r.why }),
    }));
  const store = withConnectionNotifications(
    rawStore,
    (c) => {
      view.offer(c);
      opts.observer?.appended(c);
    },
    (id) => view.current.connections.byId[id]?.actor,
    (actor, commit) => nc.publish(subjects.notify(toActorToken(actor), commit.stream), enc.encode(JSON.stringify(commit, bigintsAsStrings))),
  );
  // A new connection id is the common case for a request: skip the read that would find nothing.
  const repo = new Repository(store, (stream) => stream.startsWith('connection.') && view.current.connections.byId[stream.slice('connection.'.length)] === undefined);
  const checkpoints: Checkpoints = await natsCheckpoints(nc, opts.domain, (name, value) =>
    log.error('a checkpoint holds something that is not a log position: resuming from the start of the log', { checkpoint: name, value }),
  );
  const heartbeats = new Map<string, { at: string; connections?: number }>();
  let stopping = false;
  const stats = { commandsApplied: 0, commandsRejected: 0, commandsShed: 0, workflowSteps: 0 };

  const sendNodeCommand = async (node: string, cmd: NodeCommand) => {
    // The id is the side's and generation's own (nodeCommandId): sent again after a lost answer, it is stored once.
    await publishRetrying(js, subjects.nodeCommands(node), enc.encode(JSON.stringify(cmd)), { msgID: cmd.id, attemptTimeoutMs: 5000 });
  };
  // Selections decided but not yet folded into the view still count as load.
  const pendingLoad = new Map<string, number>();
  const loadOf = (ep: string) => (view.current.connections.activeByEndpoint[ep] ?? 0) + (pendingLoad.get(ep) ?? 0);
  const countSelection = (events: readonly unknown[]) => {
    const sel = events.find((e) => (e as { type: string }).type === 'EndpointSelected') as { endpoint: string } | undefined;
    if (!sel) return;
    pendingLoad.set(sel.endpoint, (pendingLoad.get(sel.endpoint) ?? 0) + 1);
    return () => {
      const n = (pendingLoad.get(sel.endpoint) ?? 1) - 1;
      if (n > 0) pendingLoad.set(sel.endpoint, n);
      else pendingLoad.delete(sel.endpoint);
    };
  };

  // Accepted requests decided but not yet folded into the view still count against their requester's limits.
  const unfolded = new Map<string, number>();
  const countRequest = (actor: string, events: readonly unknown[]) => {
    const types = events.map((e) => (e as { type: string }).type);
    if (types[0] !== 'ConnectionRequested' || types.some((t) => t === 'ConnectionLimited' || t === 'ConnectionDenied' || t === 'ConnectionFailed')) return;
    unfolded.set(actor, (unfolded.get(actor) ?? 0) + 1);
    return () => {
      const n = (unfolded.get(actor) ?? 1) - 1;
      if (n > 0) unfolded.set(actor, n);
      else unfolded.delete(actor);
    };
  };
  const limitedRoleOf = (actor: string): LimitedRole => (actor.startsWith('peer:') ? 'peer' : guard.roleOf(actor) === 'client' ? 'client' : 'operator');
  /** A requester's limits and usage (aggregates/limits.ts); undefined when nothing limits it. */
  const quotaFor = (actor: string) => {
    const limits = limitsFor(view.current.limits, actor, limitedRoleOf(actor));
    if (limits.connections === undefined && limits.pending === undefined && limits.ratePerSecond === undefined) return undefined;
    const u = view.current.connections.byActor[actor];
    const extra = unfolded.get(actor) ?? 0;
    const second = Math.floor(now().getTime() / 1000);
    return { identity: actor, limits, usage: { held: (u?.held ?? 0) + extra, pending: (u?.pending ?? 0) + extra, thisSecond: (u?.second === second ? u.inSecond : 0) + extra } };
  };

  const healing: HealingConfig = { ...DEFAULT_HEALING, ...opts.healing };
  const federation: Federation | undefined = opts.federation
    ? await createFederation({ nc, subjects, view, store, repo, log: log.child({ component: 'federation' }), now, options: opts.federation, remotePlanSegments: guard.remotePlanSegments, secure: guard.secure })
    : undefined;
  const pm = createWorkflowRunner({
    store,
    repo,
    view,
    domain: opts.domain,
    log,
    now,
    sendNodeCommand,
    loadOf,
    selectionHooks: { onDecided: countSelection },
    escalateWithinMs: healing.escalateWithinMs,
    planSegments: guard.planSegments,
    ...(federation ? { federation: federation.steps, tunnelIds: federation.route.tunnelIds } : {}),
  });

  // The process manager runs on the leader only (one replica drives every workflow step, so a
  // lagging replica never repeats old steps), from its checkpoint in KV, on its own ordered
  // subscription: a replica that takes over catches up from where the last leader got to.
  // Positions belong to one store: a domain moved to another store must not resume from the old
  // store's position.
  const pmCheckpoint = store.kind === 'jetstream' ? PM_CHECKPOINT : `${PM_CHECKPOINT}-${store.kind}`;
  const pmQueue = new FairQueue(opts.concurrency ?? 256, laneShare(opts.concurrency ?? 256));
  /** The process manager's lanes: whose connection a commit is about (others share one lane). */
  const laneOf = (commit: StoredCommit) =>
    commit.stream.startsWith('connection.') ? (view.current.connections.byId[commit.stream.slice('connection.'.length)]?.actor ?? commit.events[0]?.actor ?? '') : '';
  // Infrastructure trouble is retried as long as it lasts; a step that fails for another reason
  // is recorded as failed and left behind (src/workflows/stepRunner.ts), so it cannot stall its stream.
  const runner = createStepRunner({ store, repo, handle: (c) => pm.handle(c), domain: opts.domain, log, now, ...(opts.maxStepAttempts ? { maxAttempts: opts.maxStepAttempts } : {}) });
  /** True once behind us (done, or recorded as failed); false when this replica stopped leading first. */
  const runStep = async (commit: StoredCommit, running: () => boolean): Promise<boolean> => {
    if (!commit.stream.startsWith('workflow.')) return runner.run(commit, running);
    for (const env of commit.events as readonly EventEnvelope<WorkflowEvent>[]) if (!(await runner.retry(env, running))) return false;
    return true;
  };
  interface PmRun {
    readonly stop: () => Promise<void>;
  }
  const startProcessManager = async (): Promise<PmRun> => {
    const from = await checkpoints.read(pmCheckpoint);
    const watermark = new Watermark(from);
    let running = true;
    let saved = from;
    // Saves run one after another: a slow periodic save must not land after the final one.
    let saving: Promise<void> = Promise.resolve();
    const save = () =>
      (saving = saving.then(async () => {
        const done = watermark.done;
        if (done <= saved) return;
        await checkpoints.write(pmCheckpoint, done).then(
          () => void (saved = done),
          (e) => log.warn('could not save process manager checkpoint', { error: errorText(e) }),
        );
      }));
    const timer = setInterval(() => void save(), 1000);
    let delivered = from;
    let sub: Awaited<ReturnType<typeof feed.follow>>;
    try {
      sub = await feed.follow(BigInt(from), {
        onCommit: (commit) => {
          const position = Number(commit.position);
          delivered = position;
          if ((!drivesProcessManager(commit.stream) && !commit.stream.startsWith('workflow.')) || refusedOutright(commit)) {
            watermark.skip(position);
            return;
          }
          watermark.begin(position);
          void pmQueue.enqueue(laneOf(commit), commit.stream, async () => {
            // Not handled: it stays in flight, so the checkpoint never passes it.
            if (running && (await runStep(commit, () => running))) {
              stats.workflowSteps++;
              watermark.end(position);
            }
          });
        },
        onError: (e) => log.error('process manager subscription stopped', { error: e.message, kind: e.kind }),
      });
    } catch (e) {
      // Nothing of this run may keep going: the next attempt starts from the checkpoint again.
      clearInterval(timer);
      running = false;
      throw e;
    }
    log.info('process manager running', { resumeFrom: from });
    return {
      stop: async () => {
        clearInterval(timer);
        // Catch up with what the view has seen (bounded), finish the steps delivered (each is a few
        // appends), then start nothing new: a clean stop leaves the next leader nothing to redo.
        const target = view.current.position;
        for (const until = Date.now() + 5000; delivered < target && Date.now() < until; ) await sleep(20);
        await sub.stop();
        await pmQueue.drain();
        running = false;
        await save();
        log.info('process manager stopped', { checkpoint: saved });
      },
    };
  };
  /**
   * Started again until it runs, for as long as this replica leads: a new leader often takes over
   * because a server died, and reading the checkpoint or the log can then time out for a few
   * seconds (the streams' leaders being elected). Given up once, the process manager stayed
   * stopped on the leader, and no workflow moved until the lease changed hands again.
   */
  const startWhileLeading = async (): Promise<PmRun | undefined> => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await startProcessManager();
      } catch (e) {
        const leading = lease?.leaderSince() !== undefined && !stopping;
        log.warn(leading ? 'process manager failed to start; trying again' : 'process manager failed to start', { attempt, error: errorText(e) });
        if (!leading) return undefined;
        await sleep(backoff(attempt, { baseMs: 250, capMs: 2000 }));
        if (lease?.leaderSince() === undefined || stopping) return undefined;
      }
    }
  };
  // Leadership comes and goes from the lease's timer: start and stop one at a time, in order.
  let pmRun: Promise<PmRun | undefined> = Promise.resolve(undefined);
  const leadershipChanged = (leading: boolean) => {
    pmRun = pmRun.then(async (current) => {
      if (leading && !current && !stopping) return startWhileLeading();
      if (!leading && current) await current.stop();
      return leading ? current : undefined;
    });
  };

  // Resume the read model from its snapshot; until caught up nothing reads it: fold in bulk.
  // The sealer and the process manager follow the log through the feed, not consumers of their own.
  let lastPushed = 0n;
  const feed = createLogFeed(store, () => lastPushed);
  const audit = await prepareAudit({ nc, subjects, store: { ...store, subscribeAll: feed.follow }, view, log, options: opts.audit ?? {} });
  let caughtUp = false;
  lastPushed = BigInt(view.current.position);
  const subscription = await store.subscribeAll(BigInt(view.current.position), {
    onCommit: (c) => {
      repo.apply(c);
      if (caughtUp) view.push(c);
      else view.bulk(c);
      lastPushed = c.position;
      feed.push(c);
    },
    onError: (e) => log.error('event subscription stopped', { error: e.message, kind: e.kind }),
  });
  {
    // Folding a long log takes a while; a fold that does not move is said, not waited on silently.
    let seen = lastPushed;
    const watchdog = setInterval(() => {
      if (lastPushed === seen) log.warn('catching up with the log: no commit received for 30 s', { position: Number(lastPushed) });
      seen = lastPushed;
    }, 30_000);
    try {
      await subscription.caughtUp;
    } finally {
      clearInterval(watchdog);
    }
  }
  caughtUp = true;
  view.flush();
  log.info('control plane caught up', { position: view.current.position, streams: repo.size, folded: view.folded, model: audit.resumed.from });
  await audit.start();
  let lease: Awaited<ReturnType<typeof startLease>> | undefined;
  const isLeader = () => lease?.leaderSince() !== undefined;
  // For operators and benchmarks: with gc (node --expose-gc), heapUsed is what the process retains.
  const runtime = (o: { gc: boolean }) => {
    const gc = (globalThis as { gc?: () => void }).gc;
    if (o.gc && gc) gc();
    return { pid: process.pid, uptimeSeconds: process.uptime(), memory: process.memoryUsage(), gcRun: o.gc && gc !== undefined, leader: isLeader(), stats, connections: view.current.connections.count, repositoryStreams: repo.size };
  };
  // Readable in `nsm status` (which replica holds the lease) and in the logs of every replica.
  const replicaId = opts.replicaId ?? `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  /** What `nsm status` shows of the cluster: read with the control plane's own rights (stream info, the lease bucket), so no asker needs JetStream rights. */
  const cluster = async () => {
    const streams = await streamsClusterView(jsm, meshStreams(subjects).map((x) => x.name));
    const servers = [...new Set(streams.flatMap((x) => ('peers' in x ? x.peers.map((p) => p.server) : [])))].sort();
    const holder = await lease?.holder().catch(() => undefined);
    return {
      ...(nc.info?.cluster ? { name: nc.info.cluster } : {}),
      servers,
      controlPlane: { replica: replicaId, connectedTo: nc.info?.server_name, leader: isLeader() },
      lease: holder ? { ...holder, thisReplica: holder.replica === replicaId } : null,
      streams,
    };
  };
  const queryContext = (): QueryContext => {
    // Commits already received but not yet folded: fold them first, so that a client that saw an
    // event on its subject and then asks gets an answer that includes it.
    view.flush();
    return { model: view.current, store, heartbeats, replay: audit.replay, rebuild: audit.rebuild, waitFor: (position) => view.waitFor(position, 5000), runtime, cluster, ...(federation ? { federation: federation.queries } : {}) };
  };

  // Commands: one durable consumer shared by every replica.
  // Commands are read ahead of handling into per-sender lanes (below): a sender's backlog must
  // not keep another sender's commands from being delivered at all.
  const reply = (actor: string, commandId: string, r: CommandReply) => {
    if (ID_PATTERN.test(commandId) && ACTOR_PATTERN.test(actor)) nc.publish(subjects.reply(actor, commandId), enc.encode(JSON.stringify(r)));
  };
  const rejectMsg = (m: JsMsg, kind: string | undefined, actor: string | undefined, commandId: string | undefined, code: ReplyErrorCode, message: string) => {
    log.info('command rejected', { subject: m.subject, commandId, code, reason: message });
    if (commandId && actor) reply(actor, commandId, { ok: false, commandId, error: { code, message } });
    stats.commandsRejected++;
    opts.observer?.commandRefused(kind ?? 'unknown', code);
    m.term();
  };

  // Shed commands, counted per sender and logged once a second, not once per command.
  const shedCounts = new Map<string, number>();
  const shedTimer = setInterval(() => {
    for (const [lane, n] of shedCounts) log.warn('commands shed: too many waiting from one sender', { sender: lane, shed: n, waitingLimit: MAX_QUEUED_PER_SENDER });
    shedCounts.clear();
  }, 1000);
  const shed = (m: JsMsg, kind: string, actor: string, commandId: string | undefined) => {
    shedCounts.set(actor, (shedCounts.get(actor) ?? 0) + 1);
    stats.commandsShed++;
    opts.observer?.commandRefused(kind, 'shed');
    if (commandId) reply(actor, commandId, { ok: false, commandId, error: { code: 'unavailable', message: `${MAX_QUEUED_PER_SENDER} commands from ${actor} are already waiting; this one was not taken: send it again later` } });
    m.term();
  };

  const handleCommand = async (m: JsMsg, msg: CommandMessage, stream: string) => {
    const decide = () => {
      const at = now();
      return guard.decorate(msg, route(msg, view.current, at, loadOf, { policy: view.current.policy.policy, quota: quotaFor, ...(federation ? { federation: federation.route } : {}) }), view.current, at).command;
    };
    const r = await execute({ store, repo }, stream, decide, {
      commandId: msg.id,
      correlationId: msg.correlationId ?? msg.id,
      causationId: msg.causationId ?? msg.id,
      actor: msg.actor,
      domain: opts.domain,
      now,
      lane: msg.actor,
    }, {
      onDecided: (events) => {
        const undoSelection = countSelection(events);
        const undoRequest = countRequest(msg.actor, events);
        return undoSelection || undoRequest ? () => (undoSelection?.(), undoRequest?.()) : undefined;
      },
    });
    if (E.isLeft(r)) {
      if (r.left.kind === 'domain') return rejectMsg(m, msg.kind, msg.actor, msg.id, r.left.error.code, r.left.error.message);
      // Infrastructure trouble: leave the command for redelivery.
      log.warn('command deferred', { commandId: msg.id, error: execErrorMessage(r.left) });
      opts.observer?.commandDeferred(msg.kind);
      m.nak(1000);
      return;
    }
    // Answer only once our own view holds the commit, so the client's next command sees it.
    if (r.right.position !== undefined) await view.waitFor(Number(r.right.position)).catch(() => undefined);
    r.right.settle?.();
    reply(msg.actor, msg.id, {
      ok: true,
      commandId: msg.id,
      stream: r.right.stream,
      events: r.right.events.map((e) => ({ type: e.type, version: e.version })),
      ...(r.right.position !== undefined ? { position: r.right.position.toString() } : {}),
      noop: r.right.events.length === 0,
    });
    stats.commandsApplied++;
    opts.observer?.commandHandled(msg.kind);
    m.ack();
  };

  // One lane per sender: a free slot goes to the next sender in turn (src/runtime/fairQueue.ts).
  const cmdQueue = new FairQueue(opts.concurrency ?? 256, laneShare(opts.concurrency ?? 256));
  // Commands read ahead wait their turn; JetStream must not take one waiting longer than its ack
  // wait for lost and deliver it again.
  const waitingSince = new Map<JsMsg, number>();
  const workingTimer = setInterval(() => {
    const cutoff = Date.now() - COMMAND_ACK_WAIT_MS / 2;
    for (const [m, since] of waitingSince) {
      if (since > cutoff) break;
      m.working();
      waitingSince.delete(m);
      waitingSince.set(m, Date.now());
    }
  }, 1000);
  const messages: ConsumerMessages = await consumeDurable(
    js,
    jsm,
    { stream: subjects.streams.commands, durable: CONTROL_PLANE_CONSUMER, ackWaitMs: COMMAND_ACK_WAIT_MS, maxAckPending: COMMANDS_READ_AHEAD },
    512,
    log,
  );
  const commandLoop = (async () => {
    for await (const m of messages) {
      const addressed = parseCommandSubject(subjects, m.subject);
      const msgId = m.headers?.get('Nats-Msg-Id');
      // A sender with this many commands already waiting is flooding: shed at once, before any
      // work (parsing, signatures), so that a backlog of any size costs little and cannot keep
      // other senders' commands from being read.
      if (addressed && cmdQueue.queuedIn(addressed.actor) >= MAX_QUEUED_PER_SENDER) {
        shed(m, addressed.kind, addressed.actor, msgId && ID_PATTERN.test(msgId) ? msgId : undefined);
        continue;
      }
      const parsed = D.parseJson(m.data, COMMAND_MAX_BYTES);
      // Where to answer: the command's own id, else its JetStream msgID, so that even a message
      // that is not JSON, or has no usable id, gets its error on nsm.<domain>.reply.<actor>.<id>.
      const bodyId = E.isRight(parsed) ? (parsed.right as { id?: unknown } | null)?.id : undefined;
      const claimedId = typeof bodyId === 'string' && ID_PATTERN.test(bodyId) ? bodyId : msgId && ID_PATTERN.test(msgId) ? msgId : undefined;
      if (!addressed) {
        rejectMsg(m, undefined, undefined, claimedId, 'unknown-command', `"${m.subject}" is not a command subject (nsm.${opts.domain}.cmd.<aggregate>.<verb>.<actor>)`);
        continue;
      }
      const { kind, actor } = addressed;
      if (!isCommandKind(kind)) {
        rejectMsg(m, kind, actor, claimedId, 'unknown-command', `unknown command "${kind}"; known: ${COMMAND_KINDS.join(', ')}`);
        continue;
      }
      if (E.isLeft(parsed)) {
        rejectMsg(m, kind, actor, claimedId, 'invalid', `${kind}: ${parsed.left.message}`);
        continue;
      }
      const decoded = decodeCommand(kind, actor, parsed.right);
      if (E.isLeft(decoded)) {
        rejectMsg(m, kind, actor, claimedId, 'invalid', `${kind}: ${D.formatDecodeError(decoded.left)}`);
        continue;
      }
      const msg = decoded.right;
      const impostor = senderProblem(msg);
      if (impostor) {
        rejectMsg(m, kind, actor, claimedId, 'forbidden', impostor);
        continue;
      }
      const badNetns = netnsProblem(msg, opts.netnsDirs ?? []);
      if (badNetns) {
        rejectMsg(m, kind, actor, claimedId, 'invalid', `${kind}: ${badNetns}`);
        continue;
      }
      const stream = streamOf(msg);
      // Whose work it is: an agent's report is about some requester's connection, and takes that one's turn.
      const lane = msg.kind === 'connection.report' ? (view.current.connections.byId[msg.body.connectionId]?.actor ?? actor) : actor;
      await cmdQueue.room(COMMANDS_READ_AHEAD / 2);
      waitingSince.set(m, Date.now());
      // The rest, signatures included, in the sender's turn: costly checks of one sender's flood
      // run between other senders' commands, not ahead of them.
      void cmdQueue.enqueue(lane, stream, async () => {
        waitingSince.delete(m);
        try {
          const verdict = await guard.checkCommand(msg, view.current, now());
          if (!verdict.ok) {
            // Early (this replica's view lags): try again, a bounded number of times.
            if (verdict.code === 'retry' && m.info.redeliveryCount < MAX_EARLY_REDELIVERIES) {
              log.debug('command deferred', { commandId: msg.id, reason: verdict.message });
              m.nak(500);
            } else rejectMsg(m, kind, actor, claimedId, 'forbidden', verdict.message);
            return;
          }
          await handleCommand(m, msg, stream);
        } catch (e) {
          log.error('command handler crashed', { commandId: msg.id, error: errorText(e) });
          m.nak(1000);
        }
      });
    }
  })();

  // Queries and heartbeats.
  const querySub: NatsSub = nc.subscribe(subjects.allQueries, {
    queue: 'nsm-query',
    callback: (err, m) => {
      if (err) return;
      const addressed = parseQuerySubject(subjects, m.subject);
      if (!addressed) return;
      const { actor, name } = addressed;
      // Answer only into the asker's own inbox. A reply subject is whatever the sender wrote:
      // answering "nsm.<d>.evt.x" would append the answer to the log, "nsm.<d>.hb.n1" would
      // forge a heartbeat, with this process's rights.
      if (!replyIsInboxOf(actor, m.reply, guard.secure)) {
        log.warn('query not answered: its reply subject is not the asker\'s inbox', { actor, query: name, reply: m.reply ?? null });
        return;
      }
      const parsed = m.data.length === 0 ? E.right({}) : D.parseJson(m.data, 64 * 1024);
      const answer = (r: QueryReply) => {
        const bytes = enc.encode(JSON.stringify(r));
        // An answer must fit one message: say so rather than leave the asker waiting.
        const max = nc.info?.max_payload ?? 1024 * 1024;
        m.respond(
          bytes.byteLength <= max
            ? bytes
            : enc.encode(JSON.stringify({ ok: false, code: 'too-large', error: `the answer to "${name}" is ${bytes.byteLength} bytes, more than one NATS message holds (${max}); page it with limit and offset, narrow it with filters, or use the HTTP API` } satisfies QueryReply)),
        );
      };
      const failed = (e: QueryError): QueryReply => ({ ok: false, error: e.message, code: e.code });
      if (E.isLeft(parsed)) return answer(failed(queryError('invalid', parsed.left.message)));
      const scope = guard.scopeQuery(actor, name, parsed.right, view.current);
      if (E.isLeft(scope)) return answer(failed(scope.left));
      const filter = scope.right.filter ?? E.right;
      runQuery(queryContext(), name, scope.right.params).then(
        (r) => {
          const out = E.flatMap(filter)(r);
          answer(E.isRight(out) ? { ok: true, result: out.right } : failed(out.left));
        },
        (e) => {
          log.error('query failed', { query: name, actor, error: errorText(e) });
          answer(failed(queryError('unavailable', `the query "${name}" failed; see the control plane's log`)));
        },
      );
    },
  });
  const hbSub = nc.subscribe(subjects.allHeartbeats, {
    callback: (err, m) => {
      if (err) return;
      // Only what an agent sends (src/security/heartbeat.ts): not a message the server sent to
      // this subject on someone's behalf (a JetStream answer or delivery addressed here).
      const hb = decodeHeartbeat(subjects, m);
      if (E.isLeft(hb)) {
        log.debug('heartbeat ignored', { subject: m.subject, reason: hb.left });
        return;
      }
      // A revoked agent is not heard, even where nats-server still lets it in (not reloaded yet).
      if (opts.security?.registry.byActor(agentActor(hb.right.node))?.revokedAt) {
        log.debug('heartbeat ignored: the agent was revoked', { node: hb.right.node });
        return;
      }
      heartbeats.set(hb.right.node, { at: now().toISOString(), ...(hb.right.connections !== undefined ? { connections: hb.right.connections } : {}) });
    },
  });

  // Exactly one replica declares deaths and runs expiries; the others stand by.
  lease = await startLease({ nc, domain: opts.domain, replicaId, ttlMs: healing.leaseTtlMs, log: log.child({ replica: replicaId }), onChange: leadershipChanged });
  const registry = opts.security?.registry;
  const revoked = registry ? () => new Map(registry.identities.flatMap((i) => (i.revokedAt ? [[i.actor, i.revokedAt] as const] : []))) : undefined;
  const timers = startTimers({ store, repo, view, lease, heartbeats, domain: opts.domain, log, now, config: healing, ...(revoked ? { revoked } : {}) });
  if (opts.security) {
    const record = (registry: IdentityRegistry) => recordRegistry({ store, repo }, registry, { domain: opts.domain, now, log });
    await record(opts.security.registry);
    opts.security.watchRegistry?.((r) => void (stopping ? undefined : record(r)));
  }
  await federation?.start(
    () => lease?.leaderSince(),
    async (id) => E.mapLeft((e: QueryError) => e.message)(await runQuery(queryContext(), 'history', { id })),
  );

  return {
    view,
    store,
    subjects,
    heartbeats,
    guard,
    isLeader,
    stats,
    audit,
    queryContext,
    stop: async () => {
      stopping = true;
      await federation?.stop();
      await timers.stop();
      // The process manager finishes its delivered steps while the view and the store still run.
      leadershipChanged(false);
      await pmRun;
      await lease?.stop();
      messages.stop();
      await commandLoop.catch(() => undefined);
      await cmdQueue.drain();
      clearInterval(workingTimer);
      clearInterval(shedTimer);
      querySub.unsubscribe();
      hbSub.unsubscribe();
      await audit.stop();
      await subscription.stop();
      await store.close();
    },
  };
};
