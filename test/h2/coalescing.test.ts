// HTTP/2 connection coalescing with certificates of apps' own (RFC 9113 §9.1.1): a browser sends a
// stream for every name the connection's certificate covers. A second name under the same
// wildcard certificate, or another name of a certificate with several, got 421 (only arr's
// default certificate counted as shared); it is served now, and a name the certificate covers
// but that is served with another certificate still gets 421.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ClientHttp2Session } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, helloApp, startArrWith } from '../support/arr.js';
import { closeSession, h2Connect, h2Request } from '../support/h2.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

describe('HTTP/2 coalescing under certificates of apps own', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-coalesce-'));
  let arr: ArrUnderTest;
  const sessions: ClientHttp2Session[] = [];
  /** A self-signed certificate for these names; its files. */
  const certificate = (name: string, san: string) => {
    const cert = join(dir, `${name}-cert.pem`);
    const key = join(dir, `${name}-key.pem`);
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
        '-addext',
        `subjectAltName=${san}`,
        '-keyout',
        key,
        '-out',
        cert,
      ],
      { stdio: 'ignore' },
    );
    return { cert, key };
  };
  const connect = async (name: string) => {
    const s = await h2Connect(arr.sslport, name);
    sessions.push(s);
    return s;
  };

  before(async () => {
    const shop = certificate('shop', 'DNS:*.shop.localhost');
    const vip = certificate('vip', 'DNS:vip.shop.localhost');
    const pair = certificate('pair', 'DNS:one.localhost, DNS:two.localhost');
    arr = await startArrWith([
      helloApp('shop', [{ host: '*.shop.localhost', ssl: 'allowed', ...shop }]),
      helloApp('vip', [{ host: 'vip.shop.localhost', ssl: 'allowed', ...vip }]),
      helloApp('one', [{ host: 'one.localhost', ssl: 'allowed', ...pair }]),
      helloApp('two', [{ host: 'two.localhost', ssl: 'allowed', ...pair }]),
    ]);
  });
  after(async () => {
    for (const s of sessions) await closeSession(s);
    await arr?.stop();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves a second name under the same wildcard certificate; a name with its own certificate gets 421', async () => {
    const session = await connect('a.shop.localhost');
    const a = await h2Request(session, 'a.shop.localhost', '/');
    assert.equal(a.status, 200, a.text);
    const b = await h2Request(session, 'b.shop.localhost', '/');
    assert.equal(b.status, 200, b.text);
    assert.match(b.text, /^hello from shop/);
    // Covered by *.shop.localhost, but served with a certificate of its own.
    const vip = await h2Request(session, 'vip.shop.localhost', '/');
    assert.equal(vip.status, 421, vip.text);
  });

  it('serves another name of a certificate with several names, once that host is known to be served with it', async () => {
    const session = await connect('one.localhost');
    assert.equal((await h2Request(session, 'one.localhost', '/')).status, 200);
    // two.localhost's files are read at its first stream (a 421 then is retried by browsers on a new connection).
    const two = await until('two.localhost on one.localhost connection', async () => {
      const r = await h2Request(session, 'two.localhost', '/');
      return r.status === 200 ? r : r.status === 421 ? undefined : assert.fail(`${r.status} ${r.text}`);
    });
    assert.match(two.text, /^hello from two/);
    // Not a name of the certificate: never served on this connection.
    assert.equal((await h2Request(session, 'a.shop.localhost', '/')).status, 421);
  });
});
