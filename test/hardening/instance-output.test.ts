// An instance's output cannot crash arr or grow it. arr read each instance's output line by line
// with no bound on a line: an app writing 300 MB without a newline grew arr by 350 MB for good,
// and about 600 MB hit V8's string limit (RangeError: Invalid string length): arr died with every
// app of the node. Now a line is handled in pieces of at most 16 KiB (as Docker and journald do),
// each but the last logged with `partial: true`. Security review #25, finding 1.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { logLines, scriptApp } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';
import { rssBytes } from '../support/tcp.js';

const MB = 1024 * 1024;
const FLOOD_MB = 1024;

/** A line of this many bytes on stderr (logged at warn: --app-stderr-level), to see its pieces. */
const LONG_LINE = 40 * 1024 + 5;

/**
 * On GET /flood?mb=N: N MB of 'x' on stdout without a newline (as fast as arr reads), then a
 * newline; then, on stderr, a line of LONG_LINE bytes of 'y' and one saying it is done.
 */
const FLOODER = `
const { writeSync } = require('node:fs');
require('node:http')
  .createServer((req, res) => {
    const mb = Number(new URL(req.url, 'http://x').searchParams.get('mb') || 0);
    res.end('flooding\\n');
    if (mb === 0) return;
    setImmediate(() => {
      const block = Buffer.alloc(1 << 20, 'x');
      for (let i = 0; i < mb; i++) writeSync(1, block);
      writeSync(1, '\\n');
      writeSync(2, 'y'.repeat(${LONG_LINE}) + '\\nflood of ' + mb + ' MB done\\n');
    });
  })
  .listen(Number(process.env.PORT));
`;

describe("an instance's output", () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(
      [
        scriptApp('flooder', 'flooder.localhost', FLOODER),
        helloApp('bystander', [{ host: 'bystander.localhost', ssl: 'allowed' }]),
      ],
      // Instance stdout is logged at info: not here, where 1 GB of it would only be formatted to
      // be dropped (what arr's stdout cannot take is: output-flood.test.ts).
      {
        extraArgs: ['--log-level', 'warn', '--app-stderr-level', 'warn'],
        ready: (a) =>
          until('arr to serve', () =>
            fetchVia(a.port, 'bystander.localhost', false).then((r) => r.status === 200),
          ),
      },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('1 GB without a newline: arr keeps serving another host, its RSS stays flat; a long line is logged in 16 KiB pieces', async () => {
    assert.equal((await fetchVia(arr.port, 'flooder.localhost', false, { path: '/flood' })).status, 200);
    for (let i = 0; i < 200; i++) {
      const r = await fetchVia(arr.port, 'bystander.localhost', false);
      assert.equal(r.status, 200, r.text);
    }
    const baseline = rssBytes(arr.proc.pid);

    const t0 = Date.now();
    const flood = await fetchVia(arr.port, 'flooder.localhost', false, { path: `/flood?mb=${FLOOD_MB}` });
    assert.equal(flood.status, 200, flood.text);
    let done = false;
    const finished = arr.proc.waitFor(`flood of ${FLOOD_MB} MB done`, 60_000);
    finished.then(
      () => (done = true),
      () => (done = true),
    );
    let peak = baseline;
    let served = 0;
    while (!done) {
      const r = await fetchVia(arr.port, 'bystander.localhost', false);
      assert.equal(r.status, 200, r.text);
      served++;
      peak = Math.max(peak, rssBytes(arr.proc.pid));
    }
    await finished;
    const seconds = (Date.now() - t0) / 1000;
    peak = Math.max(peak, rssBytes(arr.proc.pid));
    console.log(
      `# ${FLOOD_MB} MB in ${seconds.toFixed(1)} s; arr's RSS ${(baseline / MB).toFixed(0)} MB -> peak ${(peak / MB).toFixed(0)} MB; ${served} requests served meanwhile`,
    );
    assert.ok(peak - baseline < 100 * MB, `RSS grew by ${((peak - baseline) / MB).toFixed(0)} MB`);
    assert.ok(served > 0);

    // The long line on stderr: 16 KiB pieces marked partial, the rest; then the next line, whole.
    const lines = logLines(arr.proc.output()).filter((l) => l.app === 'flooder');
    const prefix = `flooder[${lines.at(-1)?.pid}]: `;
    assert.deepEqual(
      lines.slice(-4).map((l) => [l.msg.length - prefix.length, l.partial]),
      [
        [16 * 1024, true],
        [16 * 1024, true],
        [LONG_LINE - 32 * 1024, undefined],
        [`flood of ${FLOOD_MB} MB done`.length, undefined],
      ],
    );
    assert.equal(lines.at(-1)?.msg, `${prefix}flood of ${FLOOD_MB} MB done`);
  });
});
