import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkAddress, checkPort, checkPositive, parseWorkers, readPem } from '../../src/cli/options.js';
import { parseRange, UsageError } from '../../src/config.js';
import { MAX_PEM_BYTES } from '../../src/util/read-limited.js';

describe('parseRange', () => {
  it('parses A-B', () => {
    assert.deepEqual(parseRange('8000-9000'), { first: 8000, last: 9000 });
    assert.deepEqual(parseRange(' 1 - 65535 '), { first: 1, last: 65535 });
    assert.deepEqual(parseRange('8080-8080'), { first: 8080, last: 8080 });
  });

  it('rejects reversed, malformed and out-of-range ranges, naming the option and the value', () => {
    for (const text of [
      '9000-8000',
      'abc',
      '0-10',
      '1-70000',
      '8000',
      '8000-',
      '-9000',
      '8000-9000-1',
      '',
      '1.5-3',
      '100000-100001',
    ]) {
      assert.throws(
        () => parseRange(text),
        (err: Error) => {
          assert.ok(err instanceof UsageError, text);
          assert.match(err.message, /^--range /);
          assert.ok(err.message.includes(`"${text}"`), err.message);
          return true;
        },
      );
    }
    assert.throws(() => parseRange('x', '--other'), /^Error: --other /);
  });
});

describe('checkPort, checkPositive, checkAddress', () => {
  it('checkPort takes 0..65535 and names the option otherwise', () => {
    assert.equal(checkPort(31415, '--port'), 31415);
    assert.equal(checkPort('0', '--port'), 0);
    assert.equal(checkPort(65535, '--port'), 65535);
    for (const bad of [-1, 65536, 1.5, Number.NaN, 'abc', undefined])
      assert.throws(
        () => checkPort(bad, '--sslport'),
        (e: Error) => e instanceof UsageError && /^--sslport /.test(e.message),
      );
  });

  it('checkPositive', () => {
    assert.equal(checkPositive(15, '--start-timeout'), 15);
    assert.equal(checkPositive('0.5', '--start-timeout'), 0.5);
    for (const bad of [0, -1, 'x', Number.POSITIVE_INFINITY])
      assert.throws(() => checkPositive(bad, '--start-timeout'), /--start-timeout/);
  });

  it('checkAddress takes IP addresses and localhost', () => {
    for (const ok of ['127.0.0.1', '0.0.0.0', '::1', '::', 'localhost'])
      assert.equal(checkAddress(ok, '--bind'), ok);
    for (const bad of ['example.com', '10.0.0', '', '10.0.0.1:80'])
      assert.throws(
        () => checkAddress(bad, '--advertise'),
        (e: Error) => e instanceof UsageError && /^--advertise /.test(e.message),
      );
  });
});

describe('readPem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-options-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file', () => {
    const path = join(dir, 'c.pem');
    writeFileSync(path, '-----BEGIN CERTIFICATE-----\n');
    assert.equal(readPem(path, '--cert').toString(), '-----BEGIN CERTIFICATE-----\n');
  });

  it('names the option, the file and the reason when it cannot read it', () => {
    const missing = join(dir, 'missing.pem');
    assert.throws(
      () => readPem(missing, '--key'),
      (e: Error) => e instanceof UsageError && e.message === `--key: cannot read "${missing}" (ENOENT)`,
    );
    assert.throws(
      () => readPem(dir, '--cert'),
      (e: Error) =>
        e instanceof UsageError && e.message === `--cert: cannot read "${dir}" (not a regular file)`,
    );
  });

  it('reads regular files of at most 1 MB only: not a device, a FIFO or a bigger file', () => {
    // Before, /dev/zero was read until memory ran out, and a FIFO blocked arr for good.
    const fifo = join(dir, 'fifo.pem');
    execFileSync('mkfifo', [fifo]);
    for (const path of ['/dev/zero', fifo])
      assert.throws(
        () => readPem(path, '--key'),
        (e: Error) =>
          e instanceof UsageError && e.message === `--key: cannot read "${path}" (not a regular file)`,
      );
    const big = join(dir, 'big.pem');
    writeFileSync(big, Buffer.alloc(MAX_PEM_BYTES + 1, 'a'));
    assert.throws(
      () => readPem(big, '--cert'),
      (e: Error) =>
        e instanceof UsageError && e.message === `--cert: cannot read "${big}" (larger than 1 MB)`,
    );
    const fits = join(dir, 'fits.pem');
    writeFileSync(fits, Buffer.alloc(MAX_PEM_BYTES, 'b'));
    assert.equal(readPem(fits, '--cert').length, MAX_PEM_BYTES);
  });
});

describe('parseWorkers (--workers)', () => {
  it('takes auto (one per core), 0 (one process) and whole numbers', () => {
    assert.equal(parseWorkers('auto'), availableParallelism());
    assert.equal(parseWorkers('0'), 0);
    assert.equal(parseWorkers(' 3 '), 3);
  });

  it('refuses anything else, naming the option', () => {
    for (const bad of ['', '-1', '1.5', 'two', '257'])
      assert.throws(
        () => parseWorkers(bad),
        (e) => e instanceof UsageError && /^--workers must be auto or a whole number/.test(e.message),
      );
  });
});
