import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { removeWhenEmpty, staleFolders, subtree } from './cgroup-tree.js';
import { LimitGroups } from './limit-groups.js';

/** The groups of an arr that is gone, removed at the start of another (see sweepStale). */
export interface StaleGroups {
  pid: number;
  /** Processes still in them, killed. */
  killed: number;
}

/**
 * A cgroup (v2) per instance, where arr may make them (root, a writable cgroup2 mount, a kernel
 * with cgroup.kill): an instance joins its group before its program runs (confine.ts), so
 * whatever it starts stays in it, even a daemon that left its process group with setsid at
 * once, and stopping the instance kills the whole group. Elsewhere instances have their process
 * group only (docs/isolation.md, "Tenant isolation").
 */
export class InstanceCgroups {
  private constructor(
    /** arr's own group: where arr runs, and where its folder of groups is. */
    readonly own: string,
    /** arr's own folder of groups: one per instance below it. */
    readonly base: string,
    /** The controllers that hold instances to their app's `limits`. */
    readonly limits: LimitGroups = LimitGroups.open(own, base),
  ) {}

  /** The groups, or why arr cannot have them here. */
  static open(): InstanceCgroups | string {
    try {
      const own = ownGroup();
      if (typeof own !== 'string') return own.why;
      const base = join(own, `arr-${process.pid}`);
      mkdirSync(base, { recursive: true });
      if (!existsSync(join(base, 'cgroup.kill'))) {
        rmdirSync(base);
        return 'the kernel has no cgroup.kill (Linux 5.14 or newer has it)';
      }
      return new InstanceCgroups(own, base);
    } catch (err) {
      return `cannot make cgroups (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }

  /**
   * Makes an instance's group, for it to join before its program runs; its path, or undefined
   * when it cannot be made.
   */
  make(name: string): string | undefined {
    const dir = join(this.base, name.replace(/[^A-Za-z0-9_.-]/g, '_'));
    try {
      mkdirSync(dir, { recursive: true });
      return dir;
    } catch {
      return undefined;
    }
  }

  /**
   * Kills what is in the groups of an arr that is gone (SIGKILL, crashed, its watchdog killed
   * too: what its instances started outside their process groups lives on in them) and removes
   * them. A folder `arr-<pid>` beside this arr's own is stale when no process of that pid is in
   * arr's own group: a live arr stays in the group it made its folder in, and one that is gone
   * is not there (a pid since reused elsewhere is not there either). A live arr's groups are
   * never touched.
   */
  async sweepStale(): Promise<StaleGroups[]> {
    const swept: StaleGroups[] = [];
    for (const { pid, dir } of staleFolders(this.own)) swept.push({ pid, killed: await killGroup(dir) });
    return swept;
  }

  /** Removes arr's own folder of groups (at exit, once every instance is gone). */
  async close(): Promise<void> {
    await this.limits.close();
    await removeWhenEmpty(this.base);
  }
}

/**
 * Kills every process of a group and of the groups below it (SIGKILL, by the kernel,
 * race-free: cgroup.kill takes the subtree) and removes them; how many processes there were.
 */
export async function killGroup(dir: string): Promise<number> {
  const groups = subtree(dir);
  let killed = 0;
  for (const group of groups) killed += procsIn(group);
  try {
    writeFileSync(join(dir, 'cgroup.kill'), '1');
  } catch {
    // Already gone.
  }
  // The deepest first: a group with groups below it cannot be removed.
  for (const group of groups.reverse()) await removeWhenEmpty(group);
  return killed;
}

function procsIn(group: string): number {
  try {
    return readFileSync(join(group, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).length;
  } catch {
    return 0; // gone meanwhile
  }
}

/** arr's own cgroup v2 group (a folder), or why there is none. */
export function ownGroup(): string | { why: string } {
  const mount = cgroup2Mount();
  if (!mount) return { why: 'no cgroup2 file system is mounted' };
  const own = /^0::(\/.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  if (own === undefined) return { why: 'arr is in no cgroup v2 group' };
  return join(mount, own);
}

function cgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    // ... mount-point ... - fstype source options
    const [before, after] = line.split(' - ');
    if (!before || !after?.startsWith('cgroup2 ')) continue;
    const fields = before.split(' ');
    if (fields[3] === '/') return fields[4];
  }
  return undefined;
}
