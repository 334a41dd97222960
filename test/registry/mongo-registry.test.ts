import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Collection, type Document, MongoClient } from 'mongodb';
import { APPS_COLLECTION, databaseName, MongoRegistry } from '../../src/registry/mongo-registry.js';
import { UnknownAppError } from '../../src/registry/registry.js';
import type { InstanceAddress } from '../../src/registry/types.js';
import { idOf } from '../../src/registry/validate.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { claimRace, registryContract } from '../support/registry-contract.js';

describe('databaseName', () => {
  it('is "arr" when the URL names no database', () => {
    assert.equal(databaseName('mongodb://127.0.0.1:27017'), 'arr');
    assert.equal(databaseName('mongodb://127.0.0.1:27017/'), 'arr');
    assert.equal(databaseName('mongodb://127.0.0.1:27017/?replicaSet=rs0'), 'arr');
    assert.equal(databaseName('mongodb+srv://cluster.example.net/?retryWrites=true'), 'arr');
  });

  it('is the database named in the path, with or without a query string', () => {
    assert.equal(databaseName('mongodb://127.0.0.1:27017/farm'), 'farm');
    assert.equal(databaseName('mongodb://db.internal/farm?authSource=admin&w=majority'), 'farm');
    assert.equal(databaseName('mongodb://u:p%40ss@h1:27017,h2:27018/farm2?replicaSet=rs0'), 'farm2');
    assert.equal(databaseName('mongodb+srv://user:pw@cluster.example.net/prod?retryWrites=true'), 'prod');
    assert.equal(databaseName('mongodb://h/my%2Ddb'), 'my-db');
  });
});

const skip = mongoUnavailable();

describe('MongoRegistry', { skip }, () => {
  let server: MongoServer;
  let admin: MongoClient;
  let dbs = 0;
  const open: MongoRegistry[] = [];
  before(async () => {
    server = await startMongo('registry');
    admin = new MongoClient(server.url);
    await admin.connect();
  });
  after(async () => {
    await Promise.all(open.map((r) => r.close()));
    await admin?.close();
    await server?.stop();
  });

  /** A fresh database holding `docs` in `apps`; its URL and the collection. */
  async function seed(docs: Document[]): Promise<{ url: string; apps: Collection }> {
    const url = server.database(`t${++dbs}`);
    const apps = admin.db(databaseName(url)).collection(APPS_COLLECTION);
    if (docs.length > 0) await apps.insertMany(docs.map((d) => ({ ...d })));
    return { url, apps };
  }

  /**
   * `n` registries, each with its own client connections. (FerretDB v1 applies a conditional
   * update as a read and a write without a transaction, FerretDB#3040; the registry's claim is
   * an insert of a slot `_id` instead, so this race holds there too.)
   */
  function racers(url: string, n: number, track: MongoRegistry[] = []): MongoRegistry[] {
    const list = Array.from({ length: n }, () => registry(url));
    track.push(...list);
    return list;
  }

  function registry(url: string): MongoRegistry {
    const r = new MongoRegistry(url, { serverSelectionTimeoutMS: 5000 });
    open.push(r);
    return r;
  }

  const app = (id: string, instances?: number): Document => ({
    _id: id,
    process: { executable: 'node', args: ['x.js'] },
    hosts: [{ host: `${id}.test`, ssl: 'none' }],
    ...(instances === undefined ? {} : { instances }),
  });
  const m = (n: number): InstanceAddress => ({ host: `10.0.0.${n}`, port: 8000 + n });

  registryContract('MongoRegistry', async (docs) => {
    const { url, apps } = await seed(docs);
    const reg = registry(url);
    const mine: MongoRegistry[] = [reg];
    return {
      registry: reg,
      racers: () => racers(url, 5, mine),
      stored: async (id) => {
        const doc = await apps.findOne({ _id: docs.find((d) => idOf(d._id) === id)?._id } as Document);
        assert.ok(doc, `app ${id} is in the collection`);
        return (doc.machines ?? []) as InstanceAddress[];
      },
      put: async (doc) => {
        await apps.replaceOne({ _id: doc._id }, doc, { upsert: true });
      },
      close: async () => {
        await Promise.all(mine.map((r) => r.close()));
        await apps.db.dropDatabase();
      },
    };
  });

  it('the race across 5 client connections (5 registries x 4 claims) grants exactly 3, ten rounds', async () => {
    const { url, apps } = await seed([{ ...app('farm', 3) }]);
    const regs = Array.from({ length: 5 }, () => registry(url));
    await claimRace(
      regs,
      'farm',
      3,
      async (id) => (await apps.findOne({ _id: id } as Document))?.machines ?? [],
    );
  });

  it('claim honours `instances` raised in the store after load', async () => {
    const { url, apps } = await seed([app('grow', 1)]);
    const reg = registry(url);
    await reg.load();
    assert.equal((await reg.claim('grow', m(1))).granted, true);
    assert.equal((await reg.claim('grow', m(2))).granted, false);
    await apps.updateOne({ _id: 'grow' } as Document, { $set: { instances: 3 } });
    // No reload: the stored cap wins.
    assert.equal((await reg.claim('grow', m(2))).granted, true);
    assert.equal((await reg.claim('grow', m(3))).granted, true);
    const refused = await reg.claim('grow', m(4));
    assert.equal(refused.granted, false);
    assert.deepEqual(refused.machines, [m(1), m(2), m(3)]);
    assert.equal(reg.app('grow')?.instances, 1, 'the in-memory app is what was loaded');
  });

  it('claim honours `instances` lowered in the store after load', async () => {
    const { url, apps } = await seed([app('shrink', 3)]);
    const reg = registry(url);
    await reg.load();
    assert.equal((await reg.claim('shrink', m(1))).granted, true);
    await apps.updateOne({ _id: 'shrink' } as Document, { $set: { instances: 1 } });
    const refused = await reg.claim('shrink', m(2));
    assert.equal(refused.granted, false);
    assert.deepEqual(refused.machines, [m(1)]);
    await reg.release('shrink', m(1));
    assert.equal((await reg.claim('shrink', m(3))).granted, true);
    assert.equal((await reg.claim('shrink', m(4))).granted, false);
    assert.deepEqual((await apps.findOne({ _id: 'shrink' } as Document))?.machines, [m(3)]);
  });

  it('claim counts a stored document whose `instances` was removed after load as 1', async () => {
    const { url, apps } = await seed([app('unset', 2)]);
    const reg = registry(url);
    await reg.load();
    await apps.updateOne({ _id: 'unset' } as Document, { $unset: { instances: '' } });
    assert.equal((await reg.claim('unset', m(1))).granted, true);
    assert.equal((await reg.claim('unset', m(2))).granted, false);
  });

  it('claim grants nothing when `instances` was edited into 0, a fraction or a string', async () => {
    const { url, apps } = await seed([app('zero', 2), app('half', 2), app('text', 2)]);
    const reg = registry(url);
    assert.equal((await reg.load()).apps, 3);
    await apps.updateOne({ _id: 'zero' } as Document, { $set: { instances: 0 } });
    await apps.updateOne({ _id: 'half' } as Document, { $set: { instances: 1.5 } });
    await apps.updateOne({ _id: 'text' } as Document, { $set: { instances: '2' } });
    for (const id of ['zero', 'half', 'text']) {
      const res = await reg.claim(id, m(1));
      assert.equal(res.granted, false, id);
      assert.deepEqual(res.machines, [], id);
      assert.equal((await apps.findOne({ _id: id } as Document))?.machines, undefined, id);
    }
  });

  it('claim on an app deleted from the store after load fails with UnknownAppError', async () => {
    const { url, apps } = await seed([app('gone', 1)]);
    const reg = registry(url);
    await reg.load();
    await apps.deleteOne({ _id: 'gone' } as Document);
    await assert.rejects(reg.claim('gone', m(1)), UnknownAppError);
  });

  it('racing claims after the cap was raised in the store grant up to the new cap', async () => {
    const { url, apps } = await seed([app('busy', 2)]);
    const regs = racers(url, 4);
    for (const r of regs) await r.load();
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => (regs[i % regs.length] as MongoRegistry).claim('busy', m(i))),
    );
    assert.equal(results.filter((r) => r.granted).length, 2);
    await apps.updateOne({ _id: 'busy' } as Document, { $set: { instances: 5 } });
    const more = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (regs[i % regs.length] as MongoRegistry).claim('busy', m(100 + i)),
      ),
    );
    assert.equal(more.filter((r) => r.granted).length, 3);
    const stored = (await apps.findOne({ _id: 'busy' } as Document))?.machines as InstanceAddress[];
    assert.equal(stored.length, 5);
    assert.equal(new Set(stored.map((x) => `${x.host}:${x.port}`)).size, 5);
  });

  it('load reports documents with malformed machines or instances by _id and field', async () => {
    const { url } = await seed([
      { ...app('ok', 1), machines: [{ host: '10.0.0.1', port: 8001 }] },
      { ...app('badm', 1), machines: [{ host: '10.0.0.1' }] },
      { ...app('badi', 0) },
    ]);
    const reg = registry(url);
    const report = await reg.load();
    assert.equal(report.apps, 1);
    const fields = report.problems.map((p) => `${p.id}:${p.field}`).sort();
    assert.deepEqual(fields, ['badi:instances', 'badm:machines']);
    // Instances are known by their slots in `instances`; a `machines` written by hand is not one.
    assert.deepEqual(await reg.addressesOf('ok'), []);
  });
});
