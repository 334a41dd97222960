import type { HealthCheck, Recycle } from '../registry/types.js';

/** Why an instance is to be replaced, with a sentence for the log. */
export interface Renewal {
  reason: 'health' | 'recycle';
  why: string;
}

/** What the watch reads of one running instance of this node. */
export interface Watched {
  appId: string;
  port: number;
  health?: HealthCheck;
  recycle?: Recycle;
  /** Its instances speak h2c: probed over HTTP/2. */
  h2c?: boolean;
  startedAt: number;
  /** Exchanges (requests, WebSockets) it has served so far. */
  exchanges: number;
  /** Its memory in bytes now, when it can be read (only asked for with recycle.memory). */
  memory?: () => number | undefined;
}

export interface WatchDeps {
  now(): number;
  /** One GET of `path` on the instance's port: whether it answered 2xx or 3xx within `timeoutMs`. */
  probe(port: number, path: string, timeoutMs: number, h2c: boolean): Promise<boolean>;
  /** Replaces the app's instance, as a deploy does. */
  renew(appId: string, port: number, renewal: Renewal): void;
}

/** The state of one instance's health checks. */
interface Checks {
  next: number;
  failures: number;
  probing: boolean;
}

/**
 * `health` and `recycle` for the instances of this node: each tick (about once a second) it
 * probes the instances whose interval is up (a GET of the health path straight to the
 * instance's port, so not an app request: not in metrics, the access log or the idle timeout)
 * and asks for the replacement of one that failed `failures` probes in a row, or that reached
 * its `recycle` requests, memory or age. Each instance is asked for once.
 */
export class InstanceWatch {
  /** By `appId:port`: an instance is its app on its port. */
  private readonly checks = new Map<string, Checks>();
  private readonly renewed = new Set<string>();

  constructor(private readonly deps: WatchDeps) {}

  /** One tick over the instances running now. */
  tick(instances: Iterable<Watched>): void {
    const now = this.deps.now();
    const seen = new Set<string>();
    for (const w of instances) {
      const key = `${w.appId}:${w.port}`;
      seen.add(key);
      if (this.renewed.has(key)) continue;
      const due = w.recycle && recycleDue(w, w.recycle, now);
      if (due) this.renew(key, w, { reason: 'recycle', why: due });
      else if (w.health) this.check(key, w, w.health, now);
    }
    // Forget the instances that are gone.
    for (const key of this.checks.keys()) if (!seen.has(key)) this.checks.delete(key);
    for (const key of this.renewed) if (!seen.has(key)) this.renewed.delete(key);
  }

  private check(key: string, w: Watched, health: HealthCheck, now: number): void {
    let c = this.checks.get(key);
    if (!c) {
      // The first probe one interval after it is first seen: it was ready then.
      c = { next: now + health.interval * 1000, failures: 0, probing: false };
      this.checks.set(key, c);
    }
    if (c.probing || now < c.next) return;
    c.probing = true;
    c.next = now + health.interval * 1000;
    void this.deps.probe(w.port, health.path, health.timeout * 1000, w.h2c === true).then((ok) => {
      c.probing = false;
      c.failures = ok ? 0 : c.failures + 1;
      if (c.failures >= health.failures && this.checks.get(key) === c)
        this.renew(key, w, {
          reason: 'health',
          why: `${c.failures} health checks of ${health.path} failed in a row`,
        });
    });
  }

  private renew(key: string, w: Watched, renewal: Renewal): void {
    this.renewed.add(key);
    this.deps.renew(w.appId, w.port, renewal);
  }
}

/** Why the instance is due for recycling now, or undefined. */
export function recycleDue(w: Watched, rule: Recycle, now: number): string | undefined {
  if (rule.requests !== undefined && w.exchanges >= rule.requests) return `it served ${w.exchanges} requests`;
  if (rule.age !== undefined && now - w.startedAt >= rule.age * 1000)
    return `it has run for ${Math.round((now - w.startedAt) / 1000)} s`;
  if (rule.memory !== undefined) {
    const bytes = w.memory?.();
    if (bytes !== undefined && bytes >= rule.memory) return `it uses ${bytes} bytes of memory`;
  }
  return undefined;
}
