import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ActivationError } from '../../src/activation/target.js';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

describe('Activator: starting an instance (in process)', () => {
  let h: ActivatorHarness;
  beforeEach(async () => {
    h = new ActivatorHarness();
    await h.setApps(appDoc('a'), appDoc('b'));
  });
  afterEach(() => h.close());

  it('shares one start between concurrent activations', async () => {
    h.spawner.autoReady = false;
    const first = h.activator.activate(h.app('a'));
    const second = h.activator.activate(h.app('a'));
    await h.settle();
    assert.equal(h.spawner.started.length, 1, 'one process for both');
    assert.deepEqual(h.starts, ['a'], 'onStart told once');
    assert.equal(h.activator.localTarget('a'), undefined, 'not serving before it is ready');
    h.spawner.last.ready();
    const [x, y] = await Promise.all([first, second]);
    assert.equal(x.kind, 'local');
    assert.deepEqual(x.kind === 'local' && x.target, y.kind === 'local' && y.target);
    const target = h.activator.localTarget('a');
    assert.equal(target?.port, h.spawner.last.port);
    assert.deepEqual(await h.registry.addressesOf('a'), [{ host: '127.0.0.1', port: target?.port }]);
    // Once it serves, an activation is answered from memory: no second start.
    await h.activator.activate(h.app('a'));
    assert.equal(h.spawner.started.length, 1);
    assert.equal(h.activator.runningCount, 1);
  });

  it('gives the instances elsewhere when the app has its full count on other nodes', async () => {
    await h.registry.claim('a', { host: '10.0.0.2', port: 9000 });
    const activation = await h.activator.activate(h.app('a'));
    assert.deepEqual(activation, { kind: 'remote', machines: [{ host: '10.0.0.2', port: 9000 }] });
    assert.equal(h.spawner.started.length, 0, 'nothing started here');
  });

  it('stops its new instance and uses theirs when the cap was reached while it started', async () => {
    h.spawner.autoReady = false;
    const pending = h.activator.activate(h.app('a'));
    await h.settle();
    // Another node claimed the only slot meanwhile.
    await h.registry.claim('a', { host: '10.0.0.3', port: 9001 });
    h.spawner.last.ready();
    assert.deepEqual(await pending, { kind: 'remote', machines: [{ host: '10.0.0.3', port: 9001 }] });
    await h.settle();
    assert.deepEqual(h.spawner.last.signals.slice(0, 1), ['SIGTERM']);
    assert.equal(h.spawner.alive.length, 0);
    assert.equal(h.activator.localTarget('a'), undefined);
    assert.equal(h.ports.held.size, 0, 'its port is given back');
  });

  it('fails with 502 when the process exits before it is ready, and frees its port', async () => {
    h.spawner.autoReady = false;
    h.spawner.onSpawn = (p) => p.exits(1);
    await assert.rejects(h.activator.activate(h.app('a')), (err: unknown) => {
      assert.ok(err instanceof ActivationError);
      assert.equal(err.status, 502);
      assert.match(err.message, /exited \(code 1\) before it was ready/);
      return true;
    });
    await h.settle();
    assert.equal(h.ports.held.size, 0);
    assert.deepEqual(await h.registry.addressesOf('a'), []);
  });

  it('fails with 504 when the process is not ready in time, and stops it', async () => {
    h.spawner.autoReady = false;
    h.spawner.onSpawn = (p) => p.timesOut();
    await assert.rejects(h.activator.activate(h.app('a')), (err: unknown) => {
      assert.ok(err instanceof ActivationError);
      assert.equal(err.status, 504);
      return true;
    });
    await h.settle();
    assert.deepEqual(h.spawner.last.signals[0], 'SIGTERM');
    assert.equal(h.spawner.alive.length, 0);
  });

  it('fails with 503 when every port is taken', async () => {
    for (let i = 0; i < 100; i++) await h.ports.acquire();
    await assert.rejects(h.activator.activate(h.app('a')), (err: unknown) => {
      assert.ok(err instanceof ActivationError);
      assert.equal(err.status, 503);
      assert.equal(err.publicMessage, 'no capacity to start the application');
      return true;
    });
    assert.equal(h.spawner.started.length, 0);
  });

  it('evicts an instance that refused a connection, but not its replacement for a late error', async () => {
    const activation = await h.activator.activate(h.app('a'));
    assert.equal(activation.kind, 'local');
    const port = h.spawner.last.port;
    h.activator.evict('a', 'it refused a connection', port + 1);
    assert.equal(h.activator.localTarget('a')?.port, port, 'another port: ignored');
    h.activator.evict('a', 'it refused a connection', port);
    assert.equal(h.activator.localTarget('a'), undefined);
    await h.settle();
    assert.equal(h.spawner.alive.length, 0);
    assert.deepEqual(await h.registry.addressesOf('a'), []);
    assert.equal(h.gone.length, 1, 'its connections are told to go');
  });

  it('stops the instances of apps that left the registry', async () => {
    await h.activator.activate(h.app('a'));
    await h.activator.activate(h.app('b'));
    await h.setApps(appDoc('b'));
    h.activator.evictMissing(new Set(['b']));
    await h.settle();
    assert.equal(h.activator.localTarget('a'), undefined);
    assert.ok(h.activator.localTarget('b'));
    assert.equal(h.spawner.alive.length, 1);
  });

  it('refuses to start anything once stopping, and stops what runs', async () => {
    await h.activator.activate(h.app('a'));
    await h.activator.stopAll();
    assert.equal(h.spawner.alive.length, 0);
    await assert.rejects(h.activator.activate(h.app('b')), /stopping/);
  });

  it('sends SIGKILL after the stop timeout to a process that ignores SIGTERM', async () => {
    await h.setApps(appDoc('a', { stopTimeout: 3 }));
    await h.activator.activate(h.app('a'));
    const p = h.spawner.last;
    p.exitsOnTerm = false;
    h.activator.evict('a', 'test');
    await h.clock.advance(2_999);
    assert.deepEqual(p.signals, ['SIGTERM']);
    await h.clock.advance(1);
    assert.equal(p.signals[1], 'SIGKILL');
    assert.ok(p.hasExited);
  });
});
