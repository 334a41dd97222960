import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { type ArrUnderTest, helloApp } from '../support/arr.js';
import { acmeFlags, curlVerified, type Pebble, pebbleUnavailable, startPebble } from '../support/pebble.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';
import { serverOf, startWithWorkers, waitForWorkers } from '../support/workers.js';

const missing = pebbleUnavailable();
if (missing && process.env.CI === 'true') throw new Error(`the ACME tests need Pebble under CI: ${missing}`);

/** The serial of the certificate arr presents for `servername` (verified), and the worker that presented it. */
function presented(
  port: number,
  servername: string,
  ca: string,
): Promise<{ serial: string; worker?: number }> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername, ca }, () => {
      const serial = s.getPeerCertificate().serialNumber;
      const worker = serverOf(port, s.localPort!);
      s.destroy();
      resolve({ serial, worker });
    });
    s.on('error', reject);
  });
}

/**
 * ACME with `--workers 2`: the primary orders (HTTP-01 answered by whichever worker the CA
 * reaches, TLS-ALPN-01 likewise) and every worker serves the certificate.
 */
describe('arr --workers with ACME', { skip: missing }, () => {
  let pebble: Pebble;
  let arr: ArrUnderTest;
  const dir = mkdtempSync(join(tmpdir(), 'arr-wacme-'));

  let ports: [number, number];
  /** arr with `--workers 2` answering the CA's challenges of this type only. */
  const start = (name: string, challenge: string) =>
    startWithWorkers([helloApp(name, [{ host: `${name}.test`, ssl: 'allowed' }])], 2, {
      ports,
      extraArgs: [
        ...acmeFlags(pebble),
        '--acme-dir',
        join(dir, name),
        '--acme-challenges',
        challenge,
        '--poll',
        '1',
      ],
      env: { NODE_EXTRA_CA_CERTS: pebble.apiCaFile },
    });

  before(async () => {
    ports = (await freePorts(2)) as [number, number];
    pebble = await startPebble({ httpPort: ports[0], tlsPort: ports[1] });
    arr = await start('whttp', 'http-01');
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    await pebble?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('HTTP-01: the primary obtains the certificate; every worker presents it', async () => {
    await arr.proc.waitFor(/certificate for whttp\.test obtained/, 30_000);
    assert.match(curlVerified(pebble, arr.sslport, 'whttp.test'), /hello from whttp/);
    const workers = [...(await waitForWorkers(arr.proc.pid, 2)).values()];
    const seen = new Map<number, string>();
    await until('a verified handshake on each worker', async () => {
      const p = await presented(arr.sslport, 'whttp.test', pebble.rootPem);
      if (p.worker) seen.set(p.worker, p.serial);
      return workers.every((w) => seen.has(w));
    });
    assert.equal(new Set(seen.values()).size, 1, 'the same certificate');
  });

  it("TLS-ALPN-01: a worker answers the challenge with the primary's certificate for it", async () => {
    await arr.stop();
    arr = await start('walpn', 'tls-alpn-01');
    await arr.proc.waitFor(/certificate for walpn\.test obtained/, 30_000);
    assert.match(curlVerified(pebble, arr.sslport, 'walpn.test'), /hello from walpn/);
  });
});
