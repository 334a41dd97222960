import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Collection, type Document, MongoClient } from 'mongodb';
import { processesWith } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, pidOf, probedApp } from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';
import { startWithWorkers } from '../support/workers.js';

const NODES = ['127.0.0.2', '127.0.0.3'];

/** Two nodes of `--workers 2` on one MongoDB registry: the cap K holds across nodes and workers. */
describe('arr --workers in a farm', { skip: mongoUnavailable() }, () => {
  let mongo: MongoServer;
  let client: MongoClient;
  let apps: Collection;
  const nodes: { arr: ArrUnderTest; address: string }[] = [];

  before(async () => {
    mongo = await startMongo('wfarm');
    client = await new MongoClient(mongo.url).connect();
    apps = client.db().collection('apps');
    for (const address of NODES)
      nodes.push({
        arr: await startWithWorkers([], 2, {
          mongo: mongo.url,
          address,
          keepApps: true,
          extraArgs: ['--poll', '0.3', '--heartbeat', '0.3'],
        }),
        address,
      });
  });
  after(async () => {
    await Promise.all(nodes.map((n) => n.arr.stop()));
    await stopAll();
    await client?.close();
    await mongo?.stop();
  });

  for (const k of [1, 2])
    it(`instances: ${k} asked at once on every worker of both nodes starts ${k} in the farm`, async () => {
      const { doc, host, probe } = probedApp(`wfarm${k}x${process.pid}`, k, 'none');
      await apps.insertOne(doc as Document);
      for (const n of nodes)
        await until(`${host} routed by ${n.address}`, async () => {
          const r = await fetchVia(n.arr.sslport, probe, true, {}, n.address);
          return r.status === 403 || undefined;
        });
      // New connections each: spread over both workers of each node.
      const replies = await Promise.all(
        nodes.flatMap((n) =>
          Array.from({ length: 6 }, () => fetchVia(n.arr.port, host, false, {}, n.address)),
        ),
      );
      for (const r of replies) assert.equal(r.status, 200, r.text);
      await until(
        `down to the cap of ${k}`,
        () => processesWith(doc.process.args![1]!).length <= k || undefined,
      );
      assert.equal(processesWith(doc.process.args![1]!).length, k);
      assert.ok(new Set(replies.map(pidOf)).size <= k + 1, 'answered by the instances that ran');
    });
});
