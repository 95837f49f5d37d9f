// The sealer follows the log in order and seals runs of consecutive commits: each seal lists
// the (position, hash) of its commits and chains to the previous seal. Several control-plane
// replicas may each run one; the seal store lets only one seal per run land, and a replica that
// loses reloads the winner's seal and carries on after it.
import { errorText, type Logger } from '../ports/logger.ts';
import type { StoredCommit } from '../contracts/envelope.ts';
import type { EventStore, Subscription } from '../ports/eventStore.ts';
import { commitHash, GENESIS_HASH, makeSeal } from './hash.ts';
import type { Seal } from '../contracts/seal.ts';
import type { SealStore, SealTip } from '../ports/sealStore.ts';
import { sleep, backoff } from '../lib/time.ts';

export interface SealerOptions {
  readonly store: EventStore;
  readonly seals: SealStore;
  readonly log: Logger;
  /** Seal when this many commits are waiting (default 1000)... */
  readonly maxEntries?: number;
  /** ...or when the oldest waiting commit has waited this long (default 1000 ms). */
  readonly maxDelayMs?: number;
}

export interface Sealer {
  /** Position of the last commit covered by a stored seal ("0" when none). */
  sealedUpTo(): bigint;
  /** Seals everything received so far (also what stop() does first). */
  flush(): Promise<void>;
  stop(): Promise<void>;
  /**
   * The most recent seals this sealer appended itself (not those another replica won), at most
   * APPENDED_KEPT: a control plane runs for months, and every seal lists a position and hash per
   * commit.
   */
  readonly appended: Seal[];
  /** Seals found already stored (the same run sealed by another replica, or a retry). */
  /** Appends refused because another replica's seal landed first. */
  readonly lost: () => number;
}

/** How many of its own seals a sealer keeps in memory (see Sealer.appended). */
export const APPENDED_KEPT = 100;

export const startSealer = async (o: SealerOptions): Promise<Sealer> => {
  const maxEntries = o.maxEntries ?? 1000;
  const maxDelayMs = o.maxDelayMs ?? 1000;
  const log = o.log.child({ component: 'sealer' });
  let last: SealTip | undefined = await o.seals.last();
  const warnForeign = (tip: SealTip | undefined) => {
    if (tip?.foreign) log.error('the seal stream holds messages that are not seals; sealing carries on from the newest readable seal (nsm audit verify reports them)', { foreign: tip.foreign, lastSequence: tip.sequence, sealedUpTo: tip.seal?.to ?? '0' });
  };
  warnForeign(last);
  let pending: [string, string][] = [];
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const appended: Seal[] = [];
  let lost = 0;
  const sealedTo = () => (last?.seal ? BigInt(last.seal.to) : 0n);

  /** Another replica's seal: drops what it covers; says so when that replica saw different hashes. */
  const adopt = (record: SealTip) => {
    last = record;
    warnForeign(record);
    if (!record.seal) return;
    const to = BigInt(record.seal.to);
    const theirs = new Map(record.seal.entries);
    for (const [position, hash] of pending) {
      const other = theirs.get(position);
      if (other !== undefined && other !== hash) {
        log.error('another sealer sealed a different hash for a commit: the log read differently by two replicas', { position, ours: hash, theirs: other });
      }
    }
    pending = pending.filter(([p]) => BigInt(p) > to);
  };

  const sealOnce = async (): Promise<void> => {
    const entries = pending.slice(0, maxEntries);
    if (entries.length === 0) return;
    const seal = makeSeal(entries, last?.seal?.sealHash ?? GENESIS_HASH);
    const r = await o.seals.append(seal, last?.sequence ?? 0);
    if (r.kind === 'appended') {
      if (!r.duplicate) {
        appended.push(seal);
        if (appended.length > APPENDED_KEPT) appended.shift();
      }
      // Our own seal (or its redelivered twin): it covers exactly the first entries of pending.
      last = { sequence: r.sequence, seal };
      pending = pending.slice(entries.length);
      log.debug('sealed', { from: seal.from, to: seal.to, commits: entries.length, duplicate: r.duplicate });
      return;
    }
    lost++;
    const winner = await o.seals.last();
    if (!winner) throw new Error('the seal store refused a first seal but holds none');
    log.debug('another replica sealed first', { from: winner.seal?.from, to: winner.seal?.to, sequence: winner.sequence });
    adopt(winner);
  };

  // One seal at a time: the timer and a full batch may both ask for one.
  let chain: Promise<void> = Promise.resolve();
  const flush = (): Promise<void> => {
    const run = chain.then(async () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      for (let attempt = 1; pending.length > 0; attempt++) {
        try {
          await sealOnce();
        } catch (e) {
          if (stopped || attempt >= 5) {
            log.warn('sealing failed; will retry with the next commits', { error: errorText(e), waiting: pending.length });
            break;
          }
          await sleep(backoff(attempt));
        }
      }
      if (pending.length > 0 && !stopped) arm();
    });
    chain = run.catch(() => undefined);
    return run;
  };
  const arm = () => {
    timer ??= setTimeout(() => void flush(), maxDelayMs);
  };

  const onCommit = async (c: StoredCommit) => {
    // Already covered by a seal another replica appended while we were behind.
    if (c.position <= sealedTo()) return;
    // The hash of what is stored, recomputed: a stored hash that no longer matches its content
    // must not be sealed as if it did.
    const hash = commitHash(c);
    if (c.hash !== undefined && c.hash !== hash) log.error('sealing a commit whose content does not match its hash', { position: c.position, stream: c.stream });
    pending.push([c.position.toString(), hash]);
    if (pending.length >= maxEntries) await flush();
    else arm();
  };

  const subscription: Subscription = await o.store.subscribeAll(sealedTo(), {
    onCommit,
    onError: (e) => log.error('sealer subscription stopped', { error: e.message }),
  });
  log.info('sealer following the log', { sealedUpTo: sealedTo().toString() });

  return {
    sealedUpTo: sealedTo,
    flush,
    appended,
    lost: () => lost,
    stop: async () => {
      await subscription.stop();
      await flush().catch(() => undefined);
      stopped = true;
      if (timer) clearTimeout(timer);
      await chain;
    },
  };
};
