// What the primary asks each worker for its one view of all of them (src/workers/channel.ts
// carries the asks; these are the shapes of both sides, so that src/ops does not depend on it).

/** The asks, by name. */
export const ASK = {
  /** Answered with a MetricsAnswer (src/ops/metrics/merge-metrics.ts). */
  metrics: 'ops.metrics',
  /** Answered with the SecondReports over since the last ask (src/ops/metrics/traffic.ts). */
  traffic: 'ops.traffic',
} as const;

/** The primary's side of a worker's channel. */
export interface Asker {
  ask<T>(type: string, body: unknown, timeoutMs: number): Promise<T>;
}

/** A worker's side of its channel. */
export interface Answerer {
  on<T>(type: string, handler: (body: T) => unknown): unknown;
}

/** The workers the primary has. */
export interface WorkerFleet {
  /** The channels of the workers serving now. */
  serving(): readonly Asker[];
  /**
   * Those of every worker that may still count exchanges: serving, or finishing its requests
   * after a reload replaced it (default: `serving()`).
   */
  counting?(): readonly Asker[];
  /** Messages sent to and received from the workers so far (none crosses per request). */
  messages?(): { sent: number; received: number };
}
