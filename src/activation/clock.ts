/**
 * Time as activation sees it: the current time and timers. Injected (ActivatorOptions.clock),
 * so that back-off, drains and idle stops can be tested in process with a clock a test moves.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /**
   * Calls `fn` after `ms`; the returned function cancels it. An `unref` timer does not keep the
   * process alive by itself.
   */
  after(ms: number, fn: () => void, unref?: boolean): () => void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn, unref = false) {
    const timer = setTimeout(fn, ms);
    if (unref) timer.unref();
    return () => clearTimeout(timer);
  },
};

/** Resolves after `ms` on the clock. */
export function sleep(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.after(ms, resolve));
}
