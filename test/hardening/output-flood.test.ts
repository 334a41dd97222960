// An app that writes its output faster than arr's stdout is read cannot stall arr. Instances'
// lines were logged through arr's own logger, which writes synchronously and sleeps 100 ms
// whenever stdout is full (sonic-boom on EAGAIN): 64 MB of an app's output took 16 s and held
// every other app's requests meanwhile; with nobody reading arr's stdout, arr stopped for good.
// Now they go through a bounded log written in the background (src/util/bounded-log.ts): what
// does not fit is dropped, counted in a metric and told in a warning.
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { scriptApp } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { stopAll } from '../support/proc.js';

const FLOOD_MB = 64;

/** On GET /flood?mb=N: N MB of 100-byte lines on stdout, as fast as arr reads them; then the answer. */
const FLOODER = `
const { writeSync } = require('node:fs');
const block = Buffer.from(('x'.repeat(99) + '\\n').repeat(10486));
require('node:http')
  .createServer((req, res) => {
    const mb = Number(new URL(req.url, 'http://x').searchParams.get('mb') || 0);
    for (let i = 0; i < mb; i++) writeSync(1, block);
    res.end('flooded ' + mb + ' MB\\n');
  })
  .listen(Number(process.env.PORT));
`;

function metric(port: number, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => {
        const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
        resolve(m ? Number(m[1]) : Number.NaN);
      });
    }).once('error', reject);
  });
}

describe("an app's output faster than arr's stdout is read", () => {
  let arr: ArrUnderTest;
  let admin = 0;
  before(async () => {
    admin = await freePort();
    arr = await startArrWith(
      [
        scriptApp('flooder', 'flooder.localhost', FLOODER),
        helloApp('steady', [{ host: 'steady.localhost', ssl: 'allowed' }]),
      ],
      { extraArgs: ['--admin', String(admin)] },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('is dropped, counted and told, while another app is served without a stall', async () => {
    for (const host of ['flooder.localhost', 'steady.localhost'])
      assert.equal((await fetchVia(arr.port, host, false)).status, 200);
    // Nobody reads arr's stdout from now on: it fills up, as a stalled log collector's would.
    arr.proc.child.stdout!.pause();

    let done = false;
    const flood = fetchVia(arr.port, 'flooder.localhost', false, {
      path: `/flood?mb=${FLOOD_MB}`,
      timeoutMs: 60_000,
    }).finally(() => {
      done = true;
    });
    flood.catch(() => {}); // awaited below; a failure there is the test's, not an unhandled one
    const t0 = performance.now();
    const latencies: number[] = [];
    while (!done) {
      const t = performance.now();
      const r = await fetchVia(arr.port, 'steady.localhost', false, { timeoutMs: 10_000 });
      assert.equal(r.status, 200, r.text);
      latencies.push(performance.now() - t);
    }
    const flooded = await flood;
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(flooded.status, 200, flooded.text);
    assert.equal(flooded.text, `flooded ${FLOOD_MB} MB\n`);
    latencies.sort((a, b) => a - b);
    const worst = latencies.at(-1)!;
    console.log(
      `# ${FLOOD_MB} MB of output in ${seconds.toFixed(1)} s, stdout unread; ${latencies.length} requests to another app meanwhile, median ${latencies[latencies.length >> 1]!.toFixed(1)} ms, worst ${worst.toFixed(0)} ms`,
    );
    assert.ok(latencies.length > 0);
    assert.ok(worst < 2_000, `a request took ${worst.toFixed(0)} ms`);

    const dropped = await metric(admin, 'arr_instance_output_dropped_lines_total');
    console.log(`# ${dropped} of ${FLOOD_MB * 10486} lines dropped`);
    assert.ok(dropped > FLOOD_MB * 10_000 * 0.5, `${dropped} lines dropped`);
    // Read again: what waited is written, and the warning with it.
    arr.proc.child.stdout!.resume();
    await until('the warning', () => /instance output: \d+ lines dropped/.test(arr.proc.output()), {
      timeoutMs: 15_000,
    });
  });
});
