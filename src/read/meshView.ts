// The control plane's live read model: commits arrive from the store subscription, are folded
// in batches, and callers can wait until a given position has been folded (read-your-writes).
// The model is mutated in place (see applyCommitsInPlace): `current` is always the same object,
// so a reader that needs a stable picture across an await must copy what it needs first.
import type { StoredCommit } from '../contracts/envelope.ts';
import type { Draft } from 'immer';
import { applyCommitsInPlace, emptyMesh, type MeshModel } from '../../projections/mesh.ts';

export class MeshView {
  /** Mutated in place by flush() and bulk(); replaced whole by a snapshot or a rebuild. */
  private model: Draft<MeshModel> = structuredClone(emptyMesh) as Draft<MeshModel>;
  private pending: StoredCommit[] = [];
  private scheduled = false;
  private waiters: { position: number; resolve: () => void }[] = [];
  private readonly listeners = new Set<(m: MeshModel, commits: readonly StoredCommit[]) => void>();
  /** Commits folded by this view since it was created (not those of a loaded snapshot). */
  folded = 0;
  /** Commits folded by bulk() since listeners last heard of the model. */
  private bulked = 0;

  /** @param bulkCheckpoint in bulk mode, hand the model to listeners (snapshots) every so many commits. */
  constructor(private readonly bulkCheckpoint = 100_000) {}

  get current(): MeshModel {
    this.endBulk();
    return this.model;
  }

  /**
   * Folds a commit of a catch-up with a long log at once, without waking anyone per commit:
   * listeners (snapshots) and waiters hear of the model every bulkCheckpoint commits and when the
   * bulk ends (reading `current`, push() and flush() end it).
   */
  bulk(commit: StoredCommit): void {
    if (this.pending.length > 0) this.flush();
    if (Number(commit.position) > this.model.position) this.folded++;
    applyCommitsInPlace(this.model, [commit]);
    if (++this.bulked >= this.bulkCheckpoint) this.endBulk();
  }

  private endBulk(): void {
    if (this.bulked === 0) return;
    this.bulked = 0;
    for (const l of this.listeners) l(this.model, []);
    this.wake();
  }

  /**
   * Swaps in another model (a snapshot at start, a rebuilt model): only at or past the current
   * position, so nothing folded is lost. Queued commits are folded onto it by the next flush.
   */
  replace(model: MeshModel): boolean {
    this.endBulk();
    if (model.position < this.model.position) return false;
    // The view mutates its model from now on: it must be the only holder of this one.
    this.model = model as Draft<MeshModel>;
    this.wake();
    return true;
  }

  /**
   * A commit this process just appended: folded at once when it is the very next position of a
   * log with dense positions (JetStream), so the process reads its own write without waiting for
   * the subscription to bring it back (which then skips it). Otherwise nothing happens here.
   */
  offer(commit: StoredCommit): void {
    if (this.bulked > 0 || this.pending.length > 0 || Number(commit.position) !== this.model.position + 1) return;
    applyCommitsInPlace(this.model, [commit]);
    this.folded++;
    for (const l of this.listeners) l(this.model, [commit]);
    this.wake();
  }

  /** Queue a commit; the fold runs once per burst of commits. */
  push(commit: StoredCommit): void {
    this.endBulk();
    this.pending.push(commit);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.endBulk();
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const before = this.model.position;
    for (const c of batch) if (Number(c.position) > before) this.folded++;
    applyCommitsInPlace(this.model, batch);
    for (const l of this.listeners) l(this.model, batch);
    this.wake();
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => w.position <= this.model.position);
    this.waiters = this.waiters.filter((w) => w.position > this.model.position);
    for (const w of ready) w.resolve();
  }

  /** Resolves once everything up to `position` is folded in, or rejects after the timeout. */
  waitFor(position: number, timeoutMs = 10000): Promise<void> {
    if (this.current.position >= position) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new Error(`read model did not reach position ${position} within ${timeoutMs} ms (at ${this.model.position})`));
      }, timeoutMs);
      const waiter = { position, resolve: () => (clearTimeout(timer), resolve()) };
      this.waiters.push(waiter);
    });
  }

  onChange(l: (m: MeshModel, commits: readonly StoredCommit[]) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}
