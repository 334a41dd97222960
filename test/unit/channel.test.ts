import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { Channel, ChannelError, type Pipe } from '../../src/workers/channel.js';

/** Two ends of an in-process pipe; messages are copied as the IPC pipe would (JSON). */
function pipePair(): [Pipe & { connected: boolean }, Pipe & { connected: boolean }] {
  const a = new EventEmitter() as EventEmitter & Pipe & { connected: boolean };
  const b = new EventEmitter() as EventEmitter & Pipe & { connected: boolean };
  a.connected = b.connected = true;
  a.send = (m: unknown) => setImmediate(() => b.emit('message', JSON.parse(JSON.stringify(m))));
  b.send = (m: unknown) => setImmediate(() => a.emit('message', JSON.parse(JSON.stringify(m))));
  return [a, b];
}

describe('primary-worker channel', () => {
  it('delivers notes and answers asks, from a value or a promise', async () => {
    const [p, w] = pipePair();
    const primary = new Channel(p);
    const worker = new Channel(w);
    const seen: unknown[] = [];
    worker.on('gone', (body) => seen.push(body));
    primary.on<{ app: string }>('instance', async ({ app }) => ({ app, port: 9000 }));
    primary.on('count', () => 3);
    worker.note('ignored-by-nobody');
    primary.note('gone', { app: 'a' });
    assert.deepEqual(await worker.ask('instance', { app: 'a' }, 1_000), { app: 'a', port: 9000 });
    assert.equal(await worker.ask('count', undefined, 1_000), 3);
    assert.deepEqual(seen, [{ app: 'a' }]);
  });

  it('fails an ask whose handler throws, or that nothing answers, with the reason', async () => {
    const [p, w] = pipePair();
    new Channel(p).on('instance', () => {
      throw new Error('app "a" has no program');
    });
    const worker = new Channel(w);
    await assert.rejects(
      worker.ask('instance', {}, 1_000),
      (e) => e instanceof ChannelError && /no program/.test(e.message),
    );
    await assert.rejects(worker.ask('what', {}, 1_000), /nothing answers "what"/);
  });

  it('fails an ask after its timeout, and every waiting ask when the pipe is gone or the channel closes', async () => {
    const [p, w] = pipePair();
    new Channel(p).on('slow', () => new Promise(() => {}));
    const worker = new Channel(w);
    await assert.rejects(worker.ask('slow', {}, 20), /within 20 ms/);
    const waiting = worker.ask('slow', {}, 60_000);
    worker.close();
    await assert.rejects(waiting, /closed/);
    const other = new Channel(w);
    w.connected = false;
    await assert.rejects(other.ask('slow', {}, 60_000), /gone/);
    assert.equal(other.note('gone', {}), false);
  });

  it('leaves messages that are not its own alone', async () => {
    const [p, w] = pipePair();
    const primary = new Channel(p);
    let calls = 0;
    const ownArrived = new Promise<void>((resolve) =>
      primary.on('x', () => {
        calls++;
        resolve();
      }),
    );
    w.send({ type: 'x', kind: 'note' });
    w.send('x');
    w.send(null);
    new Channel(w).note('x'); // sent last: when it has arrived, the others have been read
    await ownArrived;
    assert.equal(calls, 1);
  });

  it("takes the pipe's error (a send to a process that just exited) as the end of the channel", async () => {
    const [p, w] = pipePair();
    new Channel(p).on('slow', () => new Promise(() => {}));
    const worker = new Channel(w);
    const waiting = worker.ask('slow', {}, 60_000);
    (w as unknown as EventEmitter).emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
    await assert.rejects(waiting, /closed/);
    assert.equal(worker.note('x'), false);
  });
});
