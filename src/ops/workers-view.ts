import { Counter, Gauge } from 'prom-client';
import type { Logger } from '../util/log.js';
import { type MetricsAnswer, type MetricsJson, mergeMetrics, retire } from './metrics/merge-metrics.js';
import type { Metrics } from './metrics/metrics.js';
import type { SecondReport, Traffic } from './metrics/traffic.js';
import { ASK, type Asker, type WorkerFleet } from './worker-asks.js';

/**
 * A worker that does not answer a scrape within this is left out of it (its last answer stands
 * in): long enough for the answer of a worker with thousands of busy apps (about 0.8 s for 10,000
 * on this loaded machine), short beside a scraper's own timeout (Prometheus: 10 s).
 */
const SCRAPE_TIMEOUT_MS = 3000;
/** The traffic is asked for this long after each second begins (the workers' seconds are over by then)... */
const TRAFFIC_PHASE_MS = 100;
/** ...and a worker that has not answered within this is asked again the next second (its reports wait). */
const TRAFFIC_TIMEOUT_MS = 2000;

/**
 * The primary's one view of all workers, with --admin: /metrics sums theirs at each scrape (and
 * keeps what the workers gone counted), and the dashboard's traffic ring is fed with each
 * worker's seconds, asked for once a second. No request of any worker waits on this.
 */
export class WorkersView {
  /** Each worker's last answer to a scrape: it stands in when the worker is late, and is retired when it is gone. */
  private readonly last = new Map<Asker, MetricsAnswer>();
  /** The counters and histograms of the workers gone, summed. */
  private retired: MetricsJson = [];
  /** Workers whose traffic is being asked for. */
  private readonly asking = new Set<Asker>();
  private timer: NodeJS.Timeout | undefined;
  private readonly unanswered: Counter<'ask'>;

  constructor(
    private readonly fleet: WorkerFleet,
    private readonly metrics: Metrics,
    private readonly traffic: Traffic,
    private readonly log: Logger,
  ) {
    const registers = [metrics.registry];
    this.unanswered = new Counter({
      name: 'arr_worker_asks_unanswered_total',
      help: 'Asks of the primary that a worker did not answer in time, by ask (metrics: its last counts stood in; traffic: its seconds come with its next answer)',
      labelNames: ['ask'] as const,
      registers,
    });
    for (const ask of ['metrics', 'traffic']) this.unanswered.labels(ask).inc(0);
    new Gauge({
      name: 'arr_workers',
      help: 'Worker processes serving now',
      registers,
      collect() {
        this.set(fleet.serving().length);
      },
    });
  }

  /** The workers serving now. */
  get serving(): number {
    return this.fleet.serving().length;
  }

  /** /metrics: the primary's own, and every worker's summed. */
  async scrape(): Promise<string> {
    const workers = this.counting();
    const answers = await Promise.all(workers.map((w) => this.metricsOf(w)));
    await this.retireGone(workers);
    const own = (await this.metrics.registry.getMetricsAsJSON()) as MetricsJson;
    const present = answers.filter((a): a is MetricsAnswer => a !== undefined);
    return mergeMetrics(own, present, this.retired).metrics();
  }

  private async metricsOf(worker: Asker): Promise<MetricsAnswer | undefined> {
    try {
      const answer = await worker.ask<MetricsAnswer>(ASK.metrics, undefined, SCRAPE_TIMEOUT_MS);
      this.last.set(worker, answer);
      return answer;
    } catch (err) {
      this.unanswered.labels('metrics').inc();
      const stale = this.last.get(worker);
      this.log.debug(
        `/metrics: ${stale?.process ?? 'a new worker'} did not answer (${(err as Error).message}): ${stale ? 'its last counts stand in' : 'left out'}`,
      );
      return stale;
    }
  }

  private counting(): readonly Asker[] {
    return this.fleet.counting?.() ?? this.fleet.serving();
  }

  /** The last counts of the workers gone join the retired ones. */
  private async retireGone(counting: readonly Asker[]): Promise<void> {
    for (const [worker, answer] of this.last) {
      if (counting.includes(worker)) continue;
      this.last.delete(worker); // before the await: a scrape beside this one does not retire it twice
      this.retired = await retire(this.retired, answer.metrics);
    }
  }

  /** Asks every worker for its traffic a little after each second begins, from now on. */
  start(): void {
    const now = Date.now();
    const next = Math.floor((now - TRAFFIC_PHASE_MS) / 1000) * 1000 + 1000 + TRAFFIC_PHASE_MS;
    this.timer = setTimeout(() => {
      this.collect();
      this.start();
    }, next - now);
    this.timer.unref();
  }

  private collect(): void {
    const counting = this.counting();
    for (const worker of counting) {
      if (this.asking.has(worker)) continue;
      this.asking.add(worker);
      worker
        .ask<SecondReport[]>(ASK.traffic, undefined, TRAFFIC_TIMEOUT_MS)
        .then(
          (reports) => this.traffic.absorb(reports),
          (err: unknown) => {
            this.unanswered.labels('traffic').inc();
            this.log.debug(`dashboard: a worker did not tell its traffic (${(err as Error).message})`);
          },
        )
        .finally(() => this.asking.delete(worker));
    }
    // Without scrapes, the last answers of workers gone are retired here (they are not kept).
    if (this.last.size > counting.length)
      this.retireGone(counting).catch((err: unknown) =>
        this.log.error({ err }, 'metrics: retiring a worker failed'),
      );
  }

  close(): void {
    clearTimeout(this.timer);
  }
}
