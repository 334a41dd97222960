import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { type ClientHttp2Session, type ClientHttp2Stream, constants } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { allGone, gone } from '../support/activation.js';
import { type ArrUnderTest, startArrWith } from '../support/arr.js';
import { closeSession, h2Connect, readH2, wsConnect, wsText, wsTexts } from '../support/h2.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';
import { parseResponses } from '../support/rawhttp.js';
import { inlineApp, openWs, refusedUpgrade } from '../support/wsclient.js';

// Issue 25, item 12: every exchange, however it ends, leaves the count of exchanges in flight
// that drain, idle stop and graceful stop rely on, and an answer an instance sent before it
// closed is delivered. The count is observed without a debug hook: with --idle-timeout, an
// instance stops once nothing is in flight there (a count left above zero keeps it for good), and
// not while a request is (a count gone below zero stops it under a request); a graceful stop
// waits for connections that are still busy (one left unread held it its full 10 s).

/**
 * Answers every way an instance can: slowly, partly, not at all, from the head alone (with and
 * without Connection: close, never reading the body), by a reset before or during its answer.
 * /ws is a WebSocket echo whose greeting names the pid; /ws-refuse answers 403, /ws-reset resets.
 */
const ENDS_APP = `
import http from 'node:http';
import { WebSocketServer } from 'ws';
const wss = new WebSocketServer({ noServer: true });
const server = http.createServer((req, res) => {
  const [path, query] = req.url.split('?');
  switch (path) {
    case '/slow': {
      const timer = setTimeout(() => res.end('slow ' + process.pid), Number(new URLSearchParams(query).get('ms')));
      res.on('close', () => clearTimeout(timer));
      return;
    }
    case '/later': {
      // The head at once (--proxy-timeout is about the head), the end of the body later.
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('later ');
      const timer = setTimeout(() => res.end(String(process.pid)), Number(new URLSearchParams(query).get('ms')));
      res.on('close', () => clearTimeout(timer));
      return;
    }
    case '/partial': res.writeHead(200, { 'content-type': 'text/plain' }); res.write('part '); return;
    case '/reset': req.socket.destroy(); return;
    case '/reset-mid':
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('part ');
      setTimeout(() => req.socket.destroy(), 50);
      return;
    case '/hang': return;
    case '/early-keep': res.end('early keep\\n'); return;
    case '/early-close':
      res.writeHead(200, { connection: 'close', 'content-length': 12 });
      res.end('early close\\n');
      setImmediate(() => req.socket.destroy()); // the body unread: a reset
      return;
    case '/read': req.resume(); req.on('end', () => res.end('read\\n')); return;
    default: req.resume(); res.end('pid ' + process.pid + '\\n');
  }
});
server.on('upgrade', (req, socket, head) => {
  if (req.url === '/ws-refuse') return socket.end('HTTP/1.1 403 Forbidden\\r\\ncontent-length: 3\\r\\nconnection: close\\r\\n\\r\\nno\\n');
  if (req.url === '/ws-reset') return socket.destroy();
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.send('pid ' + process.pid);
    ws.on('message', (m) => ws.send(m.toString()));
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

const HOST = 'ends.localhost';
const CHUNK = Buffer.alloc(64 * 1024, 120);
/** An upload's announced size: far more than any test sends. */
const HUGE = 1024 * 1024 * 1024;

interface Outcome {
  status: number;
  body: string;
}

/**
 * An HTTP/1.1 upload on a raw connection: the head announces HUGE bytes, and the body is sent
 * as fast as arr takes it until an answer is complete, `stallAfter` bytes are sent (it then
 * stalls), or `abortAfter` bytes are sent (the connection is then destroyed). The connection
 * is destroyed once the answer is read: with unsent bytes still in its buffer, as a client
 * that gives up does.
 */
function h1Upload(
  port: number,
  path: string,
  opts: { stallAfter?: number; abortAfter?: number } = {},
): Promise<Outcome | 'aborted' | 'closed'> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let sent = 0;
    let text = '';
    let done = false;
    const finish = (v: Outcome | 'aborted' | 'closed') => {
      if (done) return;
      done = true;
      s.destroy();
      resolve(v);
    };
    const pump = () => {
      while (!done && !s.destroyed) {
        if (opts.abortAfter !== undefined && sent >= opts.abortAfter) return finish('aborted');
        if (opts.stallAfter !== undefined && sent >= opts.stallAfter) return;
        sent += CHUNK.length;
        if (!s.write(CHUNK)) return void s.once('drain', pump);
      }
    };
    s.on('connect', () => {
      s.write(`POST ${path} HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: ${HUGE}\r\n\r\n`);
      pump();
    });
    s.on('error', () => {});
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text)?.[1];
      if (end < 0 || length === undefined || text.length < end + 4 + Number(length)) return;
      const [r] = parseResponses(text.slice(0, end + 4 + Number(length)));
      finish({ status: r!.status, body: r!.body });
    });
    s.on('close', () => finish('closed'));
  });
}

/** A GET over HTTP/1.1, abandoned by the client at `abort` (or read whole). */
function h1Get(
  port: number,
  path: string,
  abort?: 'before head' | 'after head' | 'mid body',
): Promise<Outcome | 'aborted' | 'broken'> {
  return new Promise((resolve) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false });
    const cut = () => resolve(abort ? 'aborted' : 'broken');
    req.on('error', cut);
    // After the 'end' a complete answer has (a request destroyed after its head has no 'error').
    req.on('close', () => setImmediate(cut));
    if (abort === 'before head') setTimeout(() => req.destroy(), 200);
    req.on('response', (res) => {
      if (abort === 'after head') return req.destroy();
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
        if (abort === 'mid body') req.destroy();
      });
      res.on('error', cut);
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.end();
  });
}

/** The same upload on an HTTP/2 stream (abortAfter: RST_STREAM CANCEL). */
function h2Upload(
  session: ClientHttp2Session,
  path: string,
  opts: { stallAfter?: number; abortAfter?: number } = {},
): Promise<Outcome | 'aborted' | 'reset'> {
  const stream = session.request(
    { ':method': 'POST', ':path': path, ':authority': HOST },
    { endStream: false },
  );
  let sent = 0;
  let answered = false;
  stream.once('response', () => {
    answered = true;
  });
  const pump = () => {
    while (!answered && !stream.destroyed) {
      if (opts.abortAfter !== undefined && sent >= opts.abortAfter) {
        stream.close(constants.NGHTTP2_CANCEL);
        return;
      }
      if (opts.stallAfter !== undefined && sent >= opts.stallAfter) return;
      sent += CHUNK.length;
      if (!stream.write(CHUNK)) return void stream.once('drain', pump);
    }
  };
  pump();
  return settle(stream, opts.abortAfter !== undefined);
}

/** A GET on an HTTP/2 stream, abandoned with RST_STREAM CANCEL at `abort` (or read whole). */
function h2Get(
  session: ClientHttp2Session,
  path: string,
  abort?: 'before head' | 'after head' | 'mid body',
): Promise<Outcome | 'aborted' | 'reset'> {
  const stream = session.request({ ':path': path, ':authority': HOST });
  const cancel = () => stream.close(constants.NGHTTP2_CANCEL);
  if (abort === 'before head') setTimeout(cancel, 200);
  if (abort === 'after head') stream.once('response', cancel);
  if (abort === 'mid body') stream.once('data', cancel);
  return settle(stream, abort !== undefined);
}

/** The stream's answer, or how it ended without one (a stream closed by RST_STREAM has no 'end'). */
function settle(stream: ClientHttp2Stream, aborting: boolean): Promise<Outcome | 'aborted' | 'reset'> {
  const cut = aborting ? 'aborted' : 'reset';
  return new Promise((resolve) => {
    readH2(stream).then(
      (r) => resolve(aborting ? cut : { status: r.status, body: r.text }),
      () => resolve(cut),
    );
    // After the 'end' a complete answer has (if it has one).
    stream.once('close', () => setImmediate(resolve, cut));
  });
}

/** An extended CONNECT (RFC 8441) for `path`: its status, and the stream to talk on. */
async function h2WebSocket(session: ClientHttp2Session, path: string) {
  const stream = await wsConnect(session, HOST, path);
  stream.on('error', () => {});
  let received = Buffer.alloc(0);
  stream.on('data', (c: Buffer) => {
    received = Buffer.concat([received, c]);
  });
  const status = await new Promise<number>((resolve) => {
    stream.once('response', (h) => resolve(Number(h[':status'])));
    stream.once('close', () => resolve(0));
  });
  return { status, stream, texts: () => wsTexts(received) };
}

describe('every way an exchange ends leaves the count of exchanges in flight', () => {
  let arr: ArrUnderTest;
  let session: ClientHttp2Session;
  before(async () => {
    arr = await startArrWith([{ ...inlineApp(ENDS_APP, [{ host: HOST, ssl: 'allowed' }]), name: 'ends' }], {
      extraArgs: ['--idle-timeout', '1', '--proxy-timeout', '1', '--body-timeout', '1'],
    });
    session = await h2Connect(arr.sslport, HOST);
  });
  after(async () => {
    await closeSession(session);
    await arr?.stop();
    await stopAll();
  });

  it('HTTP/1.1, HTTP/2 and WebSockets ended by either side, by timeouts and by errors; then the instance idles and arr stops at once', async () => {
    // A WebSocket holds the instance while the exchanges run (its own count is +1, then -1).
    const keeper = await openWs(arr.port, HOST, false);
    const pid = Number(/pid (\d+)/.exec((await keeper.message(0)).data.toString())?.[1]);
    assert.ok(pid > 0);

    // Answers an instance sent before it closed are delivered (the write of the body failed).
    for (let i = 0; i < 3; i++)
      assert.deepEqual(await h1Upload(arr.port, '/early-close'), { status: 200, body: 'early close\n' });
    assert.deepEqual(await h2Upload(session, '/early-close'), { status: 200, body: 'early close\n' });
    assert.deepEqual(await h1Upload(arr.port, '/early-keep'), { status: 200, body: 'early keep\n' });
    assert.deepEqual(await h2Upload(session, '/early-keep'), { status: 200, body: 'early keep\n' });

    const ended = await Promise.all([
      // The client leaves: before the head, after it, in the middle of the answer or of its upload.
      h1Get(arr.port, '/slow?ms=5000', 'before head'),
      h1Get(arr.port, '/partial', 'after head'),
      h1Get(arr.port, '/partial', 'mid body'),
      h1Upload(arr.port, '/read', { abortAfter: 1024 * 1024 }),
      h2Get(session, '/slow?ms=5000', 'before head'),
      h2Get(session, '/partial', 'after head'),
      h2Get(session, '/partial', 'mid body'),
      h2Upload(session, '/read', { abortAfter: 1024 * 1024 }),
      // The instance resets: before its answer (a GET; an upload, whose rest is dropped), or in it.
      h1Get(arr.port, '/reset'),
      h1Upload(arr.port, '/reset'),
      h1Get(arr.port, '/reset-mid'),
      h2Get(session, '/reset'),
      h2Upload(session, '/reset'),
      h2Get(session, '/reset-mid'),
      // Timeouts: no answer (--proxy-timeout), a stalled upload (--body-timeout).
      h1Get(arr.port, '/hang'),
      h2Get(session, '/hang'),
      h1Upload(arr.port, '/read', { stallAfter: 256 * 1024 }),
      h2Upload(session, '/read', { stallAfter: 256 * 1024 }),
    ]);
    assert.deepEqual(ended.map(statusOf), [
      ...['aborted', 'aborted', 'aborted', 'aborted'],
      ...['aborted', 'aborted', 'aborted', 'aborted'],
      ...[502, 502, 'broken', 502, 502, 'reset'],
      ...[504, 504, 408, 408],
    ]);

    // WebSockets: closed by the client, reset by it, refused, failed; over HTTP/1.1 and HTTP/2.
    const ws = await openWs(arr.port, HOST, false);
    await ws.message(0);
    ws.ws.close();
    await ws.closed;
    const reset = await openWs(arr.port, HOST, false);
    await reset.message(0);
    reset.tcp.destroy();
    await reset.closed;
    assert.equal((await refusedUpgrade(arr.port, HOST, false, { path: '/ws-refuse' })).status, 403);
    assert.equal((await refusedUpgrade(arr.port, HOST, false, { path: '/ws-reset' })).status, 502);
    const h2ws = await h2WebSocket(session, '/ws');
    assert.equal(h2ws.status, 200);
    await until('the greeting over HTTP/2', () => h2ws.texts().length >= 1);
    h2ws.stream.write(wsText('over h2'));
    await until('the echo over HTTP/2', () => h2ws.texts().length >= 2);
    h2ws.stream.close(constants.NGHTTP2_CANCEL);
    for (const [path, status] of [
      ['/ws-refuse', 403],
      ['/ws-reset', 502],
    ] as const) {
      const refused = await h2WebSocket(session, path);
      assert.equal(refused.status, status);
      // The client keeps its side of the stream open: arr closes it once the refusal is sent.
      await until(`arr to close the stream of ${path}`, () => refused.stream.closed, { timeoutMs: 3_000 });
    }

    // Nothing above stopped the instance (a count below zero would have, with the keeper open).
    keeper.ws.close();
    await keeper.closed;
    // Not negative: a request in flight for longer than the idle timeout keeps the instance...
    const slow = await h1Get(arr.port, '/later?ms=2500');
    assert.deepEqual(
      slow,
      { status: 200, body: `later ${pid}` },
      'the same instance answers, not stopped under it',
    );
    // ...and not positive: once it is answered, the instance is idle.
    await allGone([pid], 5_000);

    // Nothing holds a graceful stop (its grace is 10 s).
    await closeSession(session);
    const began = Date.now();
    assert.equal(await arr.stop(), 0);
    assert.ok(Date.now() - began < 5_000, `stopped in ${Date.now() - began} ms`);
    assert.ok(gone(arr.proc.pid));
  });
});

describe("an answer of arr's own while the client is still sending its body", () => {
  let arr: ArrUnderTest;
  before(async () => {
    // Default timeouts: a --body-timeout of 60 s would end a connection left unread, after the grace.
    arr = await startArrWith([{ ...inlineApp(ENDS_APP, [{ host: HOST, ssl: 'allowed' }]), name: 'ends' }]);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('a small rest is read and dropped, and the connection serves the next request', async () => {
    const s = netConnect({ host: '127.0.0.1', port: arr.port });
    s.on('error', () => {});
    let text = '';
    s.on('data', (d: Buffer) => {
      text += d.toString('latin1');
    });
    s.write(`POST /reset HTTP/1.1\r\nHost: ${HOST}\r\nContent-Length: 60000\r\n\r\n${'x'.repeat(1000)}`);
    await until('the 502', () => text.includes('502 Bad Gateway: the application failed'));
    s.write(`${'x'.repeat(59_000)}GET / HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`);
    await until('the answer to the next request', () => /pid \d+\n$/.test(text), { timeoutMs: 5_000 });
    assert.equal(parseResponses(text).length, 2, text);
    s.destroy();
  });

  it('a large rest closes the connection (HTTP/1.1) or the stream (HTTP/2): a graceful stop is not held', async () => {
    const session = await h2Connect(arr.sslport, HOST);
    assert.equal(statusOf(await h1Upload(arr.port, '/reset')), 502);
    assert.equal(statusOf(await h2Upload(session, '/reset')), 502);
    const began = Date.now();
    assert.equal(await arr.stop(), 0);
    // The grace is 10 s; a connection or stream left unread held it that long.
    assert.ok(Date.now() - began < 5_000, `stopped in ${Date.now() - began} ms`);
    session.destroy();
  });
});

function statusOf(o: Outcome | string): number | string {
  return typeof o === 'string' ? o : o.status;
}
