import type { AppTable, Instance, InstanceState } from './instances.js';
import type { MemoryGroup } from './limit-groups.js';

/** One process of this node, for the dashboard (Activator.snapshot). */
export interface InstanceSnapshot {
  appId: string;
  pid: number;
  port: number;
  state: InstanceState;
  /** When it was spawned (ms since the epoch). */
  startedAt: number;
  /** Its memory cgroup, where it has one (its usage is read there, else from /proc). */
  memoryGroup?: MemoryGroup;
}

/**
 * An app without a process here whose last starts failed (or whose instance crashed soon after
 * its start); this node starts it again at `until` at the earliest (back-off), or at once.
 */
export interface FailureSnapshot {
  appId: string;
  failures: number;
  until: number;
}

export interface ActivatorSnapshot {
  instances: InstanceSnapshot[];
  failing: FailureSnapshot[];
}

/** Every live process with its state, and the apps in restart back-off that have none. */
export function snapshotOf(live: Iterable<Instance>, table: AppTable): ActivatorSnapshot {
  const instances: InstanceSnapshot[] = [];
  const busy = new Set<string>();
  for (const i of live) {
    busy.add(i.app.id);
    const snapshot: InstanceSnapshot = {
      appId: i.app.id,
      pid: i.proc.pid,
      port: i.port,
      state: i.state,
      startedAt: i.startedAt,
    };
    const memoryGroup = i.proc.limitGroups?.memory;
    if (memoryGroup) snapshot.memoryGroup = memoryGroup;
    instances.push(snapshot);
  }
  const failing: FailureSnapshot[] = [];
  for (const r of table.all())
    if (r.failures && !busy.has(r.id))
      failing.push({ appId: r.id, failures: r.failures.count, until: r.failures.notBefore });
  return { instances, failing };
}
