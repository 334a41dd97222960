import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Collection, type Document, MongoClient, ObjectId } from 'mongodb';
import { APPS_COLLECTION, databaseName, MongoRegistry } from '../../src/registry/mongo-registry.js';
import { cliEnv } from '../support/cli-env.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { ARR_CLI, run, stopAll } from '../support/proc.js';

const OID1 = '65a0000000000000000000f1';
const OID2 = '65a0000000000000000000f2';
const OID3 = '65a0000000000000000000f3';

/** A line of an apps.json as the samples write it (and mongoimport reads it). */
const line = (oid: string, host: string, extra = '') =>
  `{"_id": {"$oid": "${oid}"}, "process": {"executable": "node", "args": ["samples/${host}/server.js"]}, "hosts": [{"host": "${host}.localhost", "ssl": "allow"}]${extra}}`;

describe('arr import', { skip: mongoUnavailable() }, () => {
  let server: MongoServer;
  let client: MongoClient;
  const dir = mkdtempSync(join(tmpdir(), 'arr-import-'));
  let n = 0;

  before(async () => {
    server = await startMongo('import');
    client = new MongoClient(server.url);
    await client.connect();
  });
  after(async () => {
    await stopAll();
    await client?.close();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A fresh database: its URL and its `apps` collection. */
  function fresh(): { url: string; apps: Collection } {
    const url = server.database(`i${++n}`);
    return { url, apps: client.db(databaseName(url)).collection(APPS_COLLECTION) };
  }

  function file(text: string): string {
    const path = join(dir, `apps-${++n}.json`);
    writeFileSync(path, text);
    return path;
  }

  const arr = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [ARR_CLI, ...args], { env: cliEnv(env), timeoutMs: 30_000 });

  const byId = async (apps: Collection, oid: string) => apps.findOne({ _id: new ObjectId(oid) } as Document);

  it('inserts the documents, with real ObjectIds and numbers, and machines set to []', async () => {
    const { url, apps } = fresh();
    const path = file(
      `${line(OID1, 'app1', ', "instances": {"$numberInt": "2"}, "machines": [{"host": "10.9.9.9", "port": 8000}]')}\n${line(OID2, 'app2')}\n`,
    );
    const r = await arr(['import', path, '--mongo', url]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /imported: 2 inserted, 0 updated, 0 rejected/);
    assert.doesNotMatch(r.output, /rejected:/);
    const docs = await apps.find({}).toArray();
    assert.equal(docs.length, 2);
    for (const d of docs) assert.ok(d._id instanceof ObjectId, `_id ${String(d._id)} is an ObjectId`);
    const one = await byId(apps, OID1);
    assert.equal(one?.instances, 2);
    assert.deepEqual(one?.machines, [], 'machines from the file are not imported');
    assert.deepEqual(one?.process, { executable: 'node', args: ['samples/app1/server.js'] });
    assert.deepEqual((await byId(apps, OID2))?.machines, []);
    // What was imported is what the registry serves.
    const reg = new MongoRegistry(url);
    try {
      assert.deepEqual(await reg.load(), { apps: 2, problems: [], changed: true });
      assert.equal(reg.route('app1.localhost')?.app.id, OID1);
      assert.equal(reg.route('app2.localhost')?.rule.ssl, 'allowed');
    } finally {
      await reg.close();
    }
  });

  it('a second import updates, replacing the documents, and resets machines to []', async () => {
    const { url, apps } = fresh();
    const first = file(`${line(OID1, 'app1', ', "instances": 2')}\n${line(OID2, 'app2')}\n`);
    assert.equal((await arr(['import', first, '-m', url])).code, 0);
    await apps.updateOne({ _id: new ObjectId(OID1) } as Document, {
      $set: { machines: [{ host: '10.0.0.1', port: 8001 }] },
    });
    await apps.updateOne({ _id: new ObjectId(OID2) } as Document, {
      $set: { machines: [{ host: '10.0.0.2', port: 8002 }] },
    });
    const second = file(
      `${line(OID1, 'app1', ', "instances": 3')}\n${line(OID2, 'app2')}\n${line(OID3, 'app3')}\n`,
    );
    const r = await arr(['import', second, '--mongo', url]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /imported: 1 inserted, 2 updated, 0 rejected/);
    assert.equal(await apps.countDocuments({}), 3);
    assert.equal((await byId(apps, OID1))?.instances, 3);
    assert.deepEqual((await byId(apps, OID1))?.machines, []);
    assert.deepEqual((await byId(apps, OID2))?.machines, []);
    // The same file again: all updated.
    const again = await arr(['import', second, '--mongo', url]);
    assert.match(again.output, /imported: 0 inserted, 3 updated, 0 rejected/);
    // A field left out of the file is gone from the document (a replace, not a merge).
    const third = file(`${line(OID1, 'app1')}\n`);
    assert.equal((await arr(['import', third, '--mongo', url])).code, 0);
    assert.equal((await byId(apps, OID1))?.instances, undefined);
  });

  it('rejects a bad document by _id and field, imports the good ones, and exits 1', async () => {
    const { url, apps } = fresh();
    const bad = `{"_id": {"$oid": "${OID2}"}, "process": {"executable": "node"}, "hosts": [{"host": "bad.localhost", "ssl": "maybe"}]}`;
    const path = file(`${line(OID1, 'app1')}\n${bad}\n${line(OID3, 'app3')}\n`);
    const r = await arr(['import', path, '--mongo', url]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /imported: 2 inserted, 0 updated, 1 rejected/);
    const rejected = r.output.split('\n').filter((l) => l.startsWith('rejected:'));
    assert.equal(rejected.length, 1, r.output);
    assert.ok(rejected[0]?.includes(OID2), `${rejected[0]} names the _id`);
    assert.ok(rejected[0]?.includes('hosts[0].ssl'), `${rejected[0]} names the field`);
    assert.ok(rejected[0]?.includes('line 2'), `${rejected[0]} names the line`);
    assert.ok(await byId(apps, OID1));
    assert.ok(await byId(apps, OID3));
    assert.equal(await byId(apps, OID2), null, 'the bad document is not imported');
  });

  it('rejects a line that is not JSON by its number, imports the rest, and exits 1', async () => {
    const { url, apps } = fresh();
    const path = file(
      `${line(OID1, 'app1')}\n{"_id": {"$oid": "${OID2}"}, "hosts": [\n${line(OID3, 'app3')}\n`,
    );
    const r = await arr(['import', path, '--mongo', url]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /imported: 2 inserted, 0 updated, 1 rejected/);
    assert.match(r.output, /rejected: line 2: not valid extended JSON/);
    assert.equal(await apps.countDocuments({}), 2);
  });

  it('reads a JSON array, and the URL from ARR_MONGO', async () => {
    const { url, apps } = fresh();
    const path = file(`[\n  ${line(OID1, 'app1')},\n  ${line(OID2, 'app2')}\n]\n`);
    const r = await arr(['import', path], { ARR_MONGO: url });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /imported: 2 inserted/);
    assert.equal(await apps.countDocuments({}), 2);
  });

  it('a file that does not exist: a clear message naming it, non-zero exit, nothing written', async () => {
    const { url, apps } = fresh();
    const missing = join(dir, 'does-not-exist.json');
    const r = await arr(['import', missing, '--mongo', url]);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /^arr: import: cannot read ".*does-not-exist\.json" \(ENOENT\)$/m);
    assert.equal(await apps.countDocuments({}), 0);
  });
});
