import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, it } from 'node:test';
import { ActivationError, exchangeBegan, exchangeEnded, type Target } from '../../src/activation/target.js';
import type { App } from '../../src/registry/types.js';
import { ActivityBoard } from '../../src/workers/activity-board.js';
import { Channel, type Pipe } from '../../src/workers/channel.js';
import type { ActivateAnswer, ActivityRow } from '../../src/workers/messages.js';
import { WorkerInstances } from '../../src/workers/worker-instances.js';
import { until } from '../support/poll.js';

/** Two ends of an in-process pipe; messages are copied as the IPC pipe would (JSON). */
function pipePair(): [Pipe, Pipe] {
  const a = new EventEmitter() as EventEmitter & Pipe;
  const b = new EventEmitter() as EventEmitter & Pipe;
  a.send = (m: unknown) => setImmediate(() => b.emit('message', JSON.parse(JSON.stringify(m))));
  b.send = (m: unknown) => setImmediate(() => a.emit('message', JSON.parse(JSON.stringify(m))));
  return [a, b];
}

const app = (id: string) => ({ id, name: id }) as App;
const machine = { host: '127.0.0.1', port: 4001 };
const tick = () => new Promise((r) => setImmediate(r));

/** A primary that answers every ask for an instance with `answer`, counting the asks, and records notes. */
function primaryFor(answer: () => ActivateAnswer | Promise<ActivateAnswer>) {
  const [p, w] = pipePair();
  const primary = new Channel(p);
  const asks: string[] = [];
  const notes: { type: string; body: unknown }[] = [];
  primary.on<{ appId: string }>('activate', ({ appId }) => {
    asks.push(appId);
    return answer();
  });
  for (const type of ['activity', 'evict']) primary.on(type, (body) => notes.push({ type, body }));
  const gone: [Target, boolean][] = [];
  const instances = new WorkerInstances(new Channel(w), {
    askTimeoutMs: 1_000,
    summaryMs: 60_000,
    drainCheckMs: 5,
    gone: (t, graceful) => gone.push([t, graceful]),
  });
  return { primary, instances, asks, notes, gone };
}

const local = (port = 4001): ActivateAnswer => ({
  kind: 'local',
  target: { appId: 'a', machine: { ...machine, port }, host: '127.0.0.1', port },
});

describe("a worker's instances (WorkerInstances)", () => {
  it('asks the primary once for concurrent first exchanges, then answers from memory', async () => {
    const { instances, asks } = primaryFor(() => local());
    assert.equal(instances.localTarget('a'), undefined);
    const got = await Promise.all([1, 2, 3].map(() => instances.activate(app('a'))));
    assert.deepEqual(asks, ['a']);
    const target = instances.localTarget('a')!;
    assert.equal(target.port, 4001);
    for (const g of got) assert.equal(g.kind === 'local' && g.target, target);
    await instances.activate(app('a'));
    assert.deepEqual(asks, ['a'], 'no second ask');
    instances.close();
  });

  it("turns the primary's refusal into the ActivationError a client sees", async () => {
    const { instances } = primaryFor(() => ({
      kind: 'failed',
      failure: 'timeout',
      publicMessage: 'The service took too long to start.',
      detail: 'did not listen within 1 s',
    }));
    await assert.rejects(
      instances.activate(app('a')),
      (e) => e instanceof ActivationError && e.status === 504 && /too long/.test(e.publicMessage),
    );
    instances.close();
  });

  it('forgets a target the primary says is gone or unserved, and passes on an eviction', async () => {
    const { primary, instances, notes, gone } = primaryFor(() => local());
    await instances.activate(app('a'));
    primary.note('unserved', { appId: 'a', port: 4001 });
    await tick();
    assert.equal(instances.localTarget('a'), undefined);
    await instances.activate(app('a'));
    const t = instances.localTarget('a')!;
    primary.note('gone', { appId: 'a', port: 4001, graceful: false });
    await tick();
    assert.equal(instances.localTarget('a'), undefined);
    assert.deepEqual(gone, [[t, false]]);
    await instances.activate(app('a'));
    instances.evict('a', 'it refused a connection', 4001);
    assert.equal(instances.localTarget('a'), undefined);
    await tick();
    assert.deepEqual(notes.at(-1), {
      type: 'evict',
      body: { appId: 'a', why: 'it refused a connection', port: 4001 },
    });
    instances.close();
  });

  it('told of a drain, reports at once, then again when its last exchange there ends', async () => {
    const { primary, instances, notes } = primaryFor(() => local());
    const r = await instances.activate(app('a'));
    const t = r.kind === 'local' ? r.target : assert.fail();
    exchangeBegan(t);
    primary.note('gone', { appId: 'a', port: 4001, graceful: true });
    primary.note('gone', { appId: 'b', port: 5000, graceful: true }); // one it never had
    await tick();
    await tick();
    const rows = () => notes.filter((n) => n.type === 'activity').flatMap((n) => n.body as ActivityRow[]);
    assert.deepEqual(
      rows().map(([id, port, active]) => [id, port, active]),
      [
        ['a', 4001, 1],
        ['b', 5000, 0],
      ],
    );
    exchangeEnded(t);
    await until('the report of the drained instance', () => rows().length === 3);
    assert.deepEqual(rows().at(-1)!.slice(0, 3), ['a', 4001, 0]);
    instances.close();
  });

  it('sends a summary of what changed only', async () => {
    const { instances, notes } = primaryFor(() => local());
    const r = await instances.activate(app('a'));
    const t = r.kind === 'local' ? r.target : assert.fail();
    exchangeBegan(t);
    instances.summarise();
    instances.summarise(); // nothing changed: nothing sent
    exchangeEnded(t);
    instances.summarise();
    await tick();
    const sent = notes.filter((n) => n.type === 'activity').map((n) => (n.body as ActivityRow[])[0]!);
    assert.deepEqual(
      sent.map(([, , active, , exchanges]) => [active, exchanges]),
      [
        [1, 1],
        [0, 1],
      ],
    );
    instances.close();
  });
});

describe("the primary's activity board (ActivityBoard)", () => {
  const target = (): Target => ({
    appId: 'a',
    machine,
    host: '127.0.0.1',
    port: 4001,
    local: true,
    activity: { active: 0, lastActive: 1_000, exchanges: 0 },
  });

  it("adds up every worker's summary into the instance's activity", () => {
    const board = new ActivityBoard();
    const t = target();
    board.track(t);
    board.report(1, [['a', 4001, 2, 1_500, 10]]);
    board.report(2, [['a', 4001, 1, 2_000, 5]]);
    assert.deepEqual(t.activity, { active: 3, lastActive: 2_000, exchanges: 15 });
    board.report(1, [['a', 4001, 0, 3_000, 12]]);
    assert.deepEqual(t.activity, { active: 1, lastActive: 3_000, exchanges: 17 });
    board.report(1, [['b', 9, 5, 9_000, 9]]); // unknown: passed over
    assert.equal(board.size, 1);
  });

  it('a drain waits for every worker told of it, even one whose last summary said idle', () => {
    const board = new ActivityBoard();
    const t = target();
    board.track(t);
    board.report(1, [['a', 4001, 0, 1_500, 3]]);
    board.draining(t, [1, 2]);
    assert.equal(t.activity!.active, 2, 'both workers yet to answer');
    board.report(1, [['a', 4001, 1, 1_600, 4]]);
    assert.equal(t.activity!.active, 2, 'worker 1 busy, worker 2 silent');
    board.report(2, [['a', 4001, 0, 0, 0]]);
    assert.equal(t.activity!.active, 1);
    board.report(1, [['a', 4001, 0, 1_700, 4]]);
    assert.equal(t.activity!.active, 0, 'drained');
  });

  it('a worker that died counts no more in flight; what it served stays counted', () => {
    const board = new ActivityBoard();
    const t = target();
    board.track(t);
    board.report(1, [['a', 4001, 2, 1_500, 10]]);
    board.draining(t, [1, 2]);
    board.workerGone(1);
    board.workerGone(2);
    assert.deepEqual(t.activity, { active: 0, lastActive: 1_500, exchanges: 10 });
    board.forget(t);
    assert.equal(board.size, 0);
  });
});
