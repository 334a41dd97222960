import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type AppDoc, type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { connected, exchange, readAll } from '../support/tcp.js';
import { TROUBLE_APP } from '../support/troubleapp.js';
import { assertArrServes, inlineApp, openWs, pattern, refusedUpgrade } from '../support/wsclient.js';

const cert = (name: string) => ({
  cert: join(repoRoot, `certs/${name}-cert.pem`),
  key: join(repoRoot, `certs/${name}-key.pem`),
});

/** A WebSocket app whose first message is the upgrade request's headers, as JSON. */
const HEADERS_WS = `
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => res.end('plain'));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws, req) => ws.send(JSON.stringify(req.headers)));
server.listen(Number(process.env.PORT));
`;

const ws1App = (): AppDoc => ({
  process: { executable: process.execPath, args: [join(repoRoot, 'samples/ws1/server.js')] },
  hosts: [{ host: 'ws1.localhost', ssl: 'allowed', ...cert('ws1') }],
  instances: 1,
});

const apps = () => [
  helloApp('app1', [
    { host: 'app1.localhost', ssl: 'allowed', ...cert('app1') },
    { host: 'secure-app1.localhost', ssl: 'required', ...cert('secure-app1') },
  ]),
  helloApp('app2', [{ host: 'plain-app2.localhost', ssl: 'none' }]),
  inlineApp(HEADERS_WS, [{ host: 'headers.localhost', ssl: 'allowed' }]),
  inlineApp(TROUBLE_APP, [{ host: 'trouble.localhost', ssl: 'allowed' }]),
  ws1App(),
];

/** Echo of a text and a 1 MB binary message both ways, and the greeting naming the app. */
async function echoRoundTrip(port: number, host: string, secure: boolean, app: string): Promise<void> {
  const c = await openWs(port, host, secure);
  try {
    const greeting = await c.message(0);
    assert.equal(greeting.binary, false);
    assert.match(greeting.data.toString('utf8'), new RegExp(`^hello from ${app} \\(pid \\d+\\)$`));

    c.ws.send('ping ✓ über');
    const text = await c.message(1);
    assert.equal(text.binary, false);
    assert.equal(text.data.toString('utf8'), 'ping ✓ über');

    const big = randomBytes(1024 * 1024);
    c.ws.send(big);
    const back = await c.message(2, 20_000);
    assert.equal(back.binary, true);
    assert.equal(back.data.length, big.length);
    assert.ok(back.data.equals(big), 'the 1 MB binary message comes back unchanged');
  } finally {
    c.ws.close(1000, 'bye');
  }
  const closed = await c.closed;
  assert.equal(closed.code, 1000, 'the close handshake goes through arr');
  assert.equal(closed.error, undefined);
}

describe('WebSockets through arr (file registry)', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(apps(), { env: { WS1_INTERVAL_MS: '20' } });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('echoes text and 1 MB binary messages over ws://', async () => {
    await echoRoundTrip(arr.port, 'app1.localhost', false, 'app1');
  });

  it('echoes text and 1 MB binary messages over wss://', async () => {
    await echoRoundTrip(arr.sslport, 'app1.localhost', true, 'app1');
    await echoRoundTrip(arr.sslport, 'secure-app1.localhost', true, 'app1');
  });

  it('tells the instance X-Forwarded-Proto/Host/Port/For on the upgrade', async () => {
    for (const secure of [false, true]) {
      const c = await openWs(secure ? arr.sslport : arr.port, 'headers.localhost', secure, {
        headers: { 'x-forwarded-proto': 'gopher', 'x-forwarded-host': 'evil.example' },
      });
      const headers = JSON.parse((await c.message(0)).data.toString('utf8'));
      c.ws.close();
      await c.closed;
      assert.equal(headers['x-forwarded-proto'], secure ? 'https' : 'http');
      assert.equal(headers['x-forwarded-host'], 'headers.localhost');
      assert.equal(headers['x-forwarded-port'], String(secure ? arr.sslport : arr.port));
      assert.equal(headers['x-forwarded-for'], '127.0.0.1');
      assert.equal(headers.host, 'headers.localhost');
      assert.equal(String(headers.upgrade).toLowerCase(), 'websocket');
    }
  });

  it('refuses a wss upgrade for an ssl "none" host with 403', async () => {
    const r = await refusedUpgrade(arr.sslport, 'plain-app2.localhost', true);
    assert.equal(r.status, 403);
    assert.match(r.body, /^403 Forbidden: /);
    // The same host over ws:// is fine.
    const c = await openWs(arr.port, 'plain-app2.localhost', false);
    assert.match((await c.message(0)).data.toString('utf8'), /^hello from app2/);
    c.ws.close();
    await c.closed;
  });

  it('refuses a ws upgrade for an ssl "required" host with 403, not a redirect', async () => {
    const r = await refusedUpgrade(arr.port, 'secure-app1.localhost', false);
    assert.equal(r.status, 403);
    assert.equal(r.headers.location, undefined);
    assert.match(r.body, /HTTPS only/);
  });

  it('answers an upgrade for an unknown host 404 and one without Host 400', async () => {
    for (const secure of [false, true]) {
      const port = secure ? arr.sslport : arr.port;
      const unknown = await refusedUpgrade(port, 'nobody.localhost', secure);
      assert.equal(unknown.status, 404);
      assert.match(unknown.body, /no application serves nobody\.localhost/);
    }
    // ws always sends Host; a raw upgrade request shows what happens without one.
    const raw = await exchange(
      arr.port,
      'GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
    );
    assert.match(raw.data.toString('latin1'), /^HTTP\/1\.1 400 /);
  });

  it('answers an upgrade to something else (curl --http2: "Upgrade: h2c") as an ordinary request', async () => {
    const h2c = {
      connection: 'Upgrade, HTTP2-Settings',
      upgrade: 'h2c',
      'http2-settings': 'AAMAAABkAARAAAAAAAIAAAAA',
    };
    for (const secure of [false, true]) {
      const port = secure ? arr.sslport : arr.port;
      const r = await fetchVia(port, 'app1.localhost', secure, { path: '/headers', headers: h2c });
      assert.equal(r.status, 200);
      const seen = JSON.parse(r.text).headers;
      assert.equal(seen.upgrade, undefined, 'the offer is not passed on');
      assert.equal(seen['x-forwarded-proto'], secure ? 'https' : 'http');
      // The host's policy still applies.
      const redirect = await fetchVia(arr.port, 'secure-app1.localhost', false, { headers: h2c });
      assert.equal(redirect.status, 301);
      // With a body, which must reach the instance whole.
      const post = await fetchVia(port, 'app1.localhost', secure, {
        method: 'POST',
        path: '/echo',
        headers: h2c,
        body: 'some body',
      });
      assert.equal(post.status, 200);
      assert.equal(post.text, 'some body');
    }
    // The connection goes on as an ordinary keep-alive one.
    const socket = await connected(arr.port);
    const received = readAll(socket);
    socket.write(
      'GET / HTTP/1.1\r\nHost: app1.localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n' +
        'HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n' +
        'GET / HTTP/1.1\r\nHost: app1.localhost\r\nConnection: close\r\n\r\n',
    );
    const both = (await received).toString('latin1');
    assert.equal(both.match(/hello from app1/g)?.length, 2, `two answers on one connection:\n${both}`);
    await assertArrServes(arr, 'app1.localhost');
  });

  it('refuses a wss upgrade whose Host differs from the SNI name (421)', async () => {
    const r = await refusedUpgrade(arr.sslport, 'app1.localhost', true, { servername: 'ws1.localhost' });
    assert.equal(r.status, 421);
  });

  it('delivers all of ws1\'s canto and its closing 1000 "end of canto" over ws and wss', async () => {
    const stanzas = readFileSync(join(repoRoot, 'samples/ws1/canto1.txt'), 'utf8')
      .replace(/\r\n/g, '\n')
      .split(/\n\s*\n/)
      .map((x) => x.trim())
      .filter(Boolean);
    for (const secure of [false, true]) {
      const c = await openWs(secure ? arr.sslport : arr.port, 'ws1.localhost', secure, { path: '/stream' });
      const closed = await c.closed;
      assert.equal(closed.code, 1000);
      assert.equal(closed.reason, 'end of canto');
      assert.deepEqual(
        c.messages.map((m) => m.data.toString('utf8')),
        stanzas,
      );
    }
  });

  it('delivers a 4 MB message sent right before the instance closes', async () => {
    for (const secure of [false, true]) {
      const c = await openWs(secure ? arr.sslport : arr.port, 'trouble.localhost', secure, {
        path: '/ws-burst',
      });
      const closed = await c.closed;
      assert.equal(closed.code, 1000);
      assert.equal(closed.reason, 'done');
      assert.equal(c.messages.length, 1);
      assert.ok(c.messages[0]?.data.equals(pattern(4 * 1024 * 1024)), 'the 4 MB arrive whole');
    }
  });

  it('streams ws1 stanzas over ws and wss, and serves its page over http and https', async () => {
    for (const secure of [false, true]) {
      const port = secure ? arr.sslport : arr.port;
      const c = await openWs(port, 'ws1.localhost', secure, { path: '/stream' });
      const first = (await c.message(0)).data.toString('utf8');
      const second = (await c.message(1)).data.toString('utf8');
      c.ws.close();
      await c.closed;
      assert.match(first, /Midway upon the journey of our life/);
      assert.notEqual(second, first);
      assert.ok(second.length > 20, 'the second stanza has text');

      const page = await fetchVia(port, 'ws1.localhost', secure);
      assert.equal(page.status, 200);
      assert.match(String(page.headers['content-type']), /^text\/html/);
      assert.match(page.text, /<html/i);
    }
    await assertArrServes(arr, 'app1.localhost');
  });
});

describe('WebSockets through arr (MongoDB registry)', { skip: mongoUnavailable() }, () => {
  let mongo: MongoServer;
  let arr: ArrUnderTest;
  before(async () => {
    mongo = await startMongo('proxy_ws');
    arr = await startArrWith(apps(), { mongo: mongo.url });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    await mongo?.stop();
  });

  it('echoes over ws:// and wss://', async () => {
    await echoRoundTrip(arr.port, 'app1.localhost', false, 'app1');
    await echoRoundTrip(arr.sslport, 'app1.localhost', true, 'app1');
  });
});
