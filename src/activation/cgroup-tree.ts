import { readdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';

/** A group and every group below it, parents before their children. */
export function subtree(dir: string): string[] {
  const groups = [dir];
  for (let i = 0; i < groups.length; i++) {
    try {
      for (const e of readdirSync(groups[i]!, { withFileTypes: true }))
        if (e.isDirectory()) groups.push(join(groups[i]!, e.name));
    } catch {
      // gone meanwhile
    }
  }
  return groups;
}

/** rmdir as soon as the group is empty (killed processes take a moment to go), for up to 2 s. */
export async function removeWhenEmpty(dir: string): Promise<void> {
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

/** What arr's folders of groups are called: `arr-<pid of the arr that made them>`, in arr's own group. */
const ARR_GROUP = /^arr-(\d+)$/;

/**
 * The folders `arr-<pid>` in arr's own group `own` of arrs that are gone: a live arr stays in
 * the group it made its folder in (its pid is in `own`'s cgroup.procs), one that is gone is not
 * (nor is a pid since reused elsewhere). This arr's own folder is never one.
 */
export function staleFolders(own: string): { pid: number; dir: string }[] {
  let names: string[];
  let members: Set<string>;
  try {
    names = readdirSync(own);
    members = new Set(readFileSync(join(own, 'cgroup.procs'), 'utf8').split('\n'));
  } catch {
    return [];
  }
  const stale: { pid: number; dir: string }[] = [];
  for (const name of names) {
    const pid = ARR_GROUP.exec(name)?.[1];
    if (pid === undefined || Number(pid) === process.pid || members.has(pid)) continue;
    stale.push({ pid: Number(pid), dir: join(own, name) });
  }
  return stale;
}
