import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { type Collection, type Document, MongoClient } from 'mongodb';
import {
  APPS_COLLECTION,
  CHANGES_COLLECTION,
  databaseName,
  MongoRegistry,
} from '../../src/registry/mongo-registry.js';
import type { InstanceAddress } from '../../src/registry/types.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';

const app = (id: string, host = `${id}.test`, instances = 1): Document => ({
  _id: id,
  process: { executable: 'node', args: ['x.js'] },
  hosts: [{ host, ssl: 'none' }],
  instances,
});
/** What this process read so far, from every descriptor: the replies to the registry's commands, for one. */
const bytesRead = () => Number(/^rchar: (\d+)$/m.exec(readFileSync('/proc/self/io', 'utf8'))?.[1]);
const m = (n: number): InstanceAddress => ({ host: `10.0.0.${n}`, port: 8000 + n });

describe('MongoRegistry: reading what changed', { skip: mongoUnavailable() }, () => {
  let server: MongoServer;
  let admin: MongoClient;
  let dbs = 0;
  const open: MongoRegistry[] = [];
  before(async () => {
    server = await startMongo('changes');
    admin = await new MongoClient(server.url).connect();
  });
  after(async () => {
    await Promise.all(open.map((r) => r.close()));
    await admin?.close();
    await server?.stop();
  });

  /** A fresh database holding `docs`, and `n` registries on it, loaded. */
  async function farm(docs: Document[], n = 2): Promise<{ apps: Collection; nodes: MongoRegistry[] }> {
    const url = server.database(`c${++dbs}`);
    const apps = admin.db(databaseName(url)).collection(APPS_COLLECTION);
    if (docs.length > 0) await apps.insertMany(docs);
    const nodes = Array.from({ length: n }, () => new MongoRegistry(url, { serverSelectionTimeoutMS: 5000 }));
    open.push(...nodes);
    for (const node of nodes) await node.load();
    return { apps, nodes };
  }

  /** The server's count of one command so far (its serverStatus counters). */
  async function commands(name: string): Promise<number> {
    const status = await admin.db('admin').command({ serverStatus: 1 });
    return Number(status.metrics?.commands?.[name]?.total ?? 0);
  }

  /**
   * The reads and writes the server answered while `task` ran (not serverStatus, nor the
   * handshakes of the connections the driver opens as it needs them, which FerretDB counts as
   * `unknown`).
   */
  async function commandsDuring(task: () => Promise<unknown>): Promise<{ commands: number; bytes: number }> {
    const total = async () => {
      const status = await admin.db('admin').command({ serverStatus: 1 });
      const all = status.metrics?.commands as Record<string, { total?: number }>;
      return Object.entries(all)
        .filter(([name]) =>
          ['find', 'findAndModify', 'aggregate', 'count', 'insert', 'update', 'delete'].includes(name),
        )
        .reduce((n, [, c]) => n + Number(c.total ?? 0), 0);
    };
    const before = await total();
    const read0 = bytesRead();
    await task();
    const bytes = bytesRead() - read0;
    return { commands: (await total()) - before, bytes };
  }

  it('a beat, the chores of a node that does not hold them and a claim cost the same however large the farm', async () => {
    const cost = async (nodeCount: number, appCount: number) => {
      const docs = Array.from({ length: appCount }, (_, i) => app(`a${i}`, `a${i}.test`, 2));
      const { nodes } = await farm(docs, 2);
      const [one, two] = nodes as [MongoRegistry, MongoRegistry];
      for (let n = 0; n < nodeCount; n++) await one.beat(`10.1.0.${n}`, 60_000);
      for (let i = 1; i < appCount; i++) await one.claim(`a${i}`, m(i % 250));
      await one.holdChores('10.1.0.0', 60_000);
      await two.refresh();
      return {
        beat: await commandsDuring(async () => {
          await two.beat('10.1.0.1', 60_000);
          await two.holdChores('10.1.0.1', 60_000);
        }),
        claim: await commandsDuring(() => two.claim('a0', m(1))),
        poll: await commandsDuring(() => two.refresh()),
      };
    };
    const small = await cost(2, 2);
    const large = await cost(30, 60);
    for (const k of ['beat', 'claim', 'poll'] as const) {
      assert.equal(large[k].commands, small[k].commands, `${k}: commands`);
      // A read of the 30 nodes' records or of the 60 apps would be kilobytes.
      assert.ok(
        large[k].bytes < small[k].bytes + 500,
        `${k}: ${large[k].bytes} bytes, against ${small[k].bytes}`,
      );
    }
    assert.equal(small.beat.commands, 2, 'one write and one lookup');
  });

  it('an idle refresh is two lookups, and reads nothing else', async () => {
    const { nodes } = await farm([app('a'), app('b'), app('c')]);
    await nodes[1]!.bumpRevision('a'); // a journal entry: the lookup of the last one read is made too
    assert.equal((await nodes[0]!.refresh()).changed, true);
    const [finds, aggregates] = [await commands('find'), await commands('aggregate')];
    for (let i = 0; i < 10; i++) {
      const report = await nodes[0]!.refresh();
      assert.equal(report.changed, false);
      assert.equal(report.instancesChanged, false);
    }
    assert.equal((await commands('find')) - finds, 20);
    assert.equal((await commands('aggregate')) - aggregates, 0);
  });

  it("another node's claims, moves and releases reach a node at its next refresh, as lookups of what changed", async () => {
    const { nodes } = await farm([app('a', 'a.test', 2), app('b')]);
    const [one, two] = nodes as [MongoRegistry, MongoRegistry];
    await two.refresh();
    assert.equal((await one.claim('a', m(1))).granted, true);
    const finds = await commands('find');
    const report = await two.refresh();
    assert.equal(report.instancesChanged, true);
    assert.equal(report.changed, false, 'no app changed');
    assert.deepEqual(two.knownAddresses().get('a'), [m(1)]);
    // The entry, the slot it names, the end of the journal.
    assert.ok((await commands('find')) - finds <= 3, `${(await commands('find')) - finds} finds`);
    assert.equal(await one.move('a', m(1), m(2)), true);
    await two.refresh();
    assert.deepEqual(two.knownAddresses().get('a'), [m(2)]);
    await one.release('a', m(2));
    await two.refresh();
    assert.equal(two.knownAddresses().get('a'), undefined);
  });

  it('arr restart and arr import reach every node through the journal', async () => {
    const { nodes } = await farm([app('a'), app('b')]);
    const [one, two] = nodes as [MongoRegistry, MongoRegistry];
    await two.refresh();
    assert.equal(await one.bumpRevision('a'), 1);
    let report = await two.refresh();
    assert.equal(report.changed, true);
    assert.equal(two.app('a')?.revision, 1);
    await one.upsertApps([app('c'), app('b', 'b2.test')]);
    report = await two.refresh();
    assert.equal(report.changed, true);
    assert.equal(two.route('c.test')?.app.id, 'c');
    assert.equal(two.route('b2.test')?.app.id, 'b');
    assert.equal(two.route('b.test'), undefined);
  });

  it('edits made through the driver are found by an audit, and only then reach the nodes', async () => {
    const { apps, nodes } = await farm([app('a'), app('b'), app('c')]);
    const [one, two] = nodes as [MongoRegistry, MongoRegistry];
    const first = await one.audit();
    assert.equal(first.first, true, 'no digest yet: every node reads everything again');
    assert.equal((await two.refresh()).changed, false, 'read again, nothing differs');
    assert.equal((await one.audit()).changed, 0, 'nothing changed since');

    await apps.insertOne(app('d'));
    await apps.updateOne({ _id: 'a' } as Document, { $set: { hosts: [{ host: 'a2.test', ssl: 'none' }] } });
    await apps.deleteOne({ _id: 'b' } as Document);
    assert.equal((await two.refresh()).changed, false, 'no journal entry names them yet');
    assert.equal(two.route('d.test'), undefined);
    // A reload (SIGHUP) reads everything: no audit needed.
    assert.equal((await two.refresh(true)).changed, true);
    assert.equal(two.route('d.test')?.app.id, 'd');

    const audit = await one.audit();
    assert.equal(audit.changed, 3);
    const report = await one.refresh();
    assert.equal(report.changed, true);
    assert.equal(report.apps, 3);
    assert.equal(one.route('d.test')?.app.id, 'd');
    assert.equal(one.route('a2.test')?.app.id, 'a');
    assert.equal(one.route('a.test'), undefined);
    assert.equal(one.route('b.test'), undefined);
    // `machines` is arr's mirror of the slots: writing it is no edit.
    assert.equal((await one.claim('c', m(3))).granted, true);
    const again = await one.audit();
    assert.equal(again.changed, 1, 'the slot document only');
  });

  it("the server's write counter moves for the driver's writes and for none of arr's", async () => {
    const { apps, nodes } = await farm([app('a', 'a.test', 2)]);
    const [one, two] = nodes as [MongoRegistry, MongoRegistry];
    const before = await one.foreignWrites();
    assert.equal(typeof before, 'number', 'FerretDB and MongoDB tell');
    await one.beat('n1', 5000);
    await one.holdChores('n1', 5000);
    await one.claim('a', m(1));
    await two.claim('a', m(2));
    await one.noteDeploy('a', m(1), { revision: 1 });
    await one.move('a', m(1), m(3));
    await one.release('a', m(3));
    await one.bumpRevision('a');
    await one.upsertApps([app('b')]);
    await one.releaseMachine(m(2).host);
    await one.audit(1);
    await one.auditedThrough();
    await one.releaseChores('n1');
    await one.forgetNode('n1');
    assert.equal(await one.foreignWrites(), before, 'arr writes with findAndModify only');
    await apps.updateOne({ _id: 'a' } as Document, { $set: { instances: 3 } });
    assert.notEqual(await one.foreignWrites(), before);
  });

  it('an audit records the write count it covered, which only goes up', async () => {
    const { nodes } = await farm([app('a')]);
    const [one, two] = nodes as [MongoRegistry, MongoRegistry];
    assert.equal(await two.auditedThrough(), 0, 'no audit yet');
    await one.audit();
    assert.equal(await two.auditedThrough(), 0, 'an audit without a count records none');
    await one.audit(42);
    assert.equal(await two.auditedThrough(), 42);
    await two.audit(40); // an audit that began before the last one ended after it
    assert.equal(await one.auditedThrough(), 42);
    await two.audit(43);
    assert.equal(await one.auditedThrough(), 43);
  });

  it('the chores: taken by one node, held from its next beat on, renewed, handed over', async () => {
    const { nodes } = await farm([]);
    const [one, two] = nodes as [MongoRegistry, MongoRegistry];
    assert.equal(await one.holdChores('n1', 5000), false, 'taken: held from the next beat');
    assert.equal(await two.holdChores('n2', 5000), false, 'held by n1');
    assert.equal(await one.holdChores('n1', 5000), true);
    assert.equal(await one.holdChores('n1', 5000), true, 'renewed');
    await one.releaseChores('n1');
    assert.equal(await two.holdChores('n2', 5000), false);
    assert.equal(await two.holdChores('n2', 5000), true);
    assert.equal(await one.holdChores('n1', 5000), false);
  });

  it('a journal that was removed or cleared is noticed: the node reads everything again', async () => {
    const { apps, nodes } = await farm([app('a')]);
    const [one, two] = nodes as [MongoRegistry, MongoRegistry];
    await one.bumpRevision('a');
    await two.refresh();
    await admin.db(apps.dbName).collection(CHANGES_COLLECTION).deleteMany({});
    await apps.insertOne(app('z'));
    await one.bumpRevision('a'); // entry 1 of a new journal: two waits for entry 2
    const report = await two.refresh();
    assert.equal(report.changed, true);
    assert.equal(two.route('z.test')?.app.id, 'z', 'read everything, the edit outside arr too');
    assert.equal(two.app('a')?.revision, 2);
  });
});
