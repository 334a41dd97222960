import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { MongoClient } from 'mongodb';
import WebSocket from 'ws';
import { allGone, allMachinesInMongo, gone, logLines } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, fetchVia, helloApp, pidOf, startArrWith } from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

/**
 * SIGTERM with a WebSocket open and a slow request in flight: the request is answered, the
 * WebSocket is closed (by its app's own close frame when the instance is local, by arr ending
 * the connection when it is another node's), arr exits 0 well before the 10-s grace period,
 * and no instance of its own is left, in the processes or in the registry.
 */

let count = 0;
function app(): AppDoc & { host: string; name: string } {
  const name = `grace${++count}x${process.pid}`;
  const host = `${name}.localhost`;
  return { ...helloApp(name, [{ host, ssl: 'allowed' }]), name, host };
}

interface Ws {
  greeting: Promise<string>;
  closed: Promise<{ code: number; reason: string }>;
}

/** A WebSocket to arr at address:port with this Host; resolves once open. */
function openWsAt(address: string, port: number, host: string): Promise<Ws> {
  const ws = new WebSocket(`ws://${address}:${port}/ws`, { headers: { host }, handshakeTimeout: 15_000 });
  ws.on('error', () => {}); // an abrupt end shows as close code 1006
  const greeting = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ greeting, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade answered ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

/** The pids of every instance arr started, from its `instance-ready` lines. */
const startedPids = (arr: ArrUnderTest): number[] =>
  logLines(arr.proc.output())
    .filter((l) => l.event === 'instance-ready')
    .map((l) => l.pid!);

const pidIn = (greeting: string) => Number(/pid (\d+)/.exec(greeting)?.[1]);

/** Sends SIGTERM; resolves with arr's exit code and how long it took. */
async function terminate(arr: ArrUnderTest): Promise<{ code: number | string; ms: number }> {
  const t0 = Date.now();
  arr.proc.child.kill('SIGTERM');
  const code = await arr.proc.exited;
  return { code, ms: Date.now() - t0 };
}

describe('graceful stop with WebSockets and requests in flight (file registry)', () => {
  after(stopAll);

  it('answers the slow request, closes the WebSocket, exits 0 soon, and leaves no instance', async () => {
    const slowApp = app();
    const wsApp = app();
    const arr = await startArrWith([slowApp, wsApp]);
    const ws = await openWsAt('127.0.0.1', arr.port, wsApp.host);
    const wsPid = pidIn(await ws.greeting);
    // The slow request starts its instance; once that is ready, the request is on its way to it.
    const slow = fetchVia(arr.port, slowApp.host, false, { path: '/slow?ms=2000' });
    await arr.proc.waitFor(`${slowApp.name} is ready on port`);

    const { code, ms } = await terminate(arr);
    const reply = await slow;
    assert.equal(reply.status, 200, reply.text);
    assert.match(reply.text, new RegExp(`hello from ${slowApp.name}`));
    // The instance closed its WebSocket on SIGTERM (1001, as the samples do), through arr.
    assert.deepEqual(await ws.closed, { code: 1001, reason: 'server shutting down' });
    assert.equal(code, 0, arr.proc.output());
    assert.ok(
      ms < 7_000,
      `arr exited ${ms} ms after SIGTERM: the WebSocket did not hold it for the grace period`,
    );

    const pids = startedPids(arr);
    assert.equal(pids.length, 2, `two instances started:\n${arr.proc.output()}`);
    assert.ok(pids.includes(wsPid) && pids.includes(pidOf(reply)));
    await allGone(pids);
    assert.match(arr.proc.output(), /arr stopped/);
  });
});

describe('graceful stop with silent connections', () => {
  after(stopAll);

  it('connections that have sent nothing (plain and TLS) do not hold the stop', async () => {
    const arr = await startArrWith([app()]);
    const silent = [
      connect({ host: '127.0.0.1', port: arr.port }),
      tlsConnect({ host: '127.0.0.1', port: arr.sslport, rejectUnauthorized: false }),
    ];
    for (const s of silent) s.on('error', () => {});
    await Promise.all(
      silent.map((s) => new Promise((r) => s.once(s instanceof TLSSocket ? 'secureConnect' : 'connect', r))),
    );
    const { code, ms } = await terminate(arr);
    assert.equal(code, 0);
    assert.ok(ms < 3_000, `arr exited ${ms} ms after SIGTERM with silent connections open`);
    for (const s of silent) s.destroy();
  });
});

describe('graceful stop with WebSockets and requests in flight (MongoDB farm)', {
  skip: mongoUnavailable(),
}, () => {
  let mongo: MongoServer;

  before(async () => {
    mongo = await startMongo('graceful');
  });
  after(async () => {
    await stopAll();
    await mongo?.stop();
  });

  it("a node ends WebSockets to other nodes' instances, exits 0, and its entries are removed", async () => {
    const slowApp = app();
    const wsApp = app();
    const fast = ['--poll', '0.3', '--heartbeat', '0.3'];
    const node1 = await startArrWith([slowApp, wsApp], {
      mongo: mongo.url,
      address: '127.0.0.2',
      extraArgs: fast,
    });
    const node2 = await startArrWith([], {
      mongo: mongo.url,
      address: '127.0.0.3',
      keepApps: true,
      extraArgs: fast,
    });
    // wsApp runs on node 1; a WebSocket through node 2 goes there.
    const first = await openWsAt('127.0.0.2', node1.port, wsApp.host);
    const wsPid = pidIn(await first.greeting);
    const ws = await openWsAt('127.0.0.3', node2.port, wsApp.host);
    assert.equal(pidIn(await ws.greeting), wsPid, "node 2's WebSocket goes to node 1's instance");
    // slowApp starts on node 2, with a request in flight.
    const slow = fetchVia(node2.port, slowApp.host, false, { path: '/slow?ms=2000' }, '127.0.0.3');
    await node2.proc.waitFor(`${slowApp.name} is ready on port`);

    const { code, ms } = await terminate(node2);
    const reply = await slow;
    assert.equal(reply.status, 200, reply.text);
    const closed = await ws.closed;
    assert.ok(
      closed.code === 1006 || closed.code === 1001,
      `the WebSocket closed (${JSON.stringify(closed)})`,
    );
    assert.equal(code, 0, node2.proc.output());
    assert.ok(ms < 7_000, `node 2 exited ${ms} ms after SIGTERM`);
    const pids = startedPids(node2);
    assert.deepEqual(pids, [pidOf(reply)], node2.proc.output());
    await allGone(pids);
    assert.ok(!gone(wsPid), "node 1's instance serves on");

    // Node 2's entry is gone; node 1's stays.
    const machines = await allMachinesInMongo(mongo.url);
    assert.deepEqual(machines[String(slowApp._id)], []);
    assert.equal((machines[String(wsApp._id)] as unknown[]).length, 1);

    const last = await terminate(node1);
    assert.equal(last.code, 0, node1.proc.output());
    assert.deepEqual(await first.closed, { code: 1001, reason: 'server shutting down' });
    await allGone(startedPids(node1));
    await until('every machines list empty', async () => {
      const all = await allMachinesInMongo(mongo.url);
      return Object.values(all).every((m) => Array.isArray(m) && m.length === 0);
    });
    const client = new MongoClient(mongo.url);
    try {
      assert.equal(await client.db().collection('instances').countDocuments(), 0, 'no instance slot left');
      assert.equal(await client.db().collection('nodes').countDocuments(), 0, 'no node record left');
    } finally {
      await client.close();
    }
  });
});
