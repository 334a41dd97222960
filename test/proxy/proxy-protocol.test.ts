import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import WebSocket from 'ws';
import { MAX_HEADER_BYTES, parseProxyHeader } from '../../src/router/accepting/proxy-protocol.js';
import { type ArrUnderTest, helloApp, startArrWith } from '../support/arr.js';
import { local, logLines, removeTempDirs, runningNlb } from '../support/nlb.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';
import { parseResponses } from '../support/rawhttp.js';
import { CRASH, inlineApp } from '../support/wsclient.js';

/** The client's own address: not nlb's (127.0.0.1), so that the two cannot be mistaken. */
const CLIENT = '127.0.0.7';
const HOST = 'pp.localhost';
const WS_HOST = 'ppws.localhost';

/** A WebSocket app that sends the upgrade request's headers as JSON, then echoes. */
const HEADERS_WS = `
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => res.end('plain'));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => {
  ws.send(JSON.stringify(req.headers));
  ws.on('message', (data, binary) => ws.send(data, { binary }));
});
server.listen(Number(process.env.PORT));
`;

const apps = () => [
  helloApp('pp', [{ host: HOST, ssl: 'allowed' }]),
  inlineApp(HEADERS_WS, [{ host: WS_HOST, ssl: 'allowed' }]),
];

/** A request head for HOST that closes the connection after the answer. */
const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`;

/** What curl --http2 sends on a plain connection: arr declines the upgrade and serves it as is. */
const H2C_GET = [
  'GET /headers HTTP/1.1',
  `Host: ${HOST}`,
  'Connection: Upgrade, HTTP2-Settings, close',
  'Upgrade: h2c',
  'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA',
  '\r\n',
].join('\r\n');

/**
 * Lets a piece written just before travel and be read on its own. Not a wait for a condition:
 * nothing shows from outside that arr has read it; a pause makes it (nearly) sure.
 */
const apart = () => new Promise((r) => setTimeout(r, 50));

interface Outcome {
  /** Everything received, latin1. */
  text: string;
  error?: string;
  ms: number;
}

/** A TCP connection to `port` from `from`, once connected. */
function connectFrom(port: number, from = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ port, host: '127.0.0.1', localAddress: from, noDelay: true });
    s.once('error', reject);
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/** Collects what `s` receives until it closes (or `waitMs` passes: error 'still open'). */
function outcome(s: Socket, started: number, waitMs = 10_000): Promise<Outcome> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const timer = setTimeout(() => {
      error = 'still open';
      s.destroy();
    }, waitMs);
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', (err: NodeJS.ErrnoException) => {
      error ??= err.code ?? err.message;
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ text: Buffer.concat(chunks).toString('latin1'), error, ms: Date.now() - started });
    });
  });
}

/** Plain TCP: writes `pieces` one after another, apart, and collects the answer until closed. */
async function raw(port: number, pieces: string[], from = '127.0.0.1', waitMs?: number): Promise<Outcome> {
  const started = Date.now();
  const s = await connectFrom(port, from);
  const done = outcome(s, started, waitMs);
  for (const [i, piece] of pieces.entries()) {
    if (i > 0) await apart();
    if (!s.destroyed) s.write(Buffer.from(piece, 'latin1'));
  }
  return done;
}

/**
 * TLS after a PROXY header: every piece of `header` but the last is written alone (apart); the
 * last goes out in one write with the ClientHello, so that arr gets both in one read. Then
 * `request` is sent over TLS and the answer collected until the connection closes.
 */
async function tlsRaw(port: number, header: string[], request: string, from = '127.0.0.1'): Promise<Outcome> {
  const started = Date.now();
  const tcp = await connectFrom(port, from);
  const pieces = [...header];
  let prefix: Buffer | undefined = Buffer.from(pieces.pop() ?? '', 'latin1');
  for (const piece of pieces) {
    tcp.write(Buffer.from(piece, 'latin1'));
    await apart();
  }
  // The TLS layer writes through this stream; its first write (the ClientHello) takes the prefix.
  const carrier = new Duplex({
    write(chunk: Buffer, _encoding, callback) {
      const data = prefix ? Buffer.concat([prefix, chunk]) : chunk;
      prefix = undefined;
      tcp.write(data, callback);
    },
    read() {},
    final(callback) {
      tcp.end();
      callback();
    },
  });
  tcp.on('data', (d: Buffer) => carrier.push(d));
  tcp.on('end', () => carrier.push(null));
  tcp.on('error', (err) => carrier.destroy(err));
  tcp.on('close', () => carrier.destroy());
  const tls = tlsConnect({ socket: carrier, servername: HOST, rejectUnauthorized: false });
  tls.once('secureConnect', () => tls.write(request));
  return outcome(tls as unknown as Socket, started);
}

/** The JSON body of the single answer in `o` (hello's /headers), asserting a 200. */
function headersIn(o: Outcome): Record<string, string> {
  const [answer, ...more] = parseResponses(o.text);
  assert.equal(answer?.status, 200, `a 200 answer, got: ${JSON.stringify(o)}`);
  assert.equal(more.length, 0);
  return JSON.parse(answer!.body).headers;
}

/** GET https?://HOST/path through `port` from CLIENT; the hello app's /headers as seen there. */
function requestFrom(port: number, secure: boolean, path: string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const options = {
      host: '127.0.0.1',
      port,
      path,
      headers: { host: HOST },
      localAddress: CLIENT,
      agent: false as const,
    };
    const req = secure
      ? httpsRequest({ ...options, servername: HOST, rejectUnauthorized: false })
      : httpRequest(options);
    req.setTimeout(20_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        body += d;
      });
      res.on('end', () =>
        res.statusCode === 200
          ? resolve(JSON.parse(body).headers)
          : reject(new Error(`${res.statusCode}: ${body}`)),
      );
    });
    req.end();
  });
}

/** A WebSocket to WS_HOST through `port` from CLIENT; its first message (the headers) and an echo. */
async function webSocketFrom(port: number, secure: boolean): Promise<{ headers: Record<string, string> }> {
  const ws = new WebSocket(`${secure ? 'wss' : 'ws'}://127.0.0.1:${port}/`, {
    headers: { host: WS_HOST },
    localAddress: CLIENT,
    ...(secure ? { servername: WS_HOST, rejectUnauthorized: false } : {}),
    handshakeTimeout: 15_000,
  });
  const messages: string[] = [];
  ws.on('message', (d) => messages.push(String(d)));
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
      ws.once('unexpected-response', (_req, res) => reject(new Error(`unexpected ${res.statusCode}`)));
    });
    const first = await until('the headers message', () => messages[0]);
    ws.send('ping through the PROXY header');
    assert.equal(await until('the echo', () => messages[1]), 'ping through the PROXY header');
    return { headers: JSON.parse(first) };
  } finally {
    ws.terminate();
  }
}

describe('--trust-proxy-protocol', () => {
  let arr: ArrUnderTest;
  let nlbHttp: number;
  let nlbHttps: number;

  before(async () => {
    arr = await startArrWith(apps(), {
      extraArgs: ['--trust-proxy-protocol', '--access-log', '--header-timeout', '2'],
    });
    await arr.proc.waitFor('--trust-proxy-protocol');
    [nlbHttp, nlbHttps] = (await freePorts(2)) as [number, number];
    await runningNlb([
      { port: nlbHttp, host: '127.0.0.1', backends: local(arr.port), proxyProtocol: true },
      { port: nlbHttps, host: '127.0.0.1', backends: local(arr.sslport), proxyProtocol: true },
    ]);
  });

  after(async () => {
    await arr?.stop();
    await stopAll();
    removeTempDirs();
  });

  /** arr's access-log line for `path`, once written. */
  const accessLine = (path: string) =>
    until(`the access-log line of ${path}`, () => logLines(arr.proc.output()).find((l) => l.path === path));

  /** arr answers through nlb, and nothing escaped in its output. */
  async function assertServes(): Promise<void> {
    const headers = await requestFrom(nlbHttp, false, '/headers?still');
    assert.equal(headers['x-forwarded-for'], CLIENT);
    assert.doesNotMatch(arr.proc.output(), CRASH);
  }

  it('behind nlb with "proxyProtocol": the app sees the client address over http and https', async () => {
    for (const [port, secure] of [
      [nlbHttp, false],
      [nlbHttps, true],
    ] as const) {
      const path = `/headers?via=nlb-${secure ? 'https' : 'http'}`;
      const headers = await requestFrom(port, secure, path);
      // The client's address alone: not nlb's 127.0.0.1 in its place or after it.
      assert.equal(headers['x-forwarded-for'], CLIENT, `over ${secure ? 'https' : 'http'}`);
      assert.equal(headers['x-forwarded-proto'], secure ? 'https' : 'http');
      assert.equal((await accessLine(path)).client, CLIENT, 'the access log names the client too');
    }
  });

  it('behind nlb: WebSockets work, over ws and wss, and their upgrade carries the client address', async () => {
    for (const secure of [false, true]) {
      const { headers } = await webSocketFrom(secure ? nlbHttps : nlbHttp, secure);
      assert.equal(headers['x-forwarded-for'], CLIENT, `over ${secure ? 'wss' : 'ws'}`);
    }
    const wsLines = await until('two WebSocket access-log lines', () => {
      const lines = logLines(arr.proc.output()).filter((l) => l.websocket === true);
      return lines.length >= 2 && lines;
    });
    for (const l of wsLines) assert.equal(l.client, CLIENT);
  });

  it('a connection without a header is closed without an answer, and arr keeps serving', async () => {
    const plain = await raw(arr.port, [get('/headers')]);
    assert.equal(plain.text, '', 'no answer on the plain port');
    assert.notEqual(plain.error, 'still open');
    const tls = await tlsRaw(arr.sslport, [], get('/headers'));
    assert.equal(tls.text, '', 'no answer on the TLS port');
    assert.notEqual(tls.error, 'still open');
    // Refused from its first bytes, without waiting for a line end or the 2 s header timeout.
    const early = await raw(arr.port, ['GET / HT'], '127.0.0.1', 1_500);
    assert.equal(early.text, '');
    assert.notEqual(early.error, 'still open', 'closed at once');
    await assertServes();
  });

  it('a header that comes in pieces, or with the request (or the ClientHello) right behind it, works', async () => {
    const plain = await raw(arr.port, [
      'PROXY TCP4 198.51',
      `.100.2 127.0.0.1 40000 80\r\n${get('/headers')}`,
    ]);
    assert.equal(headersIn(plain)['x-forwarded-for'], '198.51.100.2');
    const plain3 = await raw(arr.port, [
      'PROX',
      'Y TCP4 198.51.100.3 127.0.0.1 40000 80\r',
      `\n${get('/headers')}`,
    ]);
    assert.equal(headersIn(plain3)['x-forwarded-for'], '198.51.100.3');
    const alone = await raw(arr.port, ['PROXY TCP4 198.51.100.4 127.0.0.1 40000 80\r\n', get('/headers')]);
    assert.equal(headersIn(alone)['x-forwarded-for'], '198.51.100.4');
    const tls = await tlsRaw(
      arr.sslport,
      ['PROXY TCP4 198.51', '.100.5 127.0.0.1 40000 443\r\n'],
      get('/headers'),
    );
    assert.equal(headersIn(tls)['x-forwarded-for'], '198.51.100.5');
  });

  it('a header longer than 107 bytes is refused; one of exactly 107 is taken', async () => {
    const full = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const longest = `PROXY UNKNOWN ${full} ${full} 65535 65535\r\n`;
    assert.equal(longest.length, MAX_HEADER_BYTES);
    const ok = await raw(arr.port, [longest + get('/headers')], CLIENT);
    assert.equal(headersIn(ok)['x-forwarded-for'], CLIENT);

    const tooLong = `PROXY UNKNOWN ${full} ${full} 65535 655350\r\n`;
    assert.equal(tooLong.length, MAX_HEADER_BYTES + 1);
    for (const pieces of [
      [tooLong + get('/headers')],
      [tooLong.slice(0, 60), tooLong.slice(60) + get('/headers')],
    ]) {
      const refused = await raw(arr.port, pieces);
      assert.equal(refused.text, '');
      assert.notEqual(refused.error, 'still open');
    }
    // No line end at all: refused at byte 107, not left waiting.
    const endless = await raw(arr.port, [`PROXY TCP4 ${'1'.repeat(200)}`], '127.0.0.1', 1_500);
    assert.equal(endless.text, '');
    assert.notEqual(endless.error, 'still open');
    await assertServes();
  });

  it('malformed headers are refused without an answer', async () => {
    for (const header of [
      'PROXY TCP4 198.51.100.2 127.0.0.1 40000 80\n', // a bare LF
      'PROXY TCP4 ::1 127.0.0.1 40000 80\r\n', // the wrong family
      'PROXY TCP4 198.51.100.2 127.0.0.1 70000 80\r\n', // no such port
      'PROXY TCP4  198.51.100.2 127.0.0.1 40000 80\r\n', // two spaces
      'PROXY HTTP 198.51.100.2 127.0.0.1 40000 80\r\n',
      'proxy TCP4 198.51.100.2 127.0.0.1 40000 80\r\n',
      '\r\n\r\n\0\r\nQUIT\n', // the v2 signature
    ]) {
      const o = await raw(arr.port, [header + get('/headers')]);
      assert.equal(o.text, '', JSON.stringify(header));
      assert.notEqual(o.error, 'still open', JSON.stringify(header));
    }
    await assertServes();
  });

  it('TCP6: the IPv6 source address is the client address, over http and https', async () => {
    const plain = await raw(arr.port, [`PROXY TCP6 ::1 ::1 40000 80\r\n${get('/headers')}`]);
    assert.equal(headersIn(plain)['x-forwarded-for'], '::1');
    const tls = await tlsRaw(arr.sslport, ['PROXY TCP6 2001:db8::7 ::1 40000 443\r\n'], get('/headers'));
    assert.equal(headersIn(tls)['x-forwarded-for'], '2001:db8::7');
  });

  it('UNKNOWN keeps the connection’s own address', async () => {
    const plain = await raw(arr.port, [`PROXY UNKNOWN\r\n${get('/headers')}`], CLIENT);
    assert.equal(headersIn(plain)['x-forwarded-for'], CLIENT);
    const tls = await tlsRaw(arr.sslport, ['PROXY UNKNOWN\r\n'], get('/headers'), CLIENT);
    assert.equal(headersIn(tls)['x-forwarded-for'], CLIENT);
  });

  it('a request handed back to the server (a declined "Upgrade: h2c") keeps its client address', async () => {
    const plain = await raw(arr.port, [`PROXY TCP4 198.51.100.8 127.0.0.1 40000 80\r\n${H2C_GET}`]);
    assert.equal(headersIn(plain)['x-forwarded-for'], '198.51.100.8');
    const tls = await tlsRaw(arr.sslport, ['PROXY TCP4 198.51.100.9 127.0.0.1 40000 443\r\n'], H2C_GET);
    assert.equal(headersIn(tls)['x-forwarded-for'], '198.51.100.9');
  });

  it('a header not complete within --header-timeout is closed without an answer', async () => {
    const [silent, partial] = await Promise.all([
      raw(arr.port, []),
      raw(arr.sslport, ['PROXY TCP4 198.51.100.2 127.0']),
    ]);
    for (const o of [silent, partial]) {
      assert.equal(o.text, '');
      assert.notEqual(o.error, 'still open');
      assert.ok(o.ms >= 1_500, `closed after the 2 s header timeout, not before (${o.ms} ms)`);
    }
    await assertServes();
  });
});

describe('without --trust-proxy-protocol', () => {
  after(async () => {
    await stopAll();
  });

  it('a request that begins with "PROXY ..." gets Node’s 400, as before', async () => {
    const arr = await startArrWith([helloApp('pp', [{ host: HOST, ssl: 'allowed' }])]);
    try {
      const o = await raw(arr.port, [`PROXY TCP4 198.51.100.2 127.0.0.1 40000 80\r\n${get('/headers')}`]);
      assert.match(o.text, /^HTTP\/1\.1 400 Bad Request\r\n/);
      const fine = await raw(arr.port, [get('/headers')], CLIENT);
      assert.equal(headersIn(fine)['x-forwarded-for'], CLIENT);
    } finally {
      await arr.stop();
    }
  });
});

describe('parseProxyHeader', () => {
  it('reads TCP4, TCP6 and UNKNOWN lines and nothing else', () => {
    assert.deepEqual(parseProxyHeader('PROXY TCP4 192.0.2.1 192.0.2.2 56324 443'), {
      protocol: 'TCP4',
      source: '192.0.2.1',
      destination: '192.0.2.2',
      sourcePort: 56324,
      destinationPort: 443,
    });
    assert.equal(
      (parseProxyHeader('PROXY TCP6 2001:db8::1 ::1 0 65535') as { source: string }).source,
      '2001:db8::1',
    );
    assert.deepEqual(parseProxyHeader('PROXY UNKNOWN'), { protocol: 'UNKNOWN' });
    assert.deepEqual(parseProxyHeader('PROXY UNKNOWN ::1 ::1 1 2'), { protocol: 'UNKNOWN' });
    for (const bad of [
      '',
      'PROXY',
      'PROXY TCP4',
      'PROXY TCP4 192.0.2.1 192.0.2.2 56324',
      'PROXY TCP4 192.0.2.1 192.0.2.2 56324 443 extra',
      'PROXY TCP4 192.0.2.1 192.0.2.2 65536 443',
      'PROXY TCP4 192.0.2.1 192.0.2.2 -1 443',
      'PROXY TCP4 192.0.2.1 192.0.2.2 0x10 443',
      'PROXY TCP4 192.0.2.256 192.0.2.2 1 443',
      'PROXY TCP4 ::1 192.0.2.2 1 443',
      'PROXY TCP6 192.0.2.1 ::1 1 443',
      'PROXY TCP6 fe80::1%eth0 ::1 1 443',
      'PROXY UNKNOWNX',
      'PROXY TCP4 192.0.2.1 192.0.2.2 1 443 ',
    ]) {
      assert.equal(parseProxyHeader(bad), undefined, JSON.stringify(bad));
    }
  });
});
