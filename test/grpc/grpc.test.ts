import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as h2ConnectWith } from 'node:http2';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { type ArrUnderTest, fetchVia, startArrWith } from '../support/arr.js';
import { type EchoClient, GRPC_APP, grpc, plainClient, tlsClient, unary } from '../support/grpc.js';
import { closeSession, h2Connect, h2Request } from '../support/h2.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { inlineApp } from '../support/wsclient.js';

// gRPC through arr, with @grpc/grpc-js on both sides: the app speaks HTTP/2 only
// (`"protocol": "h2c"`), the client comes over TLS (ALPN h2).

const HOST = 'grpc.localhost';
/** An app whose process exits at once: its activation fails. */
const BROKEN = 'broken-grpc.localhost';
const inCI = process.env.CI === 'true';
/** Where scripts/install-grpcio.sh puts grpcio. */
const GRPCIO_PYTHON = join(homedir(), '.cache/arr/grpcio/bin/python');
const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

/** A gRPC message frame: uncompressed, its length, the bytes. */
function grpcFrame(message: string): Buffer {
  const body = Buffer.from(message);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(body.length, 1);
  return Buffer.concat([head, body]);
}

describe('gRPC to an h2c app (grpc-js)', () => {
  let arr: ArrUnderTest;
  let client: EchoClient;
  before(async () => {
    arr = await startArrWith(
      [
        {
          _id: new ObjectId(),
          process: { executable: process.execPath, args: [GRPC_APP] },
          hosts: [{ host: HOST, ssl: 'allowed' }],
          instances: 1,
          protocol: 'h2c',
        },
        {
          _id: new ObjectId(),
          process: { executable: '/bin/false' },
          hosts: [{ host: BROKEN, ssl: 'allowed' }],
          instances: 1,
          protocol: 'h2c',
        },
      ],
      { extraArgs: ['--proxy-timeout', '1', '--body-timeout', '1', '--access-log'] },
    );
    client = tlsClient(arr.sslport, HOST);
  });
  after(async () => {
    client?.close();
    await arr?.stop();
    await stopAll();
  });

  it('unary: the reply and its trailing metadata', async () => {
    const { reply, error, trailers } = await unary(client, Buffer.from('hello'));
    assert.equal(error, undefined);
    assert.equal(reply?.toString(), 'hello');
    assert.match(String(trailers?.get('x-pid')[0]), /^\d+$/);
  });

  it('a status with its message and trailing metadata', async () => {
    const { error } = await unary(client, Buffer.from('status:9:not now'));
    assert.equal(error?.code, grpc.status.FAILED_PRECONDITION);
    assert.equal(error?.details, 'not now');
    assert.deepEqual(error?.metadata.get('x-detail'), ['why']);
    // The access log's line of each stream has its grpc-status (trailers-only here; trailers above).
    await arr.proc.waitFor(/"path":"\/test\.Echo\/Unary"[^\n]*"grpcStatus":"9"/, 5_000);
    await arr.proc.waitFor(/"path":"\/test\.Echo\/Unary"[^\n]*"grpcStatus":"0"/, 5_000);
  });

  it('server streaming', async () => {
    const call = client.serverStream(Buffer.from('50:1000'));
    let n = 0;
    for await (const m of call) {
      assert.equal((m as Buffer).length, 1000);
      n++;
    }
    assert.equal(n, 50);
  });

  it('client streaming', async () => {
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const call = client.clientStream((err: Error | null, r: Buffer) => (err ? reject(err) : resolve(r)));
      for (let i = 0; i < 20; i++) call.write(Buffer.alloc(10_000));
      call.end();
    });
    assert.equal(reply.toString(), '200000');
  });

  it('bidirectional: each message answered before the next is sent', async () => {
    const call = client.bidi();
    const it = call[Symbol.asyncIterator]();
    for (let i = 0; i < 10; i++) {
      call.write(Buffer.from(`m${i}`));
      const { value } = await it.next();
      assert.equal((value as Buffer).toString(), `m${i}`);
    }
    call.end();
    assert.equal((await it.next()).done, true);
  });

  it('8 MB messages both ways', async () => {
    const big = Buffer.alloc(8 * 1024 * 1024, 7);
    const { reply, error } = await unary(client, big);
    assert.equal(error, undefined);
    assert.equal(reply?.length, big.length);
    assert.ok(reply?.equals(big));
  });

  it('200 concurrent calls on one channel', async () => {
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => unary(client, Buffer.from(`c${i}`))),
    );
    replies.forEach((r, i) => {
      assert.equal(r.error, undefined);
      assert.equal(r.reply?.toString(), `c${i}`);
    });
  });

  it('deadline exceeded: the app sees its call cancelled', async () => {
    // Longer than --proxy-timeout? No: the deadline is shorter, the client cancels first.
    const { error } = await unary(client, Buffer.from('hang:d1'), { deadline: 300 });
    assert.equal(error?.code, grpc.status.DEADLINE_EXCEEDED);
    await arr.proc.waitFor('cancelled d1', 5_000);
  });

  it("arr's own errors in gRPC's terms: no app, activation failed, timeout", async () => {
    const nowhere = tlsClient(arr.sslport, 'nope.localhost');
    const broken = plainClient(arr.port, BROKEN);
    try {
      const none = (await unary(nowhere, Buffer.from('x'))).error;
      assert.equal(none?.code, grpc.status.UNIMPLEMENTED);
      assert.equal(none?.details, 'no application serves nope.localhost');
      const failed = (await unary(broken, Buffer.from('x'))).error;
      assert.equal(failed?.code, grpc.status.UNAVAILABLE, failed?.details);
      assert.doesNotMatch(String(failed?.details), /status: 50\d/);
      // --proxy-timeout (1 s) without a deadline of the client's: the app's call is cancelled.
      const slow = (await unary(client, Buffer.from('hang:t1'))).error;
      assert.equal(slow?.code, grpc.status.DEADLINE_EXCEEDED);
      assert.equal(slow?.details, 'the application did not answer in time');
      await arr.proc.waitFor('cancelled t1', 5_000);
    } finally {
      nowhere.close();
      broken.close();
    }
  });

  it('a request body that stalls: DEADLINE_EXCEEDED (--body-timeout), the instance keeps serving', async () => {
    const session = await h2Connect(arr.sslport, HOST);
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/test.Echo/Unary',
        ':authority': HOST,
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      stream.on('error', () => {});
      // Half of a 10-byte message, then nothing.
      stream.write(grpcFrame('0123456789').subarray(0, 10));
      const head = await new Promise<Record<string, unknown>>((resolve) => stream.once('response', resolve));
      assert.equal(head[':status'], 200);
      assert.equal(head['grpc-status'], String(grpc.status.DEADLINE_EXCEEDED));
      assert.equal(head['grpc-message'], 'the request body did not arrive in time');
    } finally {
      await closeSession(session);
    }
    const { reply, error } = await unary(client, Buffer.from('after'));
    assert.equal(error, undefined);
    assert.equal(reply?.toString(), 'after');
  });

  it('the plain port by prior knowledge (h2c): unary and bidirectional', async () => {
    const plain = plainClient(arr.port, HOST);
    try {
      const { reply, error } = await unary(plain, Buffer.from('plain'));
      assert.equal(error, undefined);
      assert.equal(reply?.toString(), 'plain');
      const call = plain.bidi();
      const it = call[Symbol.asyncIterator]();
      call.write(Buffer.from('b1'));
      assert.equal(((await it.next()).value as Buffer).toString(), 'b1');
      call.end();
      assert.equal((await it.next()).done, true);
    } finally {
      plain.close();
    }
  });

  it('a second implementation: Python grpcio, by prior knowledge and over TLS', {
    skip: !inCI && !existsSync(GRPCIO_PYTHON) && 'grpcio is missing (bash scripts/install-grpcio.sh)',
  }, async () => {
    const script = join(repoRoot, 'test/support/grpcio-client.py');
    const runs = [
      [`127.0.0.1:${arr.port}`, HOST],
      [`127.0.0.1:${arr.sslport}`, HOST, 'tls', join(repoRoot, 'certs/default-cert.pem')],
    ];
    for (const args of runs) {
      const py = spawnSync(GRPCIO_PYTHON, [script, ...args], { timeout: 30_000 });
      assert.equal(py.status, 0, py.stderr.toString());
      const got = JSON.parse(py.stdout.toString());
      assert.equal(got.unary, 'from python');
      assert.match(got.trailers['x-pid'], /^\d+$/);
      assert.deepEqual(got.status.slice(0, 2), [grpc.status.NOT_FOUND, 'missing']);
      assert.equal(got.status[2]['x-detail'], 'why');
      assert.deepEqual(got.serverStream, [100, 100, 100, 100, 100]);
      assert.deepEqual(got.bidi, ['a', 'b', 'c']);
      assert.equal(got.deadline, grpc.status.DEADLINE_EXCEEDED);
    }
    await arr.proc.waitFor('cancelled py', 5_000);
  });

  it('curl --http2-prior-knowledge, nghttp and h2load on the plain port', {
    skip: !inCI && !has('h2load') && 'nghttp2-client is missing',
  }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'arr-grpc-'));
    try {
      const body = join(dir, 'call.bin');
      writeFileSync(body, grpcFrame('h2c'));
      const grpcHeaders = ['-H', 'content-type: application/grpc', '-H', 'te: trailers'];
      const unaryByIp = ['-H', `:authority: ${HOST}`, `http://127.0.0.1:${arr.port}/test.Echo/Unary`];
      const c = spawnSync('curl', [
        '-s',
        '--http2-prior-knowledge',
        '--data-binary',
        `@${body}`,
        ...grpcHeaders,
        '-D',
        '-',
        '-o',
        '/dev/null',
        '--resolve',
        `${HOST}:${arr.port}:127.0.0.1`,
        `http://${HOST}:${arr.port}/test.Echo/Unary`,
      ]);
      const head = c.stdout.toString();
      assert.match(head, /^HTTP\/2 200/);
      assert.match(head, /grpc-status: 0/, 'the trailers reach curl');
      // An HTTP/1.1 client of the h2c app: the answer's trailers are chunked trailers.
      const h1 = spawnSync('curl', [
        '-s',
        '--http1.1',
        '--raw',
        '-i',
        '--data-binary',
        `@${body}`,
        ...grpcHeaders,
        '-H',
        `host: ${HOST}`,
        `http://127.0.0.1:${arr.port}/test.Echo/Unary`,
      ]);
      const raw = h1.stdout.toString('latin1');
      assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
      assert.match(raw, /transfer-encoding: chunked\r\n/i);
      assert.match(raw, /\r\n0\r\ngrpc-status: 0\r\ngrpc-message: OK\r\nx-pid: \d+\r\n\r\n$/);
      const n = spawnSync('nghttp', ['-v', '-d', body, ...grpcHeaders, ...unaryByIp]);
      const out = n.stdout.toString();
      assert.equal(n.status, 0, out);
      assert.match(out, /recv \(stream_id=\d+\) grpc-status: 0/);
      const h = spawnSync('h2load', [
        '-n',
        '400',
        '-c',
        '2',
        '-m',
        '20',
        '-d',
        body,
        ...grpcHeaders,
        ...unaryByIp,
      ]);
      assert.match(h.stdout.toString(), /400 succeeded, 0 failed, 0 errored/, h.stdout.toString());
      assert.match(h.stdout.toString(), /status codes: 400 2xx/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A plain node:http2 h2c app: HTTP/1.1 gets nothing from it (no allowHTTP1). */
const H2C_APP = `
import http2 from 'node:http2';
// Two streams at a time per connection: arr opens another connection beyond that.
const server = http2.createServer({ settings: { maxConcurrentStreams: 2 } });
let active = 0;
const connections = new Set();
server.on('stream', (stream, headers) => {
  const path = headers[':path'];
  if (path === '/ready') return stream.respond({ ':status': 200 }, { endStream: true });
  if (path === '/hold') {
    // Answered after 200 ms; each arrival says how many streams and connections are open.
    active++;
    connections.add(stream.session);
    stream.session.once('close', () => connections.delete(stream.session));
    console.log('hold active=' + active + ' connections=' + connections.size);
    stream.on('close', () => active--);
    setTimeout(() => { stream.respond({ ':status': 200 }); stream.end('held'); }, 200);
    return;
  }
  if (path === '/trailers') {
    // The body's length and the request's trailers, once the request has ended.
    let length = 0;
    let trailers = null;
    stream.on('data', (c) => { length += c.length; });
    stream.on('trailers', (t) => { trailers = t; });
    stream.on('end', () => setImmediate(() => {
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end(JSON.stringify({ length, trailers }));
    }));
    return;
  }
  if (path === '/reset') {
    stream.respond({ ':status': 200 });
    // destroy() resets with INTERNAL_ERROR (close() would end the stream first).
    stream.on('error', () => {});
    stream.write('partial', () => setTimeout(() => stream.destroy(new Error('gone')), 20));
    return;
  }
  stream.respond({ ':status': 200, 'content-type': 'text/plain' });
  stream.end('h2c ' + headers[':authority'] + ' ' + headers['x-forwarded-proto']);
});
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

describe('an h2c app at the HTTP/2 level (node:http2)', () => {
  const H2C = 'h2c-app.localhost';
  let arr: ArrUnderTest;
  before(async () => {
    // Its `ready` path is asked over HTTP/2: over HTTP/1.1 it would never answer, and the
    // activation would fail.
    arr = await startArrWith(
      [{ ...inlineApp(H2C_APP, [{ host: H2C, ssl: 'allowed' }]), protocol: 'h2c', ready: '/ready' }],
      { extraArgs: ['--instance-connections', '2'] },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  // First in this suite: arr has no connection to the instance yet (its ready path is asked apart).
  it("streams beyond an instance's limit go to another connection, up to --instance-connections, then wait", async () => {
    const holds = () =>
      [...arr.proc.output().matchAll(/hold active=(\d+) connections=(\d+)/g)].map((m) => ({
        active: Number(m[1]),
        connections: Number(m[2]),
      }));
    const session = await h2Connect(arr.sslport, H2C);
    try {
      const burst = async () => {
        const replies = await Promise.all(Array.from({ length: 8 }, () => h2Request(session, H2C, '/hold')));
        for (const r of replies) assert.equal(r.body.toString(), 'held');
      };
      // Before the instance's SETTINGS came, nothing is sent past its limit (no stream refused).
      await burst();
      assert.equal(holds().length, 8);
      assert.ok(Math.max(...holds().map((h) => h.active)) <= 4);
      // Its limit known: two streams on each of two connections, the rest waited.
      await burst();
      const warm = holds().slice(8);
      assert.equal(warm.length, 8);
      assert.equal(Math.max(...warm.map((h) => h.connections)), 2, 'a second connection, no third');
      assert.equal(Math.max(...warm.map((h) => h.active)), 4);
    } finally {
      await closeSession(session);
    }
  });

  it('serves HTTP/2 and HTTP/1.1 clients, with the ready path asked over HTTP/2', async () => {
    const session = await h2Connect(arr.sslport, H2C);
    try {
      const r = await h2Request(session, H2C, '/');
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), `h2c ${H2C} https`);
    } finally {
      await closeSession(session);
    }
    // By prior knowledge on the plain port: a plain request (X-Forwarded-Proto: http).
    const plain = h2ConnectWith(`http://127.0.0.1:${arr.port}`);
    try {
      const r = await h2Request(plain, H2C, '/');
      assert.equal(r.body.toString(), `h2c ${H2C} http`);
    } finally {
      await closeSession(plain);
    }
    const h1 = await fetchVia(arr.port, H2C, false);
    assert.equal(h1.status, 200);
    assert.equal(h1.text, `h2c ${H2C} http`);
  });

  it("a client's request trailers reach the instance, from HTTP/2 and chunked HTTP/1.1", async () => {
    const session = await h2Connect(arr.sslport, H2C);
    try {
      const stream = session.request(
        { ':method': 'POST', ':path': '/trailers', ':authority': H2C },
        { waitForTrailers: true },
      );
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-checksum': 'abc', 'grpc-status': '0' }));
      stream.end(Buffer.alloc(100_000));
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      const got = JSON.parse(Buffer.concat(chunks).toString());
      assert.equal(got.length, 100_000);
      assert.equal(got.trailers?.['x-checksum'], 'abc');
      assert.equal(got.trailers?.['grpc-status'], '0');
    } finally {
      await closeSession(session);
    }
    const h1 = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({
        port: arr.port,
        method: 'POST',
        path: '/trailers',
        headers: { host: H2C, trailer: 'x-checksum' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.on('data', (c) => {
          text += c;
        });
        res.on('end', () => resolve(text));
      });
      req.write('chunked body');
      req.addTrailers({ 'x-checksum': 'def' });
      req.end();
    });
    const got = JSON.parse(h1);
    assert.equal(got.length, 12);
    assert.equal(got.trailers?.['x-checksum'], 'def');
  });

  it("an instance's reset resets the client's stream (not a clean end)", async () => {
    const session = await h2Connect(arr.sslport, H2C);
    try {
      const stream = session.request({ ':path': '/reset', ':authority': H2C });
      stream.on('error', () => {});
      stream.resume();
      const ended = await new Promise<{ clean: boolean; rst: number }>((resolve) => {
        let clean = false;
        stream.on('end', () => {
          clean = true;
        });
        stream.on('close', () => resolve({ clean, rst: stream.rstCode ?? 0 }));
      });
      assert.equal(ended.clean, false);
      assert.notEqual(ended.rst, 0);
    } finally {
      await closeSession(session);
    }
  });
});
