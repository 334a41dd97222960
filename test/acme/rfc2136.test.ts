import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { authoritativeServers, waitForTxt, zoneOf } from '../../src/acme/dns/propagation.js';
import { type ArrUnderTest, helloApp, startArrWith } from '../support/arr.js';
import { type Knot, knotUnavailable, startKnot } from '../support/knot.js';
import { acmeFlags, curlVerified, type Pebble, pebbleUnavailable, startPebble } from '../support/pebble.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';

const missing = pebbleUnavailable() ?? knotUnavailable();
if (missing && process.env.CI === 'true')
  throw new Error(`the RFC 2136 tests need Pebble and Knot under CI: ${missing}`);

describe('ACME: DNS-01 through RFC 2136 updates to Knot, signed with TSIG', { skip: missing }, () => {
  let knot: Knot;
  let pebble: Pebble;
  let arr: ArrUnderTest;
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-rfc2136-'));

  const startWith = async (name: string, hosts: string[], tsig: string) => {
    const ports = (await freePorts(2)) as [number, number];
    return startArrWith(
      [
        helloApp(
          name,
          hosts.map((host) => ({ host, ssl: 'allowed' })),
        ),
      ],
      {
        ports,
        extraArgs: [
          ...acmeFlags(pebble),
          '--acme-dir',
          join(dir, name),
          '--acme-dns',
          `rfc2136:${knot.address}:53`,
          '--acme-challenges',
          'dns-01',
          '--acme-dns-wait',
          '20',
        ],
        env: { NODE_EXTRA_CA_CERTS: pebble.apiCaFile, ARR_ACME_TSIG: tsig },
      },
    );
  };

  before(async () => {
    knot = await startKnot('zone.test');
    const [http, tls] = (await freePorts(2)) as [number, number];
    // The CA resolves through Knot: it sees the records arr's updates put there, and nothing else.
    pebble = await startPebble({ httpPort: http, tlsPort: tls, dnsServer: `${knot.address}:53` });
    arr = await startWith('zone', ['*.zone.test', 'www.zone.test'], knot.tsig);
  });
  after(async () => {
    await stopAll();
    await pebble?.stop();
    await knot?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a wildcard and a host with --acme-challenges dns-01: records put, seen on the name server, removed', async () => {
    await arr.proc.waitFor(/certificate for \*\.zone\.test obtained/, 40_000);
    await arr.proc.waitFor(/certificate for www\.zone\.test obtained/, 40_000);
    assert.match(
      arr.proc.output(),
      /_acme-challenge\.zone\.test\. TXT is served by every authoritative server/,
    );
    const body = curlVerified(pebble, arr.sslport, 'a.zone.test');
    assert.match(body, /hello from zone/);
    // The updates went through Knot, and the records are gone again.
    assert.match(knot.proc.output(), /DDNS, processing 1 updates/);
    const txt = execFileSync('kdig', [`@${knot.address}`, '+short', 'TXT', '_acme-challenge.zone.test'], {
      encoding: 'utf8',
    });
    assert.equal(txt.trim(), '');
  });

  it("the propagation check finds the zone's name servers and waits, bounded, for a record they do not serve", async () => {
    const resolvers = [{ host: knot.address, port: 53 }];
    assert.equal(await zoneOf('_acme-challenge.a.b.zone.test.', resolvers), 'zone.test');
    assert.deepEqual(await authoritativeServers('zone.test', resolvers), resolvers);
    const started = Date.now();
    await assert.rejects(
      waitForTxt('_acme-challenge.none.zone.test.', 'never', resolvers, {
        timeoutMs: 1_000,
        intervalMs: 200,
      }),
      /the TXT record _acme-challenge\.none\.zone\.test\. is not served by every authoritative server of its zone after 1 s \(not yet by 127\.53\.\d+\.\d+:53\)/,
    );
    assert.ok(Date.now() - started < 5_000);
  });

  it('a zone update refused by the server (a TSIG key with another secret) is reported plainly', async () => {
    const wrong = `arr-key:hmac-sha256:${Buffer.alloc(32, 7).toString('base64')}`;
    const bad = await startWith('bad', ['*.zone.test'], wrong);
    await bad.proc.waitFor(
      /the order for \*\.zone\.test failed: the DNS server 127\.53\.\d+\.\d+:53 refused the add of the TXT record _acme-challenge\.zone\.test\. in zone zone\.test: NOTAUTH \(TSIG error BADSIG \(the server has this key with another secret\)\); next try in 60 s/,
      20_000,
    );
    assert.doesNotMatch(bad.proc.output(), new RegExp(Buffer.alloc(32, 7).toString('base64').slice(0, 12)));
  });
});
