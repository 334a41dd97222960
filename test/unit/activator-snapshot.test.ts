import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

describe('Activator: snapshot and instance states (in process)', () => {
  let h: ActivatorHarness;
  beforeEach(async () => {
    h = new ActivatorHarness();
    await h.setApps(appDoc('a'));
  });
  afterEach(() => h.close());

  it('shows each process as starting, ready, then stopping, and changes its version each time', async () => {
    h.spawner.autoReady = false;
    const versions = [h.activator.version];
    const pending = h.activator.activate(h.app('a'));
    await h.settle();
    const p = h.spawner.last;
    const state = () => h.activator.snapshot().instances.map((i) => i.state);
    assert.deepEqual(state(), ['starting']);
    assert.deepEqual(h.activator.snapshot().instances[0], {
      appId: 'a',
      pid: p.pid,
      port: p.port,
      state: 'starting',
      startedAt: h.clock.now(),
    });
    versions.push(h.activator.version);
    p.ready();
    await pending;
    assert.deepEqual(state(), ['ready']);
    versions.push(h.activator.version);
    p.exitsOnTerm = false;
    h.activator.evict('a', 'test');
    assert.deepEqual(state(), ['stopping']);
    versions.push(h.activator.version);
    p.exits(0);
    await h.settle();
    assert.deepEqual(state(), []);
    versions.push(h.activator.version);
    assert.equal(new Set(versions).size, versions.length, `versions all differ: ${versions}`);
  });
});
