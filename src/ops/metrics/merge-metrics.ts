import {
  AggregatorRegistry,
  type MetricObjectWithValues,
  type MetricValue,
  type Registry,
} from 'prom-client';

/** One process's metrics as prom-client gives them (`registry.getMetricsAsJSON()`). */
export type MetricsJson = MetricObjectWithValues<MetricValue<string>>[];

/** What a worker answers to the primary's ask for its metrics. */
export interface MetricsAnswer {
  /** What the process is called (`worker 1`): the `process` label of its own metrics. */
  process: string;
  pid: number;
  metrics: MetricsJson;
}

/**
 * prom-client's default metrics (CPU, memory, heap, event loop, GC, handles, start time): each
 * tells of one process, so they are labelled by process rather than summed (a sum of heaps would
 * hide the worker that leaks; an average of event-loop lags, the worker that is stuck).
 */
export function perProcess(name: string): boolean {
  return name.startsWith('process_') || name.startsWith('nodejs_');
}

/** Copies of a process's metrics, its own ones labelled `process=NAME` (and so kept apart). */
function labelled(metrics: MetricsJson, process: string): MetricsJson {
  return metrics.map((m) =>
    perProcess(m.name)
      ? {
          ...m,
          // Each (metric, process) is one series: summing keeps it as it is, whatever prom-client
          // meant for a merge of processes (omit the start time, average the lag).
          aggregator: 'sum',
          values: m.values.map((v) => ({ ...v, labels: { ...v.labels, process } })),
        }
      : m,
  );
}

/**
 * The metrics of arr with workers, as /metrics shows them: the primary's own (activation, the
 * registry, ACME, the admin endpoint), the sum of every worker's counters, histograms and gauges
 * (requests, latencies, open WebSockets), plus `retired` (what workers gone counted), and each
 * process's default metrics labelled by process.
 */
export function mergeMetrics(
  own: MetricsJson,
  workers: readonly MetricsAnswer[],
  retired: MetricsJson,
): Registry {
  const names = new Set<string>(['primary']);
  const all = [labelled(own, 'primary'), retired];
  for (const w of workers) {
    // Two processes of one name (an old worker still finishing beside its replacement): by pid.
    const name = names.has(w.process) ? `${w.process} (pid ${w.pid})` : w.process;
    names.add(name);
    all.push(labelled(w.metrics, name));
  }
  return AggregatorRegistry.aggregate(all);
}

/**
 * What a worker that is gone leaves in the sums: its counters and histograms as last read, added
 * to those of the workers gone before (gauges and its per-process metrics go with it). Without
 * them the sums would drop when a worker is replaced, which Prometheus reads as a reset.
 */
export async function retire(retired: MetricsJson, last: MetricsJson): Promise<MetricsJson> {
  const kept = last.filter(
    (m) => !perProcess(m.name) && ((m.type as unknown) === 'counter' || (m.type as unknown) === 'histogram'),
  );
  return (await AggregatorRegistry.aggregate([retired, kept]).getMetricsAsJSON()) as MetricsJson;
}
