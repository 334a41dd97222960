// Programs spawn() refuses on the spot, before any process exists. A NUL byte in an argument or
// an argument list too long for the kernel (E2BIG) is now refused by validation; a document
// that passes it can still name a path through a file (ENOTDIR, thrown the same way). Each
// start takes a port of the range: before the fix none came back, so a few requests to one such
// app left every other app without a port (503). Security review #19.
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { INTERNALS, logLines } from '../support/activation.js';
import {
  type ArrUnderTest,
  fetchVia,
  helloApp,
  provideApps,
  type Reply,
  startArrWith,
} from '../support/arr.js';
import { runArr, stopAll } from '../support/proc.js';

/** arr's own short plain-text error, with nothing of its internals. */
function assertPlainError(r: Reply, status: number): void {
  assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.match(String(r.headers['content-type']), /^text\/plain/);
  assert.doesNotMatch(r.text, INTERNALS, r.text);
}

describe('an app whose program spawn() refuses at once', () => {
  const RANGE = 3;
  const REQUESTS = 4 * RANGE;
  // A file is not a folder: spawn() throws ENOTDIR before any process exists.
  const executable = join(process.execPath, 'app');
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(
      [
        {
          ...helloApp('notdir', [{ host: 'notdir.localhost', ssl: 'allowed' }]),
          name: 'notdir',
          process: { executable, args: [] },
        },
        { ...helloApp('fine', [{ host: 'fine.localhost', ssl: 'allowed' }]), name: 'fine' },
      ],
      { rangeSize: RANGE },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('gets 502, then 503 in back-off, gives its port back each time, and other apps still start', async () => {
    const first = await fetchVia(arr.port, 'notdir.localhost', false);
    assertPlainError(first, 502);
    assert.equal(first.text, '502 Bad Gateway: the application could not be started\n');
    const statuses = [first.status];
    for (let i = 1; i < REQUESTS; i++) {
      const r = await fetchVia(arr.port, 'notdir.localhost', false);
      assertPlainError(r, r.status === 503 ? 503 : 502);
      if (r.status === 503) assert.ok(Number(r.headers['retry-after']) >= 1, 'Retry-After in back-off');
      statuses.push(r.status);
    }
    assert.ok(statuses.includes(503), `the failures count for the back-off: ${statuses.join(' ')}`);

    const fine = await fetchVia(arr.port, 'fine.localhost', false);
    assert.equal(fine.status, 200, `a port of the ${RANGE} is free for another app: ${fine.text}`);
    assert.match(fine.text, /^hello from fine/);

    const reasons = logLines(arr.proc.output()).filter((l) => l.msg.includes('activation of notdir failed'));
    assert.ok(reasons.length > 0);
    assert.match(reasons[0]!.msg, new RegExp(`notdir: cannot run "${executable}" \\(ENOTDIR\\)$`));
  });
});

describe('arr validate: command lines spawn() would refuse', () => {
  let file: string | undefined;
  after(() => {
    if (file) rmSync(join(file, '..'), { recursive: true, force: true });
  });

  it('reports a NUL byte and a command line over 128 KiB by _id and field, and serves neither', async () => {
    const app = (id: string, executable: string, args: string[]) => ({
      ...helloApp(id, [{ host: `${id}.localhost`, ssl: 'allowed' }]),
      _id: id,
      process: { executable, args },
    });
    file = await provideApps([
      app('nul', 'node', ['server.js', 'a\0b']),
      app(
        'huge',
        'node',
        Array.from({ length: 100 }, () => 'x'.repeat(2000)),
      ),
      app('fine', 'node', ['server.js']),
    ]);
    const r = await runArr(['validate', file!]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /^line 1, app nul: process\.args\[1\]: contains a NUL byte/m);
    assert.match(
      r.output,
      /^line 2, app huge: process\.args: the executable and its arguments are 200004 bytes together; at most 131072 \(128 KiB\)$/m,
    );
    assert.match(r.output, /^1 app valid, 2 problems$/m);
  });
});
