// The leader's timer loop: every tick, find what has lapsed (src/workflows/healing.ts) and append the
// decision for each finding. Command ids are derived from the finding, so two replicas that
// briefly both believe they lead, or a tick that repeats a finding, act once.
import { errorText, type Logger } from '../ports/logger.ts';
import type { EventStore } from '../ports/eventStore.ts';
import type { MeshView } from '../read/meshView.ts';
import type { Repository } from '../command/repository.ts';
import { findDeaths, healingActions, type HealingConfig } from '../workflows/healing.ts';
import { actOnFinding } from './findingAction.ts';
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
  /** Revoked identities now (actor to when): their connections are closed. */
  readonly revoked?: () => ReadonlyMap<string, string>;
}

export const startTimers = (deps: TimerDeps): { stop(): Promise<void> } => {
  const inFlight = new Set<string>();
  let running: Promise<void> = Promise.resolve();
  let stopped = false;

  const tick = async () => {
    const since = deps.lease.leaderSince();
    if (since === undefined || stopped) return;
    const now = deps.now();
    const findings = findDeaths(deps.view.current, deps.heartbeats, now.getTime(), since, deps.config, deps.revoked?.());
    const actions = healingActions(findings, now.toISOString(), deps.config).filter((a) => !inFlight.has(a.id));
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
