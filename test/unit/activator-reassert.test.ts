import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

describe('Activator: reasserting registry entries (in process)', () => {
  let h: ActivatorHarness;
  beforeEach(async () => {
    h = new ActivatorHarness();
    await h.setApps(appDoc('a'));
  });
  afterEach(() => h.close());

  it('puts back the entry of a running instance that went missing', async () => {
    await h.activator.activate(h.app('a'));
    const port = h.spawner.last.port;
    await h.registry.release('a', { host: '127.0.0.1', port });
    await h.activator.reassert();
    assert.deepEqual(await h.registry.addressesOf('a'), [{ host: '127.0.0.1', port }]);
    assert.equal(h.messages(/its entry was missing; put back/).length, 1);
    assert.deepEqual(h.spawner.last.signals, []);
  });

  it('stops the instance when its entry went missing and the cap is full meanwhile', async () => {
    await h.activator.activate(h.app('a'));
    const p = h.spawner.last;
    await h.registry.release('a', { host: '127.0.0.1', port: p.port });
    await h.registry.claim('a', { host: '10.0.0.2', port: 9000 });
    await h.activator.reassert();
    assert.equal(h.activator.localTarget('a'), undefined);
    assert.deepEqual(p.signals.slice(0, 1), ['SIGTERM']);
    assert.deepEqual(
      await h.registry.addressesOf('a'),
      [{ host: '10.0.0.2', port: 9000 }],
      "the other node's entry stays",
    );
  });

  it('leaves listed entries alone', async () => {
    await h.activator.activate(h.app('a'));
    const before = await h.registry.addressesOf('a');
    await h.activator.reassert();
    assert.deepEqual(await h.registry.addressesOf('a'), before);
    assert.deepEqual(h.messages(/entry was missing/), []);
  });
});
