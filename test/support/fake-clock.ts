import type { Clock } from '../../src/activation/clock.js';

interface Pending {
  at: number;
  fn: () => void;
  seq: number;
}

/**
 * A clock a test moves: timers fire only in `advance`, in order of their time. It starts at the
 * real time, so that what the code under test stamps with Date.now() on the hot path (the end
 * of an exchange) compares sensibly with it.
 */
export class FakeClock implements Clock {
  private current = Date.now();
  private timers: Pending[] = [];
  private seq = 0;

  now(): number {
    return this.current;
  }

  after(ms: number, fn: () => void): () => void {
    const timer = { at: this.current + Math.max(0, ms), fn, seq: this.seq++ };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Timers waiting to fire. */
  get pending(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `ms`, firing each timer due on the way at its own time, and letting
   * the promises it settles run before the next one (so that a loop of sleeps goes round).
   */
  async advance(ms: number): Promise<void> {
    const end = this.current + ms;
    for (;;) {
      await settle();
      const due = this.timers.filter((t) => t.at <= end).sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      this.timers = this.timers.filter((t) => t !== due);
      this.current = Math.max(this.current, due.at);
      due.fn();
    }
    this.current = end;
    await settle();
  }
}

/** Lets pending promise callbacks (and the I/O callbacks they wait on) run. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}
