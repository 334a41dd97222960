import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { head, parseResponses, type RawResponse, rawExchange, stalled } from '../support/rawhttp.js';
import { TROUBLE_APP } from '../support/troubleapp.js';
import { assertArrServes, inlineApp, openWs } from '../support/wsclient.js';

// Malformed, hostile and slow input against the real arr CLI, over raw sockets where a
// well-behaved client library could not send it. After every case arr is alive, has no crash
// trace in its output, and still serves a normal request.

/** Counts the requests it gets and answers with what it saw: {n, host, url, xfh}. */
const COUNTER_APP = `
import http from 'node:http';
let n = 0;
http.createServer((req, res) => {
  n++;
  console.log('counter got ' + req.method + ' ' + req.url);
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify({ n, host: req.headers.host, url: req.url, xfh: req.headers['x-forwarded-host'] }) + '\\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

/**
 * Slow on purpose. /late answers after 300 ms; /pause sends its head and part of its body, the
 * rest 1.5 s later; anything else is never answered (its connection's close is logged). A
 * WebSocket is accepted only after 1.5 s, then echoes.
 */
const SILENT_APP = `
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => {
  if (req.url === '/late') return void setTimeout(() => res.end('late\\n'), 300);
  if (req.url === '/pause') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.write('begun ');
    return void setTimeout(() => res.end('and done\\n'), 1500);
  }
  console.log('silent got ' + req.url);
  req.socket.once('close', () => console.log('silent closed ' + req.url));
});
const wss = new WebSocketServer({ noServer: true });
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  setTimeout(() => wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    ws.on('message', (data, binary) => ws.send(data, { binary }));
  }), 1500);
});
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

const cert = (name: string) => ({
  cert: join(repoRoot, `certs/${name}-cert.pem`),
  key: join(repoRoot, `certs/${name}-key.pem`),
});

const apps = () => [
  helloApp('app1', [{ host: 'app1.localhost', ssl: 'allowed', ...cert('app1') }]),
  helloApp('app2', [{ host: 'app2.localhost', ssl: 'allowed' }]),
  inlineApp(COUNTER_APP, [{ host: 'counter.localhost', ssl: 'allowed' }]),
  inlineApp(SILENT_APP, [{ host: 'silent.localhost', ssl: 'allowed' }]),
  inlineApp(TROUBLE_APP, [{ host: 'trouble.localhost', ssl: 'allowed' }]),
];

const HEADER_TIMEOUT_S = 1;
const KEEPALIVE_TIMEOUT_S = 2;
const PROXY_TIMEOUT_S = 1;

/** The one response a connection got (it must have got exactly one). */
function only(what: string, text: string): RawResponse {
  const responses = parseResponses(text);
  assert.equal(responses.length, 1, `${what}: one response, got ${JSON.stringify(text)}`);
  return responses[0]!;
}

/** arr's own short plain-text error: status, text/plain, one line. */
function assertPlain(what: string, r: RawResponse, status: number): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${JSON.stringify(r.body)}`);
  assert.match(r.headers['content-type'] ?? '', /^text\/plain/, `${what}: plain text`);
  assert.match(r.body, new RegExp(`^${status} [A-Za-z' -]+: [^\\n]+\\n$`), `${what}: one line ${r.body}`);
  assert.ok(r.body.length < 120, `${what}: short (${r.body.length} bytes)`);
}

/** `promise`, or a failure naming what did not happen within `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** The counter app's count of requests so far (this probe included). */
async function counted(port: number): Promise<number> {
  const r = await fetchVia(port, 'counter.localhost', false, { path: '/probe' });
  assert.equal(r.status, 200, r.text);
  return (JSON.parse(r.text) as { n: number }).n;
}

describe('malformed, hostile and slow requests', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(apps(), {
      extraArgs: [
        '--header-timeout',
        String(HEADER_TIMEOUT_S),
        '--keepalive-timeout',
        String(KEEPALIVE_TIMEOUT_S),
        '--proxy-timeout',
        String(PROXY_TIMEOUT_S),
      ],
      // arr pins its parser's strictness and head size limit whatever NODE_OPTIONS says; this
      // checks it (and makes the instances lenient, so that only arr stands between them and
      // a smuggled request).
      env: { NODE_OPTIONS: '--insecure-http-parser --max-http-header-size=262144' },
    });
    // Start the instances, so that timings below are not a first start's.
    for (const host of ['app1.localhost', 'app2.localhost', 'counter.localhost', 'trouble.localhost'])
      assert.equal((await fetchVia(arr.port, host, false)).status, 200, host);
    assert.equal((await fetchVia(arr.port, 'silent.localhost', false, { path: '/late' })).status, 200);
  });
  afterEach(async () => {
    await assertArrServes(arr, 'app1.localhost');
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('a missing, empty or invalid Host gets 400 with a short plain body', async () => {
    const get = (...lines: string[]) => head('GET / HTTP/1.1', ...lines, 'Connection: close');
    const cases: [string, string][] = [
      ['no Host', get()],
      ['an empty Host', get('Host: ')],
      ['a Host with a space', get('Host: app1 .localhost')],
      ['a Host with a tab', get('Host: app1\t.localhost')],
      ['a non-ASCII Host', get('Host: app1\xe9.localhost')],
      ['a UTF-8 Host', get(`Host: ${Buffer.from('äpp1.localhost', 'utf8').toString('latin1')}`)],
      ['a 10 KB Host', get(`Host: ${'a'.repeat(10 * 1024)}.localhost`)],
      ['a Host with a bad port', get('Host: app1.localhost:80:90')],
      ['a Host with letters for a port', get('Host: app1.localhost:8o')],
      ['a Host with user info', get('Host: user@app1.localhost')],
      ['a Host that is an unclosed IPv6 literal', get('Host: [::1')],
    ];
    for (const [what, payload] of cases) {
      const r = await rawExchange(arr.port, payload);
      assert.ok(r.closed, `${what}: connection closed`);
      assertPlain(what, only(what, r.text), 400);
    }
    // Control characters are refused by Node's parser before arr sees the request: its own 400.
    for (const ctl of ['\x01', '\x7f', '\x00']) {
      const r = await rawExchange(arr.port, get(`Host: app1${ctl}.localhost`));
      assert.ok(r.closed, 'control character: connection closed');
      assert.equal(only('control character', r.text).status, 400);
    }
    // The same over TLS.
    const tls = await rawExchange(arr.sslport, get('Host: app1 .localhost'), {
      tls: true,
      servername: 'app1.localhost',
    });
    assertPlain('TLS, a Host with a space', only('TLS', tls.text), 400);
  });

  it('two Host headers get 400, whether they agree or not, for requests and upgrades', async () => {
    const twice: [string, string, string][] = [
      ['different', 'Host: app1.localhost', 'Host: app2.localhost'],
      ['the same', 'Host: app1.localhost', 'Host: app1.localhost'],
      ['differently spelled', 'Host: app1.localhost', 'hOsT: app1.localhost'],
    ];
    for (const [what, a, b] of twice) {
      const r = await rawExchange(arr.port, head('GET / HTTP/1.1', a, b, 'Connection: close'));
      assertPlain(`two Host headers, ${what}`, only(what, r.text), 400);
    }
    const upgrade = await rawExchange(
      arr.port,
      head(
        'GET / HTTP/1.1',
        'Host: trouble.localhost',
        'Host: app1.localhost',
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
      ),
    );
    assertPlain('an upgrade with two Host headers', only('upgrade', upgrade.text), 400);
  });

  it("an absolute-form target is routed by its own host, and the instance's Host agrees", async () => {
    const r = await rawExchange(
      arr.port,
      head('GET http://counter.localhost/x?y=1 HTTP/1.1', 'Host: app1.localhost', 'Connection: close'),
    );
    const answer = only('absolute form', r.text);
    assert.equal(answer.status, 200, answer.body);
    const seen = JSON.parse(answer.body) as { host: string; url: string; xfh: string };
    assert.deepEqual(
      { host: seen.host, url: seen.url, xfh: seen.xfh },
      { host: 'counter.localhost', url: '/x?y=1', xfh: 'counter.localhost' },
      'the instance sees an origin-form target and the Host of the absolute URI',
    );

    const other = await rawExchange(
      arr.port,
      head('GET HTTP://APP2.localhost:80 HTTP/1.1', 'Host: app1.localhost', 'Connection: close'),
    );
    assert.match(only('absolute form, app2', other.text).body, /^hello from app2 /);

    // Over TLS the absolute URI's host must be the connection's (SNI) name too.
    const tls = await rawExchange(
      arr.sslport,
      head('GET https://app2.localhost/ HTTP/1.1', 'Host: app1.localhost', 'Connection: close'),
      { tls: true, servername: 'app1.localhost' },
    );
    assertPlain('TLS, absolute URI for another host than SNI', only('TLS', tls.text), 421);

    const bad: [string, string][] = [
      ['another scheme', 'GET ftp://app1.localhost/ HTTP/1.1'],
      ['user info', 'GET http://user@app1.localhost/ HTTP/1.1'],
      ['no host', 'GET http:///x HTTP/1.1'],
      ['an invalid host', 'GET http://app1%20.localhost/ HTTP/1.1'],
    ];
    for (const [what, line] of bad) {
      const b = await rawExchange(arr.port, head(line, 'Host: app1.localhost', 'Connection: close'));
      assertPlain(`absolute form with ${what}`, only(what, b.text), 400);
    }
    // Still no Host at all: 400, as for any request.
    const noHost = await rawExchange(
      arr.port,
      head('GET http://app1.localhost/ HTTP/1.1', 'Connection: close'),
    );
    assertPlain('absolute form without Host', only('no Host', noHost.text), 400);
  });

  it('HTTP/1.0: 400 without Host; with Host an answer, then the connection is closed', async () => {
    const noHost = await rawExchange(arr.port, head('GET / HTTP/1.0'));
    assertPlain('HTTP/1.0 without Host', only('no Host', noHost.text), 400);

    const r = await rawExchange(arr.port, head('GET / HTTP/1.0', 'Host: app1.localhost'));
    const answer = only('HTTP/1.0', r.text);
    assert.equal(answer.status, 200);
    assert.match(answer.body, /^hello from app1 /);
    assert.ok(r.closed, 'arr closed the connection');
    assert.equal(answer.headers.connection, 'close');
    assert.equal(
      answer.headers['keep-alive'],
      undefined,
      "no keep-alive hint (the instance's is hop-by-hop)",
    );
    // Closed after the answer, not after the keep-alive timeout.
    assert.ok(
      r.closeAfterDataMs! < KEEPALIVE_TIMEOUT_S * 500,
      `closed ${r.closeAfterDataMs} ms after the answer`,
    );
  });

  it('three pipelined requests for two hosts on one connection: three answers, in order, each from its host', async () => {
    const r = await rawExchange(
      arr.port,
      head('GET /a HTTP/1.1', 'Host: app1.localhost') +
        head('GET /b HTTP/1.1', 'Host: counter.localhost') +
        head('GET /c HTTP/1.1', 'Host: app1.localhost', 'Connection: close'),
    );
    const responses = parseResponses(r.text);
    assert.deepEqual(
      responses.map((x) => x.status),
      [200, 200, 200],
    );
    assert.match(responses[0]!.body, /^hello from app1 /);
    assert.equal((JSON.parse(responses[1]!.body) as { url: string }).url, '/b');
    assert.match(responses[2]!.body, /^hello from app1 /);
    assert.ok(r.closed);

    // The same over TLS (one host: the connection's).
    const tls = await rawExchange(
      arr.sslport,
      head('GET /1 HTTP/1.1', 'Host: app1.localhost') +
        head('GET /2 HTTP/1.1', 'Host: app1.localhost', 'Connection: close'),
      { tls: true, servername: 'app1.localhost' },
    );
    assert.deepEqual(
      parseResponses(tls.text).map((x) => x.status),
      [200, 200],
    );
  });

  it('request smuggling attempts get 400 and never reach the instance as two requests', async () => {
    const before = await counted(arr.port);
    const inner = head('GET /smuggled HTTP/1.1', 'Host: counter.localhost');
    const chunked = `0\r\n\r\n${inner}`;
    const post = (...lines: string[]) => head('POST /outer HTTP/1.1', 'Host: counter.localhost', ...lines);
    const attempts: [string, string][] = [
      ['CL.TE', post(`Content-Length: ${chunked.length}`, 'Transfer-Encoding: chunked') + chunked],
      ['TE.CL', post('Transfer-Encoding: chunked', 'Content-Length: 3') + chunked],
      ['conflicting Content-Lengths', post('Content-Length: 0', `Content-Length: ${inner.length}`) + inner],
      ['a Content-Length list', post(`Content-Length: 0, ${inner.length}`) + inner],
      ['repeated equal Content-Lengths', `${post('Content-Length: 1', 'Content-Length: 1')}x${inner}`],
      ['Transfer-Encoding: chunked, identity', post('Transfer-Encoding: chunked, identity') + chunked],
      [
        'Transfer-Encoding: identity, chunked + CL',
        post('Transfer-Encoding: identity, chunked', 'Content-Length: 5') + chunked,
      ],
      ['"Transfer-Encoding :"', post('Transfer-Encoding : chunked', 'Content-Length: 5') + chunked],
      ['a folded Transfer-Encoding', post('Transfer-Encoding:', ' chunked', 'Content-Length: 5') + chunked],
      ['a continuation line', post('X-Padding: x', ' Transfer-Encoding: chunked') + chunked],
      ['Transfer-Encoding: xchunked', post('Transfer-Encoding: xchunked', 'Content-Length: 5') + chunked],
      [
        'a bare LF in the head',
        `POST /outer HTTP/1.1\r\nHost: counter.localhost\nTransfer-Encoding: chunked\r\n\r\n${chunked}`,
      ],
      ['a bad chunk size', `${post('Transfer-Encoding: chunked')}5x\r\nhello\r\n0\r\n\r\n${inner}`],
      [
        'HTTP/1.0 with Transfer-Encoding and CL',
        head(
          'POST /outer HTTP/1.0',
          'Host: counter.localhost',
          'Transfer-Encoding: chunked',
          'Content-Length: 5',
        ) + chunked,
      ],
    ];
    for (const [what, payload] of attempts) {
      const r = await rawExchange(arr.port, payload);
      assert.ok(r.closed, `${what}: connection closed`);
      const responses = parseResponses(r.text);
      assert.equal(responses.length, 1, `${what}: one answer only, got ${JSON.stringify(r.text)}`);
      assert.equal(responses[0]!.status, 400, `${what}: ${JSON.stringify(r.text)}`);
    }
    // Nothing reached the instance: the next probe is the very next request it counts.
    assert.equal(await counted(arr.port), before + 1, 'no smuggled or refused request reached the instance');
    assert.doesNotMatch(arr.proc.output(), /counter got \S+ \/(smuggled|outer)/);
  });

  it('an oversized request head gets 431 (headers) or 414/431 (target)', async () => {
    const big = await rawExchange(
      arr.port,
      head('GET / HTTP/1.1', 'Host: app1.localhost', `X-Big: ${'a'.repeat(20 * 1024)}`, 'Connection: close'),
    );
    assert.equal(only('20 KB header', big.text).status, 431);
    const many = await rawExchange(
      arr.port,
      head(
        'GET / HTTP/1.1',
        'Host: app1.localhost',
        ...Array.from({ length: 3000 }, (_, i) => `X-H${i}: ${i}`),
        'Connection: close',
      ),
    );
    assert.equal(only('3000 headers', many.text).status, 431);
    const long = await rawExchange(
      arr.port,
      head(`GET /${'a'.repeat(20 * 1024)} HTTP/1.1`, 'Host: app1.localhost', 'Connection: close'),
    );
    assert.ok([414, 431].includes(only('a 20 KB target', long.text).status), long.text.slice(0, 40));
  });

  it('slow request heads (slowloris) are closed after --header-timeout; meanwhile others are served', async () => {
    const half = 'GET / HTTP/1.1\r\nHost: app1.localhost\r\nX-Slow: ';
    const conns = [
      // Half a head, then nothing.
      ...Array.from({ length: 20 }, () => stalled(arr.port, half)),
      // Nothing at all.
      ...Array.from({ length: 10 }, () => stalled(arr.port, '')),
      // Half a head, then a byte every 200 ms: activity does not extend the deadline.
      ...Array.from({ length: 10 }, () => stalled(arr.port, half, { trickle: 'abcdef', everyMs: 200 })),
      // TLS: half a head after the handshake.
      ...Array.from({ length: 5 }, () => stalled(arr.sslport, half, { tls: true })),
      // The TLS port, no handshake at all (or the start of one).
      ...Array.from({ length: 3 }, () => stalled(arr.sslport, '')),
      ...Array.from({ length: 2 }, () => stalled(arr.sslport, '\x16\x03\x01\x02\x00\x01')),
    ];
    assert.equal(conns.length, 50);
    try {
      // While all 50 are open, new clients are served at once, over both ports.
      const t0 = Date.now();
      assert.equal((await fetchVia(arr.port, 'app1.localhost', false)).status, 200);
      assert.equal((await fetchVia(arr.sslport, 'app1.localhost', true)).status, 200);
      assert.ok(Date.now() - t0 < 1000, `served in ${Date.now() - t0} ms`);

      const limit = HEADER_TIMEOUT_S * 1000 + 1500; // the timeout, Node's check interval, slack
      const closed = await within(
        limit + 1000,
        'the 50 slow connections to be closed',
        Promise.all(conns.map((c) => c.closed)),
      );
      for (const [i, c] of closed.entries()) {
        assert.ok(
          c.ms >= HEADER_TIMEOUT_S * 1000 - 100,
          `#${i} closed after ${c.ms} ms, not before the timeout`,
        );
        assert.ok(c.ms < limit, `#${i} closed after ${c.ms} ms (limit ${limit})`);
      }
      // Those whose TLS (if any) was complete were told why: 408. A stalled handshake is just closed.
      for (const [i, c] of closed.slice(0, 45).entries())
        assert.match(c.text, /^HTTP\/1\.1 408 Request Timeout\r\n/, `#${i}: ${c.text}`);
    } finally {
      for (const c of conns) c.stop();
    }
  });

  it('an idle keep-alive connection is closed after --keepalive-timeout', async () => {
    const r = await rawExchange(arr.port, head('GET / HTTP/1.1', 'Host: app1.localhost'), { waitMs: 10_000 });
    assert.equal(only('keep-alive', r.text).status, 200);
    assert.ok(r.closed, 'closed by arr');
    const ms = r.closeAfterDataMs!;
    assert.ok(ms >= KEEPALIVE_TIMEOUT_S * 1000 - 200, `not closed before the timeout (${ms} ms)`);
    // Node closes it 1 s after the timeout it advertises (so that clients close first).
    assert.ok(ms < KEEPALIVE_TIMEOUT_S * 1000 + 2000, `closed soon after it (${ms} ms)`);
  });

  it('TLS garbage, TLS to the plain port and plain HTTP to the TLS port: closed, arr alive', async () => {
    const garbage = await rawExchange(arr.sslport, randomBytes(2048));
    assert.ok(garbage.closed, 'random bytes to the TLS port: closed');
    // A TLS record header announcing a ClientHello, followed by junk.
    const hello = Buffer.concat([
      Buffer.from([0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00, 0x00, 0xfc]),
      randomBytes(252),
    ]);
    const badHello = await rawExchange(arr.sslport, hello);
    assert.ok(badHello.closed, 'a malformed ClientHello: closed');

    const plainToTls = await rawExchange(arr.sslport, head('GET / HTTP/1.1', 'Host: app1.localhost'));
    assert.ok(plainToTls.closed, 'plain HTTP to the TLS port: closed');
    assert.doesNotMatch(plainToTls.text, /hello from/, 'and not served');

    // A real ClientHello to the plain port: Node's parser sees no HTTP and answers 400.
    const tlsToPlain = await rawExchange(arr.port, head('GET / HTTP/1.1', 'Host: app1.localhost'), {
      tls: true,
      servername: 'app1.localhost',
    });
    assert.ok(tlsToPlain.closed, 'TLS to the plain port: closed');
    assert.ok(tlsToPlain.error, 'the TLS handshake failed');
    const raw = await rawExchange(arr.port, hello);
    assert.ok(raw.closed);
    assert.match(raw.text, /^(HTTP\/1\.1 400 |$)/, 'a 400 or nothing');
  });

  it("WebSocket upgrades with a bad key or version: the instance's 400 is passed through", async () => {
    const upgrade = (...lines: string[]) =>
      head(
        'GET /echo HTTP/1.1',
        'Host: trouble.localhost',
        'Upgrade: websocket',
        'Connection: Upgrade',
        ...lines,
      );
    const key = `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`;
    const cases: [string, string, RegExp][] = [
      [
        'a bad key',
        upgrade('Sec-WebSocket-Key: not-base64!', 'Sec-WebSocket-Version: 13'),
        /Sec-WebSocket-Key/,
      ],
      ['no key', upgrade('Sec-WebSocket-Version: 13'), /Sec-WebSocket-Key/],
      ['version 99', upgrade(key, 'Sec-WebSocket-Version: 99'), /Sec-WebSocket-Version/],
      ['no version', upgrade(key), /Sec-WebSocket-Version/],
    ];
    for (const [what, payload, reason] of cases) {
      const r = await rawExchange(arr.port, payload);
      assert.ok(r.closed, `${what}: closed`);
      const answer = only(what, r.text);
      assert.equal(answer.status, 400, `${what}: ${r.text}`);
      assert.match(answer.body, reason, `${what}: the instance's reason`);
    }
    // A proper upgrade still works.
    const ws = await openWs(arr.port, 'trouble.localhost', false, { path: '/echo' });
    assert.match((await ws.message(0)).data.toString(), /^trouble \(pid \d+\)/);
    ws.ws.close();
  });

  it('an instance that never answers: 504 after --proxy-timeout, its exchange abandoned; WebSockets are exempt', async () => {
    // A WebSocket the instance accepts only after 1.5 s: longer than the proxy timeout.
    const opening = openWs(arr.port, 'silent.localhost', false, { path: '/ws' });

    const t0 = Date.now();
    const r = await fetchVia(arr.port, 'silent.localhost', false, { path: '/never' });
    const ms = Date.now() - t0;
    assertPlain(
      'never answered',
      { status: r.status, headers: r.headers as Record<string, string>, body: r.text },
      504,
    );
    assert.ok(ms >= PROXY_TIMEOUT_S * 1000 - 50 && ms < PROXY_TIMEOUT_S * 1000 + 1500, `504 after ${ms} ms`);
    // arr gave up on the exchange: the instance sees its connection closed.
    await arr.proc.waitFor('silent closed /never', 5000);

    // Over TLS and for a POST with a body too.
    const post = await fetchVia(arr.sslport, 'silent.localhost', true, {
      method: 'POST',
      path: '/never-post',
      body: 'x'.repeat(1000),
    });
    assert.equal(post.status, 504, post.text);

    // An answer that begins in time may take longer than the timeout to finish.
    const paused = await fetchVia(arr.port, 'silent.localhost', false, { path: '/pause' });
    assert.equal(paused.status, 200);
    assert.equal(paused.text, 'begun and done\n');
    assert.equal((await fetchVia(arr.port, 'silent.localhost', false, { path: '/late' })).text, 'late\n');

    const ws = await opening;
    ws.ws.send('still here');
    assert.equal((await ws.message(0)).data.toString(), 'still here');
    ws.ws.close();
    await ws.closed;
  });

  it('odd request targets and methods: OPTIONS * is passed on, CONNECT is refused, arr stays up', async () => {
    const star = await rawExchange(
      arr.port,
      head('OPTIONS * HTTP/1.1', 'Host: counter.localhost', 'Connection: close'),
    );
    assert.equal((JSON.parse(only('OPTIONS *', star.text).body) as { url: string }).url, '*');
    const connect = await rawExchange(
      arr.port,
      head('CONNECT app1.localhost:443 HTTP/1.1', 'Host: app1.localhost:443'),
    );
    assert.ok(connect.closed, 'CONNECT: closed');
    assert.doesNotMatch(connect.text, /^HTTP\/1\.1 200/, 'no tunnel');
    const relative = await rawExchange(
      arr.port,
      head('GET app1 HTTP/1.1', 'Host: app1.localhost', 'Connection: close'),
    );
    assert.equal(only('a relative target', relative.text).status, 400);
    const junk = await rawExchange(arr.port, randomBytes(4096));
    assert.ok(junk.closed, 'random bytes to the plain port: closed');
  });
});
