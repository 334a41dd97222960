// Certificate and key paths that name no regular file of a sane size. Before the fix, one TLS
// handshake naming a host whose cert and key were /dev/zero had arr read it without end
// (about 200 MB a second), and `arr validate` did the same. Security review #19.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { logLines } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { ARR_CLI, repoRoot, run, stopAll } from '../support/proc.js';
import { certificateFor } from '../support/tls.js';

const MB = 1024 * 1024;

/** Resident memory of a process, in bytes (/proc/PID/status, VmRSS). */
function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The promise's value, or a failure naming `what` once `ms` have passed. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

describe('a host whose cert and key are /dev/zero, or a file over 1 MB', () => {
  const pem = (name: string) => join(repoRoot, 'certs', name);
  const dir = mkdtempSync(join(tmpdir(), 'arr-certfiles-'));
  const big = join(dir, 'big-cert.pem');
  let arr: ArrUnderTest;
  before(async () => {
    writeFileSync(big, Buffer.alloc(2 * MB, 'A'));
    arr = await startArrWith([
      helloApp('zero', [{ host: 'zero.localhost', ssl: 'allowed', cert: '/dev/zero', key: '/dev/zero' }]),
      helloApp('big', [{ host: 'big.localhost', ssl: 'allowed', cert: big, key: pem('app1-key.pem') }]),
      helloApp('good', [
        { host: 'good.localhost', ssl: 'allowed', cert: pem('app1-cert.pem'), key: pem('app1-key.pem') },
      ]),
    ]);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('handshakes with the default certificate, logs why, and arr does not grow', async () => {
    const rssBefore = rssOf(arr.proc.pid);
    for (const host of ['zero.localhost', 'big.localhost'])
      assert.equal(await within(5_000, host, certificateFor(arr.sslport, host)), 'localhost', host);
    const grown = rssOf(arr.proc.pid) - rssBefore;
    assert.ok(grown < 50 * MB, `arr grew by ${Math.round(grown / MB)} MB`);
    // The line is written before the handshake ends, but may reach this process's pipe after it.
    const why = (host: string) =>
      until(`the log line of ${host}`, () =>
        logLines(arr.proc.output()).find(
          (l) =>
            l.msg.startsWith(`certificate of ${host} cannot be used (`) &&
            l.msg.endsWith('serving the default one until its files change'),
        ),
      ).then((l) => l.err);
    assert.equal(await why('zero.localhost'), 'not a regular file');
    assert.equal(await why('big.localhost'), 'larger than 1 MB');
  });

  it('goes on serving those hosts and the others', async () => {
    const zero = await fetchVia(arr.sslport, 'zero.localhost', true);
    assert.match(zero.text, /^hello from zero/);
    assert.equal(await certificateFor(arr.sslport, 'good.localhost'), 'app1.localhost');
    assert.match((await fetchVia(arr.sslport, 'good.localhost', true)).text, /^hello from good/);
    assert.equal(arr.proc.child.exitCode, null, 'arr is alive');
  });

  it('arr validate reports them by field at once', async () => {
    const r = await run(process.execPath, [ARR_CLI, 'validate', arr.appsFile!], { timeoutMs: 10_000 });
    assert.equal(r.code, 1, r.output);
    assert.match(
      r.output,
      /^line 1, app [0-9a-f]{24}: hosts\[0\]\.cert: cannot read "\/dev\/zero" \(not a regular file\)$/m,
    );
    assert.match(
      r.output,
      /^line 1, app [0-9a-f]{24}: hosts\[0\]\.key: cannot read "\/dev\/zero" \(not a regular file\)$/m,
    );
    assert.match(
      r.output,
      /^line 2, app [0-9a-f]{24}: hosts\[0\]\.cert: cannot read ".*big-cert\.pem" \(larger than 1 MB\)$/m,
    );
    assert.match(r.output, /^1 app valid, 3 problems$/m);
  });
});
