import assert from 'node:assert/strict';
import { afterEach, test } from 'node:test';
import { local, logLines, removeTempDirs, runningNlb } from '../support/nlb.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';
import { blackhole, closeAllServers, exchange, idServer } from '../support/tcp.js';

afterEach(async () => {
  await stopAll();
  await closeAllServers();
  removeTempDirs();
});

/** `n` sequential connections; returns the answers (backend ids) in order. */
async function answers(port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await exchange(port)).data.toString());
  return out;
}

function tally(ids: string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const id of ids) t[id] = (t[id] ?? 0) + 1;
  return t;
}

test('exact round robin over 3 backends: 30 connections, 10 each, in turn; no log line per connection', async () => {
  const backends = await Promise.all(['a', 'b', 'c'].map((id) => idServer(id)));
  const [port] = await freePorts(1);
  const nlb = await runningNlb([{ port: port!, backends: local(...backends.map((b) => b.port)) }]);
  const got = await answers(port!, 30);
  assert.deepEqual(tally(got), { a: 10, b: 10, c: 10 });
  for (let i = 3; i < 30; i++)
    assert.equal(got[i], got[i - 3], `connection ${i} breaks the rotation: ${got}`);
  // Only the listening line: nothing per connection at the default level.
  assert.deepEqual(
    logLines(nlb.output()).map((l) => l.msg.split(' ')[0]),
    ['listening'],
    nlb.output(),
  );
});

test('routes are independent: each balances over its own backends', async () => {
  const [a, b, x] = await Promise.all(['a', 'b', 'x'].map((id) => idServer(id)));
  const [p1, p2] = await freePorts(2);
  await runningNlb([
    { port: p1!, backends: local(a!.port, b!.port) },
    { port: p2!, host: '127.0.0.1', backends: local(x!.port) },
  ]);
  assert.deepEqual(await answers(p1!, 4), ['a', 'b', 'a', 'b']);
  assert.deepEqual(await answers(p2!, 2), ['x', 'x']);
});

test('a dead backend is skipped, logged down, and used again once it comes back', async () => {
  const [a, b] = await Promise.all(['a', 'b'].map((id) => idServer(id)));
  const [port, dead] = await freePorts(2);
  const nlb = await runningNlb([{ port: port!, backends: local(a!.port, dead!, b!.port) }]);

  const got = await answers(port!, 30);
  assert.equal(got.length, 30);
  assert.deepEqual(tally(got), { a: 15, b: 15 }, `every connection served, alternately: ${got}`);
  await nlb.waitFor(new RegExp(`backend 127\\.0\\.0\\.1:${dead} down \\(ECONNREFUSED\\)`));
  assert.equal(nlb.output().match(/ down \(/g)?.length, 1, 'logged down once, not per connection');

  // It comes back: the background probe finds it, and it takes its turn again.
  await idServer('revived', { port: dead! });
  await nlb.waitFor(new RegExp(`backend 127\\.0\\.0\\.1:${dead} back`), 10_000);
  const again = await answers(port!, 9);
  assert.deepEqual(tally(again), { a: 3, b: 3, revived: 3 }, String(again));
});

test('a backend that does not accept within --connect-timeout is skipped; later clients do not wait on it', async () => {
  const hole = await blackhole();
  const a = await idServer('a');
  const [port] = await freePorts(1);
  const nlb = await runningNlb(
    [{ port: port!, backends: local(hole.port, a.port) }],
    ['--connect-timeout', '0.5', '--verbose'],
  );

  const t0 = Date.now();
  assert.equal((await exchange(port!)).data.toString(), 'a');
  const first = Date.now() - t0;
  assert.ok(first >= 450, `the first connection waited for the connect timeout (${first} ms)`);
  await nlb.waitFor(
    new RegExp(`backend 127\\.0\\.0\\.1:${hole.port} down \\(no connection within 500 ms\\)`),
  );

  for (let i = 0; i < 10; i++) assert.equal((await exchange(port!)).data.toString(), 'a');
  const lines = await until('11 connections logged', () => {
    const l = logLines(nlb.output());
    return l.filter((x) => x.msg === 'connection closed').length === 11 ? l : undefined;
  });
  // --verbose logs each connect a client waited on that failed: only the first one's.
  assert.deepEqual(
    lines.filter((x) => x.msg === 'connect to backend failed').map((x) => x.backend),
    [`127.0.0.1:${hole.port}`],
  );
  for (const f of hole.fillers) f.destroy();
});

test('all backends down: each is still tried once, the client is closed, and the first one back serves at once', async () => {
  const [port, dead1, dead2] = await freePorts(3);
  const nlb = await runningNlb([{ port: port!, backends: local(dead1!, dead2!) }], ['--verbose']);

  for (let i = 0; i < 5; i++) {
    const r = await exchange(port!, 'hello');
    assert.equal(r.data.length, 0, 'nothing answered');
  }
  await nlb.waitFor(new RegExp(`${dead1} down`));
  await nlb.waitFor(new RegExp(`${dead2} down`));
  const lines = await until('5 connections given up', () => {
    const l = logLines(nlb.output());
    return l.filter((x) => x.msg.startsWith('no backend accepted')).length === 5 ? l : undefined;
  });
  const tries = lines.filter((x) => x.msg === 'connect to backend failed').map((x) => String(x.backend));
  assert.deepEqual(
    tally(tries),
    { [`127.0.0.1:${dead1}`]: 5, [`127.0.0.1:${dead2}`]: 5 },
    'each tried once per connection',
  );
  assert.ok(nlb.child.exitCode === null, 'nlb still runs');

  // Backoff probes would take a while; a client still gets the backend that is back right away.
  await idServer('back', { port: dead2! });
  assert.equal((await exchange(port!)).data.toString(), 'back');
  await nlb.waitFor(new RegExp(`backend 127\\.0\\.0\\.1:${dead2} back`));
});

test('--verbose logs every connection at debug level', async () => {
  const a = await idServer('a');
  const [port] = await freePorts(1);
  const nlb = await runningNlb([{ port: port!, backends: local(a.port) }], ['--verbose']);
  for (let i = 0; i < 3; i++) assert.equal((await exchange(port!, 'x')).data.toString(), 'a');
  await until('three connection lines', () => {
    const lines = logLines(nlb.output()).filter((l) => l.msg === 'connection closed');
    return lines.length === 3 ? lines : undefined;
  }).then((lines) => {
    for (const l of lines) {
      assert.equal(l.level, 'debug');
      assert.equal(l.backend, `127.0.0.1:${a.port}`);
      assert.match(String(l.client), /127\.0\.0\.1\]?:\d+$/);
      assert.equal(l.sent, 1);
      assert.equal(l.received, 1);
    }
  });
});
