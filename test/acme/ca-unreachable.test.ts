// A CA that cannot be reached (its directory URL on a closed port): acme-client threw "Cannot read
// properties of undefined (reading 'config')", which is what the log and the dashboard said. Now
// they name the directory URL and the network error, and the order backs off as any failure does.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { stopAll } from '../support/proc.js';

interface OverviewHost {
  host: string;
  certificate: { source: string; problem?: string };
}

describe('ACME with a CA that cannot be reached', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-down-'));
  let arr: ArrUnderTest;
  let admin: number;
  let directory: string;

  before(async () => {
    // A free port nothing listens on: connections to it are refused.
    directory = `https://127.0.0.1:${await freePort()}/dir`;
    admin = await freePort();
    arr = await startArrWith([helloApp('shop', [{ host: 'shop.test', ssl: 'allowed' }])], {
      extraArgs: [
        '--acme-email',
        'ops@example.org',
        '--acme-directory',
        directory,
        '--acme-dir',
        join(dir, 'store'),
        '--admin',
        `127.0.0.1:${admin}`,
      ],
    });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('logs and shows that the CA cannot be reached (its URL, the network error, no stack), backs off, and serves', async () => {
    const escaped = directory.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    const [line] = await arr.proc.waitFor(
      /the order for shop\.test failed: [^\n]*; next try in 60 s/,
      20_000,
    );
    assert.match(line, new RegExp(`the CA at ${escaped} cannot be reached \\([^)]*ECONNREFUSED`));
    const out = arr.proc.output();
    assert.doesNotMatch(out, /reading 'config'|Cannot read properties/);
    assert.doesNotMatch(out, /\n\s+at /, 'no stack');

    const shop = await until('the dashboard to show the failed order', async () => {
      const r = await fetchVia(admin, 'localhost', false, { path: '/api/overview' });
      const hosts = (JSON.parse(r.text) as { apps: { hosts: OverviewHost[] }[] }).apps.flatMap(
        (a) => a.hosts,
      );
      return hosts.find((h) => h.host === 'shop.test' && h.certificate.problem);
    });
    assert.equal(shop.certificate.source, 'acme');
    assert.match(
      shop.certificate.problem!,
      new RegExp(`${escaped} cannot be reached .*ECONNREFUSED.*next try at`),
    );
    // The default certificate meanwhile: the app is served.
    assert.equal((await fetchVia(arr.sslport, 'shop.test', true)).status, 200);
  });
});
