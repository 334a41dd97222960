import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Limits } from '../registry/types.js';
import { removeWhenEmpty, staleFolders, subtree } from './cgroup-tree.js';

/** The controllers behind `limits.memory`, `limits.cpu` and `limits.pids`. */
export type Controller = 'memory' | 'cpu' | 'pids';
const CONTROLLERS: Controller[] = ['memory', 'cpu', 'pids'];

/** A limit of an app that arr cannot hold its instances to here, and why. */
export interface Unenforced {
  limit: keyof Limits;
  why: string;
}

/** Where one controller's groups are: in the instance's cgroup v2 group, or a v1 hierarchy. */
type Placement = { version: 2 } | { version: 1; own: string; base: string };

/** The CFS period arr sets: 100 ms, the kernel's default. */
const CPU_PERIOD_US = 100_000;

/** A group where an instance's memory is accounted: its usage and OOM kills are read there. */
export interface MemoryGroup {
  dir: string;
  version: 1 | 2;
}

/** What an instance with limits joins, and reads from, beside its cgroup v2 group. */
export interface InstanceLimitGroups {
  /** The cgroup.procs files of its v1 groups, for the wrapper to join before the program runs. */
  join: string[];
  /** Where its memory is accounted (memory.events or memory.oom_control, usage), if anywhere. */
  memory?: MemoryGroup;
  /** Its v1 groups, removed once it has exited. */
  v1: string[];
  /** The limits that could not be written (already told by `unenforced` where it is the host). */
  failed: Unenforced[];
}

/**
 * The cgroup controllers arr holds instances' limits with, chosen by what the host has (as runc
 * and systemd choose): cgroup v2 where the controller is enabled below arr's own group
 * (memory.max, memory.swap.max, cpu.max, pids.max); else the controller's v1 hierarchy, on hybrid
 * hosts (memory.limit_in_bytes and memsw, cpu.cfs_quota_us, pids.max), where each instance gets a
 * group of its own beside its v2 group and joins both before its program runs. Limits are written
 * before the instance joins.
 */
export class LimitGroups {
  private constructor(
    private readonly placement: Map<Controller, Placement>,
    /** Why a controller is not available, for the ones that are not. */
    readonly missing: Map<Controller, string>,
  ) {}

  /**
   * Finds each controller for the instance groups below `v2Base` (arr's folder of cgroup v2
   * groups, whose parent is arr's own group); makes arr's v1 folders where v1 is used.
   */
  static open(v2Own: string, v2Base: string): LimitGroups {
    const placement = new Map<Controller, Placement>();
    const missing = new Map<Controller, string>();
    const v1 = v1Hierarchies();
    for (const c of CONTROLLERS) {
      if (enableV2(v2Own, v2Base, c)) {
        placement.set(c, { version: 2 });
        continue;
      }
      const own = v1.get(c);
      if (!own) {
        missing.set(c, `the ${c} controller is neither in cgroup v2 nor mounted as cgroup v1`);
        continue;
      }
      const base = join(own, `arr-${process.pid}`);
      try {
        mkdirSync(base, { recursive: true });
        placement.set(c, { version: 1, own, base });
      } catch (err) {
        missing.set(c, `cannot make a ${c} cgroup (${(err as NodeJS.ErrnoException).code ?? err})`);
      }
    }
    return new LimitGroups(placement, missing);
  }

  /**
   * Where each controller would be, found without making or writing anything (for `arr
   * validate`): cgroup v2 where arr's own group offers it, else a v1 hierarchy.
   */
  static probe(v2Own: string): LimitGroups {
    const placement = new Map<Controller, Placement>();
    const missing = new Map<Controller, string>();
    const v1 = v1Hierarchies();
    const offered = readWords(join(v2Own, 'cgroup.controllers'));
    for (const c of CONTROLLERS) {
      const own = v1.get(c);
      if (offered.includes(c)) placement.set(c, { version: 2 });
      else if (own) placement.set(c, { version: 1, own, base: join(own, `arr-${process.pid}`) });
      else missing.set(c, `the ${c} controller is neither in cgroup v2 nor mounted as cgroup v1`);
    }
    return new LimitGroups(placement, missing);
  }

  /** How each controller is reached, for the log at start: "memory v1, cpu v1, pids v2". */
  describe(): string {
    return CONTROLLERS.map((c) => {
      const p = this.placement.get(c);
      return `${c} ${p ? `v${p.version}` : 'none'}`;
    }).join(', ');
  }

  /** The limits among `limits` that this host cannot enforce, and why. */
  unenforced(limits: Limits | undefined): Unenforced[] {
    const out: Unenforced[] = [];
    for (const c of CONTROLLERS) {
      const why = this.missing.get(c);
      if (limits?.[c] !== undefined && why) out.push({ limit: c, why });
    }
    return out;
  }

  /**
   * Writes `limits` to the instance's groups (its v2 group `v2Group` exists already; its v1
   * groups are made here, named `name`), before it joins them. `accountMemory`: it gets a
   * memory group even without a memory limit (for recycle.memory).
   */
  prepare(v2Group: string, name: string, limits: Limits, accountMemory = false): InstanceLimitGroups {
    const out: InstanceLimitGroups = { join: [], v1: [], failed: [] };
    for (const c of CONTROLLERS) {
      const value = limits[c];
      const placement = this.placement.get(c);
      if (!placement || (value === undefined && !(c === 'memory' && accountMemory))) continue;
      let dir = v2Group;
      if (placement.version === 1) {
        dir = join(placement.base, name);
        try {
          mkdirSync(dir, { recursive: true });
        } catch (err) {
          out.failed.push({
            limit: c,
            why: `cannot make its ${c} cgroup (${(err as NodeJS.ErrnoException).code})`,
          });
          continue;
        }
        out.v1.push(dir);
        out.join.push(join(dir, 'cgroup.procs'));
      }
      try {
        if (value !== undefined) writeLimit(dir, placement.version, c, value);
        if (c === 'memory') out.memory = { dir, version: placement.version };
      } catch (err) {
        out.failed.push({ limit: c, why: `cannot write it (${(err as NodeJS.ErrnoException).code ?? err})` });
      }
    }
    return out;
  }

  /** arr's folders of v1 groups, one per hierarchy used. */
  v1Folders(): string[] {
    return [...this.placement.values()].flatMap((p) => (p.version === 1 ? [p.base] : []));
  }

  /** Removes arr's v1 folders (at exit, once every instance is gone). */
  async close(): Promise<void> {
    for (const p of this.placement.values()) if (p.version === 1) await removeWhenEmpty(p.base);
  }

  /**
   * Removes the v1 folders of an arr that is gone (its processes were killed by the v2 sweep:
   * they were in both), as InstanceCgroups.sweepStale tells a live arr's from a gone one's.
   */
  async sweepStale(): Promise<void> {
    for (const p of this.placement.values()) {
      if (p.version !== 1) continue;
      for (const { dir } of staleFolders(p.own))
        for (const group of subtree(dir).reverse()) await removeWhenEmpty(group);
    }
  }
}

function writeLimit(dir: string, version: 1 | 2, c: Controller, value: number): void {
  const put = (file: string, v: string | number) => writeFileSync(join(dir, file), String(v));
  const quota = Math.max(1000, Math.round(value * CPU_PERIOD_US));
  if (version === 2) {
    if (c === 'memory') {
      put('memory.max', value);
      // No swap beyond the limit (absent where the kernel has no swap accounting).
      if (existsSync(join(dir, 'memory.swap.max'))) put('memory.swap.max', 0);
    } else if (c === 'cpu') put('cpu.max', `${quota} ${CPU_PERIOD_US}`);
    else put('pids.max', value);
    return;
  }
  if (c === 'memory') {
    put('memory.limit_in_bytes', value);
    // memory+swap at the same value: no swap beyond it. Without swap accounting, no swapping.
    if (existsSync(join(dir, 'memory.memsw.limit_in_bytes'))) put('memory.memsw.limit_in_bytes', value);
    else put('memory.swappiness', 0);
  } else if (c === 'cpu') {
    put('cpu.cfs_period_us', CPU_PERIOD_US);
    put('cpu.cfs_quota_us', quota);
  } else put('pids.max', value);
}

/** Enables a controller for the groups below `base` (cgroup v2); whether it is now. */
function enableV2(own: string, base: string, c: Controller): boolean {
  const has = (dir: string) => readWords(join(dir, 'cgroup.controllers')).includes(c);
  if (!has(own)) return false;
  try {
    // Fails (EBUSY) where arr's own group has processes and is not the root: then not here.
    if (!has(base)) writeFileSync(join(own, 'cgroup.subtree_control'), `+${c}`);
    if (!readWords(join(base, 'cgroup.subtree_control')).includes(c))
      writeFileSync(join(base, 'cgroup.subtree_control'), `+${c}`);
    return true;
  } catch {
    return false;
  }
}

function readWords(file: string): string[] {
  try {
    return readFileSync(file, 'utf8').trim().split(/\s+/);
  } catch {
    return [];
  }
}

/**
 * arr's own group in each cgroup v1 hierarchy of a controller arr limits with: the mount
 * (/proc/self/mountinfo, fstype cgroup, the controller among its options) joined with arr's
 * path in it (/proc/self/cgroup), less the mount's root.
 */
export function v1Hierarchies(): Map<Controller, string> {
  const out = new Map<Controller, string>();
  let paths: Map<string, string>;
  let mounts: string[];
  try {
    paths = new Map();
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const m = /^\d+:([^:]+):(.*)$/.exec(line);
      if (m) for (const c of m[1]!.split(',')) paths.set(c, m[2]!);
    }
    mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  } catch {
    return out;
  }
  for (const line of mounts) {
    const [before, after] = line.split(' - ');
    if (!before || !after?.startsWith('cgroup ')) continue;
    const options = after.split(' ')[2]?.split(',') ?? [];
    const [, , , root, mountPoint] = before.split(' ');
    for (const c of CONTROLLERS) {
      const path = paths.get(c);
      if (!options.includes(c) || path === undefined || !root || !mountPoint || out.has(c)) continue;
      if (root !== '/' && !path.startsWith(root)) continue;
      out.set(c, join(mountPoint, root === '/' ? path : path.slice(root.length)));
    }
  }
  return out;
}

/** How many times the kernel's OOM killer killed a process of the group (0 when unknown). */
export function oomKills(memory: MemoryGroup | undefined): number {
  if (!memory) return 0;
  const file = memory.version === 2 ? 'memory.events' : 'memory.oom_control';
  try {
    const m = /^oom_kill (\d+)$/m.exec(readFileSync(join(memory.dir, file), 'utf8'));
    return m ? Number(m[1]) : 0;
  } catch {
    return 0;
  }
}

/** The bytes of memory the group uses now (undefined when it cannot be read). */
export function memoryUsage(memory: MemoryGroup): number | undefined {
  try {
    const file = memory.version === 2 ? 'memory.current' : 'memory.usage_in_bytes';
    return Number(readFileSync(join(memory.dir, file), 'utf8'));
  } catch {
    return undefined;
  }
}

/** A process's memory: its cgroup's usage where it has a memory group, else its RSS (/proc). */
export function memoryOf(pid: number, memory: MemoryGroup | undefined): number | undefined {
  if (memory) return memoryUsage(memory);
  try {
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb === undefined ? undefined : Number(kb) * 1024;
  } catch {
    return undefined;
  }
}

/** The CPU seconds a process and its children it waited for have used (/proc/PID/stat). */
export function cpuSecondsOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime, stime, cutime, cstime: fields 14 to 17, in clock ticks (100 a second on Linux).
    return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100;
  } catch {
    return undefined;
  }
}
