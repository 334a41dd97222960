import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { lifetimeRenewal } from '../../src/acme/ari.js';
import { backOffMs } from '../../src/acme/certificate.js';
import { KeySeal } from '../../src/acme/key-seal.js';
import { certificateSource, isPublicName, qualifies } from '../../src/acme/qualify.js';
import { offeredProtocols, serverName } from '../../src/router/accepting/client-hello.js';
import { runArr } from '../support/proc.js';

describe('ACME qualification', () => {
  it('public names only: not localhost, *.localhost, IP addresses or single labels', () => {
    for (const h of ['app1.test', 'www.example.com', 'a.b.c.example.org'])
      assert.equal(isPublicName(h), true, h);
    for (const h of ['localhost', 'app.localhost', '127.0.0.1', '10.1.2.3', '[::1]', 'intranet'])
      assert.equal(isPublicName(h), false, h);
    // A wildcard: the name under its "*" is held to the same rule.
    assert.equal(isPublicName('*.apps.example.com'), true);
    for (const h of ['*.localhost', '*.app.localhost', '*.intranet']) assert.equal(isPublicName(h), false, h);
    assert.equal(qualifies({ host: '*.apps.example.com', ssl: 'allowed' }), true);
  });

  it('ssl allowed or required, no own files, not "acme": false', () => {
    assert.equal(qualifies({ host: 'a.test', ssl: 'allowed' }), true);
    assert.equal(qualifies({ host: 'a.test', ssl: 'required' }), true);
    assert.equal(qualifies({ host: 'a.test', ssl: 'none' }), false);
    assert.equal(qualifies({ host: 'a.test', ssl: 'allowed', acme: false }), false);
    assert.equal(qualifies({ host: 'a.test', ssl: 'allowed', cert: 'c.pem', key: 'k.pem' }), false);
    assert.equal(qualifies({ host: 'a.localhost', ssl: 'allowed' }), false);
  });

  it('where a certificate comes from: own, acme (with ACME on), default', () => {
    assert.equal(certificateSource({ host: 'a.test', ssl: 'allowed', cert: 'c', key: 'k' }, true), 'own');
    assert.equal(certificateSource({ host: 'a.test', ssl: 'allowed' }, true), 'acme');
    assert.equal(certificateSource({ host: 'a.test', ssl: 'allowed' }, false), 'default');
    assert.equal(certificateSource({ host: 'a.localhost', ssl: 'allowed' }, true), 'default');
  });
});

describe('ACME timing', () => {
  it('renews at two thirds of the lifetime', () => {
    assert.deepEqual(lifetimeRenewal(0, 90 * 86_400_000), { renewAt: 60 * 86_400_000, source: 'lifetime' });
  });

  it('backs off from a minute, doubling, up to a day', () => {
    assert.deepEqual([1, 2, 3, 4].map(backOffMs), [60_000, 120_000, 240_000, 480_000]);
    assert.equal(backOffMs(11), 1024 * 60_000);
    assert.equal(backOffMs(12), 86_400_000);
    assert.equal(backOffMs(1000), 86_400_000);
  });
});

describe('private keys at rest', () => {
  const pem = '-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n';

  it('sealed with ARR_ACME_KEY: not plaintext, opened with the same secret only', () => {
    const sealed = new KeySeal('s3cret').seal(pem);
    assert.doesNotMatch(sealed, /PRIVATE KEY/);
    assert.equal(new KeySeal('s3cret').open(sealed), pem);
    assert.throws(() => new KeySeal('other').open(sealed), /cannot be opened with this ARR_ACME_KEY/);
    assert.throws(() => new KeySeal(undefined).open(sealed), /ARR_ACME_KEY is not set/);
  });

  it('without a secret, keys are kept as they are (and read back)', () => {
    assert.equal(new KeySeal(undefined).seal(pem), pem);
    assert.equal(new KeySeal('s3cret').open(pem), pem);
  });
});

/** A minimal TLS 1.2-framed ClientHello with SNI and ALPN extensions. */
function clientHello(name: string | undefined, alpn: string[] | undefined): Buffer {
  const ext: Buffer[] = [];
  if (name !== undefined) {
    const n = Buffer.from(name, 'latin1');
    const entry = Buffer.concat([Buffer.from([0]), u16(n.length), n]);
    const list = Buffer.concat([u16(entry.length), entry]);
    ext.push(Buffer.concat([u16(0), u16(list.length), list]));
  }
  if (alpn !== undefined) {
    const protos = Buffer.concat(alpn.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p)])));
    const list = Buffer.concat([u16(protos.length), protos]);
    ext.push(Buffer.concat([u16(16), u16(list.length), list]));
  }
  const exts = Buffer.concat(ext);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32),
    Buffer.from([0]), // session id
    u16(2),
    Buffer.from([0x13, 0x01]), // one cipher suite
    Buffer.from([1, 0]), // compression: null
    u16(exts.length),
    exts,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0]), u16(body.length), body]);
  return Buffer.concat([Buffer.from([22, 3, 1]), u16(hs.length), hs]);
}

function u16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}

describe('ClientHello: SNI and ALPN read before the TLS server sees it', () => {
  it('reads the protocols and the name', () => {
    const hello = clientHello('App1.Test', ['acme-tls/1']);
    assert.deepEqual(offeredProtocols(hello), ['acme-tls/1']);
    assert.equal(serverName(hello), 'app1.test');
    assert.deepEqual(offeredProtocols(clientHello('a.test', ['h2', 'http/1.1'])), ['h2', 'http/1.1']);
    assert.deepEqual(offeredProtocols(clientHello('a.test', undefined)), []);
    assert.equal(serverName(clientHello(undefined, ['h2'])), undefined);
  });

  it('garbage, truncated or non-TLS bytes are not a hello (and do not throw)', () => {
    const hello = clientHello('a.test', ['acme-tls/1']);
    for (let n = 0; n < hello.length; n += 7) {
      const part = hello.subarray(0, n);
      assert.doesNotThrow(() => offeredProtocols(part));
      assert.doesNotThrow(() => serverName(part));
    }
    assert.equal(offeredProtocols(Buffer.from('GET / HTTP/1.1\r\n\r\n')), undefined);
    assert.equal(serverName(Buffer.from([22, 3, 1, 0xff, 0xff, 1])), undefined);
  });

  it('no prefix of a hello throws (a socket data handler reads them)', () => {
    const hello = clientHello('a.test', ['acme-tls/1']);
    for (let n = 0; n <= hello.length; n++) {
      const part = hello.subarray(0, n);
      assert.doesNotThrow(() => offeredProtocols(part), `first ${n} bytes`);
      assert.doesNotThrow(() => serverName(part), `first ${n} bytes`);
    }
  });
});

describe('--acme-* options', () => {
  it('a bad e-mail, directory or challenge type is a usage error (exit 2) naming the option', async () => {
    const cases: Promise<void>[] = [];
    for (const [args, re] of [
      [['--acme-email', 'not-an-address'], /--acme-email must be an e-mail address/],
      [
        ['--acme-email', 'a@b.org', '--acme-directory', 'http://ca.test/dir'],
        /--acme-directory must be an https:\/\/ URL/,
      ],
      [
        ['--acme-email', 'a@b.org', '--acme-challenges', 'dns-02'],
        /--acme-challenges must list http-01, tls-alpn-01 and\/or dns-01/,
      ],
      [['--acme-email', 'a@b.org', '--acme-challenges', 'dns-01'], /dns-01 needs --acme-dns/],
      [
        ['--acme-email', 'a@b.org', '--acme-dns', 'ftp:x'],
        /--acme-dns must be exec:PATH or rfc2136:HOST:PORT/,
      ],
      [
        ['--acme-email', 'a@b.org', '--acme-dns', 'exec:/nonexistent/hook'],
        /--acme-dns exec: "\/nonexistent\/hook" is not an executable file/,
      ],
      [
        ['--acme-email', 'a@b.org', '--acme-dns', 'rfc2136:127.0.0.1:53'],
        /needs the TSIG key in ARR_ACME_TSIG/,
      ],
      [
        ['--acme-email', 'a@b.org', '--acme-dns', 'rfc2136:127.0.0.1'],
        /must be exec:PATH or rfc2136:HOST:PORT/,
      ],
      [
        ['--acme-email', 'a@b.org', '--acme-dns', 'exec:/bin/true', '--acme-dns-wait', '-1'],
        /--acme-dns-wait must be a number of seconds/,
      ],
    ] as const)
      cases.push(
        runArr([...args, '-p', '0', '-s', '0']).then((r) => {
          assert.equal(r.code, 2, r.output);
          assert.match(r.output, re);
        }),
      );
    await Promise.all(cases);
  });
});
