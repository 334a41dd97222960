import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { collectDefaultMetrics, Registry as PromRegistry } from 'prom-client';
import { ExchangeMetrics } from '../../src/ops/metrics/exchange-metrics.js';
import { type MetricsAnswer, type MetricsJson, mergeMetrics } from '../../src/ops/metrics/merge-metrics.js';
import { Metrics } from '../../src/ops/metrics/metrics.js';
import { type SecondReport, Traffic } from '../../src/ops/metrics/traffic.js';
import { TrafficTally } from '../../src/ops/metrics/traffic-tally.js';
import { ASK, type Asker } from '../../src/ops/worker-asks.js';
import { WorkersView } from '../../src/ops/workers-view.js';
import type { App } from '../../src/registry/types.js';
import { createLogger } from '../../src/util/log.js';
import { parseExposition, type Sample, seriesValue } from '../support/exposition.js';

// The primary's one view of its workers, in process: each fake worker is what a worker counts
// with (its own prom-client registry, its traffic tally), its answers copied as the IPC pipe
// copies them (JSON).

const log = createLogger('test', 'silent');
const T0 = 1_800_000_000; // a whole second, in seconds since the epoch

/** What crosses the pipe. */
function copied<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

/** A worker's counters, answered as WorkerOps answers them. */
function fakeWorker(name: string, pid: number) {
  const registry = new PromRegistry();
  const metrics = new ExchangeMetrics(registry);
  collectDefaultMetrics({ register: registry });
  const answer = async (): Promise<MetricsAnswer> => ({
    process: name,
    pid,
    metrics: copied((await registry.getMetricsAsJSON()) as MetricsJson),
  });
  return { metrics, answer };
}

function sum(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}

describe('one view of all workers: /metrics', () => {
  it("sums every worker's counters, histograms and open WebSockets beside the primary's own; per-process metrics are labelled", async () => {
    const workers = [fakeWorker('worker 1', 101), fakeWorker('worker 2', 102), fakeWorker('worker 3', 103)];
    for (let i = 0; i < 3; i++) workers[0]!.metrics.request('a', 200, 0.004);
    workers[1]!.metrics.request('a', 200, 0.004);
    workers[1]!.metrics.request('a', 200, 0.3);
    workers[1]!.metrics.request('b', 502, 0.02);
    workers[1]!.metrics.protocol('h2');
    workers[2]!.metrics.websocketOpened('a');
    workers[0]!.metrics.websocketOpened('a');
    const primary = new Metrics();
    primary.deployed({ name: 'a' } as App, 'replaced');
    const own = (await primary.registry.getMetricsAsJSON()) as MetricsJson;

    const text = await mergeMetrics(own, await Promise.all(workers.map((w) => w.answer())), []).metrics();
    const samples = parseExposition(text);
    assert.equal(seriesValue(samples, 'arr_requests_total', { app: 'a', status: '200' }), 5);
    assert.equal(seriesValue(samples, 'arr_requests_total', { app: 'b', status: '502' }), 1);
    assert.equal(seriesValue(samples, 'arr_request_duration_seconds_count', { app: 'a' }), 5);
    assert.equal(seriesValue(samples, 'arr_request_duration_seconds_bucket', { app: 'a', le: '0.005' }), 4);
    assert.equal(seriesValue(samples, 'arr_request_duration_seconds_bucket', { app: 'a', le: '+Inf' }), 5);
    assert.ok(
      Math.abs(seriesValue(samples, 'arr_request_duration_seconds_sum', { app: 'a' })! - 0.316) < 1e-9,
    );
    assert.equal(seriesValue(samples, 'arr_requests_by_protocol_total', { protocol: 'h2' }), 1);
    assert.equal(seriesValue(samples, 'arr_requests_by_protocol_total', { protocol: 'http/1.1' }), 0);
    assert.equal(seriesValue(samples, 'arr_websockets_open', { app: 'a' }), 2);
    assert.equal(seriesValue(samples, 'arr_deploys_total', { app: 'a', result: 'replaced' }), 1);
    assert.equal(seriesValue(samples, 'arr_instances_running'), 0);
    // One family per metric, whatever the number of processes.
    assert.equal(text.match(/^# TYPE arr_requests_total /gm)?.length, 1);
    for (const process of ['primary', 'worker 1', 'worker 2', 'worker 3']) {
      assert.ok(seriesValue(samples, 'process_start_time_seconds', { process })! > 0, process);
      assert.ok(seriesValue(samples, 'process_cpu_user_seconds_total', { process }) !== undefined, process);
      assert.ok(
        samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds' && s.labels.process === process),
      );
    }
    assert.equal(seriesValue(samples, 'process_start_time_seconds'), undefined, 'no unlabelled one');
  });

  it('tells apart two processes of one name by pid (an old worker beside its replacement)', async () => {
    const a = fakeWorker('worker 1', 201);
    const b = fakeWorker('worker 1', 202);
    const samples = parseExposition(
      await mergeMetrics([], [await a.answer(), await b.answer()], []).metrics(),
    );
    assert.ok(seriesValue(samples, 'process_start_time_seconds', { process: 'worker 1' })! > 0);
    assert.ok(seriesValue(samples, 'process_start_time_seconds', { process: 'worker 1 (pid 202)' })! > 0);
  });

  it("lets a late worker's last answer stand in, and keeps the counts of a worker gone: the sums never drop", async () => {
    const w1 = fakeWorker('worker 1', 301);
    const w2 = fakeWorker('worker 2', 302);
    let late = false;
    const asker = (w: ReturnType<typeof fakeWorker>, isLate = () => false): Asker => ({
      ask: async <T>(type: string) => {
        assert.equal(type, ASK.metrics);
        if (isLate()) throw new Error('no answer to "ops.metrics" within 1000 ms');
        return (await w.answer()) as T;
      },
    });
    let serving = [asker(w1, () => late), asker(w2)];
    const primary = new Metrics();
    const traffic = new Traffic();
    after(() => traffic.close());
    const view = new WorkersView({ serving: () => serving }, primary, traffic, log);
    const total = async () => {
      const samples = parseExposition(await view.scrape());
      return {
        requests: sum(samples, 'arr_requests_total'),
        open: sum(samples, 'arr_websockets_open'),
        workers: seriesValue(samples, 'arr_workers'),
        late: seriesValue(samples, 'arr_worker_asks_unanswered_total', { ask: 'metrics' }),
        cpuOf: (process: string) => seriesValue(samples, 'process_cpu_user_seconds_total', { process }),
      };
    };
    w1.metrics.request('a', 200, 0.01);
    w2.metrics.request('a', 200, 0.01);
    w2.metrics.websocketOpened('a');
    assert.deepEqual((({ requests, workers, late }) => ({ requests, workers, late }))(await total()), {
      requests: 2,
      workers: 2,
      late: 0,
    });

    late = true;
    w1.metrics.request('a', 200, 0.01); // not seen yet: worker 1 does not answer
    w2.metrics.request('a', 200, 0.01);
    let t = await total();
    assert.equal(t.requests, 3, "worker 1's last answer stands in");
    assert.equal(t.late, 1);
    late = false;
    assert.equal((await total()).requests, 4);

    w2.metrics.request('a', 200, 0.01);
    await total(); // worker 2 last seen with 3 requests, 1 WebSocket
    w2.metrics.request('a', 200, 0.01); // lost with it: counted after its last answer
    serving = [serving[0]!];
    t = await total();
    assert.equal(t.requests, 5, "worker 2's counts stay in the sums");
    assert.equal(t.open, 0, 'its WebSockets went with it');
    assert.equal(t.workers, 1);
    assert.equal(t.cpuOf('worker 2'), undefined, 'its per-process metrics went with it');
    assert.ok(t.cpuOf('worker 1') !== undefined);
    w1.metrics.request('a', 200, 0.01);
    assert.equal((await total()).requests, 6, 'retired once, not at every scrape');
  });
});

describe('one view of all workers: the dashboard traffic', () => {
  /** Two workers' tallies and the primary's ring, on one clock of the test's. */
  function cluster() {
    let ms = T0 * 1000;
    const clock = () => ms;
    const workers = [new TrafficTally(clock), new TrafficTally(clock)];
    const ring = new Traffic(clock, { fed: true });
    const at = (second: number, fraction = 0.1) => {
      ms = (T0 + second + fraction) * 1000;
      for (const w of workers) w.tick();
      ring.tick();
    };
    /** The primary asks each worker for its seconds (as WorkersView does a little after each second begins). */
    const collect = () => {
      for (const w of workers) ring.absorb(copied(w.take()));
    };
    const close = () => {
      for (const w of workers) w.close();
      ring.close();
    };
    return { workers, ring, at, collect, close };
  }

  it("sums the workers' seconds, with percentiles from their merged histograms, a second behind", () => {
    const { workers, ring, at, collect, close } = cluster();
    try {
      const [w1, w2] = workers;
      at(0);
      for (let i = 0; i < 98; i++) w1!.request('a', 200, 0.01);
      w2!.request('a', 503, 0.01);
      w2!.request('a', 200, 1.5);
      w2!.request('a', 200, 1.5);
      w2!.request('', 404, 0.001);
      at(1);
      collect();
      at(1, 0.9);
      assert.equal(
        ring.last('a')?.requests,
        0,
        'second 0 is not read before every worker had a second to tell it',
      );
      at(2);
      collect();
      const last = ring.last('a')!;
      assert.equal(last.requests, 101);
      assert.equal(last.errors, 1);
      assert.ok(last.p50 >= 10 && last.p50 < 11.9, `p50 ${last.p50}`);
      assert.ok(
        last.p99 >= 1500 && last.p99 < 1790,
        `p99 ${last.p99}: the 100th of 101 is one of worker 2's`,
      );
      assert.equal(ring.last('')?.requests, 1, 'unknown hosts, from every worker');
      assert.deepEqual([...ring.active().keys()].sort(), ['', 'a']);
    } finally {
      close();
    }
  });

  it('keeps every request in the series, a late report included; open WebSockets are the sum of what each worker tells', () => {
    const { workers, ring, at, collect, close } = cluster();
    try {
      const [w1, w2] = workers;
      at(10);
      w1!.websocketOpened('a');
      w1!.websocketOpened('a');
      w2!.websocketOpened('a');
      w1!.request('a', 200, 0.002);
      at(11);
      collect();
      w2!.websocketClosed('a');
      w2!.request('a', 200, 0.002);
      at(12);
      ring.absorb(copied(w1!.take())); // worker 2 is late: its second 11 comes after that second closed
      at(13);
      collect();
      at(14);
      collect();
      at(20);
      const s = ring.series('a');
      const i = (second: number) => second - (19 - 180);
      assert.equal(s.start, T0 + 19 - 180, 'the window ends a second behind');
      assert.deepEqual(s.requests.slice(i(10), i(15)), [1, 1, 0, 0, 0]);
      assert.deepEqual(s.websockets.slice(i(10), i(15)), [3, 2, 2, 2, 0]);
      assert.equal(
        s.requests.reduce((a, b) => a + b, 0),
        2,
      );
    } finally {
      close();
    }
  });

  it('a tally keeps a second apart from the next even when asked late, and forgets quiet apps', () => {
    let ms = T0 * 1000;
    const tally = new TrafficTally(() => ms);
    try {
      tally.request('a', 200, 0.01);
      ms += 1000;
      tally.tick();
      tally.request('a', 500, 0.01); // the next second, before the primary asked for the last one
      ms += 1000;
      const reports: SecondReport[] = tally.take();
      assert.deepEqual(
        reports.map((r) => [r.second - T0, r.app, r.requests, r.errors, r.websockets]),
        [
          [0, 'a', 1, 0, 0],
          [1, 'a', 1, 1, 0],
        ],
      );
      assert.deepEqual(reports[0]!.hist.length, 2, 'one bucket, one count');
      ms += 1000;
      assert.deepEqual(tally.take(), [], 'nothing happened: nothing to tell');
    } finally {
      tally.close();
    }
  });
});
