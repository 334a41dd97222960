import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A cgroup (v2) per instance, where arr may make them (root, a writable cgroup2 mount, a kernel
 * with cgroup.kill): whatever an instance starts stays in its group, even a daemon that left its
 * process group with setsid, and stopping the instance kills the whole group at once.
 * Elsewhere instances have their process group only (README, "Tenant isolation").
 */
export class InstanceCgroups {
  private constructor(
    /** arr's own folder of groups: one per instance below it. */
    private readonly base: string,
  ) {}

  /** The groups, or why arr cannot have them here. */
  static open(): InstanceCgroups | string {
    try {
      const mount = cgroup2Mount();
      if (!mount) return 'no cgroup2 file system is mounted';
      const own = /^0::(\/.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
      if (own === undefined) return 'arr is in no cgroup v2 group';
      const base = join(mount, own, `arr-${process.pid}`);
      mkdirSync(base, { recursive: true });
      if (!existsSync(join(base, 'cgroup.kill'))) {
        rmdirSync(base);
        return 'the kernel has no cgroup.kill (Linux 5.14 or newer has it)';
      }
      return new InstanceCgroups(base);
    } catch (err) {
      return `cannot make cgroups (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
    }
  }

  /** Puts a just-started process into a group of its own; its path, or undefined when that failed. */
  adopt(pid: number, name: string): string | undefined {
    const dir = join(this.base, name.replace(/[^A-Za-z0-9_.-]/g, '_'));
    try {
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'cgroup.procs'), String(pid));
      return dir;
    } catch {
      removeWhenEmpty(dir);
      return undefined;
    }
  }

  /** Removes arr's own folder of groups (at exit, once every instance is gone). */
  close(): Promise<void> {
    return removeWhenEmpty(this.base);
  }
}

/** Kills every process of a group (SIGKILL, by the kernel, race-free) and removes the group. */
export function killGroup(dir: string): Promise<void> {
  try {
    writeFileSync(join(dir, 'cgroup.kill'), '1');
  } catch {
    // Already gone.
  }
  return removeWhenEmpty(dir);
}

/** rmdir as soon as the group is empty (killed processes take a moment to go), for up to 2 s. */
async function removeWhenEmpty(dir: string): Promise<void> {
  for (let tries = 0; tries < 100; tries++) {
    try {
      rmdirSync(dir);
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EBUSY') return;
    }
    await new Promise((r) => setTimeout(r, 20));
  }
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
