// health and recycle decisions (renewal.ts) on a fake clock and a probe that answers as told.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InstanceWatch, type Renewal, recycleDue, type Watched } from '../../src/activation/renewal.js';

/** A watch on a fake clock; `answers` says what each probe gets (true: healthy). */
function harness(answers: boolean[]) {
  let now = 1_000_000;
  const probes: string[] = [];
  const renewed: { appId: string; port: number; renewal: Renewal }[] = [];
  const watch = new InstanceWatch({
    now: () => now,
    probe: async (port, path, timeoutMs) => {
      probes.push(`${port}${path} ${timeoutMs}`);
      return answers.shift() ?? true;
    },
    renew: (appId, port, renewal) => renewed.push({ appId, port, renewal }),
  });
  const tick = async (instances: Watched[], advanceMs: number) => {
    now += advanceMs;
    watch.tick(instances);
    await new Promise((r) => setImmediate(r)); // the probe's answer
  };
  return { tick, probes, renewed, now: () => now };
}

const health = { path: '/healthz', interval: 10, timeout: 2, failures: 3 };

describe('health checks and recycling (renewal.ts)', () => {
  it('probes every interval, and replaces after `failures` failures in a row, once', async () => {
    const h = harness([false, true, false, false, false, false]);
    const inst: Watched = { appId: 'a', port: 20001, health, startedAt: h.now(), exchanges: 0 };
    await h.tick([inst], 0); // first seen: no probe yet
    await h.tick([inst], 5_000); // half an interval: none
    assert.equal(h.probes.length, 0);
    await h.tick([inst], 5_000); // failure 1
    await h.tick([inst], 10_000); // success: the count starts again
    await h.tick([inst], 10_000); // 1
    await h.tick([inst], 10_000); // 2
    assert.equal(h.renewed.length, 0);
    await h.tick([inst], 10_000); // 3 in a row
    assert.deepEqual(h.probes[0], '20001/healthz 2000');
    assert.equal(h.probes.length, 5);
    assert.deepEqual(h.renewed, [
      {
        appId: 'a',
        port: 20001,
        renewal: { reason: 'health', why: '3 health checks of /healthz failed in a row' },
      },
    ]);
    await h.tick([inst], 10_000);
    assert.equal(h.renewed.length, 1, 'asked for once');
    assert.equal(h.probes.length, 5, 'no more probes of an instance being replaced');
  });

  it('a new instance on another port is watched afresh', async () => {
    const h = harness([false, false]);
    const one: Watched = {
      appId: 'a',
      port: 20001,
      health: { ...health, failures: 1 },
      startedAt: 0,
      exchanges: 0,
    };
    await h.tick([one], 0);
    await h.tick([one], 10_000);
    assert.equal(h.renewed.length, 1);
    const two = { ...one, port: 20002 };
    await h.tick([two], 0);
    assert.equal(h.renewed.length, 1, 'not probed before its interval');
    await h.tick([two], 10_000);
    assert.equal(h.renewed.length, 2);
  });

  it('recycles after requests, age or memory', () => {
    const w: Watched = { appId: 'a', port: 1, startedAt: 0, exchanges: 99, memory: () => 100 };
    assert.equal(recycleDue(w, { requests: 100 }, 1000), undefined);
    assert.equal(recycleDue({ ...w, exchanges: 100 }, { requests: 100 }, 1000), 'it served 100 requests');
    assert.equal(recycleDue(w, { age: 60 }, 59_999), undefined);
    assert.equal(recycleDue(w, { age: 60 }, 60_000), 'it has run for 60 s');
    assert.equal(recycleDue(w, { memory: 101 }, 0), undefined);
    assert.equal(recycleDue(w, { memory: 100 }, 0), 'it uses 100 bytes of memory');
  });

  it('recycle is asked for on the tick that finds it due', async () => {
    const h = harness([]);
    const inst: Watched = { appId: 'b', port: 20003, recycle: { requests: 10 }, startedAt: 0, exchanges: 10 };
    await h.tick([inst], 0);
    assert.deepEqual(h.renewed, [
      { appId: 'b', port: 20003, renewal: { reason: 'recycle', why: 'it served 10 requests' } },
    ]);
  });
});
