import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { certificateFor } from '../support/tls.js';

const sample = (name: string, part: 'cert' | 'key') => join(repoRoot, `certs/${name}-${part}.pem`);

/** Replaces a file at once (a rename), as tools that renew certificates do. */
function replace(file: string, from: string): void {
  copyFileSync(from, `${file}.new`);
  renameSync(`${file}.new`, file);
}

/**
 * SIGHUP reloads: `--cert`/`--key` and the hosts' certificates are read again, under load and
 * without a failed request; a host certificate that could not be used is tried again once its
 * files change, without a reload.
 */
describe('reload on SIGHUP', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-reload-'));
  const files = {
    cert: join(dir, 'default-cert.pem'),
    key: join(dir, 'default-key.pem'),
    ownCert: join(dir, 'own-cert.pem'),
    ownKey: join(dir, 'own-key.pem'),
    badCert: join(dir, 'bad-cert.pem'),
    badKey: join(dir, 'bad-key.pem'),
  };
  let arr: ArrUnderTest;

  before(async () => {
    copyFileSync(sample('default', 'cert'), files.cert);
    copyFileSync(sample('default', 'key'), files.key);
    copyFileSync(sample('app1', 'cert'), files.ownCert);
    copyFileSync(sample('app1', 'key'), files.ownKey);
    // A key of another certificate: unusable until it is fixed.
    copyFileSync(sample('ws1', 'cert'), files.badCert);
    copyFileSync(sample('app1', 'key'), files.badKey);
    arr = await startArrWith(
      [
        helloApp('reloaded', [
          { host: 'plain.localhost', ssl: 'allowed' },
          { host: 'own.localhost', ssl: 'allowed', cert: files.ownCert, key: files.ownKey },
          { host: 'bad.localhost', ssl: 'allowed', cert: files.badCert, key: files.badKey },
        ]),
      ],
      { extraArgs: ['--cert', files.cert, '--key', files.key] },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('swaps the default certificate under load: every request answered, new connections get the new one', async () => {
    assert.equal(await certificateFor(arr.sslport, 'plain.localhost'), 'localhost');
    // Load: new TLS connections (a handshake each) and plain requests, until told to stop.
    let loading = true;
    let answered = 0;
    const failures: string[] = [];
    const loop = async (secure: boolean) => {
      while (loading) {
        try {
          const r = await fetchVia(secure ? arr.sslport : arr.port, 'plain.localhost', secure);
          if (r.status === 200) answered++;
          else failures.push(`${r.status} ${r.text}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    };
    const loops = [loop(true), loop(true), loop(true), loop(false)];
    await until('load under way', () => answered > 20, { timeoutMs: 30_000 });
    replace(files.cert, sample('secure-app1', 'cert'));
    replace(files.key, sample('secure-app1', 'key'));
    const before = answered;
    arr.proc.child.kill('SIGHUP');
    await arr.proc.waitFor(/reload: default certificate read from [^;]*; registry read \(1 app\); /, 10_000);
    await until('the new default certificate', async () =>
      (await certificateFor(arr.sslport, 'plain.localhost')) === 'secure-app1.localhost' ? true : undefined,
    );
    await until('more load after the reload', () => answered > before + 20, { timeoutMs: 30_000 });
    loading = false;
    await Promise.all(loops);
    assert.deepEqual(failures, [], 'no request failed');
    assert.ok(arr.proc.child.exitCode === null, 'arr runs on');
  });

  it('reads the hosts certificates again (a certificate that fails later is kept)', async () => {
    assert.equal(await certificateFor(arr.sslport, 'own.localhost'), 'app1.localhost');
    replace(files.ownCert, sample('ws1', 'cert'));
    replace(files.ownKey, sample('ws1', 'key'));
    // Kept until the reload.
    assert.equal(await certificateFor(arr.sslport, 'own.localhost'), 'app1.localhost');
    const mark = arr.proc.output().length;
    arr.proc.child.kill('SIGHUP');
    await until('the reload', () =>
      /reload: .*host certificates? read again/.test(arr.proc.output().slice(mark)),
    );
    assert.equal(await certificateFor(arr.sslport, 'own.localhost'), 'ws1.localhost');
    // A broken pair at the next reload: the host keeps the one it had, and the log says why.
    replace(files.ownKey, sample('app1', 'key'));
    const again = arr.proc.output().length;
    arr.proc.child.kill('SIGHUP');
    await until('the second reload', () => /reload: .*kept/.test(arr.proc.output().slice(again)));
    assert.match(
      arr.proc.output().slice(again),
      /certificate of own\.localhost cannot be used \(\\".*own-cert\.pem\\" does not match its key \\".*own-key\.pem\\"\); keeping the one it had/,
    );
    assert.equal(await certificateFor(arr.sslport, 'own.localhost'), 'ws1.localhost');
  });

  it('a host certificate that failed is tried again when its files change, without a reload', async () => {
    const mark = arr.proc.output().length;
    assert.equal(
      await certificateFor(arr.sslport, 'bad.localhost'),
      'secure-app1.localhost',
      'the default one',
    );
    await until('the failure logged', () =>
      /certificate of bad\.localhost cannot be used \(\\".*bad-cert\.pem\\" does not match its key \\".*bad-key\.pem\\"\); serving the default one/.test(
        arr.proc.output().slice(mark),
      ),
    );
    // Logged once, however many handshakes meet it.
    await certificateFor(arr.sslport, 'bad.localhost');
    assert.equal(
      arr.proc.output().slice(mark).split('certificate of bad.localhost cannot be used').length,
      2,
    );
    replace(files.badKey, sample('ws1', 'key'));
    assert.equal(await certificateFor(arr.sslport, 'bad.localhost'), 'ws1.localhost');
  });
});
