import assert from 'node:assert/strict';
import type { ClientHttp2Session } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { type ArrUnderTest, helloApp, startArrWith } from '../support/arr.js';
import {
  closeSession,
  FLAG,
  FRAME,
  frame,
  getFields,
  h2Connect,
  h2Request,
  headerBlock,
  rawH2,
  readH2,
  SETTING,
  settings,
} from '../support/h2.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';
import { rssBytes } from '../support/tcp.js';
import { assertArrServes } from '../support/wsclient.js';

// The known HTTP/2 floods and stalls, written frame by frame over TLS: each one's connection is
// closed by arr, and arr keeps serving an HTTP/2 client connected before the abuse began, new
// HTTP/2 clients and HTTP/1.1 clients.

const HOST = 'app2.localhost';
/** --keepalive-timeout: how long a stalled HTTP/2 connection is kept (short, for the stall case). */
const IDLE_S = 2;

/** Resolves when arr has closed the socket (what it sends meanwhile is read and dropped). */
async function closedByArr(socket: TLSSocket, what: string): Promise<void> {
  socket.on('error', () => {});
  socket.resume();
  await until(`arr to close the connection (${what})`, () => socket.closed || socket.readableEnded, {
    timeoutMs: 20_000,
  });
}

/** Writes without waiting for the peer: what a flood does (the kernel buffers what it can). */
function flood(socket: TLSSocket, one: Buffer, times: number): void {
  const batch = Buffer.concat(Array.from({ length: 1000 }, () => one));
  for (let i = 0; i < times / 1000 && !socket.destroyed; i++) socket.write(batch);
}

describe('HTTP/2 abuse', () => {
  let arr: ArrUnderTest;
  let good: ClientHttp2Session;
  before(async () => {
    arr = await startArrWith([helloApp('app2', [{ host: HOST, ssl: 'allowed' }])], {
      extraArgs: ['--keepalive-timeout', String(IDLE_S), '--body-timeout', '1'],
    });
    good = await h2Connect(arr.sslport, HOST);
    // Keeps the good connection busy enough never to be idle for the short keep-alive timeout.
    assert.equal((await h2Request(good, HOST, '/')).status, 200);
  });
  after(async () => {
    await closeSession(good);
    await arr?.stop();
    await stopAll();
  });

  async function stillServes(): Promise<void> {
    if (good.destroyed || good.closed) good = await h2Connect(arr.sslport, HOST);
    assert.equal((await h2Request(good, HOST, '/')).status, 200, 'the connection opened before');
    const fresh = await h2Connect(arr.sslport, HOST);
    try {
      assert.equal((await h2Request(fresh, HOST, '/')).status, 200, 'a new HTTP/2 connection');
    } finally {
      await closeSession(fresh);
    }
    await assertArrServes(arr, HOST, true);
  }

  it('rapid reset (CVE-2023-44487): HEADERS then RST_STREAM, over and over', async () => {
    const s = await rawH2(arr.sslport, HOST);
    const closed = closedByArr(s, 'rapid reset');
    const block = headerBlock(getFields(HOST));
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(0x8); // CANCEL
    for (let id = 1; id < 2 * 20_000 && !s.destroyed; id += 2) {
      s.write(
        Buffer.concat([
          frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, id, block),
          frame(FRAME.RST_STREAM, 0, id, cancel),
        ]),
      );
    }
    await closed;
    await stillServes();
  });

  it('SETTINGS flood: frames whose ACKs are never read', async () => {
    const s = await rawH2(arr.sslport, HOST);
    s.pause();
    flood(s, settings(), 200_000);
    await closedByArr(s, 'SETTINGS flood');
    await stillServes();
  });

  it('PING flood: frames whose ACKs are never read', async () => {
    const s = await rawH2(arr.sslport, HOST);
    s.pause();
    flood(s, frame(FRAME.PING, 0, 0, Buffer.alloc(8, 7)), 200_000);
    await closedByArr(s, 'PING flood');
    await stillServes();
  });

  it('endless CONTINUATION: a header block that never ends', async () => {
    const s = await rawH2(arr.sslport, HOST);
    const closed = closedByArr(s, 'CONTINUATION flood');
    s.write(frame(FRAME.HEADERS, 0, 1, headerBlock(getFields(HOST))));
    const crumb = frame(FRAME.CONTINUATION, 0, 1, headerBlock([['x-crumb', 'a'.repeat(100)]]));
    for (let i = 0; i < 10_000 && !s.destroyed; i++) s.write(crumb);
    await closed;
    await stillServes();
  });

  it('a stalled upload: the stream gets 408 after --body-timeout, the connection serves on', async () => {
    const session = await h2Connect(arr.sslport, HOST);
    try {
      const stream = session.request(
        { ':method': 'POST', ':path': '/sha256', ':authority': HOST, 'content-length': '1000' },
        { endStream: false },
      );
      const reply = readH2(stream);
      stream.write(Buffer.alloc(10, 1)); // 10 bytes of the 1,000 announced, then nothing
      const r = await reply;
      assert.equal(r.status, 408, r.text);
      assert.equal((await h2Request(session, HOST, '/')).status, 200, 'the same connection serves on');
    } finally {
      await closeSession(session);
    }
    await stillServes();
  });

  it('zero-window stall: a client that takes an answer and never opens its window', async () => {
    const rssBefore = rssBytes(arr.proc.pid);
    const s = await rawH2(arr.sslport, HOST, [[SETTING.INITIAL_WINDOW_SIZE, 0]]);
    const closed = closedByArr(s, 'zero window');
    s.write(
      frame(
        FRAME.HEADERS,
        FLAG.END_HEADERS | FLAG.END_STREAM,
        1,
        headerBlock(getFields(HOST, '/bytes?n=50000000')),
      ),
    );
    // Closed after --keepalive-timeout of nothing moving, not held for ever.
    await closed;
    // What the instance had to send was not all read into arr's memory meanwhile (backpressure).
    assert.ok(rssBytes(arr.proc.pid) - rssBefore < 40 * 1024 * 1024, 'arr did not buffer the 50 MB answer');
    await stillServes();
  });
});
