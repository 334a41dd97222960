import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { certificateId, renewalInWindow, retryAfterMs } from '../../src/acme/ari.js';
import { ExecHook } from '../../src/acme/dns/exec-hook.js';
import { parseDnsProvider } from '../../src/acme/dns/provider.js';
import { checkAnswer, parseTsigKey, sign } from '../../src/acme/dns/tsig.js';
import { until } from '../support/poll.js';

const dir = mkdtempSync(join(tmpdir(), 'arr-dns-units-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('ARI (RFC 9773)', () => {
  it("a certificate's id: its authority key id and its serial's DER bytes (the RFC's example)", () => {
    const f = (n: string) => join(dir, n);
    const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
    const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
    ssl(
      'req',
      '-x509',
      ...ec,
      '-subj',
      '/CN=ari ca',
      '-days',
      '1',
      '-keyout',
      f('ca.key'),
      '-out',
      f('ca.pem'),
      '-addext',
      'subjectKeyIdentifier=69:88:5B:6B:87:46:40:41:E1:B3:7B:84:7B:A0:AE:2C:DE:01:C8:D4',
    );
    ssl('req', ...ec, '-subj', '/CN=a.test', '-keyout', f('leaf.key'), '-out', f('leaf.csr'));
    writeFileSync(f('ext'), 'authorityKeyIdentifier=keyid\n');
    ssl(
      'x509',
      '-req',
      '-in',
      f('leaf.csr'),
      '-CA',
      f('ca.pem'),
      '-CAkey',
      f('ca.key'),
      '-set_serial',
      '0x87654321',
      '-days',
      '1',
      '-extfile',
      f('ext'),
      '-out',
      f('leaf.pem'),
    );
    // RFC 9773 §4.1: serial 0x87654321 is DER 00 87 65 43 21 (the zero keeps it positive).
    assert.equal(certificateId(readFileSync(f('leaf.pem'), 'utf8')), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('the renewal time: inside the window, from now on; now when the window is past; a bad window throws', () => {
    const now = Date.parse('2026-01-10T00:00:00Z');
    const window = { start: '2026-01-20T00:00:00Z', end: '2026-01-22T00:00:00Z' };
    assert.equal(
      renewalInWindow(window, now, () => 0),
      Date.parse(window.start),
    );
    assert.equal(
      renewalInWindow(window, now, () => 0.5),
      Date.parse('2026-01-21T00:00:00Z'),
    );
    assert.equal(renewalInWindow({ start: '2026-01-01T00:00:00Z', end: '2026-01-02T00:00:00Z' }, now), now);
    // Begun already: the rest of it.
    assert.equal(
      renewalInWindow({ start: '2026-01-01T00:00:00Z', end: '2026-01-11T00:00:00Z' }, now, () => 0.5),
      now + 12 * 3_600_000,
    );
    for (const bad of [undefined, {}, { start: 'x', end: 'y' }, { start: window.end, end: window.start }])
      assert.throws(() => renewalInWindow(bad, now), /no valid suggestedWindow/);
  });

  it('Retry-After: seconds or a date, held within a minute and a day; six hours when there is none', () => {
    const now = Date.parse('2026-01-10T00:00:00Z');
    assert.equal(retryAfterMs('21600', now), 21_600_000);
    assert.equal(retryAfterMs('1', now), 60_000);
    assert.equal(retryAfterMs('999999', now), 86_400_000);
    assert.equal(retryAfterMs('Sat, 10 Jan 2026 02:00:00 GMT', now), 7_200_000);
    assert.equal(retryAfterMs(undefined, now), 21_600_000);
    assert.equal(retryAfterMs('soon', now), 21_600_000);
  });
});

describe('--acme-dns and ARR_ACME_TSIG', () => {
  it('exec:PATH and rfc2136:HOST:PORT (an IPv6 address in brackets); anything else says what is expected', () => {
    assert.deepEqual(parseDnsProvider('exec:/usr/local/bin/dns-hook'), {
      kind: 'exec',
      path: '/usr/local/bin/dns-hook',
    });
    assert.deepEqual(parseDnsProvider('rfc2136:10.0.0.53:53'), {
      kind: 'rfc2136',
      server: { host: '10.0.0.53', port: 53 },
    });
    assert.deepEqual(parseDnsProvider('rfc2136:[2001:db8::53]:5353'), {
      kind: 'rfc2136',
      server: { host: '2001:db8::53', port: 5353 },
    });
    assert.deepEqual(parseDnsProvider('rfc2136:ns1.example.com:53'), {
      kind: 'rfc2136',
      server: { host: 'ns1.example.com', port: 53 },
    });
    for (const bad of [
      'exec:',
      'rfc2136:10.0.0.53',
      'rfc2136:10.0.0.53:0',
      'rfc2136:10.0.0.53:70000',
      'route53',
      '',
    ])
      assert.throws(() => parseDnsProvider(bad), /must be exec:PATH or rfc2136:HOST:PORT/, bad);
  });

  it('a TSIG key: name:algorithm:base64secret; the secret is never in a message', () => {
    const secret = Buffer.alloc(32, 9).toString('base64');
    const key = parseTsigKey(`Arr-Key.:HMAC-SHA256:${secret}`);
    assert.equal(key.name, 'arr-key.');
    assert.equal(key.algorithm, 'hmac-sha256');
    assert.equal(key.secret.length, 32);
    for (const [bad, re] of [
      ['arr-key:hmac-sha256', /must be name:algorithm:base64secret/],
      [`arr-key:hmac-md5:${secret}`, /algorithm "hmac-md5"/],
      [`arr-key:hmac-sha256:${secret}!`, /not base64/],
      ['arr-key:hmac-sha256:c2hvcnQ=', /fewer than 16 bytes/],
    ] as const) {
      assert.throws(() => parseTsigKey(bad), re, bad);
      try {
        parseTsigKey(bad);
      } catch (err) {
        assert.doesNotMatch((err as Error).message, new RegExp(secret.slice(0, 10)));
      }
    }
  });

  it('a signed message carries one more additional record; an answer without TSIG is not trusted', () => {
    const key = parseTsigKey(`k:hmac-sha256:${Buffer.alloc(32, 1).toString('base64')}`);
    const message = Buffer.alloc(12);
    message.writeUInt16BE(0x1234, 0);
    const { signed, mac } = sign(message, key, Date.parse('2026-01-10T00:00:00Z'));
    assert.equal(signed.readUInt16BE(10), 1);
    assert.equal(mac.length, 32);
    assert.equal(checkAnswer(message, key, mac), 'the answer is not signed');
    assert.equal(checkAnswer(signed.subarray(0, 20), key, mac), "the answer's TSIG record is malformed");
  });
});

describe('the DNS-01 hook (exec:PATH)', () => {
  const script = (name: string, body: string) => {
    const path = join(dir, name);
    writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    return path;
  };

  it("is run as PATH present|cleanup FQDN VALUE, without arr's ARR_* settings", async () => {
    const out = join(dir, 'calls');
    const hook = new ExecHook(
      script('ok.sh', `echo "$1 $2 $3 \${ARR_ACME_TSIG:-none} \${HOOK_TOKEN}" >> ${out}`),
    );
    process.env.ARR_ACME_TSIG = 'secret-of-arr';
    process.env.HOOK_TOKEN = 'provider-token';
    try {
      await hook.present('_acme-challenge.a.test.', 'v1');
      await hook.cleanup('_acme-challenge.a.test.', 'v1');
    } finally {
      delete process.env.ARR_ACME_TSIG;
      delete process.env.HOOK_TOKEN;
    }
    assert.equal(
      readFileSync(out, 'utf8'),
      'present _acme-challenge.a.test. v1 none provider-token\ncleanup _acme-challenge.a.test. v1 none provider-token\n',
    );
  });

  it('a non-zero exit fails with what the hook said on stderr', async () => {
    const hook = new ExecHook(script('fails.sh', 'echo "no credentials for $2" >&2\nexit 4'));
    await assert.rejects(
      hook.present('_acme-challenge.a.test.', 'v'),
      /the DNS hook \S+fails\.sh present _acme-challenge\.a\.test\. exited with code 4: no credentials for _acme-challenge\.a\.test\./,
    );
  });

  it('a hook that runs past its time is killed, with what it started', async () => {
    const pidFile = join(dir, 'bg.pid');
    const hook = new ExecHook(script('hangs.sh', `sleep 30 &\necho $! > ${pidFile}\nsleep 30`), 300);
    await assert.rejects(
      hook.present('_acme-challenge.a.test.', 'v'),
      /did not finish within 0 s and was killed/,
    );
    const pid = Number(readFileSync(pidFile, 'utf8'));
    await until("the hook's background process to be gone", () => {
      try {
        process.kill(pid, 0);
        return false;
      } catch {
        return true;
      }
    });
  });
});
