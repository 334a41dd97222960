import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type ArrUnderTest, fetchVia, helloApp, pidOf, startArrWith } from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { certificateFor } from '../support/tls.js';

const cert = (name: string) => ({
  cert: join(repoRoot, `certs/${name}-cert.pem`),
  key: join(repoRoot, `certs/${name}-key.pem`),
});

const apps = () => [
  helloApp('app1', [
    { host: 'app1.localhost', ssl: 'allowed', ...cert('app1') },
    { host: 'secure-app1.localhost', ssl: 'required', ...cert('secure-app1') },
  ]),
  helloApp('app2', [
    { host: 'app2.localhost', ssl: 'allowed' },
    { host: 'plain-app2.localhost', ssl: 'none' },
  ]),
];

function routingSuite(registry: 'file' | 'mongo', mongoUrl: () => string | undefined) {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(apps(), { mongo: mongoUrl() });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it(`routes by Host over HTTP and HTTPS (${registry})`, async () => {
    const a = await fetchVia(arr.port, 'app1.localhost', false);
    assert.equal(a.status, 200);
    assert.match(a.text, /^hello from app1/);
    const b = await fetchVia(arr.sslport, 'app2.localhost', true);
    assert.equal(b.status, 200);
    assert.match(b.text, /^hello from app2/);
    const c = await fetchVia(arr.sslport, 'app1.localhost', true);
    assert.equal(pidOf(c), pidOf(a), 'the same instance serves http and https');
  });

  it('normalises the Host header: case, port, trailing dot', async () => {
    for (const host of ['APP1.LocalHost', 'app1.localhost:1234', 'app1.localhost.', 'App1.localhost.:80']) {
      const r = await fetchVia(arr.port, host, false);
      assert.equal(r.status, 200, host);
      assert.match(r.text, /^hello from app1/, host);
    }
  });

  it('answers 400 without a Host and 404 for an unknown host, in plain text', async () => {
    const none = await fetchVia(arr.port, '', false);
    assert.equal(none.status, 400);
    assert.match(String(none.headers['content-type']), /^text\/plain/);
    const unknown = await fetchVia(arr.port, 'nobody.localhost', false);
    assert.equal(unknown.status, 404);
    assert.match(unknown.text, /no application serves nobody\.localhost/);
    assert.doesNotMatch(unknown.text, /at .*\.js|\/work\/|Error:/);
  });

  it('ssl "none" refuses TLS; "required" redirects GET and refuses POST over plain HTTP', async () => {
    const tls = await fetchVia(arr.sslport, 'plain-app2.localhost', true);
    assert.equal(tls.status, 403);
    const plain = await fetchVia(arr.port, 'plain-app2.localhost', false);
    assert.equal(plain.status, 200);
    assert.match(plain.text, /^hello from app2/);

    const get = await fetchVia(arr.port, 'secure-app1.localhost', false, { path: '/x?y=1' });
    assert.equal(get.status, 301);
    assert.equal(get.headers.location, `https://secure-app1.localhost:${arr.sslport}/x?y=1`);
    const post = await fetchVia(arr.port, 'secure-app1.localhost', false, { method: 'POST', body: 'x' });
    assert.equal(post.status, 403);
    const secure = await fetchVia(arr.sslport, 'secure-app1.localhost', true);
    assert.equal(secure.status, 200);
    assert.match(secure.text, /^hello from app1/);
  });

  it('sets X-Forwarded-* itself: For appended, Proto/Host/Port replaced', async () => {
    const spoof = {
      'x-forwarded-for': '203.0.113.7',
      'x-forwarded-proto': 'https',
      'x-forwarded-host': 'evil.example',
      'x-forwarded-port': '1',
    };
    const plain = JSON.parse(
      (await fetchVia(arr.port, 'app1.localhost', false, { path: '/headers', headers: spoof })).text,
    );
    assert.equal(plain.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1');
    assert.equal(plain.headers['x-forwarded-proto'], 'http');
    assert.equal(plain.headers['x-forwarded-host'], 'app1.localhost');
    assert.equal(plain.headers['x-forwarded-port'], String(arr.port));
    const tls = JSON.parse((await fetchVia(arr.sslport, 'app1.localhost', true, { path: '/headers' })).text);
    assert.equal(tls.headers['x-forwarded-for'], '127.0.0.1');
    assert.equal(tls.headers['x-forwarded-proto'], 'https');
    assert.equal(tls.headers['x-forwarded-port'], String(arr.sslport));
  });

  it('serves each host its own certificate by SNI, and the default one otherwise', async () => {
    assert.equal(await certificateFor(arr.sslport, 'app1.localhost'), 'app1.localhost');
    assert.equal(await certificateFor(arr.sslport, 'secure-app1.localhost'), 'secure-app1.localhost');
    assert.equal(await certificateFor(arr.sslport, 'app2.localhost'), 'localhost');
    assert.equal(await certificateFor(arr.sslport, 'unknown.localhost'), 'localhost');
    assert.equal(await certificateFor(arr.sslport), 'localhost');
  });

  it('speaks TLS 1.2 or newer only', async () => {
    const old = new Promise<string>((resolve) => {
      const s = tlsConnect(
        {
          host: '127.0.0.1',
          port: arr.sslport,
          servername: 'app1.localhost',
          rejectUnauthorized: false,
          maxVersion: 'TLSv1.1',
          // Level 0 lets this client offer TLS 1.1 at all, so only the server can refuse it.
          ciphers: 'DEFAULT@SECLEVEL=0',
          minVersion: 'TLSv1',
        },
        () => {
          s.destroy();
          resolve('connected');
        },
      );
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    assert.match(await old, /VERSION|PROTOCOL/, 'the server refuses TLS 1.1');
    const modern = await fetchVia(arr.sslport, 'app1.localhost', true);
    assert.equal(modern.status, 200);
  });

  it('refuses a request whose Host differs from the TLS connection name (421)', async () => {
    const r = await fetchVia(arr.sslport, 'app2.localhost', true, { servername: 'app1.localhost' });
    assert.equal(r.status, 421);
  });
}

describe('routing, file registry', () => routingSuite('file', () => undefined));

describe('routing, MongoDB registry', { skip: mongoUnavailable() }, () => {
  let mongo: MongoServer;
  before(async () => {
    mongo = await startMongo('routing');
  });
  after(async () => {
    await mongo?.stop();
  });
  routingSuite('mongo', () => mongo.url);
});
