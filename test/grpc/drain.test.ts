import assert from 'node:assert/strict';
import { renameSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { allGone, gone } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, startArrWith, writeAppsFile } from '../support/arr.js';
import { type EchoClient, GRPC_APP, grpc, tlsClient, unary } from '../support/grpc.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

// A deploy while gRPC streams are open: they finish on the old instance (until they end, or
// the drain is over), new calls go to the new instance at once.

const HOST = 'drain-grpc.localhost';
const DRAIN_S = 3;

const app = (version: string): AppDoc => ({
  _id: 'draingrpc',
  process: { executable: process.execPath, args: [GRPC_APP] },
  hosts: [{ host: HOST, ssl: 'allowed' }],
  instances: 1,
  protocol: 'h2c',
  env: { VERSION: version },
});

/** The pid of the instance that answers a unary call (its `x-pid` trailer). */
async function pidOfCall(client: EchoClient): Promise<number> {
  const { error, trailers } = await unary(client, Buffer.from('pid?'));
  assert.equal(error, undefined, error?.details);
  return Number(trailers?.get('x-pid')[0]);
}

/** A bidirectional call with a way to send a message and wait for its echo, and its final status. */
function openBidi(client: EchoClient) {
  const call = client.bidi();
  const status = new Promise<grpc.StatusObject & { at: number }>((resolve) =>
    call.on('status', (s: grpc.StatusObject) => resolve({ ...s, at: Date.now() })),
  );
  call.on('error', () => {});
  return {
    call,
    status,
    /** The echo of `text`; fails if the call ends first. */
    echo: (text: string) =>
      new Promise<string>((resolve, reject) => {
        const ended = (s: grpc.StatusObject) => reject(new Error(`the call ended: ${s.code} ${s.details}`));
        call.once('status', ended);
        call.once('data', (b: Buffer) => {
          call.off('status', ended);
          resolve(b.toString());
        });
        call.write(Buffer.from(text));
      }),
  };
}

describe('a deploy while gRPC streams are open', { timeout: 60_000 }, () => {
  let arr: ArrUnderTest;
  let client: EchoClient;
  before(async () => {
    arr = await startArrWith([app('v1')], { extraArgs: ['--drain', String(DRAIN_S)] });
    client = tlsClient(arr.sslport, HOST);
  });
  after(async () => {
    client?.close();
    await arr?.stop();
    await stopAll();
  });

  it('streams finish on the old instance (until they end, or the drain is over); new calls go to the new one', async () => {
    const oldPid = await pidOfCall(client);
    const ending = openBidi(client);
    const held = openBidi(client);
    assert.equal(await ending.echo('a1'), 'a1');
    assert.equal(await held.echo('b1'), 'b1');

    const file = arr.appsFile!;
    writeAppsFile(`${file}.new`, [app('v2')]);
    renameSync(`${file}.new`, file);
    let newPid = oldPid;
    await until(
      'calls answered by the new instance',
      async () => {
        newPid = await pidOfCall(client);
        return newPid !== oldPid;
      },
      { timeoutMs: 15_000, intervalMs: 50 },
    );
    const switched = Date.now();
    // The open streams are still the old instance's, which is still there.
    assert.equal(await ending.echo('a2'), 'a2');
    assert.equal(await held.echo('b2'), 'b2');
    assert.equal(gone(oldPid), false);
    ending.call.end();
    const ended = await ending.status;
    assert.equal(ended.code, grpc.status.OK, ended.details);
    assert.equal(await held.echo('b3'), 'b3', 'the other stream keeps flowing');
    assert.equal(await pidOfCall(client), newPid);

    // The stream still open keeps the old instance until the drain is over; then it is cut.
    const cut = await held.status;
    assert.notEqual(cut.code, grpc.status.OK);
    assert.ok(cut.at - switched >= DRAIN_S * 1000 - 300, `cut ${cut.at - switched} ms after the switch`);
    await allGone([oldPid]);
    assert.equal(gone(newPid), false);
    assert.equal(await pidOfCall(client), newPid);
  });
});
