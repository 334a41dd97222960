import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { connect } from 'node:http2';
import { connect as netConnect } from 'node:net';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brotliDecompressSync, createBrotliDecompress, createGunzip, gunzipSync } from 'node:zlib';
import { chromium, type Response } from 'playwright-core';
import {
  type AppDoc,
  type ArrUnderTest,
  fetchVia,
  helloApp,
  pidOf,
  startArrWith,
  writeAppsFile,
} from '../support/arr.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { alive, runArr, stopAll } from '../support/proc.js';
import { openWs, refusedUpgrade } from '../support/wsclient.js';

const SHOP = 'shop.localhost';
const RATE = 'rate.localhost';
const GUARD = 'guard.localhost';
const OLD = 'old.localhost';
const PLAIN = 'plain.localhost';

// Debian's Chromium (scripts/install-chromium.sh), as in test/browser.
const CHROMIUM = process.env.ARR_CHROMIUM ?? '/usr/bin/chromium';
const browserSkip = !existsSync(CHROMIUM) && process.env.CI !== 'true' ? `${CHROMIUM} is missing` : false;

/** A bcrypt hash from Debian's htpasswd, as an operator makes one. */
const hash = (user: string, password: string) =>
  execFileSync('htpasswd', ['-nbB', user, password], { encoding: 'utf8' }).trim().split(':')[1]!;

interface Curled {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** curl, as a client would run it; the head of the last answer and the body. */
function curl(args: string[]): Promise<Curled> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-s', '-i', '-k', '-m', '20', ...args], { encoding: 'latin1' }, (err, out) => {
      if (err) return reject(err);
      const split = out.lastIndexOf('\r\n\r\n', out.search(/\r\n\r\n(?!HTTP\/)/) + 4);
      const head = out.slice(0, split);
      const lines = head.slice(head.lastIndexOf('HTTP/')).split('\r\n');
      const headers: Record<string, string> = {};
      for (const l of lines.slice(1))
        headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
      resolve({ status: Number(lines[0]!.split(' ')[1]), headers, body: out.slice(split + 4) });
    });
  });
}

describe('edge policies', () => {
  let arr: ArrUnderTest;
  let auth: Server;
  let authPort: number;
  let admin: number;
  let docs: AppDoc[];
  const url = (host: string, path = '/') => [`-H`, `Host: ${host}`, `http://127.0.0.1:${arr.port}${path}`];
  const h2url = (host: string, path = '/') => [
    '--http2',
    '--resolve',
    `${host}:${arr.sslport}:127.0.0.1`,
    `https://${host}:${arr.sslport}${path}`,
  ];

  before(async () => {
    // The auth service of forwardAuth: a cookie "session=ok" passes (as user "bob"), else a redirect to a login page.
    auth = createServer((req, res) => {
      // A stalled auth service: it never answers.
      if (req.headers.cookie === 'session=slow') return;
      if (req.headers.cookie === 'session=ok') {
        res.writeHead(200, { 'x-user': 'bob', 'x-other': 'not copied' });
        res.end();
      } else {
        res.writeHead(302, {
          location: `/login?from=${req.headers['x-forwarded-uri']}`,
          'x-method': String(req.headers['x-forwarded-method']),
        });
        res.end('log in first');
      }
    });
    authPort = await freePort();
    await new Promise<void>((r) => auth.listen(authPort, '127.0.0.1', r));
    admin = await freePort();
    const shop = helloApp('shop', [{ host: SHOP, ssl: 'allowed' }]) as AppDoc & Record<string, unknown>;
    Object.assign(shop, {
      access: {
        allow: ['127.0.0.1/32', '::1'],
        basicAuth: { realm: 'shop', users: { alice: hash('alice', 'secret') } },
        rateLimit: { requests: 10_000 },
      },
      headers: {
        response: { 'X-Frame-Options': 'DENY', 'X-Powered-By': null },
        request: { 'X-Env': 'prod' },
      },
      compress: true,
      maxBodySize: 1000,
    });
    const rate = Object.assign(helloApp('rate', [{ host: RATE, ssl: 'allowed' }]), {
      access: { rateLimit: { requests: 2, perSeconds: 60 } },
    });
    const guard = Object.assign(helloApp('guard', [{ host: GUARD, ssl: 'allowed' }]), {
      access: { forwardAuth: { url: `http://127.0.0.1:${authPort}/verify`, responseHeaders: ['X-User'] } },
    });
    const old = {
      _id: 'old',
      hosts: [{ host: OLD, ssl: 'allowed' }],
      redirect: { to: 'https://new.example.com', status: 308 },
    } as unknown as AppDoc;
    docs = [shop, rate, guard, old, helloApp('plain', [{ host: PLAIN, ssl: 'allowed' }])];
    arr = await startArrWith(docs, { extraArgs: ['--admin', `127.0.0.1:${admin}`] });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    auth?.closeAllConnections();
    auth?.close();
  });

  it('IP rules: another client address gets 403, for requests and WebSocket upgrades', async () => {
    const refused = await curl(['--interface', '127.0.0.2', '-u', 'alice:secret', ...url(SHOP)]);
    assert.equal(refused.status, 403);
    const h2 = await curl(['--interface', '127.0.0.2', '-u', 'alice:secret', ...h2url(SHOP)]);
    assert.equal(h2.status, 403);
    // A WebSocket upgrade from 127.0.0.2, with the right credentials.
    const upgrade = await new Promise<string>((resolve, reject) => {
      const socket = netConnect({ host: '127.0.0.1', port: arr.port, localAddress: '127.0.0.2' });
      let got = '';
      socket.on('data', (c) => {
        got += c.toString('latin1');
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(got));
      socket.write(
        'GET /ws HTTP/1.1\r\nHost: shop.localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n' +
          `Authorization: Basic ${Buffer.from('alice:secret').toString('base64')}\r\n\r\n`,
      );
    });
    assert.match(upgrade, /^HTTP\/1\.1 403 /);
    const ok = await curl(['--interface', '127.0.0.1', '-u', 'alice:secret', ...url(SHOP)]);
    assert.equal(ok.status, 200);
    assert.match(ok.body, /hello from shop/);
  });

  it('basic auth: 401 with the realm, then X-Forwarded-User and no Authorization at the instance (HTTP/1.1 and HTTP/2)', async () => {
    const none = await curl(url(SHOP));
    assert.equal(none.status, 401);
    assert.equal(none.headers['www-authenticate'], 'Basic realm="shop", charset="UTF-8"');
    assert.equal((await curl(['-u', 'alice:wrong', ...url(SHOP)])).status, 401);
    for (const target of [url(SHOP, '/headers'), h2url(SHOP, '/headers')]) {
      const r = await curl(['-u', 'alice:secret', '-H', 'X-Forwarded-User: eve', ...target]);
      assert.equal(r.status, 200, r.body);
      const seen = JSON.parse(r.body).headers;
      assert.equal(seen['x-forwarded-user'], 'alice');
      assert.equal(seen.authorization, undefined);
      assert.equal(seen['x-env'], 'prod');
      assert.equal(r.headers['x-frame-options'], 'DENY');
    }
  });

  it('basic auth guards WebSocket upgrades, over HTTP/1.1 and HTTP/2', async () => {
    const refused = await refusedUpgrade(arr.port, SHOP, false);
    assert.equal(refused.status, 401);
    const creds = `Basic ${Buffer.from('alice:secret').toString('base64')}`;
    const ws = await openWs(arr.port, SHOP, false, { headers: { authorization: creds } });
    ws.ws.send('ping');
    assert.equal((await ws.message(1)).data.toString(), 'ping', 'after its greeting, the instance echoes');
    ws.ws.close();
    // Over HTTP/2: an extended CONNECT (RFC 8441), refused without credentials, joined with them.
    const session = connect(`https://127.0.0.1:${arr.sslport}`, {
      servername: SHOP,
      rejectUnauthorized: false,
    });
    try {
      await until('SETTINGS_ENABLE_CONNECT_PROTOCOL', () => session.remoteSettings.enableConnectProtocol);
      const open = (headers: Record<string, string>) =>
        new Promise<{ status: number; first: string }>((resolve, reject) => {
          const stream = session.request(
            {
              ':method': 'CONNECT',
              ':protocol': 'websocket',
              ':scheme': 'https',
              ':path': '/ws',
              ':authority': SHOP,
              'sec-websocket-version': '13',
              ...headers,
            },
            { endStream: false },
          );
          stream.on('error', reject);
          stream.once('response', (h) => {
            const status = Number(h[':status']);
            stream.once('data', (c: Buffer) => {
              resolve({ status, first: c.toString('latin1') });
              stream.close();
            });
          });
        });
      assert.equal((await open({})).status, 401);
      const joined = await open({ authorization: creds });
      assert.equal(joined.status, 200);
      assert.match(joined.first, /hello from shop/);
    } finally {
      session.destroy();
    }
  });

  it("a client's X-Forwarded-User never reaches an app without policies", async () => {
    const r = await fetchVia(arr.port, PLAIN, false, {
      path: '/headers',
      headers: { 'x-forwarded-user': 'eve' },
    });
    assert.equal(JSON.parse(r.text).headers['x-forwarded-user'], undefined);
  });

  it('rate limit: 429 with Retry-After past the burst, per client address', async () => {
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await curl(url(RATE))).status);
    assert.deepEqual(statuses, [200, 200, 429]);
    const limited = await curl(url(RATE));
    assert.ok(Number(limited.headers['retry-after']) >= 1, JSON.stringify(limited.headers));
    assert.equal((await curl(['--interface', '127.0.0.3', ...url(RATE)])).status, 200);
  });

  it('compression: gzip and brotli by the client’s q-values, Vary, a weak ETag; none for HEAD or ranges', async () => {
    const auth = { authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` };
    for (const [accept, encoding, decode] of [
      ['gzip;q=1, br;q=0.5', 'gzip', gunzipSync],
      ['gzip, br', 'br', brotliDecompressSync],
    ] as const) {
      const r = await fetchVia(arr.port, SHOP, false, {
        path: '/json?n=20000',
        headers: { ...auth, 'accept-encoding': accept },
      });
      assert.equal(r.headers['content-encoding'], encoding);
      assert.equal(r.headers.vary, 'Accept-Encoding');
      assert.equal(r.headers.etag, 'W/"v1"');
      assert.ok(r.body.length < 2000, `compressed: ${r.body.length} bytes`);
      assert.equal(JSON.parse(decode(r.body).toString()).app, 'shop');
    }
    // Past 64 KB the body goes through a zlib stream instead of one call.
    const large = await fetchVia(arr.port, SHOP, false, {
      path: '/json?n=300000',
      headers: { ...auth, 'accept-encoding': 'gzip' },
    });
    assert.equal(large.headers['content-encoding'], 'gzip');
    assert.equal(JSON.parse(gunzipSync(large.body).toString()).pad.length, 300000 - 20);
    const head = await fetchVia(arr.port, SHOP, false, {
      method: 'HEAD',
      path: '/json',
      headers: { ...auth, 'accept-encoding': 'gzip' },
    });
    assert.equal(head.headers['content-encoding'], undefined);
    const ranged = await fetchVia(arr.port, SHOP, false, {
      path: '/json',
      headers: { ...auth, 'accept-encoding': 'gzip', range: 'bytes=0-10' },
    });
    assert.equal(ranged.headers['content-encoding'], undefined);
    const small = await fetchVia(arr.port, SHOP, false, { headers: { ...auth, 'accept-encoding': 'gzip' } });
    assert.equal(small.headers['content-encoding'], undefined, 'under 1 KB');
    const h2 = await curl(['-u', 'alice:secret', '--compressed', ...h2url(SHOP, '/json?n=20000')]);
    assert.equal(h2.headers['content-encoding'], 'br');
    assert.equal(JSON.parse(h2.body).app, 'shop');
  });

  it('compression: a Python client (urllib + gzip) reads the gzip answer', async () => {
    const script = [
      'import gzip, json, sys, urllib.request',
      `req = urllib.request.Request("http://127.0.0.1:${arr.port}/json?n=20000", headers={"Host": "${SHOP}", "Accept-Encoding": "gzip", "Authorization": "Basic " + "${Buffer.from('alice:secret').toString('base64')}"})`,
      'r = urllib.request.urlopen(req)',
      'assert r.headers["Content-Encoding"] == "gzip", r.headers',
      'print(json.loads(gzip.decompress(r.read()))["app"])',
    ].join('\n');
    const out = await new Promise<string>((resolve, reject) =>
      execFile('python3', ['-c', script], (err, stdout, stderr) =>
        err ? reject(new Error(stderr)) : resolve(stdout),
      ),
    );
    assert.equal(out.trim(), 'shop');
  });

  it('basic auth in a browser: Chromium gets the 401 challenge, then the page with the password (HTTP/2)', {
    skip: browserSkip,
  }, async () => {
    const browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
      timeout: 30_000,
    });
    try {
      const url = `https://${SHOP}:${arr.sslport}/`;
      // Without credentials Chromium gives up on the challenge (a net error for the navigation):
      // the answer it got is read from the page's response event.
      const anonymous = await (await browser.newContext({ ignoreHTTPSErrors: true })).newPage();
      const challenge = new Promise<Response>((resolve) => anonymous.once('response', resolve));
      await anonymous.goto(url).catch(() => undefined);
      const refused = await challenge;
      assert.equal(refused.status(), 401);
      assert.equal(refused.headers()['www-authenticate'], 'Basic realm="shop", charset="UTF-8"');
      const alice = await browser.newContext({
        ignoreHTTPSErrors: true,
        httpCredentials: { username: 'alice', password: 'secret' },
      });
      const page = await alice.newPage();
      const ok = await page.goto(url);
      assert.equal(ok?.status(), 200);
      assert.match(await page.content(), /hello from shop/);
    } finally {
      await browser.close();
    }
  });

  it('compression: the first Server-Sent Event arrives at once, over HTTP/1.1 and HTTP/2', async () => {
    const authorization = `Basic ${Buffer.from('alice:secret').toString('base64')}`;
    // The instance sends its second event (and ends) after 30 s: the first must not wait for it.
    const t0 = performance.now();
    const first = await new Promise<string>((resolve, reject) => {
      const req = httpRequest({
        host: '127.0.0.1',
        port: arr.port,
        path: '/events?ms=30000',
        headers: { host: SHOP, authorization, 'accept-encoding': 'gzip' },
      });
      req.on('error', reject);
      req.on('response', (res) => {
        assert.equal(res.headers['content-encoding'], 'gzip');
        const z = createGunzip();
        z.on('error', () => {}); // cut short by the test
        res.pipe(z);
        z.once('data', (c: Buffer) => {
          resolve(c.toString());
          req.destroy();
        });
      });
      req.end();
    });
    assert.match(first, /data: first from shop/);
    const session = connect(`https://127.0.0.1:${arr.sslport}`, {
      servername: SHOP,
      rejectUnauthorized: false,
    });
    try {
      const stream = session.request({
        ':path': '/events?ms=30000',
        ':authority': SHOP,
        authorization,
        'accept-encoding': 'br',
      });
      const z = createBrotliDecompress();
      z.on('error', () => {});
      stream.pipe(z);
      const text = await new Promise<string>((resolve, reject) => {
        stream.on('error', reject);
        z.once('data', (c: Buffer) => resolve(c.toString()));
      });
      assert.match(text, /data: first from shop/);
      assert.ok(performance.now() - t0 < 10_000, 'before the second event');
      stream.close();
    } finally {
      session.destroy();
    }
  });

  it('maxBodySize: 413 for a declared length, a chunked body and an HTTP/2 body past it', async () => {
    const big = 'a'.repeat(2000);
    const declared = await curl(['-u', 'alice:secret', '--data-binary', big, ...url(SHOP, '/echo')]);
    assert.equal(declared.status, 413);
    const chunked = await curl([
      '-u',
      'alice:secret',
      '-H',
      'Transfer-Encoding: chunked',
      '--data-binary',
      big,
      ...url(SHOP, '/echo'),
    ]);
    assert.equal(chunked.status, 413);
    const h2 = await curl([
      '-u',
      'alice:secret',
      '-H',
      'Content-Length:',
      '--data-binary',
      big,
      ...h2url(SHOP, '/echo'),
    ]);
    assert.equal(h2.status, 413);
    const fits = await curl(['-u', 'alice:secret', '--data-binary', 'small', ...url(SHOP, '/echo')]);
    assert.equal(fits.status, 200);
    assert.equal(fits.body, 'small');
  });

  it('forwardAuth: a 2xx passes with the named fields; another answer is the client’s as it is', async () => {
    const pass = await curl(['-b', 'session=ok', '-H', 'X-User: forged', ...url(GUARD, '/headers')]);
    assert.equal(pass.status, 200);
    const seen = JSON.parse(pass.body).headers;
    assert.equal(seen['x-user'], 'bob');
    assert.equal(seen['x-other'], undefined);
    const refused = await curl(['-X', 'DELETE', ...url(GUARD, '/a?b=1')]);
    assert.equal(refused.status, 302);
    assert.equal(refused.headers.location, '/login?from=/a?b=1');
    assert.equal(refused.headers['x-method'], 'DELETE');
    assert.equal(refused.body, 'log in first');
  });

  it('forwardAuth: an auth service that does not answer in time is a 504, never a pass', async () => {
    const began = Date.now();
    const r = await curl(['-b', 'session=slow', ...url(GUARD, '/headers')]);
    assert.equal(r.status, 504);
    assert.doesNotMatch(r.body, /x-forwarded/i, 'the request did not reach the instance');
    assert.ok(Date.now() - began < 15_000, `answered after ${Date.now() - began} ms`);
  });

  it('redirect: the status and `to` + path and query, no process', async () => {
    const r = await curl(url(OLD, '/a/b?c=1'));
    assert.equal(r.status, 308);
    assert.equal(r.headers.location, 'https://new.example.com/a/b?c=1');
  });

  it('/metrics counts refusals by app and reason', async () => {
    const text = (await fetchVia(admin, `127.0.0.1:${admin}`, false, { path: '/metrics' })).text;
    assert.match(text, /arr_policy_refusals_total\{app="shop.localhost",reason="ip"\} [1-9]/);
    assert.match(text, /arr_policy_refusals_total\{app="shop.localhost",reason="auth"\} [1-9]/);
    assert.match(text, /arr_policy_refusals_total\{app="rate.localhost",reason="rate"\} [1-9]/);
    assert.match(text, /arr_policy_refusals_total\{app="shop.localhost",reason="body_size"\} [1-9]/);
  });

  it('arr apps, /api/overview and arr validate: which policies an app has, never a hash; bad values named', async () => {
    const apps = await runArr(['apps', '--apps', arr.appsFile!]);
    assert.equal(apps.code, 0, apps.output);
    assert.match(
      apps.output,
      /shop\.localhost: policies allow, rateLimit, basicAuth, headers, compress, maxBodySize/,
    );
    assert.match(apps.output, /old\.localhost: policies redirect/);
    assert.doesNotMatch(apps.output, /\$2y\$|127\.0\.0\.1:\d+\/verify/);
    const overview = await fetchVia(admin, `127.0.0.1:${admin}`, false, { path: '/api/overview' });
    const shop = JSON.parse(overview.text).apps.find((a: { name: string }) => a.name === SHOP);
    assert.deepEqual(shop.policies, [
      'allow',
      'rateLimit',
      'basicAuth',
      'headers',
      'compress',
      'maxBodySize',
    ]);
    assert.doesNotMatch(overview.text, /\$2y\$/);
    const bad = join(dirname(arr.appsFile!), 'bad.json');
    writeAppsFile(bad, [{ ...docs[4]!, access: { allow: ['10.0.0.300/8'] } } as AppDoc]);
    const validate = await runArr(['validate', bad]);
    assert.equal(validate.code, 1);
    assert.match(validate.output, /access\.allow\[0\]: "10\.0\.0\.300\/8" is not a CIDR/);
  });

  it('live edits apply: a wider allow list lets the other address in; a failing auth service is a 502; an app that becomes a redirect stops its instance', async () => {
    const [shop, , guard] = docs as (AppDoc &
      Record<string, { allow?: string[]; forwardAuth?: { url: string } }>)[];
    shop!.access!.allow = ['127.0.0.0/8'];
    guard!.access!.forwardAuth!.url = `http://127.0.0.1:${await freePort()}/verify`;
    // The plain app becomes a redirect: its instance stops.
    const plainPid = pidOf(await fetchVia(arr.port, PLAIN, false));
    const { process: _, ...plain } = docs[4]!;
    docs[4] = { ...plain, redirect: { to: 'https://elsewhere.example' } } as unknown as AppDoc;
    writeAppsFile(arr.appsFile!, docs);
    await until(
      'the new allow list',
      async () =>
        (await curl(['--interface', '127.0.0.2', '-u', 'alice:secret', ...url(SHOP)])).status === 200,
    );
    assert.equal((await curl(['-b', 'session=ok', ...url(GUARD)])).status, 502);
    const moved = await curl(url(PLAIN, '/x'));
    assert.equal(moved.status, 302);
    assert.equal(moved.headers.location, 'https://elsewhere.example/x');
    await until('the redirect app’s former instance to stop', () => !alive(plainPid));
  });

  it('live edits apply to basicAuth, rateLimit, headers, compress and maxBodySize too', async () => {
    type Edge = AppDoc & Record<string, unknown> & { access: Record<string, unknown> };
    const [shop, rate] = docs as Edge[];
    shop!.access.basicAuth = { realm: 'shop', users: { alice: hash('alice', 'changed') } };
    shop!.headers = { response: { 'X-Frame-Options': 'SAMEORIGIN' } };
    shop!.compress = false;
    shop!.maxBodySize = 100_000;
    rate!.access.rateLimit = { requests: 1000, perSeconds: 1 };
    writeAppsFile(arr.appsFile!, docs);
    await until(
      'the new password',
      async () => (await curl(['-u', 'alice:changed', ...url(SHOP)])).status === 200,
    );
    assert.equal((await curl(['-u', 'alice:secret', ...url(SHOP)])).status, 401, 'the old password');
    const r = await curl([
      '-u',
      'alice:changed',
      '-H',
      'Accept-Encoding: gzip',
      ...url(SHOP, '/json?n=20000'),
    ]);
    assert.equal(r.headers['x-frame-options'], 'SAMEORIGIN');
    assert.equal(r.headers['content-encoding'], undefined, 'compress: false');
    const body = await curl([
      '-u',
      'alice:changed',
      '--data-binary',
      'a'.repeat(2000),
      ...url(SHOP, '/echo'),
    ]);
    assert.equal(body.status, 200, 'a body under the new maxBodySize');
    // This address had used up its 2 requests a minute; the new bucket lets it in.
    for (let i = 0; i < 5; i++) assert.equal((await curl(url(RATE))).status, 200);
  });
});
