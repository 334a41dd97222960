import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

describe('Activator: lifecycle events in the log (in process)', () => {
  let h: ActivatorHarness;
  afterEach(() => h.close());

  /** The `event` fields logged so far, with the pid they name. */
  const events = () => h.logged.filter((l) => l.event !== undefined).map((l) => `${l.event} ${l.pid ?? '-'}`);

  it('tells an instance start, a deploy and the old instance replaced and exited, each beside its message', async () => {
    h = new ActivatorHarness();
    await h.setApps(appDoc('a', { revision: 1 }));
    await h.activator.activate(h.app('a'));
    const first = h.spawner.last.pid;
    await h.setApps(appDoc('a', { revision: 2 }));
    h.activator.redeployChanged();
    await h.settle();
    const second = h.spawner.last.pid;
    assert.deepEqual(events(), [
      `instance-starting ${first}`,
      `instance-ready ${first}`,
      `deploy-started ${first}`,
      `instance-starting ${second}`,
      `deploy-done ${second}`,
      `instance-replaced ${first}`,
      `instance-exited ${first}`,
    ]);
    const exited = h.logged.find((l) => l.event === 'instance-exited');
    assert.equal(exited?.signal, 'SIGTERM');
    assert.match(exited?.msg ?? '', /^a\[\d+\] exited with signal SIGTERM$/);
  });

  it('tells a failed deploy and an instance stopped', async () => {
    h = new ActivatorHarness();
    await h.setApps(appDoc('a', { revision: 1 }));
    await h.activator.activate(h.app('a'));
    const first = h.spawner.last.pid;
    h.spawner.onSpawn = (p) => p.exits(3);
    await h.setApps(appDoc('a', { revision: 2 }));
    h.activator.redeployChanged();
    await h.settle();
    assert.ok(events().includes(`deploy-failed ${first}`), events().join(', '));
    h.activator.evict('a', 'test');
    assert.equal(events().at(-1), `instance-stopping ${first}`);
    await h.settle();
    const stopped = h.logged.filter((l) => l.event === 'instance-exited' && l.pid === first);
    assert.deepEqual(
      stopped.map((l) => l.level),
      [30],
      'stopped by arr: info',
    );
  });

  it('warns of an instance that exited by itself while serving', async () => {
    h = new ActivatorHarness();
    await h.setApps(appDoc('a'));
    await h.activator.activate(h.app('a'));
    h.spawner.last.exits(1);
    await h.settle();
    const line = h.logged.find((l) => l.event === 'instance-exited');
    assert.equal(line?.level, 40);
    assert.match(line?.msg ?? '', /exited with code 1 while serving; its next request starts it again$/);
  });
});
