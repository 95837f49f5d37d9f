// A control plane's part in a federation of domains joined by NATS leafnodes
// (docs/federation.md): it
//   - publishes this domain's heartbeat (nsm.<self>.fed.hb) and hears its peers';
//   - on the leader, turns heartbeats and silences into PeerSeen / PeerLost / PeerRecovered;
//   - keeps a read-only copy of each peer's registry events (stream NSM_<SELF>_REMOTE, sourced
//     from NSM_<PEER>_EVENTS filtered on nsm.<peer>.evt.endpoint.>) and folds it;
//   - answers peers' queries (nsm.<self>.fed.<peer>.query.<name>): a connection's state, its history;
//   - gives the process manager its cross-domain steps (./steps.ts).
import * as E from 'fp-ts/lib/Either.js';
import { RetentionPolicy, StorageType, type ConsumerMessages, type JetStreamManager, type NatsConnection, type StreamConfig, type StreamSource, type Subscription } from 'nats';
import type { PeerFacts } from '../../aggregates/peer.ts';
import { DEFAULT_TUNNEL_RANGE, type TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import { errorText, type Logger } from '../ports/logger.ts';
import { DOMAIN_PATTERN, peerActor, subjectsFor, type Subjects } from '../contracts/subjects.ts';
import { replyIsInboxOf } from '../security/replies.ts';
import { commandStreamSubjects } from '../../infra/nats/streams.ts';
import { applyRemoteCommit, domainOfEventSubject, emptyRemoteRegistries, remoteEndpoints } from '../../projections/remoteRegistries.ts';
import * as D from '../contracts/decode.ts';
import type { EventEnvelope, StoredCommit } from '../contracts/envelope.ts';
import type { QueryReply } from '../contracts/replies.ts';
import type { EventStore } from '../ports/eventStore.ts';
import { execErrorMessage } from '../command/execute.ts';
import type { FederationRoute } from '../command/routes.ts';
import type { MeshView } from '../read/meshView.ts';
import { actOnFinding } from './findingAction.ts';
import { executeStep, RetryLater } from '../command/execute.ts';
import type { Repository } from '../command/repository.ts';
import { findPeerChanges, peerActions, type Heard } from '../workflows/peerDetector.ts';
import { tunnelRangeConflict, type ConnectionState } from '../../aggregates/connection/index.ts';
import type { AnyAggregateCommand } from '../../aggregates/index.ts';
import { remoteStateOf } from '../command/remoteState.ts';
import { interdomainSender } from './federationSend.ts';
import { createFederationSteps, type FederationStepDeps } from './federationSteps.ts';
import type { FederationSteps } from '../workflows/steps.ts';
import type { FederationQueries } from '../read/queries.ts';
import { consumeOrdered } from '../../infra/nats/consumers.ts';

export interface FederationOptions {
  /** This domain's tunnel ids; federated domains must take disjoint ranges. Default: all ids. */
  readonly tunnelIds?: TunnelIdRange;
  /** A registry only (a floating registry): no nodes; requests are redirected to endpoints' home domains. */
  readonly registryOnly?: boolean;
  /**
   * The peer domains this one deals with. Required on an authenticated mesh (its permissions
   * name each peer); absent: any domain heard on the bus is a peer.
   */
  readonly peers?: readonly string[];
  readonly heartbeatMs?: number;
  /** A peer silent this long is lost: connections to its endpoints go down. */
  readonly peerTimeoutMs?: number;
  /** How long a durable send to a peer may take before it is retried. */
  readonly sendTimeoutMs?: number;
  /** How long a query to a peer (history, a connection's state) waits. */
  readonly queryTimeoutMs?: number;
}

const DEFAULT_FEDERATION = { heartbeatMs: 1000, peerTimeoutMs: 5000, sendTimeoutMs: 3000, queryTimeoutMs: 3000 } as const;

/** What the control plane's queries get from the federation. */

export interface Federation {
  readonly steps: FederationSteps;
  readonly route: FederationRoute;
  readonly queries: FederationQueries;
  /** Subscriptions and timers; `leaderSince` says whether this replica runs the peer detector. */
  start(leaderSince: () => number | undefined, localHistory: (id: string) => Promise<E.Either<string, unknown>>): Promise<void>;
  stop(): Promise<void>;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** The source of one peer's registry events, across its JetStream domain. */
const remoteSource = (peer: string): StreamSource => {
  const theirs = subjectsFor(peer);
  return { name: theirs.streams.events, external: { api: `$JS.${peer}.API`, deliver: '' }, filter_subject: theirs.event('endpoint.>') } as StreamSource;
};

/**
 * A peer's heartbeat on nsm.<peer>.fed.hb (exported for the fuzz suite's oracle). A range whose
 * `from` exceeds its `to` is refused, as in interdomain commands: it used to be taken, recorded as
 * the peer's facts (PeerUpdated) and compared with this domain's range as if it were one.
 */
export const heartbeatBody = D.object({ domain: D.key(D.string({ min: 1, max: 32, pattern: DOMAIN_PATTERN, patternHint: 'a domain' })) }, {
  tunnelIds: D.refine(D.object({ from: D.integer({ min: 0, max: 2 ** 24 }), to: D.integer({ min: 0, max: 2 ** 24 }) }), (r) => (r.from > r.to ? 'from must not exceed to' : undefined)),
  registryOnly: D.boolean,
});

export const createFederation = async (o: {
  readonly nc: NatsConnection;
  readonly subjects: Subjects;
  readonly view: MeshView;
  readonly store: EventStore;
  readonly repo: Repository;
  readonly log: Logger;
  readonly now: () => Date;
  readonly options: FederationOptions;
  /** Signs this side's plan made from a remote one (authenticated meshes: src/security/guard.ts). */
  readonly remotePlanSegments?: FederationStepDeps['remotePlanSegments'];
  /** An authenticated mesh: peers' queries are answered only into a control plane's private inbox. */
  readonly secure?: boolean;
}): Promise<Federation> => {
  const { nc, subjects, view, log, now } = o;
  const self = subjects.domain;
  const cfg = { ...DEFAULT_FEDERATION, ...o.options };
  const tunnelIds = o.options.tunnelIds ?? DEFAULT_TUNNEL_RANGE;
  const registryOnly = o.options.registryOnly ?? false;
  const configuredPeers = o.options.peers?.filter((p) => p !== self);
  const jsm: JetStreamManager = await nc.jetstreamManager();
  // A registry has no tunnels: it announces no range.
  const myFacts: PeerFacts = registryOnly ? { domain: self, registryOnly: true } : { domain: self, tunnelIds };
  /** Two clusters whose tunnel ids overlap cannot connect to each other: said as soon as they meet. */
  const conflictWith = (peer: PeerFacts): string | undefined => (registryOnly || peer.registryOnly ? undefined : tunnelRangeConflict({ domain: self, range: tunnelIds }, peer));

  // Commands from peers land in this domain's command stream; with named peers, one subject each,
  // so that each subscription interest fits a peer's leafnode permissions exactly.
  const commandSubjects = commandStreamSubjects(subjects, configuredPeers);
  const cmdInfo = await jsm.streams.info(subjects.streams.commands);
  if (JSON.stringify(cmdInfo.config.subjects) !== JSON.stringify(commandSubjects)) {
    try {
      await jsm.streams.update(subjects.streams.commands, { ...cmdInfo.config, subjects: commandSubjects });
    } catch (e) {
      // An authenticated control plane may not update streams: nsm up's setup step sets this one up for its --peer domains.
      throw new Error(
        `the command stream ${subjects.streams.commands} takes ${JSON.stringify(cmdInfo.config.subjects)}, but this control plane's peers need ${JSON.stringify(commandSubjects)}, ` +
          `and it may not change the stream (${errorText(e)}); on an authenticated mesh, start nsm up with the same --peer domains (its setup step configures the stream)`,
      );
    }
    log.info('command stream takes commands from peer domains', { subjects: commandSubjects });
  }

  // ---- the copy of peers' registries ----------------------------------------------------------
  // One stream update at a time; a failed one leaves the next to try again.
  let sourcing: Promise<void> = Promise.resolve();
  const ensureRemoteSource = (peer: string): Promise<void> => {
    const run = sourcing.then(async () => {
      if (peer === self || !DOMAIN_PATTERN.test(peer)) return;
      const name = subjects.streams.remote;
      let config: StreamConfig;
      try {
        config = (await jsm.streams.info(name)).config;
      } catch (e) {
        if ((e as { code?: string }).code !== '404') throw e;
        await jsm.streams.add({ name, storage: StorageType.File, retention: RetentionPolicy.Limits, sources: [remoteSource(peer)] });
        log.info('keeping a copy of a peer domain\'s registry', { peer, stream: name });
        return;
      }
      const sources = config.sources ?? [];
      if (sources.some((s) => s.name === subjectsFor(peer).streams.events)) return;
      await jsm.streams.update(name, { ...config, sources: [...sources, remoteSource(peer)] });
      log.info('keeping a copy of a peer domain\'s registry', { peer, stream: name });
    });
    sourcing = run.catch(() => undefined);
    return run.catch((e) => {
      log.warn('could not source a peer domain\'s registry', { peer, error: errorText(e) });
      throw new RetryLater(`sourcing the registry of ${peer}: ${errorText(e)}`);
    });
  };

  const remote = emptyRemoteRegistries();
  let remoteMessages: ConsumerMessages | undefined;
  let remoteLoop: Promise<void> | undefined;
  let following = false;
  const followRemote = async () => {
    if (following) return true;
    try {
      await jsm.streams.info(subjects.streams.remote);
    } catch {
      return false;
    }
    following = true;
    remoteMessages = await consumeOrdered(nc.jetstream(), subjects.streams.remote, 'nsm.*.evt.endpoint.>', 0, 500);
    remoteLoop = (async () => {
      for await (const m of remoteMessages!) {
        const domain = domainOfEventSubject(m.subject);
        if (!domain) continue;
        try {
          applyRemoteCommit(remote, domain, JSON.parse(dec.decode(m.data)) as StoredCommit);
        } catch (e) {
          log.warn('skipping an unreadable message in the registry copy', { subject: m.subject, error: errorText(e) });
        }
      }
    })();
    return true;
  };

  // ---- heartbeats -------------------------------------------------------------------------------
  const heard = new Map<string, Heard>();
  const subs: Subscription[] = [];
  const timers: NodeJS.Timeout[] = [];
  const publishHeartbeat = () => nc.publish(subjects.fedHeartbeat, enc.encode(JSON.stringify(myFacts)));

  const send = interdomainSender(nc, self, cfg.sendTimeoutMs);
  const ask = async (domain: string, name: string, params: unknown): Promise<E.Either<string, unknown>> => {
    try {
      const m = await nc.request(subjectsFor(domain).fedQuery(self, name), enc.encode(JSON.stringify(params)), { timeout: cfg.queryTimeoutMs });
      const r = JSON.parse(dec.decode(m.data)) as QueryReply;
      return r.ok ? E.right(r.result) : E.left(r.error);
    } catch (e) {
      return E.left((e as { code?: string }).code === '503' ? `domain ${domain} is not reachable` : errorText(e));
    }
  };

  const apply = async (stream: string, command: AnyAggregateCommand, commandId: string, env: EventEnvelope) => {
    const r = await executeStep({ store: o.store, repo: o.repo }, stream, command, {
      commandId,
      correlationId: env.correlationId,
      causationId: env.id,
      actor: 'control-plane',
      domain: self,
      now,
    });
    if (E.isLeft(r)) log.warn('federation step refused', { stream, error: execErrorMessage(r.left) });
  };

  const steps = createFederationSteps({ self, tunnelIds, view, log, now, send, ask, apply, ensureRemoteSource, ...(o.remotePlanSegments ? { remotePlanSegments: o.remotePlanSegments } : {}) });

  const knownPeers = (): string[] => [...new Set([...(configuredPeers ?? []), ...Object.keys(view.current.peers.peers)])].filter((p) => p !== self).sort();

  const queries: FederationQueries = {
    self,
    remoteEndpoints: (domain) => remoteEndpoints(remote, now().getTime(), domain),
    peers: () =>
      knownPeers().map((d) => {
        const row = view.current.peers.peers[d];
        const h = heard.get(d);
        return {
          domain: d,
          status: row?.status ?? 'never heard',
          ...(h ? { lastHeard: h.at } : {}),
          ...(row?.tunnelIds ? { tunnelIds: row.tunnelIds } : {}),
          ...(row?.registryOnly ? { registryOnly: true } : {}),
          ...(() => {
            const conflict = row ? conflictWith(row) : h ? conflictWith(h.facts) : undefined;
            return conflict ? { conflict } : {};
          })(),
        };
      }),
    peerHistories: async (id) =>
      Promise.all(
        knownPeers().map(async (domain) => {
          const r = await ask(domain, 'history', { id });
          return E.isRight(r) ? { domain, rows: r.right as unknown[] } : { domain, error: r.left };
        }),
      ),
  };

  const endedState = async (connectionId: string): Promise<ConnectionState | undefined> => {
    const r = await o.repo.load(`connection.${connectionId}`);
    const st = E.isRight(r) ? (r.right.state as ConnectionState) : undefined;
    return st && st.phase !== 'none' ? st : undefined;
  };

  /** What a peer may ask: only about connections it is part of. */
  const answerPeer = async (from: string, name: string, params: unknown, localHistory: (id: string) => Promise<E.Either<string, unknown>>): Promise<QueryReply> => {
    const p = (params ?? {}) as { connectionId?: unknown; id?: unknown };
    const connectionId = typeof p.connectionId === 'string' ? p.connectionId : typeof p.id === 'string' ? p.id : undefined;
    if (!connectionId) return { ok: false, error: 'a connection id is needed' };
    // Own keys only: "constructor" must not find Object (the read model's maps are plain objects).
    const row = Object.hasOwn(view.current.connections.byId, connectionId) ? view.current.connections.byId[connectionId] : undefined;
    // A connection that ended long ago has left the live model (projections/connections.ts): for
    // its history, its state is folded from its own stream.
    const state = row?.state ?? (name === 'history' ? await endedState(connectionId) : undefined);
    // Shared with `from`: its endpoint is there, or its client (a registry's redirected requests too).
    const shared = state !== undefined && (state.remoteDomain === from || state.request?.remoteClient?.domain === from);
    switch (name) {
      case 'connection-state':
        if (!row) return { ok: true, result: null };
        if (!shared) return { ok: false, error: `connection ${connectionId} is not shared with domain ${from}` };
        return { ok: true, result: remoteStateOf(row.state, view.current.nodes.nodes) ?? null };
      case 'history': {
        if (!state) return { ok: true, result: [] };
        if (!shared) return { ok: false, error: `connection ${connectionId} is not shared with domain ${from}` };
        const r = await localHistory(connectionId);
        if (E.isLeft(r)) return { ok: false, error: r.left };
        // The connection's own stream, and its address pair: not other streams that share the id.
        return { ok: true, result: (r.right as { stream: string }[]).filter((x) => x.stream === `connection.${connectionId}` || x.stream.startsWith('pool.')) };
      }
      default:
        return { ok: false, error: `domain ${self} does not answer "${name}" for peers` };
    }
  };

  return {
    steps,
    route: { self, tunnelIds, registryOnly },
    queries,
    start: async (leaderSince, localHistory) => {
      for (const peer of knownPeers()) await ensureRemoteSource(peer).catch(() => undefined);
      if (!(await followRemote())) {
        // Nothing sourced yet: start following once the first peer is.
        const retry = setInterval(() => {
          void followRemote().then((ok) => ok && clearInterval(retry)).catch(() => undefined);
        }, 1000);
        timers.push(retry);
      }
      const hbSubjects = configuredPeers ? configuredPeers.map((p) => subjectsFor(p).fedHeartbeat) : ['nsm.*.fed.hb'];
      for (const subject of hbSubjects) {
        subs.push(
          nc.subscribe(subject, {
            callback: (err, m) => {
              if (err) return;
              const parsed = D.parseJson(m.data, 4096);
              const facts = E.isRight(parsed) ? heartbeatBody(parsed.right, 'heartbeat') : parsed;
              if (E.isLeft(facts) || facts.right.domain === self || m.subject !== subjectsFor(facts.right.domain).fedHeartbeat) return;
              heard.set(facts.right.domain, { at: now().toISOString(), facts: facts.right as PeerFacts });
            },
          }),
        );
      }
      for (const subject of subjects.fedQueries(configuredPeers)) {
        subs.push(
          nc.subscribe(subject, {
            queue: 'nsm-fed-query',
            callback: (err, m) => {
              if (err) return;
              const tokens = m.subject.split('.');
              const from = tokens[3]!;
              const name = tokens[5]!;
              // Answered only into a control plane's inbox: a reply subject in this domain
              // ("nsm.<d>.evt.x") would have this process append the answer to its own log.
              if (tokens.length !== 6 || `${tokens.slice(0, 3).join('.')}` !== `nsm.${self}.fed` || !replyIsInboxOf(peerActor(from), m.reply, o.secure ?? false)) {
                log.warn('peer query not answered: not a query subject, or its reply subject is not a control plane\'s inbox', { subject: m.subject, reply: m.reply ?? null });
                return;
              }
              const parsed = m.data.length === 0 ? E.right({}) : D.parseJson(m.data, 16 * 1024);
              const answer = (r: QueryReply) => m.respond(enc.encode(JSON.stringify(r)));
              if (E.isLeft(parsed)) return answer({ ok: false, error: parsed.left.message });
              answerPeer(from, name, parsed.right, localHistory).then(answer, (e) => answer({ ok: false, error: errorText(e) }));
            },
          }),
        );
      }
      publishHeartbeat();
      timers.push(setInterval(publishHeartbeat, cfg.heartbeatMs));

      // The leader turns what it heard into peer events; ids derived from the finding act once.
      let ticking = false;
      const tick = async () => {
        const since = leaderSince();
        if (since === undefined || ticking) return;
        ticking = true;
        try {
          const f = findPeerChanges(view.current.peers, heard, now().getTime(), since, cfg.peerTimeoutMs);
          for (const s of f.seen) {
            const conflict = s.reason !== 'back' ? conflictWith(s.facts) : undefined;
            if (conflict) log.error('cross-domain connections with this peer will be refused', { peer: s.facts.domain, problem: conflict });
          }
          for (const a of peerActions(f, cfg.peerTimeoutMs)) await actOnFinding({ store: o.store, repo: o.repo, view, domain: self, log, now }, 'control-plane:federation', a, 'peer action failed; will retry');
        } catch (e) {
          log.warn('peer detection failed; will look again', { error: errorText(e) });
        } finally {
          ticking = false;
        }
      };
      timers.push(setInterval(() => void tick(), Math.max(100, Math.floor(cfg.heartbeatMs / 2))));
      log.info('federation running', { domain: self, tunnelIds, registryOnly, peers: configuredPeers ?? 'any domain heard' });
    },
    stop: async () => {
      for (const t of timers) clearInterval(t);
      for (const s of subs) s.unsubscribe();
      remoteMessages?.stop();
      await remoteLoop?.catch(() => undefined);
      await sourcing.catch(() => undefined);
    },
  };
};
