import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { type ArrUnderTest, startArrWith } from '../support/arr.js';
import { type EchoClient, GRPC_APP, grpc, tlsClient, unary } from '../support/grpc.js';
import { stopAll } from '../support/proc.js';

// gRPC through arr, with @grpc/grpc-js on both sides: the app speaks HTTP/2 only
// (`"protocol": "h2c"`), the client comes over TLS (ALPN h2).

const HOST = 'grpc.localhost';

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
      ],
      { extraArgs: ['--proxy-timeout', '2'] },
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
});
