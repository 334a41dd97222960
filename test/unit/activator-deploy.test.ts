import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { afterEach, describe, it } from 'node:test';
import { exchangeBegan, exchangeEnded, type Target } from '../../src/activation/target.js';
import { ActivatorHarness, appDoc } from '../support/activator-harness.js';

describe('Activator: rolling replacement and drain (in process, fake clock)', () => {
  let h: ActivatorHarness;
  afterEach(() => h.close());

  /** A harness with app `a` at revision 1, serving. */
  async function serving(options = {}): Promise<Target> {
    h = new ActivatorHarness(options);
    await h.setApps(appDoc('a', { revision: 1 }));
    const activation = await h.activator.activate(h.app('a'));
    assert.equal(activation.kind, 'local');
    return activation.target;
  }

  /** The registry gets revision `n` of app `a`, and the activator is told. */
  async function bump(n: number): Promise<void> {
    await h.setApps(appDoc('a', { revision: n }));
    h.activator.redeployChanged();
    await h.settle();
  }

  it('starts the new version beside the old, moves the slot, and stops the old one once idle', async () => {
    const old = await serving();
    const oldProc = h.spawner.last;
    await bump(2);
    const next = h.spawner.last;
    assert.notEqual(next, oldProc);
    assert.equal(h.activator.localTarget('a')?.port, next.port, 'new exchanges go to the new instance');
    assert.deepEqual(
      await h.registry.addressesOf('a'),
      [{ host: '127.0.0.1', port: next.port }],
      'one slot, moved',
    );
    assert.deepEqual(h.deployed, [{ app: 'a', result: 'replaced', detail: undefined }]);
    assert.deepEqual(oldProc.signals.slice(0, 1), ['SIGTERM'], 'nothing in flight: stopped at once');
    assert.ok(oldProc.hasExited);
    assert.ok(h.gone.includes(old), "the old instance's connections are told to go");
    // Nothing more to do for the same version.
    h.activator.redeployChanged();
    await h.settle();
    assert.equal(h.spawner.started.length, 2);
  });

  it('drains: the old instance finishes its exchange in flight first', async () => {
    const old = await serving();
    const oldProc = h.spawner.last;
    exchangeBegan(old);
    await bump(2);
    assert.equal(h.activator.localTarget('a')?.port, h.spawner.last.port);
    const states = () => h.activator.snapshot().instances.map((i) => `${i.pid}:${i.state}`);
    assert.deepEqual(states(), [`${oldProc.pid}:draining`, `${h.spawner.last.pid}:ready`]);
    await h.clock.advance(5_000);
    assert.deepEqual(oldProc.signals, [], 'still serving its exchange');
    exchangeEnded(old);
    await h.clock.advance(25);
    assert.deepEqual(oldProc.signals.slice(0, 1), ['SIGTERM']);
    assert.deepEqual(states(), [`${h.spawner.last.pid}:ready`]);
  });

  it('stops a draining instance at the end of the drain period, closing its WebSockets', async () => {
    const old = await serving({ drainMs: 1_000 });
    const oldProc = h.spawner.last;
    exchangeBegan(old);
    const socket = new PassThrough();
    old.webSockets?.add(socket);
    await bump(2);
    await h.clock.advance(975);
    assert.deepEqual(oldProc.signals, []);
    await h.clock.advance(25);
    await h.settle();
    assert.deepEqual(oldProc.signals.slice(0, 1), ['SIGTERM']);
    assert.ok(socket.writableEnded, 'its WebSocket is ended');
    assert.equal(h.messages(/WebSockets still open after the drain are closed/).length, 1);
  });

  it('keeps a replaced instance for the whole linger in a farm, even when idle here', async () => {
    await serving({ drainMs: 500, lingerMs: 2_000 });
    const oldProc = h.spawner.last;
    await bump(2);
    await h.clock.advance(1_975);
    assert.deepEqual(oldProc.signals, [], 'other nodes may still send to it');
    await h.clock.advance(25);
    assert.deepEqual(oldProc.signals.slice(0, 1), ['SIGTERM']);
  });

  it('ends a farm drain after the linger once no connection to the old instance is open', async () => {
    const old = await serving({ drainMs: 30_000, lingerMs: 2_000 });
    const oldProc = h.spawner.last;
    h.spawner.connections.set(oldProc.port, 1); // another node's WebSocket, unseen by the counters
    await bump(2);
    assert.deepEqual(h.drained, [old], 'its idle connections are told to go at the switch');
    await h.clock.advance(5_000);
    assert.deepEqual(oldProc.signals, [], 'a connection is open: still draining');
    h.spawner.connections.set(oldProc.port, 0);
    await h.clock.advance(250);
    assert.deepEqual(oldProc.signals.slice(0, 1), ['SIGTERM'], 'the last connection closed: stopped');
  });

  it('keeps the old version serving when the new one fails, and tries again after the back-off', async () => {
    await serving({ backoffBaseMs: 500 });
    const oldProc = h.spawner.last;
    let failing = 2;
    h.spawner.onSpawn = (p) => {
      if (failing-- > 0) p.exits(1);
    };
    await bump(2);
    assert.equal(h.deployed.length, 1);
    assert.equal(h.deployed[0]?.result, 'failed');
    assert.match(h.deployed[0]?.detail ?? '', /exited \(code 1\) before it was ready/);
    assert.equal(h.activator.localTarget('a')?.port, oldProc.port, 'the old version serves');
    assert.deepEqual(oldProc.signals, []);
    // The first failure: again at once; the second: after 500 ms.
    await h.clock.advance(0);
    assert.equal(h.deployed.length, 2);
    assert.equal(h.spawner.started.length, 3);
    await h.clock.advance(499);
    assert.equal(h.spawner.started.length, 3, 'waits for the back-off');
    await h.clock.advance(1);
    assert.equal(h.deployed.at(-1)?.result, 'replaced');
    assert.equal(h.activator.localTarget('a')?.port, h.spawner.last.port);
    assert.ok(oldProc.hasExited);
  });

  it('sends a request that finds no instance while its successor starts to that successor, not a third', async () => {
    await serving();
    const oldProc = h.spawner.last;
    h.spawner.autoReady = false;
    await bump(2);
    const next = h.spawner.last;
    oldProc.exits(1); // the old one crashes meanwhile
    await h.settle();
    assert.equal(h.activator.localTarget('a'), undefined);
    const waiting = h.activator.activate(h.app('a'));
    next.ready();
    const activation = await waiting;
    assert.equal(activation.kind === 'local' && activation.target.port, next.port);
    assert.equal(h.spawner.started.length, 2, 'no third instance');
  });

  it('replaces again when the app changes during a replacement', async () => {
    await serving();
    h.spawner.autoReady = false;
    await bump(2);
    const second = h.spawner.last;
    await bump(3); // while revision 2 starts
    assert.equal(h.spawner.started.length, 2, 'one extra instance at a time');
    h.spawner.autoReady = true;
    second.ready();
    await h.settle();
    await h.clock.advance(25);
    assert.equal(h.spawner.started.length, 3);
    assert.equal(h.spawner.alive.length, 1);
    assert.equal(h.activator.localTarget('a')?.port, h.spawner.last.port);
    assert.deepEqual(
      h.deployed.map((d) => d.result),
      ['replaced', 'replaced'],
    );
  });
});
