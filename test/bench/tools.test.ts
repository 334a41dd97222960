// The benchmark's own tools: the profile summary, the floors and the clients that drive them.
// They feed the numbers of docs/BENCHMARKS.md, so they are checked for what they count, not
// for how fast anything is (no timing assertions).

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { afterEach, test } from 'node:test';
import { runClient } from '../../bench/lib/clients.js';
import { startAcceptCloseFloor, startGrpcFloor, startHelloFloor } from '../../bench/lib/floors.js';
import { waitForListen } from '../../bench/lib/net.js';
import { ARR, categoryOf, IDLE, summarize } from '../../bench/lib/profile.js';
import { HELLO } from '../support/arr.js';
import { GRPC_APP, grpc, plainClient, unary } from '../support/grpc.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { start, stopAll } from '../support/proc.js';
import { closeAllServers, connected, tcpServer } from '../support/tcp.js';

afterEach(async () => {
  await stopAll();
  await closeAllServers();
});

/** The hello sample on a free port, as arr would start it. */
async function helloSample(): Promise<number> {
  const port = await freePort();
  await waitForListen(start(process.execPath, [HELLO, 'hello'], { env: { PORT: String(port) } }), port);
  return port;
}

test('profile summary: self time by category and function, and only inside the window', () => {
  const frame = (functionName: string, url = '', lineNumber = -1) => ({ functionName, url, lineNumber });
  const profile = {
    nodes: [
      { id: 1, callFrame: frame('(root)') },
      { id: 2, callFrame: frame('route', 'file:///x/dist/src/router/router.js', 9) },
      { id: 3, callFrame: frame('Socket', 'node:net', 358) },
      { id: 4, callFrame: frame('resume', 'file:///y/node_modules/undici/lib/client.js', 0) },
      { id: 5, callFrame: frame('(idle)') },
      { id: 6, callFrame: frame('(garbage collector)') },
      { id: 7, callFrame: frame('route', 'file:///x/dist/src/router/router.js', 9) }, // another call path
    ],
    startTime: 1_000_000,
    samples: [2, 3, 4, 5, 6, 7, 2],
    timeDeltas: [1000, 2000, 3000, 4000, 500, 1500, 7000],
  };
  const all = summarize(profile);
  assert.equal(all.totalMs, 19);
  assert.equal(all.idleMs, 4);
  const cat = Object.fromEntries(all.categories);
  assert.deepEqual(cat, {
    [ARR]: 9.5,
    'Node.js internals (node:*)': 2,
    'node_modules: undici': 3,
    [IDLE]: 4,
    'garbage collector': 0.5,
  });
  // Both call paths of `route` are one function, at its 1-based line.
  assert.deepEqual(all.functions[0], {
    name: 'route',
    where: '/x/dist/src/router/router.js:10',
    category: ARR,
    selfMs: 9.5,
  });
  assert.equal(all.functions.find((f) => f.name === 'resume')?.where, 'node_modules/undici/lib/client.js:1');
  // Samples at 1.001 s, 1.003, 1.006, 1.010, 1.0105, 1.012, 1.019: the window keeps 1.003 to 1.012.
  const some = summarize(profile, { fromUs: 1_002_000, toUs: 1_012_000 });
  assert.equal(some.totalMs, 11);
  assert.equal(Object.fromEntries(some.categories)[ARR], 1.5);
  assert.equal(categoryOf('file:///z/node_modules/@scope/pkg/a.js', 'f'), 'node_modules: @scope/pkg');
  assert.equal(categoryOf('', 'writev'), 'V8 builtins and native functions');
});

test('the bare hello floor sends as many bytes as the hello sample, over HTTP and HTTPS', async () => {
  const app = await helloSample();
  const floor = await startHelloFloor(app); // it throws when the sizes differ
  const plain = await fetch(`http://127.0.0.1:${floor.port}/anything`);
  assert.equal(plain.status, 200);
  assert.match(await plain.text(), new RegExp(`^hello from hello \\(port ${app}, pid \\d+\\)\\n$`));
  const secure = await fetch(`https://127.0.0.1:${floor.sslport}/`).catch((err: Error) => err);
  // The default certificate is self-signed: refused by fetch, so the TLS port answered.
  assert.ok(secure instanceof Error, 'the HTTPS port should present the self-signed default certificate');
});

test('tls-resume: resumes when asked to, not otherwise; the server CPU is read when given a pid', async () => {
  const floor = await startHelloFloor(await helloSample());
  const run = async (resume: number) =>
    (
      await runClient<{ completed: number; resumedRatio: number; errors: number; serverCpuUs: number }>(
        'tls-resume',
        [
          ...['--port', String(floor.sslport), '--host', 'hello.localhost', '--connections', '2'],
          ...['--seconds', '1', '--resume', String(resume), '--pid', String(floor.proc.pid)],
        ],
      )
    ).result;
  const full = await run(0);
  const resumed = await run(1);
  for (const r of [full, resumed]) {
    assert.ok(r.completed > 0, JSON.stringify(r));
    assert.equal(r.errors, 0, JSON.stringify(r));
    assert.ok(r.serverCpuUs > 0, JSON.stringify(r));
  }
  assert.equal(full.resumedRatio, 0);
  // Every counted connection offers the ticket of the one before (priming is not counted).
  assert.equal(resumed.resumedRatio, 1);
});

test('accept-close floor: each connection reaches the backend, then both are closed without an answer', async () => {
  const backend = await tcpServer(() => {});
  const floor = await startAcceptCloseFloor(backend.port);
  for (let i = 0; i < 5; i++) {
    const before = backend.accepted;
    const socket = await connected(floor.port);
    const got: Buffer[] = [];
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', () => {}); // a reset is a close too
    await once(socket, 'close');
    assert.equal(Buffer.concat(got).length, 0, 'the floor answers nothing');
    await until('a connection to the backend', () => backend.accepted > before);
  }
  // The backend's side is closed too: nothing of the floor's stays open there.
  await until('the backend connections closed', () => backend.sockets.size === 0);
});

test('gRPC floor: a call reaches the instance by prior knowledge, with its status and trailing metadata', async () => {
  const port = await freePort();
  await waitForListen(start(process.execPath, [GRPC_APP], { env: { PORT: String(port) } }), port);
  const floor = await startGrpcFloor(port);
  const client = plainClient(floor.port, 'grpc.localhost');
  try {
    const ok = await unary(client, Buffer.from('hello'));
    assert.equal(ok.error, undefined);
    assert.equal(ok.reply?.toString(), 'hello');
    assert.match(String(ok.trailers?.get('x-pid')[0]), /^\d+$/, 'the trailers of the instance came through');
    // A trailers-only answer (one HEADERS frame ending the stream) keeps its status and metadata.
    const failed = await unary(client, Buffer.from('status:5:missing'));
    assert.equal(failed.error?.code, grpc.status.NOT_FOUND);
    assert.equal(failed.error?.details, 'missing');
    assert.deepEqual(failed.trailers?.get('x-detail'), ['why']);
  } finally {
    client.close();
  }
});
