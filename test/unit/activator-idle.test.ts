import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { exchangeBegan, exchangeEnded } from '../../src/activation/target.js';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

describe('Activator: idle stop (in process, fake clock)', () => {
  let h: ActivatorHarness;
  beforeEach(async () => {
    h = new ActivatorHarness({ idleTimeoutMs: 10_000 });
    await h.setApps(appDoc('a'), appDoc('b'));
  });
  afterEach(() => h.close());

  it('stops an instance that served nothing for the idle timeout, and removes its entry', async () => {
    await h.activator.activate(h.app('a'));
    const p = h.spawner.last;
    await h.clock.advance(9_999);
    h.activator.stopIdle();
    assert.deepEqual(p.signals, []);
    await h.clock.advance(1);
    h.activator.stopIdle();
    assert.deepEqual(p.signals, ['SIGTERM']);
    assert.equal(h.activator.localTarget('a'), undefined);
    await h.settle();
    assert.deepEqual(await h.registry.addressesOf('a'), []);
    assert.equal(h.messages(/^stopping a\[\d+\]: idle for 10 s$/).length, 1);
    // The next request starts one again.
    assert.equal((await h.activator.activate(h.app('a'))).kind, 'local');
    assert.equal(h.spawner.alive.length, 1);
  });

  it('keeps an instance with an exchange in flight, and counts idleness from its end', async () => {
    const activation = await h.activator.activate(h.app('a'));
    assert.equal(activation.kind, 'local');
    const target = activation.target;
    exchangeBegan(target);
    await h.clock.advance(60_000);
    h.activator.stopIdle();
    assert.ok(h.activator.localTarget('a'), 'busy: kept');
    exchangeEnded(target); // stamps the end with the real time, which the fake clock started from
    h.activator.stopIdle(Date.now() + 9_000);
    assert.ok(h.activator.localTarget('a'));
    h.activator.stopIdle(Date.now() + 10_001);
    assert.equal(h.activator.localTarget('a'), undefined);
  });

  it('does nothing without an idle timeout', async () => {
    const quiet = new ActivatorHarness();
    await quiet.setApps(appDoc('a'));
    await quiet.activator.activate(quiet.app('a'));
    await quiet.clock.advance(3_600_000);
    quiet.activator.stopIdle();
    assert.ok(quiet.activator.localTarget('a'));
    await quiet.close();
  });
});
