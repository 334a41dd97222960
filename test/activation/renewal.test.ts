// health and recycle (issue #31) with real processes under load: an instance that stops
// answering its health path, and one that reached its recycle.requests, are replaced as a deploy
// replaces one, with no failed request; /metrics and /api/overview say why each ended.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import type { Overview } from '../../src/ops/dashboard/dashboard-data.js';
import { type AppDoc, type ArrUnderTest, fetchVia, startArrWith } from '../support/arr.js';
import { startLoad } from '../support/deploy.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { stopAll } from '../support/proc.js';

/** Answers {pid}; its /healthz answers for its first SICK_AFTER_MS (if set), then never again. */
const APP = `
const started = Date.now();
const sickAfter = Number(process.env.SICK_AFTER_MS || 0);
require('node:http').createServer((req, res) => {
  if (req.url === '/healthz' && sickAfter > 0 && Date.now() - started > sickAfter) return; // hangs
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ version: 'v', pid: process.pid }));
}).listen(Number(process.env.PORT));
process.on('SIGTERM', () => process.exit(0));
`;

function app(name: string, extra: Partial<AppDoc>): AppDoc {
  return {
    _id: new ObjectId(),
    name,
    process: { executable: process.execPath, args: ['-e', APP] },
    hosts: [{ host: `${name}.localhost`, ssl: 'allowed' }],
    ...extra,
  };
}

describe('health checks and recycling replace instances with no failed request', () => {
  let arr: ArrUnderTest;
  let admin: number;
  const adminGet = async (path: string) =>
    (await fetchVia(admin, `127.0.0.1:${admin}`, false, { path })).text;
  const pidsOf = (answers: { pid: number }[][]) => new Set(answers.flat().map((a) => a.pid));
  before(async () => {
    admin = await freePort();
    arr = await startArrWith(
      [
        app('sick', {
          env: { SICK_AFTER_MS: '1500' },
          health: { path: '/healthz', interval: 0.5, timeout: 0.2, failures: 2 },
        }),
        app('cycled', { recycle: { requests: 100 } }),
      ],
      { extraArgs: ['--admin', `127.0.0.1:${admin}`] },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('an instance that stops answering its health path is replaced', async () => {
    const load = startLoad(arr.port, 'sick.localhost', 2);
    try {
      await until('a second instance to answer', () => pidsOf(load.answers).size >= 2, { timeoutMs: 20_000 });
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures, []);
    assert.match(
      arr.proc.output(),
      /replacing sick\[\d+\] \(health\): 2 health checks of \/healthz failed in a row/,
    );
    await until('the exit counted', async () =>
      /arr_instance_exits_total\{app="sick",reason="health"\} [1-9]/.test(await adminGet('/metrics')),
    );
    const overview = JSON.parse(await adminGet('/api/overview?q=sick')) as Overview;
    assert.equal(overview.apps[0]?.lastExit?.reason, 'health');
    assert.ok((overview.apps[0]?.restarts ?? 0) >= 1);
  });

  it('recycle.requests: 100 under load replaces instances', async () => {
    const load = startLoad(arr.port, 'cycled.localhost', 4);
    try {
      await until('a third instance to answer', () => pidsOf(load.answers).size >= 3, { timeoutMs: 20_000 });
    } finally {
      await load.stop();
    }
    assert.deepEqual(load.failures, []);
    const metrics = await until('the exits counted', async () => {
      const m = /arr_instance_exits_total\{app="cycled",reason="recycle"\} (\d+)/.exec(
        await adminGet('/metrics'),
      );
      return m && Number(m[1]) >= 2 && m;
    });
    assert.ok(metrics);
    const overview = JSON.parse(await adminGet('/api/overview?q=cycled')) as Overview;
    assert.equal(overview.apps[0]?.lastExit?.reason, 'recycle');
  });
});
