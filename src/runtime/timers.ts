// The leader's timer loop: every tick, find what has lapsed (./detector.ts) and append the
// decision for each finding. Command ids are derived from the finding, so two replicas that
// briefly both believe they lead, or a tick that repeats a finding, act once.
import { errorText, type Logger } from '../ports/logger.ts';
import { streamName } from '../contracts/envelope.ts';
import type { EventStore } from '../ports/eventStore.ts';
import type { MeshView } from '../read/meshView.ts';
import type { Repository } from '../command/repository.ts';
import { findDeaths, type Findings, type HealingConfig } from '../workflows/healingDetector.ts';
import { actOnFinding, findingAction, type FindingAction } from './findingAction.ts';
import type { Lease } from './lease.ts';

export interface TimerDeps {
  readonly store: EventStore;
  readonly repo: Repository;
  readonly view: MeshView;
  readonly lease: Lease;
  readonly heartbeats: ReadonlyMap<string, { readonly at: string }>;
  readonly domain: string;
  readonly log: Logger;
  readonly now: () => Date;
  readonly config: HealingConfig;
}

const actionsFor = (f: Findings, at: string, cfg: HealingConfig): FindingAction[] => [
  ...f.expiredEndpoints.map((e) =>
    findingAction(`expire-endpoint:${e.name}:${e.expirationTime}`, streamName('endpoint', e.name), { type: 'ExpireEndpoint', name: e.name, cause: 'expired', at }, {
      finding: 'endpoint expired',
      endpoint: e.name,
      expirationTime: e.expirationTime,
    }),
  ),
  ...f.lostNodes.map((n) =>
    findingAction(`lose-node:${n.name}:${n.lastSeen}`, streamName('node', n.name), { type: 'LoseNode', name: n.name, lastSeen: n.lastSeen, timeoutMs: cfg.nodeTimeoutMs }, {
      finding: 'node lost',
      node: n.name,
      lastSeen: n.lastSeen,
    }),
  ),
  ...f.recoveredNodes.map((n) =>
    findingAction(`recover-node:${n.name}:${n.heardAt}`, streamName('node', n.name), { type: 'RecoverNode', name: n.name }, { finding: 'node heard again', node: n.name, heardAt: n.heardAt }),
  ),
  ...f.expiredConnections.map((c) =>
    findingAction(`expire-connection:${c.id}:${c.expirationTime}`, streamName('connection', c.id), { type: 'ExpireConnection', connectionId: c.id, at }, {
      finding: 'connection expired',
      connectionId: c.id,
      expirationTime: c.expirationTime,
    }),
  ),
  ...f.downPastGrace.map((c) =>
    findingAction(
      `close-down:${c.id}:${c.since}`,
      streamName('connection', c.id),
      { type: 'CloseConnection', connectionId: c.id, reason: `client node ${c.node} lost since ${c.since}, longer than the ${Math.round(cfg.downGraceMs / 1000)} s grace period` },
      { finding: 'down past grace', connectionId: c.id, node: c.node },
    ),
  ),
];

export const startTimers = (deps: TimerDeps): { stop(): Promise<void> } => {
  const inFlight = new Set<string>();
  let running: Promise<void> = Promise.resolve();
  let stopped = false;

  const tick = async () => {
    const since = deps.lease.leaderSince();
    if (since === undefined || stopped) return;
    const now = deps.now();
    const findings = findDeaths(deps.view.current, deps.heartbeats, now.getTime(), since, deps.config);
    const actions = actionsFor(findings, now.toISOString(), deps.config).filter((a) => !inFlight.has(a.id));
    await Promise.all(
      actions.map(async (a) => {
        inFlight.add(a.id);
        try {
          await actOnFinding(deps, 'control-plane:timers', a, 'timer action failed; will retry on a later tick');
        } catch (e) {
          deps.log.error('timer action crashed', { ...a.what, error: errorText(e) });
        } finally {
          inFlight.delete(a.id);
        }
      }),
    );
  };

  const timer = setInterval(() => {
    running = running.then(tick);
  }, deps.config.tickMs);

  return {
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
};
