import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { CONNECTION } from '../../src/router/carrying/headers.js';
import { markIdentity, misdirected } from '../../src/router/deciding/coalescing.js';

const DEFAULT = 'AA:BB';

/** A TLS socket as markIdentity reads it: its SNI name and its certificate. */
function socket(servername: string | false, fingerprint256: string, subjectaltname: string): TLSSocket {
  return { servername, getCertificate: () => ({ fingerprint256, subjectaltname }) } as unknown as TLSSocket;
}

/** An HTTP/2 request on the connection (h2-messages.ts sets CONNECTION). */
function on(connection: TLSSocket | undefined): { [CONNECTION]: TLSSocket | undefined } {
  return { [CONNECTION]: connection };
}

describe('HTTP/2 connection coalescing (pure)', () => {
  const wildcard = socket('app1.localhost', DEFAULT, 'DNS:*.localhost, DNS:localhost, IP Address:127.0.0.1');
  markIdentity(wildcard, DEFAULT);

  it('serves any host on a connection opened for it', () => {
    assert.equal(misdirected(on(wildcard), 'app1.localhost', true), undefined);
  });

  it("serves another host under arr's default certificate when that certificate covers it", () => {
    assert.equal(misdirected(on(wildcard), 'app2.localhost', false), undefined);
    assert.equal(misdirected(on(wildcard), '127.0.0.1', false), undefined);
    assert.match(misdirected(on(wildcard), 'a.b.localhost', false) ?? '', /does not cover a\.b\.localhost/);
    assert.match(misdirected(on(wildcard), 'example.com', false) ?? '', /does not cover/);
  });

  it('refuses a host with a certificate of its own on a connection opened for another', () => {
    assert.match(misdirected(on(wildcard), 'app2.localhost', true) ?? '', /certificate of its own/);
  });

  it('refuses coalescing under a certificate that is not the default one', () => {
    const own = socket('secure.localhost', 'CC:DD', 'DNS:*.localhost');
    markIdentity(own, DEFAULT);
    assert.match(misdirected(on(own), 'app2.localhost', false) ?? '', /does not cover/);
  });

  it('serves a host without a certificate of its own on a connection opened without SNI, as HTTP/1.1 does', () => {
    const bare = socket(false, DEFAULT, 'DNS:*.localhost');
    markIdentity(bare, DEFAULT);
    assert.equal(misdirected(on(bare), 'example.com', false), undefined);
    assert.match(misdirected(on(bare), 'app1.localhost', true) ?? '', /with its name \(SNI\)/);
  });

  it('refuses a stream whose connection is unknown', () => {
    assert.match(misdirected(on(undefined), 'app1.localhost', false) ?? '', /cannot be told apart/);
  });
});
