/**
 * Why an instance ended: `stopped` (arr stopped it: shutdown, its app left the registry),
 * `idle` (the idle timeout), `deploy` (replaced by a new version), `crash` (it exited by itself,
 * with a code or a signal), `oom` (killed by its memory limit), `health` (failed its health
 * checks), `recycle` (replaced by `recycle`), `start-timeout` (not ready in time).
 */
export type ExitReason =
  | 'stopped'
  | 'idle'
  | 'deploy'
  | 'crash'
  | 'oom'
  | 'health'
  | 'recycle'
  | 'start-timeout';

export const EXIT_REASONS: readonly ExitReason[] = [
  'stopped',
  'idle',
  'deploy',
  'crash',
  'oom',
  'health',
  'recycle',
  'start-timeout',
];

/** One instance's end, as the Activator's `ended` event tells it. */
export interface InstanceExit {
  pid: number;
  reason: ExitReason;
  code: number | null;
  signal: string | null;
  /** When (ms since the epoch). */
  at: number;
}

/** The reason of an exit: an OOM kill whatever else, then what arr stopped it for, else a crash. */
export function exitReason(oomKilled: boolean, stoppedFor: ExitReason | undefined): ExitReason {
  if (oomKilled) return 'oom';
  return stoppedFor ?? 'crash';
}
