import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ObjectId } from '../../src/registry/bson.js';
import { TableSender, WorkerRegistry } from '../../src/workers/worker-registry.js';

/** An app document as the farm's copy holds it (an object per document, kept while it is unchanged). */
function appDoc(n: number, host = `t${n}.localhost`) {
  return {
    doc: {
      _id: new ObjectId(n.toString(16).padStart(24, '0')),
      name: `t${n}`,
      process: { executable: '/bin/true', args: [] },
      hosts: [{ host, ssl: 'allowed' }],
      instances: 1,
      machines: [],
    } as Record<string, unknown>,
  };
}

const idOf = (d: { doc: Record<string, unknown> }) => (d.doc._id as ObjectId).toHexString();

/** The app table sent to a worker whole, then as changes: what the primary's TableSender and a WorkerRegistry do. */
describe('the app table sent to workers', () => {
  it('a change sends the documents that changed, and the worker keeps the rest as they were', () => {
    const sender = new TableSender();
    const docs = Array.from({ length: 50 }, (_, i) => appDoc(i + 1));
    sender.update(docs);
    const worker = new WorkerRegistry('mongo', () => {});
    worker.take(sender.full());
    assert.equal([...worker.apps()].length, 50);
    const kept = worker.app(idOf(docs[0]!));
    assert.ok(kept);

    // One app's host changes, one is deleted, one is inserted: the farm's copy replaces those objects only.
    const changed = appDoc(2, 'moved.localhost');
    const next = [docs[0]!, changed, ...docs.slice(3), appDoc(51)];
    const delta = JSON.parse(sender.update(next)) as { order: number[]; add: [number, unknown][] };
    assert.equal(delta.add.length, 2, 'the changed document and the new one travel, not 50');
    assert.equal(delta.order.length, 50);

    const report = worker.take(JSON.stringify(delta));
    assert.equal(report.apps, 50);
    assert.equal(worker.route('moved.localhost')?.app.id, idOf(changed));
    assert.equal(worker.route('t2.localhost'), undefined);
    assert.equal(worker.route('t3.localhost'), undefined, 'the deleted app is gone');
    assert.equal(worker.route('t51.localhost')?.app.id, idOf(next.at(-1)!));
    // The apps that did not change are the objects validated before: not validated again.
    assert.equal(worker.app(idOf(docs[0]!)), kept);
  });

  it('a worker that starts later is given the whole table as it is now', () => {
    const sender = new TableSender();
    const docs = Array.from({ length: 5 }, (_, i) => appDoc(i + 1));
    sender.update(docs);
    sender.update([...docs.slice(1), appDoc(9)]);
    const late = new WorkerRegistry('mongo', () => {});
    late.take(sender.full());
    assert.deepEqual([...late.apps()].map((a) => a.name).sort(), ['t2', 't3', 't4', 't5', 't9']);
  });

  it('a change that names a document the worker never had is refused, and the table in place stays', () => {
    const worker = new WorkerRegistry('mongo', () => {});
    const sender = new TableSender();
    worker.take(sender.update([appDoc(1)]));
    assert.throws(() => worker.take(JSON.stringify({ order: [1, 77], add: [] })), /never had/);
    assert.equal(worker.route('t1.localhost')?.app.name, 't1');
  });
});
