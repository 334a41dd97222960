import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ActivationError } from '../../src/activation/target.js';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

/** spawn() refuses the executable, as for a missing file. */
function enoent(): NodeJS.ErrnoException {
  return Object.assign(new Error('spawn fake ENOENT'), { code: 'ENOENT' });
}

describe('Activator: restart back-off (in process, fake clock)', () => {
  let h: ActivatorHarness;
  beforeEach(async () => {
    h = new ActivatorHarness({ backoffBaseMs: 500, backoffMaxMs: 2_000, stableAfterMs: 2_000 });
    await h.setApps(appDoc('a'));
  });
  afterEach(() => h.close());

  /** One activation that fails because spawn() refuses; its error. */
  async function refusedStart(): Promise<ActivationError> {
    h.spawner.refuseNext = enoent();
    const err = await h.activator.activate(h.app('a')).catch((e: unknown) => e);
    assert.ok(err instanceof ActivationError, String(err));
    return err;
  }

  it('delays starts after failures in a row, doubling up to the maximum, and tells the client when to retry', async () => {
    const first = await refusedStart();
    assert.equal(first.status, 502);
    assert.match(first.message, /cannot run "fake" \(ENOENT\)/);
    assert.equal(h.ports.held.size, 0, 'the port is given back');
    // One failure: at once again. The second in a row: 500 ms.
    await refusedStart();
    const waiting = await h.activator.activate(h.app('a')).catch((e: unknown) => e);
    assert.ok(waiting instanceof ActivationError);
    assert.equal(waiting.status, 503);
    assert.equal(waiting.retryAfterSeconds, 1);
    assert.match(waiting.message, /restart back-off for 500 ms after 2 failures/);
    assert.deepEqual(h.activator.snapshot().failing, [
      { appId: 'a', failures: 2, until: h.clock.now() + 500 },
    ]);
    await h.clock.advance(499);
    await assert.rejects(h.activator.activate(h.app('a')), /back-off for 1 ms/);
    await h.clock.advance(1);
    // The third failure: 1 s; the fourth and later: the maximum, 2 s.
    await refusedStart();
    await h.clock.advance(999);
    await assert.rejects(h.activator.activate(h.app('a')), /back-off/);
    await h.clock.advance(1);
    await refusedStart();
    await h.clock.advance(1_999);
    await assert.rejects(h.activator.activate(h.app('a')), /back-off for 1 ms after 4 failures/);
    await h.clock.advance(1);
    // It works now: the failures are forgotten once it runs long enough.
    const ok = await h.activator.activate(h.app('a'));
    assert.equal(ok.kind, 'local');
    assert.deepEqual(h.activator.snapshot().failing, [], 'not shown while it has a process');
  });

  it('counts a crash soon after the start as a failure, and a long run clears them', async () => {
    await h.activator.activate(h.app('a'));
    h.spawner.last.exits(1);
    await h.settle();
    await h.activator.activate(h.app('a'));
    h.spawner.last.exits(1);
    await h.settle();
    assert.equal(h.activator.localTarget('a'), undefined);
    assert.deepEqual(
      h.activator.snapshot().failing.map((f) => f.failures),
      [2],
      'two crashes in a row',
    );
    await assert.rejects(h.activator.activate(h.app('a')), /back-off/);
    await h.clock.advance(500);
    await h.activator.activate(h.app('a'));
    await h.clock.advance(2_000); // a stable run
    h.spawner.last.exits(0);
    await h.settle();
    assert.deepEqual(h.activator.snapshot().failing, []);
    assert.deepEqual(await h.registry.addressesOf('a'), [], 'its entry went with it');
    // Started again at once.
    assert.equal((await h.activator.activate(h.app('a'))).kind, 'local');
  });
});
