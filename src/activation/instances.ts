import type { App } from '../registry/types.js';
import type { Failures } from './backoff.js';
import type { ExitReason } from './exit-reason.js';
import type { Renewal } from './renewal.js';
import type { SpawnedProcess } from './spawn.js';
import type { Activation, Target } from './target.js';

/**
 * What an instance of this node is doing: `starting` (spawned, not ready yet, or ready and not
 * yet given its registry entry), `ready` (new exchanges go to it), `draining` (replaced: it
 * finishes what it serves), `stopping` (SIGTERM sent). An instance that has exited is no
 * longer known.
 */
export type InstanceState = 'starting' | 'ready' | 'draining' | 'stopping';

/** One process this node started and that has not exited yet. */
export interface Instance {
  /** The version of its app it runs. */
  app: App;
  proc: SpawnedProcess;
  port: number;
  /** The instance's target: connections to it belong to it, and go when it exits. */
  target: Target;
  /** deployKey(app) of the version it runs: a different one in the registry replaces it. */
  key: string;
  startedAt: number;
  state: InstanceState;
  /** Fires when the process exits. */
  exited: AbortSignal;
  /** Why arr stopped it, once it did (its exit's reason; none: it crashed). */
  stoppedFor?: ExitReason;
  /** Its memory limit killed it (read at its exit). */
  oom?: boolean;
  /** It failed its health checks: new requests wait for its replacement, when there is one. */
  unhealthy?: boolean;
}

/**
 * Everything this node knows of one app's activation: the instance new exchanges go to, the
 * start or replacement under way, and the failures of its last starts (the back-off).
 */
export interface AppRecord {
  readonly id: string;
  /** The instance new exchanges go to (state `ready`), if any. */
  serving?: Instance;
  /** A start under way: any number of concurrent activations share it. */
  starting?: Promise<Activation>;
  /** A replacement's new instance, while it starts: a request finding no instance waits for it. */
  successor?: Promise<Activation>;
  /** A rolling replacement under way (one at a time per app). */
  deploy?: Promise<void>;
  /** The replacement must look again once the one under way is over. */
  deployAgain?: boolean;
  /** Cancels the replacement that waits for the back-off. */
  deployRetry?: () => void;
  /** The failures of its last starts, in a row. */
  failures?: Failures;
  /** Its instance is to be replaced though it runs the registry's version (health, recycle). */
  renewal?: Renewal;
}

/** One record per app (made on first use), the version counter of snapshots, and the swap generation. */
export class AppTable {
  private readonly records = new Map<string, AppRecord>();
  /** Bumped whenever an instance starts, changes state or exits (snapshots tell it). */
  version = 0;
  /** Bumped when an instance is swapped for another: a reassert that read the registry before is stale. */
  generation = 0;
  /** arr is stopping: nothing is started or replaced any more. */
  stopping = false;

  /** Told when an instance stops taking new exchanges (worker processes keep targets of their own). */
  constructor(private readonly unserved?: (instance: Instance) => void) {}

  /** The app's record, made when there is none. */
  of(appId: string): AppRecord {
    let record = this.records.get(appId);
    if (!record) {
      record = { id: appId };
      this.records.set(appId, record);
    }
    return record;
  }

  /** The app's record, if it has one. */
  find(appId: string): AppRecord | undefined {
    return this.records.get(appId);
  }

  all(): IterableIterator<AppRecord> {
    return this.records.values();
  }

  /** The instance serving the app, if any: the hot path, one map lookup. */
  serving(appId: string): Instance | undefined {
    return this.records.get(appId)?.serving;
  }

  /** How many apps have an instance serving. */
  servingCount(): number {
    let n = 0;
    for (const r of this.records.values()) if (r.serving) n++;
    return n;
  }

  setState(instance: Instance, state: InstanceState): void {
    if (instance.state === state) return;
    instance.state = state;
    this.version++;
  }

  /** From now on, new exchanges for the app go to `instance`. */
  serve(record: AppRecord, instance: Instance): void {
    const before = record.serving;
    record.serving = instance;
    if (before && before !== instance) this.unserved?.(before);
    this.setState(instance, 'ready');
  }

  /** The app's instance no longer takes new exchanges; true when it was the one serving. */
  unserve(record: AppRecord, instance: Instance): boolean {
    if (record.serving !== instance) return false;
    record.serving = undefined;
    this.unserved?.(instance);
    this.tidy(record);
    return true;
  }

  /** Forgets a record that holds nothing any more (an app removed, or one that started cleanly). */
  tidy(record: AppRecord): void {
    if (
      !record.serving &&
      !record.starting &&
      !record.successor &&
      !record.deploy &&
      !record.deployRetry &&
      !record.failures &&
      !record.renewal
    )
      this.records.delete(record.id);
  }
}
