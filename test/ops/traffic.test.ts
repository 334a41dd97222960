import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Traffic, WINDOW_SECONDS } from '../../src/ops/metrics/traffic.js';

// The dashboard's per-app ring, on a clock of the test's own: seconds close into the ring, quiet
// seconds are zeros, percentiles come from the second's histogram, silent apps are forgotten.

const T0 = 1_800_000_000; // a whole second, in seconds since the epoch

function traffic() {
  let ms = T0 * 1000;
  const t = new Traffic(() => ms);
  const at = (second: number) => {
    ms = (T0 + second) * 1000 + 500;
    t.tick();
  };
  return { t, at };
}

describe('Traffic', () => {
  it('counts requests, 5xx and latencies per second, and tells the last complete second', () => {
    const { t, at } = traffic();
    try {
      at(0);
      for (let i = 0; i < 98; i++) t.request('a', 200, 0.01);
      t.request('a', 502, 0.01);
      t.request('a', 503, 1.5);
      assert.equal(t.last('b'), undefined, 'an app without traffic has no ring');
      at(1);
      const last = t.last('a')!;
      assert.equal(last.requests, 100);
      assert.equal(last.errors, 2);
      // Bucket bounds are 19% apart: 10 ms reads as at most 11.9 ms, 1.5 s as at most 1.79 s.
      assert.ok(last.p50 >= 10 && last.p50 < 11.9, `p50 ${last.p50}`);
      assert.ok(last.p99 >= 10 && last.p99 < 11.9, `p99 ${last.p99} (the 99th of 100 is a 10 ms one)`);
      t.request('a', 200, 1.5);
      at(2);
      const slow = t.last('a')!;
      assert.equal(slow.requests, 1);
      assert.ok(slow.p50 >= 1500 && slow.p50 < 1790, `p50 ${slow.p50}`);
      assert.deepEqual([...t.active().keys()], ['a']);
      at(3);
      assert.deepEqual([...t.active().keys()], [], 'a quiet second');
    } finally {
      t.close();
    }
  });

  it('series: the window oldest first, quiet seconds as zeros, open WebSockets carried over', () => {
    const { t, at } = traffic();
    try {
      at(10);
      t.request('a', 200, 0.002);
      t.websocketOpened('a');
      at(11);
      t.request('a', 500, 0.002);
      t.request('a', 200, 0.002);
      at(15);
      t.websocketClosed('a');
      at(20);
      const s = t.series('a');
      assert.equal(s.requests.length, WINDOW_SECONDS);
      assert.equal(s.start, T0 + 20 - WINDOW_SECONDS);
      const i = (second: number) => second - (20 - WINDOW_SECONDS);
      assert.deepEqual(s.requests.slice(i(9), i(20)), [0, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
      assert.deepEqual(s.errors.slice(i(9), i(20)), [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
      assert.deepEqual(s.websockets.slice(i(9), i(20)), [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
      assert.ok(s.p50[i(10)]! > 0 && s.p50[i(12)] === 0);
      assert.equal(
        s.requests.reduce((a, b) => a + b, 0),
        3,
      );
      // Later than the window: nothing of it is left.
      at(20 + WINDOW_SECONDS + 5);
      assert.equal(
        t.series('a').requests.reduce((a, b) => a + b, 0),
        0,
      );
    } finally {
      t.close();
    }
  });

  it('forgets an app silent for a whole window, not one with an open WebSocket', () => {
    const { t, at } = traffic();
    try {
      at(0);
      t.request('quiet', 200, 0.001);
      t.websocketOpened('held');
      at(1);
      assert.equal(t.size, 2);
      at(WINDOW_SECONDS + 5);
      assert.equal(t.size, 1, 'quiet is forgotten');
      assert.equal(t.last('held')!.websockets, 1);
      t.websocketClosed('held');
      t.websocketClosed('held'); // one close too many does not go below 0
      at(WINDOW_SECONDS + 6);
      assert.equal(t.last('held')!.websockets, 0);
    } finally {
      t.close();
    }
  });
});
