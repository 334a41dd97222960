import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { type ClientHttp2Session, connect as h2ConnectWith } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type AppDoc, type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import {
  closeSession,
  h2Connect,
  h2Request,
  negotiated,
  PREFACE,
  readH2,
  wsConnect,
  wsText,
  wsTexts,
} from '../support/h2.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { assertArrServes, inlineApp } from '../support/wsclient.js';

// HTTP/2 on arr's TLS port, with real clients: node:http2, curl --http2 and nghttp.

/** An event stream that waits (for /release, or ?ms=M milliseconds), and an answer with trailers. */
const STREAM_APP = `
import http from 'node:http';
const waiting = [];
http.createServer((req, res) => {
  const [path, query] = req.url.split('?');
  if (path === '/feed') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.write('data: event 1\\n\\n');
    const done = () => res.end('data: event 2\\n\\n');
    const ms = Number(new URLSearchParams(query).get('ms'));
    if (ms > 0) setTimeout(done, ms);
    else waiting.push(done);
    return;
  }
  if (path === '/release') {
    for (const done of waiting.splice(0)) done();
    return res.end('released\\n');
  }
  if (path === '/nothing') {
    res.writeHead(204);
    return res.end();
  }
  if (path === '/early') {
    // Answers before reading the body (and never reads it).
    return res.end('early\\n');
  }
  if (path === '/trailers') {
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('with trailers\\n');
    res.addTrailers({ 'x-checksum': 'abc123' });
    return res.end();
  }
  req.resume();
  res.end('stream app\\n');
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const cert = (name: string) => ({
  cert: join(repoRoot, `certs/${name}-cert.pem`),
  key: join(repoRoot, `certs/${name}-key.pem`),
});

function apps(): AppDoc[] {
  return [
    helloApp('app1', [{ host: 'app1.localhost', ssl: 'allowed', ...cert('app1') }]),
    helloApp('app2', [{ host: 'app2.localhost', ssl: 'allowed' }]),
    helloApp('app3', [{ host: 'app3.localhost', ssl: 'allowed' }]),
    inlineApp(STREAM_APP, [{ host: 'stream.localhost', ssl: 'allowed' }]),
  ];
}

/** arr serving app2.localhost alone (HTTPS allowed), with `extraArgs`. */
const startApp2 = (extraArgs: string[]) =>
  startArrWith([helloApp('app2', [{ host: 'app2.localhost', ssl: 'allowed' }])], { extraArgs });

const inCI = process.env.CI === 'true';
const has = (tool: string) => spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;

describe('HTTP/2 on the TLS port', () => {
  let arr: ArrUnderTest;
  let admin: number;
  let session: ClientHttp2Session;
  before(async () => {
    admin = await freePort();
    arr = await startArrWith(apps(), { extraArgs: ['--admin', String(admin), '--access-log'] });
    session = await h2Connect(arr.sslport, 'app2.localhost');
  });
  after(async () => {
    await closeSession(session);
    await arr?.stop();
    await stopAll();
  });

  it('negotiates h2 by ALPN and passes a GET on to the instance as HTTP/1.1', async () => {
    assert.equal(await negotiated(arr.sslport, 'app2.localhost'), 'h2');
    const r = await h2Request(session, 'app2.localhost', '/headers');
    assert.equal(r.status, 200, r.text);
    const seen = JSON.parse(r.text) as { httpVersion: string; headers: Record<string, string> };
    assert.equal(seen.httpVersion, '1.1');
    assert.equal(seen.headers.host, 'app2.localhost');
    assert.equal(seen.headers['x-forwarded-proto'], 'https');
    assert.equal(seen.headers['x-forwarded-host'], 'app2.localhost');
    assert.equal(seen.headers['x-forwarded-for'], '127.0.0.1');
    assert.ok(!Object.keys(seen.headers).some((k) => k.startsWith(':')), 'no pseudo-field reaches the app');
    // The instance's own answer carries Connection/Keep-Alive: not on HTTP/2.
    const hello = await h2Request(session, 'app2.localhost', '/');
    assert.match(hello.text, /^hello from app2/);
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade'])
      assert.equal(hello.headers[name], undefined, `${name} is not sent on HTTP/2`);
  });

  it('passes cookie crumbs on as one Cookie field', async () => {
    const r = await h2Request(session, 'app2.localhost', '/headers', {
      headers: { cookie: ['a=1', 'b=2'] },
    });
    const seen = JSON.parse(r.text) as { headers: Record<string, string> };
    assert.equal(seen.headers.cookie, 'a=1; b=2');
  });

  it('carries a large POST body to the instance whole (checksum), and a large answer back', async () => {
    const body = randomBytes(4 * 1024 * 1024 + 17);
    const sha = createHash('sha256').update(body).digest('hex');
    const r = await h2Request(session, 'app2.localhost', '/sha256', { method: 'POST', body });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(JSON.parse(r.text), { sha256: sha, bytes: body.length });
    const echoed = await h2Request(session, 'app2.localhost', '/echo', { method: 'POST', body });
    assert.equal(createHash('sha256').update(echoed.body).digest('hex'), sha);
  });

  it('an answer that comes before the body is read: the client gets it whole, then RST_STREAM NO_ERROR', async () => {
    const stream = session.request({
      ':method': 'POST',
      ':path': '/early',
      ':authority': 'stream.localhost',
    });
    const reply = readH2(stream);
    const chunk = Buffer.alloc(64 * 1024, 1);
    // Sends (with backpressure) until arr asks it to stop, at most 64 MB.
    let sent = 0;
    const pump = () => {
      while (!stream.destroyed && !stream.closed && sent < 64 * 1024 * 1024) {
        sent += chunk.length;
        if (!stream.write(chunk)) return void stream.once('drain', pump);
      }
      if (!stream.destroyed) stream.end();
    };
    pump();
    const r = await reply;
    assert.equal(r.status, 200);
    assert.equal(r.text, 'early\n');
    await until('the stream to close', () => stream.closed);
    assert.equal(stream.rstCode, 0, 'NO_ERROR');
    assert.equal((await h2Request(session, 'app2.localhost', '/')).status, 200, 'the connection serves on');
  });

  it('streams an answer as it comes (an event stream)', async () => {
    const stream = session.request({ ':path': '/feed', ':authority': 'stream.localhost' });
    const reply = readH2(stream);
    let seen = '';
    stream.on('data', (c: Buffer) => {
      seen += c.toString();
    });
    // The first event arrives while the app still holds the rest: nothing waits for the end.
    await until('the first event', () => seen.includes('data: event 1'));
    assert.ok(!seen.includes('event 2'));
    const released = await h2Request(session, 'stream.localhost', '/release');
    assert.equal(released.status, 200);
    const r = await reply;
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/event-stream');
    assert.equal(r.text, 'data: event 1\n\ndata: event 2\n\n');
  });

  it('passes trailers on', async () => {
    const r = await h2Request(session, 'stream.localhost', '/trailers');
    assert.equal(r.status, 200);
    assert.equal(r.text, 'with trailers\n');
    assert.equal(r.trailers?.['x-checksum'], 'abc123');
  });

  it('answers HEAD and 204 without a body, and Expect as node:http does for HTTP/1.1', async () => {
    const head = await h2Request(session, 'app2.localhost', '/', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
    assert.ok(Number(head.headers['content-length']) > 0, JSON.stringify(head.headers));
    const none = await h2Request(session, 'stream.localhost', '/nothing');
    assert.equal(none.status, 204);
    assert.equal(none.body.length, 0);
    // 100-continue: the client hears 100 before it sends the body (it waits for it here).
    const body = randomBytes(50_000);
    const stream = session.request(
      { ':method': 'POST', ':path': '/sha256', ':authority': 'app2.localhost', expect: '100-continue' },
      { endStream: false },
    );
    stream.once('continue', () => stream.end(body));
    const reply = await readH2(stream);
    assert.equal(reply.status, 200);
    assert.equal(JSON.parse(reply.text).sha256, createHash('sha256').update(body).digest('hex'));
    const refused = await h2Request(session, 'app2.localhost', '/', { headers: { expect: 'telepathy' } });
    assert.equal(refused.status, 417);
    await assertArrServes(arr, 'app2.localhost');
  });

  it('serves 100 parallel streams on one connection to two apps', async () => {
    const replies = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        h2Request(session, i % 2 === 0 ? 'app2.localhost' : 'app3.localhost', `/?i=${i}`),
      ),
    );
    replies.forEach((r, i) => {
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, i % 2 === 0 ? /^hello from app2/ : /^hello from app3/);
    });
  });

  it('coalesces: a host the certificate covers is served on the connection, another gets 421', async () => {
    // Opened for app2.localhost, with the default *.localhost certificate: app3 is covered.
    const covered = await h2Request(session, 'app3.localhost', '/');
    assert.equal(covered.status, 200);
    assert.match(covered.text, /^hello from app3/);
    // app1.localhost has a certificate of its own: never answered under the wildcard.
    const own = await h2Request(session, 'app1.localhost', '/');
    assert.equal(own.status, 421, own.text);
    assert.match(own.text, /app1\.localhost/);
    // A connection opened for app1 has app1's certificate, which covers app1 only.
    const app1 = await h2Connect(arr.sslport, 'app1.localhost');
    try {
      const mine = await h2Request(app1, 'app1.localhost', '/');
      assert.equal(mine.status, 200);
      assert.match(mine.text, /^hello from app1/);
      const other = await h2Request(app1, 'app2.localhost', '/');
      assert.equal(other.status, 421, other.text);
    } finally {
      await closeSession(app1);
    }
    // HTTP/1.1 keeps its rule: the request's host must be the SNI name.
    const h1 = await fetchVia(arr.sslport, 'app3.localhost', true, { servername: 'app2.localhost' });
    assert.equal(h1.status, 421);
  });

  it('joins an extended CONNECT (RFC 8441) to the instance WebSocket: echo', async () => {
    const stream = await wsConnect(session, 'app2.localhost', '/ws');
    let status = 0;
    let received = Buffer.alloc(0);
    stream.on('response', (h) => {
      status = Number(h[':status']);
    });
    stream.on('data', (c: Buffer) => {
      received = Buffer.concat([received, c]);
    });
    const closed = new Promise((r) => stream.once('close', r));
    await until('the greeting', () => wsTexts(received).length >= 1);
    assert.equal(status, 200);
    assert.match(wsTexts(received)[0]!, /^hello from app2/);
    stream.write(wsText('ping over h2'));
    await until('the echo', () => wsTexts(received).length >= 2);
    assert.equal(wsTexts(received)[1], 'ping over h2');
    stream.end();
    await closed;
  });

  it('answers curl --http2 and nghttp', { skip: !inCI && !has('nghttp') && 'nghttp is missing' }, () => {
    assert.ok(has('curl'), 'curl is installed');
    const c = spawnSync('curl', [
      '-sk',
      '--http2',
      '--resolve',
      `app3.localhost:${arr.sslport}:127.0.0.1`,
      '-w',
      '\n%{http_version} %{http_code}',
      `https://app3.localhost:${arr.sslport}/`,
    ]);
    assert.match(c.stdout.toString(), /^hello from app3[\s\S]*\n2 200$/);
    assert.ok(has('nghttp'), 'nghttp is installed (bash scripts/install-nghttp2.sh)');
    const n = spawnSync('nghttp', [
      '-v',
      '-n',
      `https://127.0.0.1:${arr.sslport}/`,
      '-H',
      ':authority: app3.localhost',
    ]);
    const out = n.stdout.toString();
    assert.equal(n.status, 0, out);
    assert.match(out, /recv \(stream_id=\d+\) :status: 200/);
    assert.match(out, /SETTINGS_ENABLE_CONNECT_PROTOCOL\(0x08\):1/);
  });

  it('counts requests by protocol and logs the protocol', async () => {
    await fetchVia(arr.sslport, 'app2.localhost', true);
    const m = await fetchVia(admin, 'localhost', false, { path: '/metrics' });
    const count = (p: string) =>
      Number(new RegExp(`arr_requests_by_protocol_total\\{protocol="${p}"\\} (\\d+)`).exec(m.text)?.[1] ?? 0);
    assert.ok(count('h2') >= 100, m.text);
    assert.ok(count('http/1.1') >= 1, m.text);
    assert.match(arr.proc.output(), /"protocol":"h2"/);
    await assertArrServes(arr, 'app2.localhost');
  });

  it("logs each stream's own body bytes, not its connection's", async () => {
    // Two streams at once on one connection: each log line has its own body's size.
    const [a, b] = await Promise.all([
      h2Request(session, 'app2.localhost', '/bytes?n=30011'),
      h2Request(session, 'app2.localhost', '/bytes?n=70001'),
    ]);
    assert.equal(a.body.length, 30011);
    assert.equal(b.body.length, 70001);
    const line = (n: number) =>
      until(`the access log line of /bytes?n=${n}`, () => {
        const m = new RegExp(`"path":"/bytes\\?n=${n}"[^\n]*`).exec(arr.proc.output());
        return m?.[0];
      });
    assert.match(await line(30011), /"bytes":30011[,}]/);
    assert.match(await line(70001), /"bytes":70001[,}]/);
  });
});

describe('--no-http2 --no-h2c', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startApp2(['--no-http2', '--no-h2c']);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('offers http/1.1 only, and serves it', async () => {
    assert.equal(await negotiated(arr.sslport, 'app2.localhost'), 'http/1.1');
    const r = await fetchVia(arr.sslport, 'app2.localhost', true);
    assert.equal(r.status, 200);
    assert.match(arr.proc.output(), /--no-http2/);
  });

  it('answers the HTTP/2 preface on the plain port 400, and serves HTTP/1.1 there', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = tcpConnect(arr.port, '127.0.0.1', () => s.write(PREFACE));
      let got = '';
      s.on('data', (d) => {
        got += d.toString('latin1');
      });
      s.on('close', () => resolve(got));
      s.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.1 400 /);
    assert.equal((await fetchVia(arr.port, 'app2.localhost', false)).status, 200);
  });
});

describe('graceful stop over HTTP/2', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(apps());
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('sends GOAWAY and lets the open stream finish; a WebSocket over HTTP/2 is ended', async () => {
    const session = await h2Connect(arr.sslport, 'stream.localhost');
    try {
      let goaway = false;
      session.on('goaway', () => {
        goaway = true;
      });
      // A WebSocket (RFC 8441) on the same connection: it must not hold the stop.
      const ws = await wsConnect(session, 'app2.localhost', '/ws');
      let wsData = Buffer.alloc(0);
      ws.on('data', (c: Buffer) => {
        wsData = Buffer.concat([wsData, c]);
      });
      ws.on('error', () => {});
      const wsClosed = new Promise((r) => ws.once('close', r));
      await until('the WebSocket greeting', () => wsTexts(wsData).length >= 1);
      const stream = session.request({ ':path': '/feed?ms=1500', ':authority': 'stream.localhost' });
      const reply = readH2(stream);
      let seen = '';
      stream.on('data', (c: Buffer) => {
        seen += c.toString();
      });
      await until('the first event', () => seen.includes('event 1'));
      const exited = arr.proc.stop('SIGTERM', 15_000);
      await until('GOAWAY', () => goaway);
      const r = await reply;
      assert.equal(r.status, 200);
      assert.equal(r.text, 'data: event 1\n\ndata: event 2\n\n');
      await wsClosed;
      assert.equal(await exited, 0);
    } finally {
      session.destroy();
    }
  });
});

describe('HTTP/2 behind a balancer (--trust-proxy-protocol)', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startApp2(['--trust-proxy-protocol']);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it("takes the PROXY header's source for X-Forwarded-For on every stream", async () => {
    const carrier = tcpConnect({ host: '127.0.0.1', port: arr.sslport });
    carrier.write('PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n');
    const tls = tlsConnect({
      socket: carrier,
      servername: 'app2.localhost',
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    });
    const session = h2ConnectWith(`https://app2.localhost:${arr.sslport}`, { createConnection: () => tls });
    session.on('error', () => {});
    try {
      for (let i = 0; i < 2; i++) {
        const r = await h2Request(session, 'app2.localhost', '/headers');
        assert.equal(r.status, 200, r.text);
        const seen = JSON.parse(r.text) as { headers: Record<string, string> };
        assert.equal(seen.headers['x-forwarded-for'], '203.0.113.7');
      }
    } finally {
      await closeSession(session);
    }
  });
});
