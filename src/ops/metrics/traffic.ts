/**
 * The key under which requests no app owns are counted (an unknown host, no usable Host): no
 * app has an empty id (validate.ts refuses one).
 */
export const UNKNOWN_HOST = '';

/** How many seconds of each app's traffic are kept: the dashboard's charts span this window. */
export const WINDOW_SECONDS = 180;

/**
 * Latency buckets of one second's histogram: bucket i holds durations up to 0.1 ms * 2^(i/4)
 * (a 19% step, so that a percentile read from it is within 19%), from 0.1 ms to about 2 min.
 */
export const BUCKETS = 84;
const BASE_SECONDS = 0.0001;

function bucketOf(seconds: number): number {
  if (!(seconds > BASE_SECONDS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log2(seconds / BASE_SECONDS) * 4));
}

/** The upper bound of a bucket, in milliseconds. */
function bucketMs(i: number): number {
  return BASE_SECONDS * 2 ** (i / 4) * 1000;
}

/** Two decimals: the ring keeps 32-bit floats, which print as 144.82000732421875. */
function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

/** The duration (ms) below which `fraction` of the second's requests ended; 0 without requests. */
function percentile(hist: Uint32Array, count: number, fraction: number): number {
  if (count === 0) return 0;
  const rank = Math.ceil(count * fraction);
  let seen = 0;
  for (let i = 0; i < BUCKETS; i++) {
    seen += hist[i]!;
    if (seen >= rank) return Math.round(bucketMs(i) * 100) / 100;
  }
  return Math.round(bucketMs(BUCKETS - 1) * 100) / 100;
}

/** One second of an app's traffic: what the dashboard's charts and rows show. */
export interface SecondStats {
  requests: number;
  /** Answers with a 5xx status. */
  errors: number;
  /** Median and 99th percentile of the request durations, ms (0 without requests). */
  p50: number;
  p99: number;
  /** WebSockets open at the end of the second. */
  websockets: number;
}

/** An app's traffic over the window, one value per second, oldest first, in columns. */
export interface Series {
  /** The first second's start (seconds since the epoch); one value per second after it. */
  start: number;
  requests: number[];
  errors: number[];
  p50: number[];
  p99: number[];
  websockets: number[];
}

/** Where the observer counts each exchange for the dashboard: the ring (arr alone), or a worker's tally. */
export interface TrafficSink {
  /** A request of the app ended with this status, `seconds` after it reached arr. */
  request(appId: string, status: number, seconds: number): void;
  websocketOpened(appId: string): void;
  websocketClosed(appId: string): void;
}

/** An app's second under way: what a request or a WebSocket adds to. */
interface SecondUnderWay {
  requests: number;
  errors: number;
  readonly hist: Uint32Array;
  /** WebSockets open now. */
  websockets: number;
}

/**
 * The request path of a count of traffic (the ring, or a worker's tally): the app's second
 * under way, then a few increments.
 */
export abstract class TrafficCounter implements TrafficSink {
  /** The app's second under way (the current one: an earlier one is closed first). */
  protected abstract of(appId: string): SecondUnderWay;

  request(appId: string, status: number, seconds: number): void {
    const t = this.of(appId);
    t.requests++;
    if (status >= 500) t.errors++;
    t.hist[bucketOf(seconds)]!++;
  }

  websocketOpened(appId: string): void {
    this.of(appId).websockets++;
  }

  websocketClosed(appId: string): void {
    const t = this.of(appId);
    if (t.websockets > 0) t.websockets--;
  }
}

/** One app's one second as a worker counted it (traffic-tally.ts): what the primary adds into its ring. */
export interface SecondReport {
  second: number;
  app: string;
  requests: number;
  errors: number;
  /** WebSockets open at the end of the second. */
  websockets: number;
  /** The latency histogram's buckets that are not empty: index, count, index, count... */
  hist: number[];
}

/**
 * One app's ring: the second under way is counted in plain numbers and a histogram; when a
 * later second is seen, it is summed up into the ring (its slot: second modulo the window).
 * Fed by workers' reports (`fed`), open WebSockets are what the reports of each second say, not
 * a level carried over.
 */
class AppTraffic {
  /** The second being counted. */
  second: number;
  requests = 0;
  errors = 0;
  readonly hist = new Uint32Array(BUCKETS);
  /** WebSockets open now. */
  websockets = 0;
  /** The last second that had any traffic or open WebSocket. */
  lastActive: number;
  readonly ring = {
    requests: new Uint32Array(WINDOW_SECONDS),
    errors: new Uint32Array(WINDOW_SECONDS),
    p50: new Float32Array(WINDOW_SECONDS),
    p99: new Float32Array(WINDOW_SECONDS),
    websockets: new Uint32Array(WINDOW_SECONDS),
  };

  constructor(
    now: number,
    private readonly fed = false,
  ) {
    this.second = now;
    this.lastActive = now;
  }

  /** Closes the seconds before `now`: the one counted goes into the ring, those without traffic as zeros. */
  roll(now: number): void {
    if (now <= this.second) return;
    const r = this.ring;
    const slot = this.second % WINDOW_SECONDS;
    r.requests[slot] = this.requests;
    r.errors[slot] = this.errors;
    r.p50[slot] = percentile(this.hist, this.requests, 0.5);
    r.p99[slot] = percentile(this.hist, this.requests, 0.99);
    r.websockets[slot] = this.websockets;
    if (this.requests > 0 || this.websockets > 0) this.lastActive = this.second;
    // Reported WebSockets are a second's; counted ones stay open into the seconds that follow.
    const open = this.fed ? 0 : this.websockets;
    // Seconds without requests still count as active while a WebSocket is open.
    if (open > 0) this.lastActive = now - 1;
    const quiet = Math.min(now - this.second - 1, WINDOW_SECONDS);
    for (let i = 1; i <= quiet; i++) {
      const s = (this.second + i) % WINDOW_SECONDS;
      r.requests[s] = 0;
      r.errors[s] = 0;
      r.p50[s] = 0;
      r.p99[s] = 0;
      r.websockets[s] = open;
    }
    this.second = now;
    this.requests = 0;
    this.errors = 0;
    this.websockets = open;
    if (this.hist.some((n) => n > 0)) this.hist.fill(0);
  }

  /**
   * Adds a worker's report of one second. A report for a second already closed (a worker that
   * answered late) adds its counts to the ring; the percentiles stay those of the reports that
   * came in time.
   */
  absorb(r: SecondReport): void {
    if (r.second > this.second) this.roll(r.second);
    if (r.second === this.second) {
      this.requests += r.requests;
      this.errors += r.errors;
      this.websockets += r.websockets;
      const h = r.hist;
      for (let i = 0; i + 1 < h.length; i += 2) {
        const bucket = h[i]!;
        if (bucket >= 0 && bucket < BUCKETS) this.hist[bucket]! += h[i + 1]!;
      }
      return;
    }
    if (this.second - r.second > WINDOW_SECONDS) return;
    const slot = r.second % WINDOW_SECONDS;
    this.ring.requests[slot]! += r.requests;
    this.ring.errors[slot]! += r.errors;
    this.ring.websockets[slot]! += r.websockets;
  }

  /** The last complete second (the one before `now`), rolled to `now` first. */
  last(now: number): SecondStats {
    this.roll(now);
    const s = (now - 1 + WINDOW_SECONDS) % WINDOW_SECONDS;
    const r = this.ring;
    return {
      requests: r.requests[s]!,
      errors: r.errors[s]!,
      p50: round(r.p50[s]!),
      p99: round(r.p99[s]!),
      websockets: r.websockets[s]!,
    };
  }
}

/**
 * Per-app traffic of this node over the last minutes, for the dashboard (only with --admin).
 * The request path does a map lookup, two increments and one histogram slot per request; the
 * clock it uses is a whole second kept by a timer, not read per request. An app silent for the
 * whole window (no request, no open WebSocket) is dropped, so memory follows the busy apps.
 *
 * With workers, the primary's Traffic is `fed` by their reports of each second (`absorb`)
 * instead, and reads lag a second behind the clock: a second is closed only once every worker
 * has had a second to report it.
 */
export class Traffic extends TrafficCounter {
  private readonly apps = new Map<string, AppTraffic>();
  private now: number;
  private swept: number;
  private readonly timer: NodeJS.Timeout;
  private readonly fed: boolean;

  /** `clock`: ms since the epoch (tests give their own). */
  constructor(
    private readonly clockMs: () => number = Date.now,
    options: { fed?: boolean } = {},
  ) {
    super();
    this.fed = options.fed ?? false;
    this.now = this.second();
    this.swept = this.now;
    this.timer = setInterval(() => this.tick(), 1000);
    this.timer.unref();
  }

  /** Reads the clock for the requests to come; once a window, forgets the apps silent for all of it. Run by the timer. */
  tick(): void {
    this.now = this.second();
    if (this.now - this.swept < WINDOW_SECONDS) return;
    this.swept = this.now;
    for (const [id, t] of this.apps) {
      t.roll(this.now);
      if (t.websockets === 0 && this.now - t.lastActive > WINDOW_SECONDS) this.apps.delete(id);
    }
  }

  protected of(appId: string): AppTraffic {
    let t = this.apps.get(appId);
    if (!t) {
      t = new AppTraffic(this.now, this.fed);
      this.apps.set(appId, t);
    } else if (t.second !== this.now) t.roll(this.now);
    return t;
  }

  /** Adds workers' reports of their seconds (with workers, in the primary). */
  absorb(reports: readonly SecondReport[]): void {
    for (const r of reports) {
      let t = this.apps.get(r.app);
      if (!t) {
        t = new AppTraffic(r.second, this.fed);
        this.apps.set(r.app, t);
      }
      t.absorb(r);
    }
  }

  /** How many apps have a ring now. */
  get size(): number {
    return this.apps.size;
  }

  /** The app's last complete second, or undefined when it had no traffic in the window. */
  last(appId: string): SecondStats | undefined {
    return this.apps.get(appId)?.last(this.clock());
  }

  /** Every app with traffic or an open WebSocket in its last complete second. */
  active(): Map<string, SecondStats> {
    const now = this.clock();
    const out = new Map<string, SecondStats>();
    for (const [id, t] of this.apps) {
      const s = t.last(now);
      if (s.requests > 0 || s.websockets > 0) out.set(id, s);
    }
    return out;
  }

  /** The app's window, oldest second first, up to the last complete second. */
  series(appId: string): Series {
    const now = this.clock();
    const start = now - WINDOW_SECONDS;
    const out: Series = { start, requests: [], errors: [], p50: [], p99: [], websockets: [] };
    const t = this.apps.get(appId);
    if (t) t.roll(now);
    for (let sec = start; sec < now; sec++) {
      // Seconds before the app's first traffic here are zeros, not the ring's unwritten slots.
      const known = t !== undefined && sec >= t.second - WINDOW_SECONDS && sec < t.second;
      const s = sec % WINDOW_SECONDS;
      out.requests.push(known ? t.ring.requests[s]! : 0);
      out.errors.push(known ? t.ring.errors[s]! : 0);
      out.p50.push(known ? round(t.ring.p50[s]!) : 0);
      out.p99.push(known ? round(t.ring.p99[s]!) : 0);
      out.websockets.push(known ? t.ring.websockets[s]! : 0);
    }
    return out;
  }

  /** The current second, read now (the timer's may be up to a second old: readers want it exact). */
  private clock(): number {
    this.now = this.second();
    return this.now;
  }

  /** The second under way: the clock's, or the one before when fed (reports of it may still come). */
  private second(): number {
    return Math.floor(this.clockMs() / 1000) - (this.fed ? 1 : 0);
  }

  close(): void {
    clearInterval(this.timer);
  }
}
