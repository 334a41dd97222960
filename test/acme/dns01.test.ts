import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith, writeAppsFile } from '../support/arr.js';
import {
  acmeFlags,
  curlVerified,
  type Pebble,
  pebbleUnavailable,
  startPebble,
  writeDnsHook,
} from '../support/pebble.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { runArr, stopAll } from '../support/proc.js';

const missing = pebbleUnavailable();
if (missing && process.env.CI === 'true') throw new Error(`the ACME tests need Pebble under CI: ${missing}`);

/** The certificate arr presents for `servername`: its serial and subject names, verified against `ca` when given. */
function presented(
  port: number,
  servername: string,
  ca?: string,
): Promise<{ serial: string; names: string }> {
  return new Promise((resolve, reject) => {
    const s = connect(
      { host: '127.0.0.1', port, servername, ca, rejectUnauthorized: ca !== undefined },
      () => {
        const c = s.getPeerCertificate();
        s.destroy();
        resolve({ serial: c.serialNumber, names: c.subjectaltname ?? String(c.subject?.CN ?? '') });
      },
    );
    s.on('error', reject);
  });
}

const count = (text: string, re: RegExp) => (text.match(new RegExp(re, 'g')) ?? []).length;

describe('ACME: wildcard hosts by DNS-01 through a hook, and renewal when the CA says (ARI)', {
  skip: missing,
}, () => {
  let pebble: Pebble;
  let arr: ArrUnderTest;
  let ports: [number, number];
  let hook: ReturnType<typeof writeDnsHook>;
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-dns01-'));
  const store = join(dir, 'store');
  const apps = [
    helloApp('wild', [{ host: '*.wild.test', ssl: 'allowed' }]),
    helloApp('special', [{ host: 'special.wild.test', ssl: 'allowed' }]),
    helloApp('broken', [{ host: '*.broken.test', ssl: 'allowed' }]),
  ];
  const appsFile = writeAppsFile(join(dir, 'apps.json'), apps as never);
  const start = () =>
    startArrWith([], {
      ports,
      file: appsFile,
      extraArgs: [
        ...acmeFlags(pebble),
        '--acme-dir',
        store,
        '--acme-challenges',
        'http-01',
        ...hook.flags,
        '--poll',
        '1',
      ],
      env: { NODE_EXTRA_CA_CERTS: pebble.apiCaFile },
    });

  before(async () => {
    ports = (await freePorts(2)) as [number, number];
    pebble = await startPebble({ httpPort: ports[0], tlsPort: ports[1] });
    hook = writeDnsHook(dir, pebble);
    arr = await start();
  });
  after(async () => {
    await stopAll();
    await pebble?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one order for a wildcard host; two names under it verified by curl against the CA', async () => {
    await arr.proc.waitFor(/certificate for \*\.wild\.test obtained/, 30_000);
    assert.match(curlVerified(pebble, arr.sslport, 'a.wild.test'), /hello from wild/);
    assert.match(curlVerified(pebble, arr.sslport, 'b.wild.test'), /hello from wild/);
    const [a, b] = await Promise.all(
      ['a.wild.test', 'b.wild.test'].map((h) => presented(arr.sslport, h, pebble.rootPem)),
    );
    assert.equal(a!.serial, b!.serial, 'one certificate for both');
    assert.equal(a!.names, 'DNS:*.wild.test');
    assert.equal(count(arr.proc.output(), /ordering a certificate for \*\.wild\.test/), 1);
    // DNS-01 through the hook: its record put before the validation, and taken away after.
    const calls = readFileSync(hook.log, 'utf8');
    assert.match(calls, /present _acme-challenge\.wild\.test\.\ncleanup _acme-challenge\.wild\.test\./);
  });

  it('routing: an exact host beside the wildcard wins; a wildcard covers one label only', async () => {
    await arr.proc.waitFor(/certificate for special\.wild\.test obtained/, 30_000);
    assert.match((await fetchVia(arr.port, 'special.wild.test', false)).text, /hello from special/);
    assert.match((await fetchVia(arr.port, 'other.wild.test', false)).text, /hello from wild/);
    assert.equal((await fetchVia(arr.port, 'a.b.wild.test', false)).status, 404);
    assert.equal((await fetchVia(arr.port, 'wild.test', false)).status, 404);
    const special = await presented(arr.sslport, 'special.wild.test', pebble.rootPem);
    assert.equal(special.names, 'DNS:special.wild.test', 'its own certificate (HTTP-01)');
    // Two labels under the wildcard: not covered, the default certificate.
    assert.doesNotMatch((await presented(arr.sslport, 'a.b.wild.test')).names, /wild/);
  });

  it("a hook that fails fails the order, with the hook's stderr; the default certificate is served", async () => {
    await arr.proc.waitFor(
      /the order for \*\.broken\.test failed: the DNS hook \S+ present _acme-challenge\.broken\.test\. exited with code 3: provider says: no zone for _acme-challenge\.broken\.test\.; next try in 60 s/,
      30_000,
    );
    assert.doesNotMatch((await presented(arr.sslport, 'a.broken.test')).names, /broken/);
    assert.equal((await fetchVia(arr.sslport, 'a.broken.test', true)).status, 200);
  });

  it('arr certs --json: the renewal time, from the CA (ARI)', async () => {
    const r = await runArr(['certs', '--json', '--apps', appsFile, '--acme-dir', store]);
    assert.equal(r.code, 0, r.output);
    const views = new Map(
      (
        JSON.parse(r.output) as {
          host: string;
          renewAt?: string;
          renewalSource?: string;
          lastError?: string;
        }[]
      ).map((v) => [v.host, v]),
    );
    const wild = views.get('*.wild.test');
    assert.equal(wild?.renewalSource, 'ari');
    assert.ok(Date.parse(wild?.renewAt ?? '') > Date.now(), wild?.renewAt);
    assert.match(views.get('*.broken.test')?.lastError ?? '', /exited with code 3/);
  });

  it('a window the CA moves into the past: renewed at the next start, the new order replacing the old certificate', async () => {
    const before = await presented(arr.sslport, 'a.wild.test', pebble.rootPem);
    const record = JSON.parse(readFileSync(join(store, 'certs', '*.wild.test.json'), 'utf8')) as {
      cert: string;
    };
    const hourAgo = Date.now() - 3_600_000;
    await pebble.setRenewalInfo(record.cert, {
      suggestedWindow: {
        start: new Date(hourAgo - 60_000).toISOString(),
        end: new Date(hourAgo).toISOString(),
      },
    });
    await arr.stop();
    arr = await start();
    await arr.proc.waitFor(
      /ordering a certificate for \*\.wild\.test \(a renewal, replaces [\w-]+\.[\w-]+\)/,
      15_000,
    );
    await pebble.proc.waitFor(/ARI: order "[\w-]+" is a replacement of/, 15_000);
    const after = await until(
      'the renewed certificate for a.wild.test',
      async () => {
        const now = await presented(arr.sslport, 'a.wild.test', pebble.rootPem);
        return now.serial !== before.serial ? now : undefined;
      },
      { timeoutMs: 30_000, intervalMs: 200 },
    );
    assert.equal(after.names, 'DNS:*.wild.test');
  });
});
