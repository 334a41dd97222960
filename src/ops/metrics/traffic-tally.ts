import { BUCKETS, type SecondReport, TrafficCounter } from './traffic.js';

/** Reports a worker keeps for the primary at most (it asks every second: this is minutes of a busy node). */
const MAX_WAITING_REPORTS = 50_000;

/** One app's second under way in a worker. */
class Tally {
  requests = 0;
  errors = 0;
  readonly hist = new Uint32Array(BUCKETS);
  /** WebSockets open now. */
  websockets = 0;

  constructor(public second: number) {}
}

/**
 * A worker's traffic for the dashboard: each app's second under way, counted as Traffic counts
 * it (the same request path: a map lookup, two increments, a histogram slot, no clock read),
 * and once over, kept as a report until the primary asks for them (about once a second), which
 * adds them into its ring (Traffic `fed`). No ring here: the primary keeps the one window.
 */
export class TrafficTally extends TrafficCounter {
  private readonly apps = new Map<string, Tally>();
  private waiting: SecondReport[] = [];
  private now: number;
  private readonly timer: NodeJS.Timeout;

  /** `clockMs`: ms since the epoch (tests give their own). */
  constructor(private readonly clockMs: () => number = Date.now) {
    super();
    this.now = Math.floor(clockMs() / 1000);
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** Reads the clock for the requests to come. Run by the timer. */
  tick(): void {
    this.now = Math.floor(this.clockMs() / 1000);
  }

  protected of(appId: string): Tally {
    let t = this.apps.get(appId);
    if (!t) {
      t = new Tally(this.now);
      this.apps.set(appId, t);
    } else if (t.second !== this.now) this.closeSecond(appId, t, this.now);
    return t;
  }

  /**
   * The reports of every second over since the last call (oldest first), for the primary; apps
   * with neither traffic nor an open WebSocket are forgotten.
   */
  take(): SecondReport[] {
    this.tick();
    for (const [id, t] of this.apps) {
      if (t.second >= this.now) continue;
      this.closeSecond(id, t, this.now);
      if (t.websockets === 0) this.apps.delete(id);
    }
    const out = this.waiting;
    this.waiting = [];
    return out;
  }

  /** Keeps the app's second as a report (when anything happened in it) and starts `now`'s. */
  private closeSecond(app: string, t: Tally, now: number): void {
    if ((t.requests > 0 || t.websockets > 0) && this.waiting.length < MAX_WAITING_REPORTS) {
      const hist: number[] = [];
      for (let i = 0; i < BUCKETS; i++) if (t.hist[i]! > 0) hist.push(i, t.hist[i]!);
      const { requests, errors, websockets, second } = t;
      this.waiting.push({ second, app, requests, errors, websockets, hist });
    }
    if (t.requests > 0) t.hist.fill(0);
    t.second = now;
    t.requests = 0;
    t.errors = 0;
  }

  close(): void {
    clearInterval(this.timer);
  }
}
