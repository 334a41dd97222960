import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, helloApp, startArrWith, writeAppsFile } from '../support/arr.js';
import { type Pebble, pebbleUnavailable, startPebble } from '../support/pebble.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';

const missing = pebbleUnavailable();
if (missing && process.env.CI === 'true') throw new Error(`the ACME tests need Pebble under CI: ${missing}`);

interface HostView {
  host: string;
  certificate: {
    source: string;
    expires?: string | null;
    renews?: string | null;
    renewalSource?: string | null;
  };
}

describe('ACME in the dashboard and the metrics', { skip: missing }, () => {
  let pebble: Pebble;
  let arr: ArrUnderTest;
  let admin: number;
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-dash-'));

  before(async () => {
    const [http, https, adminPort] = (await freePorts(3)) as [number, number, number];
    admin = adminPort;
    pebble = await startPebble({ httpPort: http, tlsPort: https });
    const file = writeAppsFile(join(dir, 'apps.json'), [
      helloApp('app1', [
        { host: 'app1.test', ssl: 'allowed' },
        { host: 'app1.localhost', ssl: 'allowed' },
      ]),
    ] as never);
    arr = await startArrWith([], {
      ports: [http, https],
      file,
      extraArgs: [
        '--acme-email',
        'ops@example.org',
        '--acme-directory',
        pebble.directory,
        '--acme-dir',
        join(dir, 'store'),
        '--acme-challenges',
        'http-01',
        '--admin',
        `127.0.0.1:${admin}`,
      ],
      env: { NODE_EXTRA_CA_CERTS: pebble.apiCaFile },
    });
  });
  after(async () => {
    await stopAll();
    await pebble?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('shows which hosts ACME manages, and the expiry of the certificate once obtained', async () => {
    const hosts = async () => {
      const r = await fetch(`http://127.0.0.1:${admin}/api/overview`);
      const o = (await r.json()) as { apps: { hosts: HostView[] }[] };
      return new Map(o.apps[0]!.hosts.map((h) => [h.host, h.certificate]));
    };
    await arr.proc.waitFor(/certificate for app1\.test obtained/, 30_000);
    const certs = await until('an expiry for app1.test', async () => {
      const m = await hosts();
      return m.get('app1.test')?.expires ? m : undefined;
    });
    assert.equal(certs.get('app1.test')?.source, 'acme');
    assert.ok(Date.parse(certs.get('app1.test')?.expires ?? '') > Date.now());
    // When it renews: in the window Pebble suggests (ARI), before it expires.
    const renews = Date.parse(certs.get('app1.test')?.renews ?? '');
    assert.ok(renews > Date.now() && renews < Date.parse(certs.get('app1.test')?.expires ?? ''));
    assert.equal(certs.get('app1.test')?.renewalSource, 'ari');
    assert.equal(certs.get('app1.localhost')?.source, 'default');
    assert.match(
      String(certs.get('app1.localhost')?.expires),
      /^\d{4}-\d\d-\d\dT/,
      'the default one expires too',
    );
    const metrics = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
    assert.match(metrics, /arr_certificate_expiry_seconds\{host="app1\.test"\} \d+/);
    assert.match(metrics, /arr_acme_orders_total\{result="success"\} 1/);
  });
});
