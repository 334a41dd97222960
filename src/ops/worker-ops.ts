import { collectDefaultMetrics, Registry as PromRegistry } from 'prom-client';
import type { ExchangeObserver } from '../router/deciding/observer.js';
import { createAccessLog, type Logger } from '../util/log.js';
import { ExchangeMetrics } from './metrics/exchange-metrics.js';
import type { MetricsAnswer } from './metrics/merge-metrics.js';
import { createObserver } from './metrics/observer.js';
import type { SecondReport } from './metrics/traffic.js';
import { TrafficTally } from './metrics/traffic-tally.js';
import { type Answerer, ASK } from './worker-asks.js';

export interface WorkerOpsOptions {
  /** `--admin` is on (in the primary): count this worker's exchanges for it. */
  admin?: unknown;
  /** `--access-log`: this worker writes its own lines. */
  accessLog?: boolean;
}

/**
 * What a worker runs of operations: the router's observer of each exchange (this worker's
 * counters and its traffic tally with `--admin`, its access-log lines with `--access-log`), and
 * the answers to the primary's asks for them. Nothing of it crosses to the primary per request:
 * the primary asks for the counters at each scrape and for the traffic once a second.
 *
 * The access log is written by each worker straight to its stdout, which it shares with the
 * primary (node:cluster's workers inherit it): a batch of whole lines of at most 4 KB is one
 * write, which the kernel does not interleave with another process's on a pipe, and appends whole
 * to a file opened for appending.
 */
export class WorkerOps {
  readonly observer: ExchangeObserver | undefined;
  private readonly registry: PromRegistry | undefined;
  private readonly tally: TrafficTally | undefined;

  /** `name`: what the worker is called (`worker 1`), the `process` label of its own metrics. */
  constructor(
    options: WorkerOpsOptions,
    log: Logger,
    private readonly name: string,
  ) {
    let metrics: ExchangeMetrics | undefined;
    if (options.admin) {
      this.registry = new PromRegistry();
      metrics = new ExchangeMetrics(this.registry);
      collectDefaultMetrics({ register: this.registry });
      this.tally = new TrafficTally();
    }
    this.observer = createObserver(metrics, options.accessLog ? createAccessLog(log) : undefined, this.tally);
  }

  /** Answers the primary's asks on this worker's channel. */
  answer(channel: Answerer): void {
    channel.on(
      ASK.metrics,
      async (): Promise<MetricsAnswer> => ({
        process: this.name,
        pid: process.pid,
        metrics: this.registry ? await this.registry.getMetricsAsJSON() : [],
      }),
    );
    channel.on(ASK.traffic, (): SecondReport[] => this.tally?.take() ?? []);
  }

  close(): void {
    this.tally?.close();
  }
}
