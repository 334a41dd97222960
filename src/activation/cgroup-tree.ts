import { readdirSync, rmdirSync } from 'node:fs';
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
