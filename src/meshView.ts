// The control plane's live read model: commits arrive from the store subscription, are folded
// in batches, and callers can wait until a given position has been folded (read-your-writes).
// The model is mutated in place (see applyCommitsInPlace): `current` is always the same object,
// so a reader that needs a stable picture across an await must copy what it needs first.
import type { StoredCommit } from './contracts/envelope.ts';
import type { Draft } from 'immer';
import { applyCommitsInPlace, newMutableMesh, type MeshModel } from '../projections/mesh.ts';

export class MeshView {
  private readonly model: Draft<MeshModel> = newMutableMesh();
  private pending: StoredCommit[] = [];
  private scheduled = false;
  private waiters: { position: number; resolve: () => void }[] = [];
  private readonly listeners = new Set<(m: MeshModel, commits: readonly StoredCommit[]) => void>();

  get current(): MeshModel {
    return this.model;
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
    applyCommitsInPlace(this.model, batch);
    for (const l of this.listeners) l(this.model, batch);
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
