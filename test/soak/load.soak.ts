// Minutes-long runs behind `npm run soak` (not part of npm test). SOAK_SECONDS (default 60)
// sets the length of the timed runs, SOAK_REQUESTS (default 1,000,000) the memory run.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import WebSocket from 'ws';
import { type ArrUnderTest, fetchVia, helloApp, pidOf, startArrWith } from '../support/arr.js';
import { load } from '../support/load.js';
import { until } from '../support/poll.js';
import { alive, stopAll } from '../support/proc.js';
import { fdCount, rssBytes } from '../support/tcp.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 60);
const REQUESTS = Number(process.env.SOAK_REQUESTS ?? 1_000_000);
const report = (line: string) => console.log(`# soak: ${line}`);

/** The live direct children of a process (arr's instances), from /proc/PID/stat's ppid. */
function childPids(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(ppid) === parent && state !== 'Z') pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('soak', { timeout: (SECONDS * 6 + 600) * 1000 }, () => {
  let arr: ArrUnderTest;
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it(`200 keep-alive clients for ${SECONDS} s: no errors, every answer from the right app`, async () => {
    arr = await startArrWith([
      helloApp('one', [{ host: 'one.localhost', ssl: 'allowed' }]),
      helloApp('two', [{ host: 'two.localhost', ssl: 'allowed' }]),
    ]);
    const [a, b] = await Promise.all([
      load({
        port: arr.port,
        host: 'one.localhost',
        connections: 100,
        durationMs: SECONDS * 1000,
        expect: /^hello from one /,
      }),
      load({
        port: arr.port,
        host: 'two.localhost',
        connections: 100,
        durationMs: SECONDS * 1000,
        expect: /^hello from two /,
      }),
    ]);
    for (const r of [a, b]) {
      report(
        `${r.requests} requests in ${r.seconds.toFixed(1)} s (${(r.requests / r.seconds).toFixed(0)}/s), statuses ${JSON.stringify(r.statuses)}, errors ${r.errors}, wrong app ${r.wrong}`,
      );
      assert.equal(r.errors, 0);
      assert.equal(r.wrong, 0);
      assert.deepEqual(Object.keys(r.statuses), ['200']);
    }
  });

  it(`2,000 WebSockets held for ${SECONDS} s, every ping answered`, async () => {
    const fdsBefore = fdCount(arr.proc.pid);
    const sockets: WebSocket[] = [];
    let pongs = 0;
    for (let i = 0; i < 2000; i++) {
      const ws = new WebSocket(`ws://127.0.0.1:${arr.port}/ws`, {
        headers: { host: i % 2 ? 'one.localhost' : 'two.localhost' },
      });
      ws.on('pong', () => pongs++);
      ws.on('error', () => {});
      sockets.push(ws);
      if (i % 100 === 99)
        await until(
          'a batch to open',
          () => sockets.every((s) => s.readyState !== WebSocket.CONNECTING) || undefined,
        );
    }
    assert.equal(sockets.filter((s) => s.readyState === WebSocket.OPEN).length, 2000);
    const rounds = Math.max(1, Math.floor(SECONDS / 5));
    for (let round = 1; round <= rounds; round++) {
      for (const s of sockets) s.ping();
      await until(`round ${round} of pongs`, () => pongs >= round * 2000 || undefined, { timeoutMs: 30_000 });
      const t = Date.now() + 5000;
      await until('5 s to pass', () => Date.now() >= t || undefined, { timeoutMs: 6000, intervalMs: 250 });
    }
    report(
      `2000 WebSockets, ${pongs} pongs over ${rounds} rounds; arr fds ${fdsBefore} -> ${fdCount(arr.proc.pid)}, rss ${(rssBytes(arr.proc.pid) / 1048576).toFixed(0)} MB`,
    );
    for (const s of sockets) s.close();
    await until(
      'the WebSockets to close',
      () => sockets.every((s) => s.readyState === WebSocket.CLOSED) || undefined,
      { timeoutMs: 30_000 },
    );
    await until(
      'arr to let go of their descriptors',
      () => fdCount(arr.proc.pid) <= fdsBefore + 10 || undefined,
      { timeoutMs: 15_000 },
    );
  });

  it(`instances killed at random during ${SECONDS} s of load: every request answered, nothing leaked`, async () => {
    const fdsBefore = fdCount(arr.proc.pid);
    const deadline = Date.now() + SECONDS * 1000;
    const killed: number[] = [];
    const killer = (async () => {
      while (Date.now() < deadline) {
        const t = Date.now() + 2000 + Math.random() * 2000;
        await until('a pause', () => Date.now() >= t || undefined, { timeoutMs: 4000, intervalMs: 100 });
        const r = await fetchVia(
          arr.port,
          Math.random() < 0.5 ? 'one.localhost' : 'two.localhost',
          false,
        ).catch(() => undefined);
        if (r?.status === 200) {
          const pid = pidOf(r);
          try {
            process.kill(pid, 'SIGKILL');
            killed.push(pid);
          } catch {
            // already replaced
          }
        }
      }
    })();
    const [a, b] = await Promise.all([
      load({
        port: arr.port,
        host: 'one.localhost',
        connections: 50,
        durationMs: SECONDS * 1000,
        expect: /^hello from one /,
      }),
      load({
        port: arr.port,
        host: 'two.localhost',
        connections: 50,
        durationMs: SECONDS * 1000,
        expect: /^hello from two /,
      }),
      killer,
    ]);
    for (const r of [a, b]) {
      const failed = r.requests - (r.statuses[200] ?? 0);
      report(
        `with ${killed.length} kills: ${r.requests} requests, statuses ${JSON.stringify(r.statuses)}, transport errors ${r.errors}, failure rate ${((failed / r.requests) * 100).toFixed(3)}%`,
      );
      assert.equal(r.errors, 0, 'every request got an answer');
      assert.equal(r.wrong, 0);
      assert.ok(failed / r.requests < 0.05, 'under 5% failed');
    }
    await until('killed instances to be gone', () => killed.every((p) => !alive(p)) || undefined);
    assert.ok(childPids(arr.proc.pid).length <= 2, `arr has ${childPids(arr.proc.pid).length} instances`);
    await until('descriptors back', () => fdCount(arr.proc.pid) <= fdsBefore + 10 || undefined, {
      timeoutMs: 15_000,
    });
    report(`arr fds ${fdsBefore} -> ${fdCount(arr.proc.pid)}`);
  });

  it(`RSS after ${REQUESTS} requests within 20% of RSS after 10,000`, async () => {
    await load({ port: arr.port, host: 'one.localhost', connections: 50, requests: 10_000 });
    const early = rssBytes(arr.proc.pid);
    const r = await load({ port: arr.port, host: 'one.localhost', connections: 50, requests: REQUESTS });
    const late = rssBytes(arr.proc.pid);
    report(
      `rss ${(early / 1048576).toFixed(1)} MB after 10,000, ${(late / 1048576).toFixed(1)} MB after ${r.requests} more (${(r.requests / r.seconds).toFixed(0)}/s)`,
    );
    assert.equal(r.errors, 0);
    assert.ok(late <= early * 1.2, `RSS grew from ${early} to ${late}`);
  });
});
