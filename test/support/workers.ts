// arr with worker processes (`--workers N`): who is who in the process table, and which
// process holds which TCP connection (ss), to tell on which worker an exchange ran.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { type AppDoc, type ArrOptions, type ArrUnderTest, startArrWith } from './arr.js';
import { until } from './poll.js';

/** Starts arr with `--workers N` and waits until it serves. */
export function startWithWorkers(apps: AppDoc[], workers = 2, opts: ArrOptions = {}): Promise<ArrUnderTest> {
  return startArrWith(apps, {
    ...opts,
    extraArgs: ['--workers', String(workers), ...(opts.extraArgs ?? [])],
  });
}

/** A process's command line as `ps` shows it (process.title rewrites it). */
export function titleOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
}

/** The children of `parent` whose title is `arr worker N`, by N. */
export function workersOf(parent: number): Map<number, number> {
  const found = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== parent || fields[0] === 'Z') continue;
      const m = /^arr worker (\d+)$/.exec(titleOf(Number(entry)));
      if (m) found.set(Number(m[1]), Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Waits until `parent` has `count` workers serving; returns their pids by number. */
export async function waitForWorkers(parent: number, count: number): Promise<Map<number, number>> {
  return until(`${count} workers of ${parent}`, () => {
    const w = workersOf(parent);
    return w.size === count && w;
  });
}

/** The pids holding established TCP connections matching the ss filter (e.g. `dport = :8080`). */
export function connectionOwners(filter: string): number[] {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', filter], { encoding: 'utf8' });
  return [...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
}

/** The pid of arr's process that holds the server side of the client connection from `clientPort`. */
export function serverOf(arrPort: number, clientPort: number): number | undefined {
  return connectionOwners(`( sport = :${arrPort} and dport = :${clientPort} )`)[0];
}
