import assert from 'node:assert/strict';
import type { ClientHttp2Session, OutgoingHttpHeaders } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { logLines } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, startArrWith } from '../support/arr.js';
import { closeSession, h2Connect, h2Request, readH2, wsConnect } from '../support/h2.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { inlineApp } from '../support/wsclient.js';

// Issue 25, items 6, 7, 9 and 10, with raw HTTP/2 clients (node:http2 sends any pseudo-header).

/**
 * Every request is answered "served HOST URL"; /echo echoes a body, /fail resets the connection
 * (arr answers 502). Upgrades: /ws-200 answers 200 with a body (a refusal that reads like an open
 * tunnel on HTTP/2), /ws-403 and /ws-302 refuse as such, /ws-204 answers 204.
 */
const EDGE_APP = `
import http from 'node:http';
const server = http.createServer((req, res) => {
  if (req.url === '/echo') return req.pipe(res);
  if (req.url === '/fail') return req.socket.destroy();
  req.resume();
  res.end('served ' + req.headers.host + ' ' + req.url + '\\n');
});
const raw = (status, head, body) =>
  'HTTP/1.1 ' + status + '\\r\\n' + head + 'content-length: ' + body.length + '\\r\\nconnection: close\\r\\n\\r\\n' + body;
server.on('upgrade', (req, socket) => {
  if (req.url === '/ws-200') socket.end(raw('200 OK', 'content-type: text/plain\\r\\n', 'not a tunnel\\n'));
  else if (req.url === '/ws-204') socket.end(raw('204 No Content', '', ''));
  else if (req.url === '/ws-302') socket.end(raw('302 Found', 'location: /elsewhere\\r\\n', 'moved\\n'));
  else socket.end(raw('403 Forbidden', 'content-type: text/plain\\r\\n', 'no WebSocket for you\\n'));
});
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

const HOST = 'edge.localhost';
/** A host with a certificate of its own (certs/app1-*.pem are for app1.localhost). */
const OWN = 'app1.localhost';
/** A host without one that the default certificate (*.localhost) does not cover. */
const UNCOVERED = 'edge.test';

describe('HTTP/2 edge cases', () => {
  let arr: ArrUnderTest;
  let admin: number;
  let session: ClientHttp2Session;
  before(async () => {
    admin = await freePort();
    const app = inlineApp(EDGE_APP, [
      { host: HOST, ssl: 'allowed' },
      {
        host: OWN,
        ssl: 'allowed',
        cert: join(repoRoot, 'certs/app1-cert.pem'),
        key: join(repoRoot, 'certs/app1-key.pem'),
      },
      { host: UNCOVERED, ssl: 'allowed' },
    ]);
    arr = await startArrWith([{ ...app, name: 'edge' }], {
      extraArgs: ['--admin', String(admin), '--access-log'],
    });
    session = await h2Connect(arr.sslport, HOST);
  });
  after(async () => {
    await closeSession(session);
    await arr?.stop();
    await stopAll();
  });

  /** An extended CONNECT for a WebSocket on `path`, read whole. */
  const connectWs = async (path: string) => readH2(await wsConnect(session, HOST, path));

  /** A stream's status and body, or 'reset' when it was reset. */
  const outcome = (headers: OutgoingHttpHeaders) =>
    readH2(session.request(headers, { endStream: headers[':method'] !== 'CONNECT' })).then(
      (r) => `${r.status} ${r.text}`,
      () => 'reset',
    );

  it('RFC 8441: an app that refuses a WebSocket with 1xx/2xx gives 502, never a 2xx (an open tunnel); 3xx-5xx pass with their body', async () => {
    for (const path of ['/ws-200', '/ws-204']) {
      const r = await connectWs(path);
      assert.equal(r.status, 502, `${path}: ${r.status} ${r.text}`);
      assert.match(
        r.text,
        /^502 Bad Gateway: the application answered the WebSocket with 20[04], not 101\n$/,
      );
    }
    const forbidden = await connectWs('/ws-403');
    assert.equal(forbidden.status, 403);
    assert.equal(forbidden.text, 'no WebSocket for you\n');
    const moved = await connectWs('/ws-302');
    assert.equal(moved.status, 302);
    assert.equal(moved.headers.location, '/elsewhere');
    assert.equal(moved.text, 'moved\n');
    // The access log tells what the client got.
    const ws200 = await until('the access line of /ws-200', () =>
      logLines(arr.proc.output()).find((l) => l.path === '/ws-200' && l.websocket === true),
    );
    assert.equal(ws200.status, 502);
  });

  it('RFC 9113 §8.3.1: a :path that is not a path gets 400, whatever :scheme says; :authority stays the host', async () => {
    // With :scheme http or https, nghttp2 resets such a stream itself (PROTOCOL_ERROR); with any
    // other scheme it reached arr, which routed an absolute :path by its host.
    for (const scheme of ['ftp', 'foo', 'https', 'http']) {
      for (const path of [`http://${UNCOVERED}/abs`, `https://${UNCOVERED}/abs`, 'abs', '*']) {
        const r = await outcome({ ':method': 'GET', ':scheme': scheme, ':authority': HOST, ':path': path });
        if (scheme.startsWith('http') && r === 'reset') continue;
        assert.match(r, /^400 400 Bad Request: /, `${scheme} ${path}`);
      }
    }
    // The same for a WebSocket's extended CONNECT.
    const ws = await outcome({
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'foo',
      ':path': `http://${UNCOVERED}/ws-403`,
      ':authority': HOST,
      'sec-websocket-version': '13',
    });
    assert.match(ws, /^400 400 Bad Request: /);
    // OPTIONS * is HTTP/1.1's.
    const star = await readH2(session.request({ ':method': 'OPTIONS', ':authority': HOST, ':path': '*' }));
    assert.equal(star.status, 400);
    assert.match(star.text, /HTTP\/1\.1 only/);
    const origin = await h2Request(session, HOST, '/abs');
    assert.equal(origin.text, `served ${HOST} /abs\n`);
  });

  it('counts the status an HTTP/2 exchange with a body got: access log, arr_requests_total', async () => {
    const metric = async (status: number) => {
      const m = await fetchVia(admin, 'localhost', false, { path: '/metrics' });
      return Number(
        new RegExp(`arr_requests_total\\{app="edge",status="${status}"\\} (\\d+)`).exec(m.text)?.[1] ?? 0,
      );
    };
    const [ok0, failed0, none0] = [await metric(200), await metric(502), await metric(0)];
    for (let i = 0; i < 3; i++) {
      const r = await h2Request(session, HOST, '/echo', { method: 'POST', body: `upload ${i}` });
      assert.equal(r.text, `upload ${i}`);
    }
    const failed = await h2Request(session, HOST, '/fail', { method: 'POST', body: 'x'.repeat(100_000) });
    assert.equal(failed.status, 502);
    await until(
      'the access lines',
      () => logLines(arr.proc.output()).filter((l) => l.path === '/fail').length === 1,
    );
    const lines = logLines(arr.proc.output()).filter((l) => l.path === '/echo' || l.path === '/fail');
    assert.deepEqual(
      lines.map((l) => `${l.method} ${l.path} ${l.protocol} ${l.status}`),
      [...Array(3).fill('POST /echo h2 200'), 'POST /fail h2 502'],
    );
    assert.equal((await metric(200)) - ok0, 3);
    assert.equal((await metric(502)) - failed0, 1);
    assert.equal((await metric(0)) - none0, 0);
  });

  it('one rule for a client without SNI on both protocols: a host with its own certificate gets 421, others are served', async () => {
    const noSni = await h2Connect(arr.sslport, '');
    try {
      for (const host of [HOST, UNCOVERED]) {
        const h1 = await fetchVia(arr.sslport, host, true, { servername: '' });
        assert.equal(h1.status, 200, `HTTP/1.1 ${host}: ${h1.text}`);
        const h2 = await h2Request(noSni, host, '/');
        assert.equal(h2.status, 200, `HTTP/2 ${host}: ${h2.text}`);
      }
      const h1 = await fetchVia(arr.sslport, OWN, true, { servername: '' });
      assert.equal(h1.status, 421, `HTTP/1.1: ${h1.text}`);
      assert.match(
        h1.text,
        /app1\.localhost has a certificate of its own; open a connection for it with its name \(SNI\)/,
      );
      const h2 = await h2Request(noSni, OWN, '/');
      assert.equal(h2.status, 421, `HTTP/2: ${h2.text}`);
      assert.equal(h2.text, h1.text);
    } finally {
      await closeSession(noSni);
    }
    // With its name, the host is served on both.
    assert.equal((await fetchVia(arr.sslport, OWN, true)).status, 200);
    const own = await h2Connect(arr.sslport, OWN);
    try {
      assert.equal((await h2Request(own, OWN, '/')).status, 200);
    } finally {
      await closeSession(own);
    }
  });
});
