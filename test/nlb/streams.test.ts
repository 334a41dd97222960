import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, test } from 'node:test';
import { local, removeTempDirs, runningNlb } from '../support/nlb.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';
import { closeAllServers, connected, echoServer, readAll, rssBytes, tcpServer } from '../support/tcp.js';

afterEach(async () => {
  await stopAll();
  await closeAllServers();
  removeTempDirs();
});

const MB = 2 ** 20;

/** Writes `size` random bytes in 1 MB chunks, waiting for 'drain' when asked to; returns their sha256. */
async function sendRandom(socket: Socket, size: number): Promise<string> {
  const hash = createHash('sha256');
  for (let sent = 0; sent < size; sent += MB) {
    const chunk = randomBytes(Math.min(MB, size - sent));
    hash.update(chunk);
    if (!socket.write(chunk)) await once(socket, 'drain');
  }
  socket.end();
  return hash.digest('hex');
}

/** The sha256 and length of everything a socket receives until its end. */
function hashReceived(socket: Socket): Promise<{ sha: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  socket.on('data', (d: Buffer) => {
    hash.update(d);
    bytes += d.length;
  });
  return new Promise((resolve, reject) => {
    socket.once('end', () => resolve({ sha: hash.digest('hex'), bytes }));
    socket.once('error', reject);
  });
}

test('100 MB in each direction at once through one connection arrive intact (sha256)', async () => {
  const SIZE = 100 * MB;
  let backendSide: Promise<[{ sha: string; bytes: number }, string]> | undefined;
  const backend = await tcpServer(
    (s) => {
      backendSide = Promise.all([hashReceived(s), sendRandom(s, SIZE)]);
    },
    { allowHalfOpen: true },
  );
  const [port] = await freePorts(1);
  await runningNlb([{ port: port!, backends: local(backend.port) }]);

  const client = connect({ port: port!, host: '127.0.0.1', allowHalfOpen: true });
  const [clientGot, clientSent] = await Promise.all([hashReceived(client), sendRandom(client, SIZE)]);
  const [backendGot, backendSent] = await until('the backend side', () => backendSide);
  client.destroy();

  assert.equal(backendGot.bytes, SIZE, 'client -> backend: every byte');
  assert.equal(backendGot.sha, clientSent, 'client -> backend: the same bytes');
  assert.equal(clientGot.bytes, SIZE, 'backend -> client: every byte');
  assert.equal(clientGot.sha, backendSent, 'backend -> client: the same bytes');
});

test('half-close: a client that ends its side still gets the whole reply the backend sends after seeing the end', async () => {
  const reply = randomBytes(4 * MB);
  const backend = await tcpServer(
    (s) => {
      let n = 0;
      s.on('data', (d: Buffer) => {
        n += d.length;
      });
      // Answers only once the request is complete, i.e. after the client's FIN came through.
      s.on('end', () => {
        s.write(`got ${n} bytes\n`);
        s.end(reply);
      });
    },
    { allowHalfOpen: true },
  );
  const [port] = await freePorts(1);
  await runningNlb([{ port: port!, backends: local(backend.port) }]);

  for (let i = 0; i < 3; i++) {
    const client = await connected(port!);
    const received = readAll(client);
    client.end(randomBytes(300_000));
    const got = await received;
    const head = `got 300000 bytes\n`;
    assert.equal(got.subarray(0, head.length).toString(), head);
    assert.ok(
      got.subarray(head.length).equals(reply),
      `the whole 4 MB reply (got ${got.length - head.length})`,
    );
  }
});

test('half-close the other way: the backend ends first and the client can still send', async () => {
  let received: Promise<Buffer> | undefined;
  const backend = await tcpServer(
    (s) => {
      received = readAll(s);
      s.end('hello, say something\n');
    },
    { allowHalfOpen: true },
  );
  const [port] = await freePorts(1);
  await runningNlb([{ port: port!, backends: local(backend.port) }]);

  const client = connect({ port: port!, host: '127.0.0.1', allowHalfOpen: true });
  const greeting = readAll(client);
  assert.equal((await greeting).toString(), 'hello, say something\n');
  const late = randomBytes(2 * MB);
  client.end(late);
  const got = await until('the backend to receive the end', () => received);
  assert.ok((await got).equals(late), 'the backend got everything sent after its own end');
});

test('backpressure: a backend that does not read does not make nlb buffer what the client sends', async () => {
  const SIZE = 256 * MB;
  let stalled: Socket | undefined;
  const backend = await tcpServer(
    (s) => {
      stalled = s;
    },
    { pauseOnConnect: true },
  );
  const [port] = await freePorts(1);
  const nlb = await runningNlb([{ port: port!, backends: local(backend.port) }]);
  const baseline = rssBytes(nlb.pid);

  const client = await connected(port!);
  const chunk = randomBytes(MB);
  for (let i = 0; i < SIZE / MB; i++) client.write(chunk); // queued in this process, not in nlb
  client.end();

  // Wait until nothing moves any more: the kernel buffers on the way are full.
  let last = -1;
  let still = 0;
  let peak = 0;
  await until(
    'the transfer to stall',
    () => {
      peak = Math.max(peak, rssBytes(nlb.pid));
      const pending = client.writableLength;
      still = pending === last ? still + 1 : 0;
      last = pending;
      return still >= 10;
    },
    { timeoutMs: 20_000, intervalMs: 50 },
  );
  const accepted = SIZE - client.writableLength;
  assert.ok(stalled, 'the backend got the connection');
  assert.ok(
    accepted < SIZE / 2,
    `nlb stopped reading: ${(accepted / MB).toFixed(1)} MB of ${SIZE / MB} left the client`,
  );
  assert.ok(
    peak - baseline < 48 * MB,
    `nlb did not buffer it: its memory grew by ${((peak - baseline) / MB).toFixed(1)} MB`,
  );

  // The backend reads now: everything arrives.
  let bytes = 0;
  stalled.on('data', (d: Buffer) => {
    bytes += d.length;
  });
  stalled.resume();
  await until('every byte at the backend', () => bytes === SIZE, { timeoutMs: 20_000 });
  assert.ok(rssBytes(nlb.pid) - baseline < 64 * MB, 'nlb memory stays bounded while it flows');
});

test('--idle-timeout closes a connection without traffic either way', async () => {
  const backend = await echoServer();
  const [port] = await freePorts(1);
  await runningNlb([{ port: port!, backends: local(backend.port) }], ['--idle-timeout', '0.5']);
  const client = await connected(port!);
  let closedAt = 0;
  client.on('close', () => {
    closedAt = Date.now();
  });
  client.on('error', () => {});
  client.write('ping');
  await once(client, 'data');
  const quietSince = Date.now();
  await until('the idle connection to be closed', () => closedAt > 0, { timeoutMs: 5000 });
  assert.ok(closedAt - quietSince >= 300, `closed after ${closedAt - quietSince} ms of quiet`);
  await until('the backend side to be closed too', () => backend.sockets.size === 0);
});
