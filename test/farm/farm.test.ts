import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Collection, type Document, MongoClient, type ObjectId } from 'mongodb';
import { processesWith } from '../support/activation.js';
import {
  type AppDoc,
  type ArrUnderTest,
  fetchVia,
  pidOf,
  probedApp,
  type Reply,
  startArrWith,
} from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { alive, startNlb, stopAll } from '../support/proc.js';

const NODES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
// Fast beats and polls, so that the farm's clean-ups happen within a test's patience.
const FARM_ARGS = ['--poll', '0.3'];
const FAST_BEAT = ['--heartbeat', '0.3'];

const ask = (node: ArrUnderTest, host: string, opts = {}): Promise<Reply> =>
  fetchVia(node.port, host, false, opts, addressOf(node));

const addresses = new Map<ArrUnderTest, string>();
const addressOf = (node: ArrUnderTest) => addresses.get(node) ?? '127.0.0.1';

describe('the farm: three arr nodes sharing one MongoDB registry', { skip: mongoUnavailable() }, () => {
  let mongo: MongoServer;
  let client: MongoClient;
  let apps: Collection;
  let slots: Collection;
  const nodes: ArrUnderTest[] = [];
  let appCount = 0;

  /**
   * A new hello app with a unique name and host, inserted into the shared registry; returns
   * once every node routes it. The app has a second host with ssl "none", asked over TLS: a
   * node that knows the app refuses that with 403 without starting anything.
   */
  async function addApp(
    instances: number,
    also: ArrUnderTest[] = [],
  ): Promise<{ doc: AppDoc; host: string; name: string }> {
    const name = `farm${++appCount}x${process.pid}`;
    const { doc, host, probe } = probedApp(name, instances, 'none');
    await apps.insertOne(doc as Document);
    for (const node of [...nodes, ...also]) {
      await until(`${host} routed by ${addressOf(node)}`, async () => {
        const r = await fetchVia(node.sslport, probe, true, {}, addressOf(node));
        return r.status === 403 || undefined;
      });
    }
    return { doc, host, name };
  }

  async function startNode(address: string, extra: string[] = FAST_BEAT, opts = {}): Promise<ArrUnderTest> {
    const node = await startArrWith([], {
      mongo: mongo.url,
      address,
      keepApps: true,
      extraArgs: [...FARM_ARGS, ...extra],
      ...opts,
    });
    addresses.set(node, address);
    return node;
  }

  const entriesOf = async (doc: AppDoc) =>
    (await slots.find({ app: String((doc._id as ObjectId).toHexString()) }).toArray()).map(
      (d) => `${d.host}:${d.port}`,
    );

  before(async () => {
    mongo = await startMongo('farm');
    client = await new MongoClient(mongo.url).connect();
    apps = client.db().collection('apps');
    slots = client.db().collection('instances');
    for (const address of NODES) nodes.push(await startNode(address));
  });

  after(async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    await stopAll();
    await client?.close();
    await mongo?.stop();
  });

  it('an app with instances: 1 started by one node serves the requests of every node', async () => {
    const { host, name, doc } = await addApp(1);
    const first = await ask(nodes[0]!, host);
    assert.equal(first.status, 200, first.text);
    const pid = pidOf(first);
    for (const node of [...nodes, ...nodes]) {
      const r = await ask(node, host);
      assert.equal(r.status, 200, r.text);
      assert.equal(pidOf(r), pid, 'the same instance answers through every node');
    }
    assert.deepEqual(processesWith(name), [pid], 'no second process anywhere');
    // FerretDB has no change streams: the nodes say so and poll.
    if (!process.env.ARR_TEST_MONGO_URL) assert.match(nodes[0]!.proc.output(), /no change streams/);
    assert.equal((await entriesOf(doc)).length, 1);
  });

  it('an app with instances: 2 gets exactly 2 processes when every node is asked at once (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const { host, name, doc } = await addApp(2);
      const replies = await Promise.all(nodes.flatMap((n) => Array.from({ length: 4 }, () => ask(n, host))));
      for (const r of replies) assert.equal(r.status, 200, r.text);
      // Nodes whose claims lost stop the process they started; what is left is the cap.
      await until(`${name} down to its cap`, () => processesWith(name).length <= 2 || undefined);
      assert.equal(processesWith(name).length, 2, `round ${round}: two processes`);
      assert.equal((await entriesOf(doc)).length, 2, `round ${round}: two entries`);
      const pids = new Set(replies.map(pidOf));
      assert.ok(pids.size <= 2 || pids.size === 3, 'replies came from the instances that ran');
    }
  });

  it('a node killed with its instances: survivors route around it with at most one failed request', async () => {
    const victim = await startNode('127.0.0.5');
    const cold = await addApp(1, [victim]); // never asked after the kill: the heartbeat sweep must clean it
    const hot = await addApp(1, [victim]); // asked right after the kill: a refused connection cleans it
    for (const app of [cold, hot]) assert.equal((await ask(victim, app.host)).status, 200);
    const instancePids = [...processesWith(cold.name), ...processesWith(hot.name)];
    assert.equal(instancePids.length, 2);
    // Every node knows the instances run on the victim before it dies.
    await until('the survivors to use the victim', async () => {
      const rs = await Promise.all(nodes.map((n) => ask(n, hot.host)));
      return rs.every((r) => r.status === 200) || undefined;
    });

    victim.proc.child.kill('SIGKILL');
    for (const pid of instancePids) process.kill(pid, 'SIGKILL');
    await victim.proc.exited;
    await until('the instances to die', () => instancePids.every((p) => !alive(p)) || undefined);

    let failures = 0;
    let served = 0;
    const deadline = Date.now() + 15_000;
    while (served < 10 && Date.now() < deadline) {
      const r = await ask(nodes[0]!, hot.host);
      if (r.status === 200) served++;
      else {
        assert.equal(served, 0, `a failure after a success: ${r.status} ${r.text}`);
        failures++;
      }
    }
    assert.equal(served, 10);
    assert.ok(failures <= 1, `${failures} failed requests`);

    // Nothing asked for `cold`: its entry goes when the victim's liveness record expires.
    await until(
      'the dead node entries to be swept',
      async () => (await entriesOf(cold.doc)).length === 0 || undefined,
      {
        timeoutMs: 10_000,
      },
    );
    const r = await ask(nodes[1]!, cold.host);
    assert.equal(r.status, 200);
    await victim.stop();
  });

  it('a node that restarts removes its own stale entries before it serves', async () => {
    // A slow heartbeat: no other node would sweep this one's entries during the test.
    const node = await startNode('127.0.0.6', ['--heartbeat', '20']);
    const app = await addApp(1, [node]);
    assert.equal((await ask(node, app.host)).status, 200);
    const pids = processesWith(app.name);
    node.proc.child.kill('SIGKILL');
    for (const pid of pids) process.kill(pid, 'SIGKILL');
    await node.proc.exited;
    assert.deepEqual(await entriesOf(app.doc), [`127.0.0.6:${node.range[0]}`], 'the stale entry is there');

    const again = await startNode('127.0.0.6', ['--heartbeat', '20'], {
      ports: [node.port, node.sslport],
      range: node.range,
    });
    assert.deepEqual(await entriesOf(app.doc), [], 'gone by the time it listens');
    const r = await ask(again, app.host);
    assert.equal(r.status, 200);
    await again.stop();
  });

  it('an app document changed in MongoDB takes effect on every node within seconds', async () => {
    const app = await addApp(2);
    const extra = `${app.name}-new.localhost`;
    await apps.updateOne(
      { _id: app.doc._id } as Document,
      {
        $push: { hosts: { host: extra, ssl: 'allowed' } },
        $set: { instances: 1 },
      } as Document,
    );
    for (const node of nodes) {
      await until(
        `${extra} on ${addressOf(node)}`,
        async () => (await ask(node, extra)).status === 200 || undefined,
        {
          timeoutMs: 5_000,
        },
      );
    }
    // The cap was lowered before the first start: one process in the whole farm.
    await Promise.all(nodes.map((n) => ask(n, app.host)));
    await until('one process', () => processesWith(app.name).length <= 1 || undefined);
    assert.equal(processesWith(app.name).length, 1);

    await apps.updateOne(
      { _id: app.doc._id } as Document,
      { $pull: { hosts: { host: extra, ssl: 'allowed' } } } as Document,
    );
    for (const node of nodes) {
      await until(
        `${extra} gone on ${addressOf(node)}`,
        async () => (await ask(node, extra)).status === 404 || undefined,
        {
          timeoutMs: 5_000,
        },
      );
    }
  });

  it('MongoDB unreachable: known apps keep being served, new activations get 503 fast, and it recovers', async (t) => {
    if (!mongo.interrupt || !mongo.resume) {
      t.skip('the test cannot stop an external MongoDB (ARR_TEST_MONGO_URL)');
      return;
    }
    const known = await addApp(1);
    const cold = await addApp(1);
    assert.equal((await ask(nodes[0]!, known.host)).status, 200);
    await until('every node to know where it runs', async () => {
      const rs = await Promise.all(nodes.map((n) => ask(n, known.host)));
      return rs.every((r) => r.status === 200) || undefined;
    });

    await mongo.interrupt();
    try {
      for (const node of nodes) {
        const r = await ask(node, known.host);
        assert.equal(r.status, 200, `${addressOf(node)} serves a known app from memory`);
      }
      const started = Date.now();
      const r = await ask(nodes[1]!, cold.host);
      const took = Date.now() - started;
      assert.equal(r.status, 503, r.text);
      assert.ok(took < 6_000, `503 after ${took} ms`);
    } finally {
      await mongo.resume();
    }
    await until(
      'activation to work again',
      async () => (await ask(nodes[1]!, cold.host)).status === 200 || undefined,
      {
        timeoutMs: 20_000,
        intervalMs: 250,
      },
    );
  });

  it('nlb in front of the three nodes: requests reach every node and every app answers', async () => {
    const a = await addApp(1);
    const b = await addApp(2);
    const port = await freePort();
    const config = JSON.stringify([
      { port, host: '127.0.0.1', backends: nodes.map((n) => ({ host: addressOf(n), port: n.port })) },
    ]);
    const file = join(mkdtempSync(join(tmpdir(), 'arr-farm-nlb-')), 'nlb.json');
    writeFileSync(file, config);
    const nlb = startNlb(['--config', file]);
    await nlb.waitFor('listening');
    const seenPorts = new Set<string>();
    for (let i = 0; i < 9; i++) {
      for (const app of [a, b]) {
        const r = await fetchVia(port, app.host, false, { path: '/headers' });
        assert.equal(r.status, 200, r.text);
        seenPorts.add(JSON.parse(r.text).headers['x-forwarded-port']);
      }
    }
    assert.deepEqual(
      [...seenPorts].sort(),
      nodes.map((n) => String(n.port)).sort(),
      'every node was reached',
    );
    await nlb.stop();
  });
});
