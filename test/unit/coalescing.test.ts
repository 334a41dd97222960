import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import type { Route } from '../../src/registry/types.js';
import { CONNECTION } from '../../src/router/carrying/headers.js';
import { DEFAULT_CERTIFICATE, markIdentity, misdirected } from '../../src/router/deciding/coalescing.js';

const DEFAULT = 'AA:BB';

/** A TLS socket as markIdentity reads it: its SNI name and its certificate. */
function socket(servername: string | false, fingerprint256: string, subjectaltname: string): TLSSocket {
  return { servername, getCertificate: () => ({ fingerprint256, subjectaltname }) } as unknown as TLSSocket;
}

/**
 * misdirected() for a stream for `host` whose route has files of its own (`own`) and is served
 * with the certificate of fingerprint `served` (DEFAULT_CERTIFICATE; undefined: not known yet).
 */
function ask(
  req: { [CONNECTION]: TLSSocket | undefined },
  host: string,
  own: boolean,
  served: string | undefined,
): string | undefined {
  const rule = own ? { host, ssl: 'allowed', cert: 'c.pem', key: 'k.pem' } : { host, ssl: 'allowed' };
  return misdirected(req, { rule, app: {} } as unknown as Route, host, { certificateOf: () => served });
}

/** An HTTP/2 request on the connection (h2-messages.ts sets CONNECTION). */
function on(connection: TLSSocket | undefined): { [CONNECTION]: TLSSocket | undefined } {
  return { [CONNECTION]: connection };
}

describe('HTTP/2 connection coalescing (pure)', () => {
  const wildcard = socket('app1.localhost', DEFAULT, 'DNS:*.localhost, DNS:localhost, IP Address:127.0.0.1');
  markIdentity(wildcard, DEFAULT);

  it('serves any host on a connection opened for it', () => {
    assert.equal(ask(on(wildcard), 'app1.localhost', true, 'FF:FF'), undefined);
  });

  it("serves another host under arr's default certificate when that certificate covers it", () => {
    assert.equal(ask(on(wildcard), 'app2.localhost', false, DEFAULT_CERTIFICATE), undefined);
    assert.equal(ask(on(wildcard), '127.0.0.1', false, DEFAULT_CERTIFICATE), undefined);
    assert.match(
      ask(on(wildcard), 'a.b.localhost', false, DEFAULT_CERTIFICATE) ?? '',
      /does not cover a\.b\.localhost/,
    );
    assert.match(ask(on(wildcard), 'example.com', false, DEFAULT_CERTIFICATE) ?? '', /does not cover/);
  });

  it('refuses a host with a certificate of its own on a connection opened for another', () => {
    assert.match(ask(on(wildcard), 'app2.localhost', true, 'FF:FF') ?? '', /certificate of its own/);
  });

  it('refuses coalescing under a certificate that is not the default one', () => {
    const own = socket('secure.localhost', 'CC:DD', 'DNS:*.localhost');
    markIdentity(own, DEFAULT);
    assert.match(ask(on(own), 'app2.localhost', false, DEFAULT_CERTIFICATE) ?? '', /does not cover/);
  });

  it('serves a host without a certificate of its own on a connection opened without SNI, as HTTP/1.1 does', () => {
    const bare = socket(false, DEFAULT, 'DNS:*.localhost');
    markIdentity(bare, DEFAULT);
    assert.equal(ask(on(bare), 'example.com', false, DEFAULT_CERTIFICATE), undefined);
    assert.match(ask(on(bare), 'app1.localhost', true, 'FF:FF') ?? '', /with its name \(SNI\)/);
  });

  it('serves a second name under the same wildcard certificate of its own (files or ACME)', () => {
    const shop = socket('a.shop.localhost', 'EE:FF', 'DNS:*.shop.localhost, DNS:shop.localhost');
    markIdentity(shop, DEFAULT);
    assert.equal(ask(on(shop), 'b.shop.localhost', true, 'EE:FF'), undefined, 'own files');
    assert.equal(ask(on(shop), 'shop.localhost', false, 'EE:FF'), undefined, 'from ACME');
    assert.match(
      ask(on(shop), 'x.y.shop.localhost', true, 'EE:FF') ?? '',
      /does not cover/,
      'a wildcard stands for one label',
    );
  });

  it('serves another name of a certificate with several names, the one that host is served with', () => {
    const multi = socket('a.test', '11:22', 'DNS:a.test, DNS:b.test');
    markIdentity(multi, DEFAULT);
    assert.equal(ask(on(multi), 'b.test', true, '11:22'), undefined);
    assert.match(ask(on(multi), 'c.test', true, '11:22') ?? '', /does not cover c\.test/);
  });

  it('refuses a name the certificate covers when the host is served with another one (or not known yet)', () => {
    const shop = socket('a.shop.localhost', 'EE:FF', 'DNS:*.shop.localhost');
    markIdentity(shop, DEFAULT);
    assert.match(ask(on(shop), 'b.shop.localhost', true, '33:44') ?? '', /certificate of its own/);
    assert.match(ask(on(shop), 'b.shop.localhost', true, undefined) ?? '', /certificate of its own/);
    assert.match(
      ask(on(shop), 'b.shop.localhost', false, DEFAULT_CERTIFICATE) ?? '',
      /does not cover/,
      'a host served with the default certificate, on a connection with another',
    );
    assert.match(
      ask(on(wildcard), 'app3.localhost', false, 'EE:FF') ?? '',
      /certificate of its own/,
      "a host with ACME's certificate, on a connection with the default one",
    );
  });

  it('refuses a stream whose connection is unknown', () => {
    assert.match(
      ask(on(undefined), 'app1.localhost', false, DEFAULT_CERTIFICATE) ?? '',
      /cannot be told apart/,
    );
  });
});
