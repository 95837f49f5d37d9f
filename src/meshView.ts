// The control plane's live read model: commits arrive from the store subscription, are folded
// in batches, and callers can wait until a given position has been folded (read-your-writes).
import type { StoredCommit } from './contracts/envelope.ts';
import { applyCommits, emptyMesh, type MeshModel } from '../projections/mesh.ts';

export class MeshView {
  private model: MeshModel = emptyMesh;
  private pending: StoredCommit[] = [];
  private scheduled = false;
  private waiters: { position: number; resolve: () => void }[] = [];
  private readonly listeners = new Set<(m: MeshModel, commits: readonly StoredCommit[]) => void>();
  /** Commits folded by this view since it was created (not those of a loaded snapshot). */
  folded = 0;

  get current(): MeshModel {
    return this.model;
  }

  /**
   * Swaps in another model (a snapshot at start, a rebuilt model): only at or past the current
   * position, so nothing folded is lost. Queued commits are folded onto it by the next flush.
   */
  replace(model: MeshModel): boolean {
    if (model.position < this.model.position) return false;
    this.model = model;
    this.wake();
    return true;
  }

  /** Queue a commit; the fold runs once per burst of commits. */
  push(commit: StoredCommit): void {
    this.pending.push(commit);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    const before = this.model.position;
    for (const c of batch) if (Number(c.position) > before) this.folded++;
    this.model = applyCommits(this.model, batch);
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
    if (this.model.position >= position) return Promise.resolve();
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
