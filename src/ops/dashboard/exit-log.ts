import type { InstanceExit } from '../../activation/exit-reason.js';

/** The window the dashboard counts an app's restarts in: the last hour. */
export const RESTART_WINDOW_MS = 3600_000;

/** Exits that a new instance followed or follows: not arr's stops, idle stops or deploys. */
const RESTARTS = new Set<InstanceExit['reason']>(['crash', 'oom', 'health', 'recycle', 'start-timeout']);

/** Most exit times kept per app: a crash loop keeps no more than this. */
const MAX_KEPT = 200;

/** Per app, its last instance exit and the times of its restarts in the window (dashboard). */
export class ExitLog {
  private readonly apps = new Map<string, { last: InstanceExit; restarts: number[] }>();

  readonly add = (appId: string, exit: InstanceExit): void => {
    const entry = this.apps.get(appId) ?? { last: exit, restarts: [] };
    entry.last = exit;
    if (RESTARTS.has(exit.reason) && entry.restarts.push(exit.at) > MAX_KEPT) entry.restarts.shift();
    this.apps.set(appId, entry);
  };

  /** The app's restarts in the window before `now`, and its last exit (null: none seen). */
  of(appId: string, now: number): { restarts: number; lastExit: InstanceExit | null } {
    const entry = this.apps.get(appId);
    if (!entry) return { restarts: 0, lastExit: null };
    const since = now - RESTART_WINDOW_MS;
    while (entry.restarts.length > 0 && entry.restarts[0]! < since) entry.restarts.shift();
    return { restarts: entry.restarts.length, lastExit: entry.last };
  }
}
