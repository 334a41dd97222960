import type { Target } from '../activation/target.js';
import type { ActivityRow } from './messages.js';
import { keyOf } from './worker-instances.js';

/** One worker's last word on one instance. */
interface WorkerCount {
  active: number;
  lastActive: number;
  exchanges: number;
}

interface Entry {
  target: Target;
  byWorker: Map<number, WorkerCount>;
  /** Exchanges counted by workers that are gone. */
  retired: number;
  /** Workers told of a drain that have not answered since. */
  pending: Set<number>;
}

/**
 * The primary's view of what its workers serve on each instance of this node, added up into
 * the instance's own Activity (the object the idle stop and the deploy drain read): in flight,
 * the sum of every worker's last summary; exchanges, every worker's; last active, the latest.
 * While a drain waits for workers that have not answered since they were told of it, each
 * such worker counts as one exchange in flight: a summary sent before the drain cannot end it.
 */
export class ActivityBoard {
  private readonly entries = new Map<string, Entry>();

  /** The instance was handed to a worker (or drains): its activity is kept up from now on. */
  track(target: Target): void {
    const key = keyOf(target.appId, target.port);
    if (!this.entries.has(key))
      this.entries.set(key, { target, byWorker: new Map(), retired: 0, pending: new Set() });
  }

  /** A worker's summary (instances unknown here, already gone, are passed over). */
  report(worker: number, rows: readonly ActivityRow[]): void {
    for (const [appId, port, active, lastActive, exchanges] of rows) {
      const e = this.entries.get(keyOf(appId, port));
      if (!e) continue;
      e.byWorker.set(worker, { active, lastActive, exchanges });
      e.pending.delete(worker);
      this.sum(e);
    }
  }

  /** The instance drains: each of `workers` must report on it before its exchanges can be taken as done. */
  draining(target: Target, workers: Iterable<number>): void {
    this.track(target);
    const e = this.entries.get(keyOf(target.appId, target.port))!;
    for (const w of workers) e.pending.add(w);
    this.sum(e);
  }

  /** A worker exited: what it had in flight failed with it; what it served stays counted. */
  workerGone(worker: number): void {
    for (const e of this.entries.values()) {
      const c = e.byWorker.get(worker);
      const waited = e.pending.delete(worker);
      if (!c && !waited) continue;
      if (c) e.retired += c.exchanges;
      e.byWorker.delete(worker);
      this.sum(e);
    }
  }

  /** The instance exited. */
  forget(target: Target): void {
    const key = keyOf(target.appId, target.port);
    if (this.entries.get(key)?.target === target) this.entries.delete(key);
  }

  /** How many instances are followed (for tests and the dashboard). */
  get size(): number {
    return this.entries.size;
  }

  private sum(e: Entry): void {
    const a = e.target.activity;
    if (!a) return;
    let active = e.pending.size;
    let exchanges = e.retired;
    let lastActive = a.lastActive;
    for (const c of e.byWorker.values()) {
      active += c.active;
      exchanges += c.exchanges;
      if (c.lastActive > lastActive) lastActive = c.lastActive;
    }
    a.active = active;
    a.exchanges = exchanges;
    a.lastActive = lastActive;
  }
}
