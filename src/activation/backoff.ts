/**
 * The restart back-off: an app whose starts keep failing (or whose instance keeps crashing
 * soon after its start) is started again only after a delay that doubles with each failure.
 * Pure functions over one app's record of failures.
 */

/** The failures in a row of one app's starts, and when it may be started again. */
export interface Failures {
  count: number;
  notBefore: number;
}

export interface BackoffPolicy {
  /** The delay after the second failure in a row. */
  baseMs: number;
  /** The longest delay. */
  maxMs: number;
}

/** The record after one more failure at `now`. */
export function oneMoreFailure(previous: Failures | undefined, now: number, policy: BackoffPolicy): Failures {
  const count = (previous?.count ?? 0) + 1;
  // One failure may be bad luck (a kill, a port grabbed at the wrong moment): start again at
  // once. From the second in a row on, wait 0.5 s, 1 s, 2 s, ... up to the maximum.
  const delay = count < 2 ? 0 : Math.min(policy.baseMs * 2 ** (count - 2), policy.maxMs);
  return { count, notBefore: now + delay };
}

/** How long a start must still wait at `now` (0 or less: it may start). */
export function backoffWait(failures: Failures | undefined, now: number): number {
  return failures ? failures.notBefore - now : 0;
}
