import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, helloApp, type Reply, startArrWith } from '../support/arr.js';
import { parseExposition } from '../support/exposition.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';

// One view of all workers: arr --workers 2, requests spread over both (a connection each), then
// the primary's /metrics, dashboard API, /healthz and the access log count every one of them.

const REQUESTS = 120;

function adminGet(port: number, path: string): Promise<Reply> {
  return fetchVia(port, `127.0.0.1:${port}`, false, { path });
}

async function adminJson<T>(port: number, path: string): Promise<T> {
  const reply = await adminGet(port, path);
  assert.equal(reply.status, 200, `${path}: ${reply.body.toString()}`);
  return JSON.parse(reply.body.toString()) as T;
}

/** The sum of a metric's series for the app. */
function total(text: string, name: string): number {
  return parseExposition(text)
    .filter((s) => s.name === name && s.labels.app === 'view')
    .reduce((a, s) => a + s.value, 0);
}

/** The workers' start times, by process label. */
function workerStarts(text: string): Map<string | undefined, number> {
  return new Map(
    parseExposition(text)
      .filter((s) => s.name === 'process_start_time_seconds' && s.labels.process !== 'primary')
      .map((s) => [s.labels.process, s.value]),
  );
}

describe('arr --workers 2: one view of all workers', () => {
  let arr: ArrUnderTest;
  let admin: number;
  let dir: string;
  let stdout: string;
  const lines = () =>
    readFileSync(stdout, 'utf8')
      .split('\n')
      .filter((l) => l.length > 0)
      .map((l) => JSON.parse(l) as Record<string, unknown>); // a line two processes mixed would not parse

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'arr-view-'));
    stdout = join(dir, 'stdout.log');
    admin = await freePort();
    arr = await startArrWith(
      [{ ...helloApp('view', [{ host: 'view.localhost', ssl: 'none' }]), name: 'view' }],
      {
        extraArgs: ['--workers', '2', '--admin', String(admin), '--access-log'],
        stdoutFile: stdout,
        ready: () => until('arr listening', () => readFileSync(stdout, 'utf8').includes('arr listening on')),
      },
    );
    // Each request on a connection of its own: the primary hands connections to the workers in turn.
    for (let sent = 0; sent < REQUESTS; sent += 10) {
      const replies = await Promise.all(
        Array.from({ length: 10 }, () => fetchVia(arr.port, 'view.localhost', false)),
      );
      for (const r of replies) assert.equal(r.status, 200);
    }
  });

  /** /metrics once it counts every request sent. */
  const scrapeUntilAll = () =>
    until('every request counted', async () => {
      const t = (await adminGet(admin, '/metrics')).body.toString();
      return total(t, 'arr_requests_total') === REQUESTS && t;
    });

  after(async () => {
    await arr?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('/healthz?verbose says how many workers serve', async () => {
    const health = await adminJson<Record<string, unknown>>(admin, '/healthz?verbose');
    assert.equal(health.workers, 2);
    assert.equal(health.status, 'ok');
  });

  it("/metrics sums every worker's requests and latencies", async () => {
    const text = await scrapeUntilAll();
    assert.equal(total(text, 'arr_request_duration_seconds_count'), REQUESTS);
    assert.equal(total(text, 'arr_activations_total'), 1, "the primary's own");
    const processes = new Set(
      parseExposition(text)
        .filter((s) => s.name === 'process_start_time_seconds')
        .map((s) => s.labels.process),
    );
    assert.deepEqual([...processes].sort(), ['primary', 'worker 1', 'worker 2']);
  });

  it("the dashboard's series counts every worker's requests", async () => {
    await until(
      'every request in the series',
      async () => {
        const series = await adminJson<{ requests: number[] }>(admin, '/api/apps/view/series');
        return series.requests.reduce((a, b) => a + b, 0) === REQUESTS;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
  });

  it('the access log has every line, written by both workers', async () => {
    const access = await until('every access line', () => {
      const found = lines().filter((l) => l.app === 'view' && l.status === 200);
      return found.length === REQUESTS && found;
    });
    const byWorker = new Map<unknown, number>();
    for (const l of access) byWorker.set(l.worker, (byWorker.get(l.worker) ?? 0) + 1);
    assert.deepEqual([...byWorker.keys()].sort(), [1, 2], 'both workers served');
  });

  it('keeps the counts of the workers a SIGHUP replaced', async () => {
    const before = workerStarts(await scrapeUntilAll());
    process.kill(arr.proc.pid, 'SIGHUP');
    await until('the workers replaced', () => readFileSync(stdout, 'utf8').includes('2 workers replaced'), {
      timeoutMs: 30_000,
      intervalMs: 100,
    });
    // The old workers are counted while they finish, then their counts stay when they are gone.
    const text = await until(
      'only the new workers left',
      async () => {
        const t = await scrapeUntilAll();
        return [...workerStarts(t).keys()].sort().join() === 'worker 1,worker 2' && t;
      },
      { timeoutMs: 20_000, intervalMs: 200 },
    );
    for (const [name, started] of workerStarts(text))
      assert.notEqual(started, before.get(name), `${name} is a new process`);
    assert.equal(total(text, 'arr_request_duration_seconds_count'), REQUESTS);
  });
});
