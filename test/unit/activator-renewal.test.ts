// A renewal (health, recycle) replaces the instance as a deploy does, and every exit has its
// reason: in process, on the fake clock and spawner.
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { InstanceExit } from '../../src/activation/exit-reason.js';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

describe('Activator: renewals and exit reasons (in process)', () => {
  let h: ActivatorHarness;
  afterEach(() => h.close());
  const ended: InstanceExit[] = [];
  const harness = () => {
    ended.length = 0;
    return new ActivatorHarness({ events: { ended: (_app, exit) => ended.push(exit) } });
  };

  it('a health renewal: new requests wait for the new instance, the old one drains and ends as health', async () => {
    h = harness();
    await h.setApps(appDoc('a'));
    const first = await h.activator.activate(h.app('a'));
    assert.equal(first.kind, 'local');
    const old = h.spawner.last;
    const port = first.kind === 'local' ? first.target.port : 0;
    h.activator.renew('a', port, { reason: 'health', why: 'test' });
    assert.equal(h.activator.localTarget('a'), undefined, 'the unhealthy instance takes no new exchange');
    const next = await h.activator.activate(h.app('a'));
    assert.ok(next.kind === 'local' && next.target.port !== port, 'a new instance');
    await h.settle();
    assert.deepEqual(
      ended.map((e) => [e.pid, e.reason]),
      [[old.pid, 'health']],
    );
    assert.equal(h.deployed.length, 0, 'not counted as a deploy');
  });

  it('recycle, an idle stop, an eviction and a crash each end with their reason', async () => {
    h = harness();
    await h.setApps(appDoc('a'));
    let a = await h.activator.activate(h.app('a'));
    h.activator.renew('a', a.kind === 'local' ? a.target.port : 0, { reason: 'recycle', why: 'test' });
    await h.settle();
    a = await h.activator.activate(h.app('a'));
    h.activator.evict('a', 'test');
    await h.settle();
    await h.activator.activate(h.app('a'));
    h.spawner.last.exits(1);
    await h.settle();
    assert.deepEqual(
      ended.map((e) => e.reason),
      ['recycle', 'stopped', 'crash'],
    );
    assert.equal(ended.at(-1)?.code, 1);
  });
});
