// Starts that go wrong, end to end through the real arr CLI: a port of the range taken by
// something else, an app that never listens, a missing executable, a program that keeps
// crashing. arr answers each with a short plain-text 5xx, leaks no process, and goes on.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { allGone, INTERNALS, portOf, scriptApp, startLines } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, helloApp, type Reply, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

/** A request that must be answered: the reply and how long it took. */
async function timed(arr: ArrUnderTest, host: string, timeoutMs = 10_000): Promise<Reply & { ms: number }> {
  const t0 = Date.now();
  const r = await fetchVia(arr.port, host, false, { timeoutMs });
  return { ...r, ms: Date.now() - t0 };
}

/** arr's own error answer: a 5xx in short plain text that gives nothing of its internals away. */
function assertPlainError(r: Reply, status?: number): void {
  if (status !== undefined) assert.equal(r.status, status, `${r.status} ${r.text}`);
  assert.ok(r.status >= 500 && r.status <= 599, `a 5xx: ${r.status} ${r.text}`);
  assert.match(String(r.headers['content-type']), /^text\/plain/);
  assert.ok(r.text.length < 200, `short: ${r.text}`);
  assert.match(r.text, new RegExp(`^${r.status} [A-Za-z ]+: [^\\n]+\\n$`), r.text);
  assert.doesNotMatch(r.text, INTERNALS, r.text);
}

/** Serves `host` again: polls, since a start can meet a loaded machine. */
async function assertServes(arr: ArrUnderTest, host: string): Promise<Reply> {
  return until(
    `arr to serve ${host}`,
    async () => {
      const r = await fetchVia(arr.port, host, false, { timeoutMs: 5_000 });
      return r.status === 200 ? r : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
}

const listenOn = (port: number, host: string) =>
  new Promise<Server>((resolve, reject) => {
    const srv = createServer((s) => s.destroy());
    srv.once('error', reject);
    srv.listen(port, host, () => resolve(srv));
  });

describe('a port of the range that something else listens on', () => {
  let arr: ArrUnderTest;
  let blocker: Server | undefined;
  before(async () => {
    arr = await startArrWith(
      ['a', 'b', 'c'].map((n) => ({ ...helloApp(n, [{ host: `${n}.localhost`, ssl: 'allowed' }]), name: n })),
      { rangeSize: 3 },
    );
  });
  after(async () => {
    blocker?.close();
    await arr?.stop();
    await stopAll();
  });

  it('is skipped; with the range full a start is refused, and the port is used once it is free', async () => {
    const [first] = arr.range;
    blocker = await listenOn(first, '127.0.0.1');
    const a = await timed(arr, 'a.localhost');
    assert.equal(a.status, 200, a.text);
    assert.equal(portOf(a), first + 1, 'the busy port is skipped');
    const b = await timed(arr, 'b.localhost');
    assert.equal(b.status, 200, b.text);
    assert.equal(portOf(b), first + 2);
    // Every port of the range is taken now: by a, by b and by the blocker.
    const c = await timed(arr, 'c.localhost');
    assertPlainError(c, 503);
    assert.ok(c.ms < 2_000, `at once (${c.ms} ms)`);
    await new Promise((r) => blocker!.close(r));
    blocker = undefined;
    const again = await assertServes(arr, 'c.localhost');
    assert.equal(portOf(again), first, 'the port is used once it is free');
    assert.equal(
      startLines(arr.proc.output(), 'c').length,
      1,
      'no process was started while no port was free',
    );
  });
});

describe('an app that never listens', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(
      [
        scriptApp('never', 'never.localhost', 'setInterval(() => {}, 1000)'),
        // Not even SIGTERM ends it: only the SIGKILL that follows, after its stopTimeout.
        {
          ...scriptApp(
            'stubborn',
            'stubborn.localhost',
            'process.on("SIGTERM", () => {}); setInterval(() => {}, 1000)',
          ),
          stopTimeout: 2,
        },
        { ...helloApp('fine', [{ host: 'fine.localhost', ssl: 'allowed' }]), name: 'fine' },
      ],
      { extraArgs: ['--start-timeout', '1'] },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('is killed after --start-timeout, and the request gets a plain 504', async () => {
    const r = await timed(arr, 'never.localhost');
    assertPlainError(r, 504);
    assert.ok(r.ms >= 900 && r.ms < 3_000, `answered after the timeout of 1 s (${r.ms} ms)`);
    const starts = startLines(arr.proc.output(), 'never');
    assert.equal(starts.length, 1);
    await allGone([starts[0]!.pid!], 2_000);
    const fine = await assertServes(arr, 'fine.localhost');
    assert.match(fine.text, /^hello from fine/);
  });

  it('is killed even when it ignores SIGTERM, and the request does not wait for that', async () => {
    const r = await timed(arr, 'stubborn.localhost');
    assertPlainError(r, 504);
    assert.ok(r.ms < 3_000, `answered after the timeout of 1 s (${r.ms} ms)`);
    const starts = startLines(arr.proc.output(), 'stubborn');
    assert.equal(starts.length, 1);
    // SIGTERM, then SIGKILL after the app's stopTimeout (2 s; arr's default is 10 s).
    const t0 = Date.now();
    await allGone([starts[0]!.pid!], 8_000);
    assert.ok(Date.now() - t0 >= 1_000, 'not killed before its stopTimeout');
    await arr.proc.waitFor(`stubborn[${starts[0]!.pid}] exited with signal SIGKILL`, 2_000);
    await assertServes(arr, 'fine.localhost');
  });
});

describe('programs that cannot run', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith([
      {
        ...helloApp('missing', [{ host: 'missing.localhost', ssl: 'allowed' }]),
        name: 'missing',
        process: { executable: '/nonexistent/bin/app', args: [] },
      },
      scriptApp('crashy', 'crashy.localhost', 'process.exit(1)'),
      { ...helloApp('fine', [{ host: 'fine.localhost', ssl: 'allowed' }]), name: 'fine' },
    ]);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('a missing executable: a plain 5xx, the reason in the log, other hosts served', async () => {
    const r = await timed(arr, 'missing.localhost');
    assertPlainError(r);
    assert.ok(r.ms < 2_000, `at once (${r.ms} ms)`);
    await arr.proc.waitFor(/"msg":"activation of missing failed: [^\n]*\(ENOENT\)"/, 2_000);
    const fine = await assertServes(arr, 'fine.localhost');
    assert.match(fine.text, /^hello from fine/);
    // Asked again, it is refused again, quickly, and arr goes on.
    const again = await timed(arr, 'missing.localhost');
    assertPlainError(again);
    assert.ok(again.ms < 2_000);
    await assertServes(arr, 'fine.localhost');
  });

  it('a program that keeps crashing is restarted with growing delays, each request answered at once', async () => {
    const replies: (Reply & { ms: number })[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 20; i++) {
      // One request every 250 ms, whatever the answers take (none may hang).
      const due = t0 + i * 250;
      await until('the next request time', () => Date.now() >= due, { timeoutMs: 10_000, intervalMs: 5 });
      replies.push(await timed(arr, 'crashy.localhost', 3_000));
    }
    for (const r of replies) {
      assertPlainError(r);
      assert.ok(r.ms < 1_500, `answered at once (${r.ms} ms)`);
    }
    const starts = startLines(arr.proc.output(), 'crashy').length;
    assert.ok(starts >= 2 && starts <= 6, `started ${starts} times in ${Date.now() - t0} ms`);
    const backedOff = replies.filter((r) => r.status === 503 && Number(r.headers['retry-after']) >= 1);
    assert.ok(backedOff.length >= 10, `most requests are told when to retry (${backedOff.length} of 20)`);
    await assertServes(arr, 'fine.localhost');
  });
});
