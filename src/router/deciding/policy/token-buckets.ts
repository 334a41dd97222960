/** A rate: `requests` per `perSeconds`, and at most `burst` at once. */
export interface Rate {
  requests: number;
  perSeconds: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was counted (ms, the clock's). */
  at: number;
}

/** How many addresses one limiter keeps at most (about 120 bytes each). */
export const DEFAULT_MAX_KEYS = 65_536;

/**
 * Token buckets by key (a client address), in bounded memory: at `maxKeys`, the buckets that
 * have filled up again are dropped (a full bucket is the same as none), and if that frees too
 * little, the oldest-created eighth goes (those clients start again with a full burst: the
 * bound on memory wins over precision under a flood of distinct addresses).
 */
export class TokenBuckets {
  private readonly buckets = new Map<string, Bucket>();
  /** Tokens added per millisecond. */
  private readonly perMs: number;
  private readonly burst: number;

  constructor(
    rate: Rate,
    private readonly maxKeys = DEFAULT_MAX_KEYS,
    private readonly now: () => number = performance.now.bind(performance),
  ) {
    this.perMs = rate.requests / (rate.perSeconds * 1000);
    this.burst = rate.burst;
  }

  /** Takes a token for `key`: 0 when there was one, else the whole seconds until there is. */
  take(key: string): number {
    const now = this.now();
    const b = this.buckets.get(key);
    if (b === undefined) {
      if (this.buckets.size >= this.maxKeys) this.evict(now);
      this.buckets.set(key, { tokens: this.burst - 1, at: now });
      return 0;
    }
    const tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.perMs);
    b.at = now;
    if (tokens >= 1) {
      b.tokens = tokens - 1;
      return 0;
    }
    b.tokens = tokens;
    return Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000));
  }

  /** Like `take`, without taking: 0 when `key` has a token now. */
  wait(key: string): number {
    const b = this.buckets.get(key);
    if (b === undefined) return 0;
    const tokens = Math.min(this.burst, b.tokens + (this.now() - b.at) * this.perMs);
    return tokens >= 1 ? 0 : Math.max(1, Math.ceil((1 - tokens) / this.perMs / 1000));
  }

  get size(): number {
    return this.buckets.size;
  }

  private evict(now: number): void {
    for (const [key, b] of this.buckets) {
      if (b.tokens + (now - b.at) * this.perMs >= this.burst) this.buckets.delete(key);
    }
    let excess = this.buckets.size - Math.floor((this.maxKeys * 7) / 8);
    if (excess <= 0) return;
    for (const key of this.buckets.keys()) {
      this.buckets.delete(key);
      if (--excess <= 0) break;
    }
  }
}
