import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith, writeAppsFile } from '../support/arr.js';
import { handshake, type Pebble, pebbleUnavailable, startPebble } from '../support/pebble.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { runArr, stopAll } from '../support/proc.js';

const missing = pebbleUnavailable();
if (missing && process.env.CI === 'true') throw new Error(`the ACME tests need Pebble under CI: ${missing}`);

const EMAIL = 'ops@example.org';

/** The serial of the certificate arr presents for `servername`, verified against `ca` (or not). */
function servedSerial(port: number, servername: string, ca?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(
      { host: '127.0.0.1', port, servername, ca, rejectUnauthorized: ca !== undefined },
      () => {
        const serial = s.getPeerCertificate().serialNumber;
        s.destroy();
        resolve(serial);
      },
    );
    s.on('error', reject);
  });
}

/** Whether the certificate arr presents for `servername` is the sample default (CN *.localhost). */
function presentsDefault(port: number, servername: string): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(cn === '*.localhost' || cn === 'localhost');
    });
    s.on('error', reject);
  });
}

function curl(args: string[]): string {
  return execFileSync('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' });
}

function arrOptions(pebble: Pebble, ports: [number, number], dir: string, extra: string[] = []) {
  return {
    ports,
    extraArgs: [
      '--acme-email',
      EMAIL,
      '--acme-directory',
      pebble.directory,
      '--acme-dir',
      dir,
      '--poll',
      '1',
      ...extra,
    ],
    env: { NODE_EXTRA_CA_CERTS: pebble.apiCaFile, ARR_ACME_KEY: 'test secret of the acme suite' },
  };
}

describe('ACME on one node (HTTP-01, file store)', { skip: missing }, () => {
  let pebble: Pebble;
  let arr: ArrUnderTest;
  let ports: [number, number];
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-'));
  const apps = [
    helloApp('app1', [{ host: 'app1.test', ssl: 'allowed' }]),
    // An allow list that lets nobody in: the CA's HTTP-01 requests are answered before any policy.
    { ...helloApp('secure', [{ host: 'secure.test', ssl: 'required' }]), access: { allow: [] } },
    helloApp('local', [{ host: 'local.localhost', ssl: 'allowed' }]),
    {
      ...helloApp('optout', [{ host: 'optout.test', ssl: 'allowed' }]),
      hosts: [{ host: 'optout.test', ssl: 'allowed', acme: false }],
    },
  ];

  const appsFile = writeAppsFile(join(dir, 'apps.json'), apps as never);
  const start = () =>
    startArrWith([], {
      ...arrOptions(pebble, ports, join(dir, 'store'), ['--acme-challenges', 'http-01']),
      file: appsFile,
    });

  before(async () => {
    ports = (await freePorts(2)) as [number, number];
    pebble = await startPebble({ httpPort: ports[0], tlsPort: ports[1] });
    arr = await start();
  });
  after(async () => {
    await stopAll();
    await pebble?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('obtains a certificate for each qualifying host; curl verifies it through arr', async () => {
    await arr.proc.waitFor(/certificate for app1\.test obtained/, 30_000);
    await arr.proc.waitFor(/certificate for secure\.test obtained/, 30_000);
    const body = curl([
      '--cacert',
      pebble.rootFile,
      '--resolve',
      `app1.test:${arr.sslport}:127.0.0.1`,
      `https://app1.test:${arr.sslport}/`,
    ]);
    assert.match(body, /hello from app1/);
  });

  it('never orders for localhost names or hosts with "acme": false: they keep the default certificate', async () => {
    assert.equal(await presentsDefault(arr.sslport, 'local.localhost'), true);
    assert.equal(await presentsDefault(arr.sslport, 'optout.test'), true);
    assert.doesNotMatch(arr.proc.output(), /ordering a certificate for (local\.localhost|optout\.test)/);
  });

  it('a host not in the registry is never ordered at its handshake', async () => {
    assert.equal(await presentsDefault(arr.sslport, 'stranger.test'), true);
    assert.doesNotMatch(arr.proc.output(), /stranger\.test/);
    assert.doesNotMatch(pebble.proc.output(), /stranger\.test/);
  });

  it('HTTP-01: an unknown host or token gets 404; a `required` host is not redirected', async () => {
    const unknown = await fetchVia(arr.port, 'stranger.test', false, {
      path: '/.well-known/acme-challenge/abc',
    });
    assert.equal(unknown.status, 404);
    const token = await fetchVia(arr.port, 'secure.test', false, {
      path: '/.well-known/acme-challenge/nosuchtoken',
    });
    assert.equal(token.status, 404, 'not 301 to https');
    assert.doesNotMatch(token.text, /hello/);
    const normal = await fetchVia(arr.port, 'secure.test', false, { path: '/' });
    assert.equal(normal.status, 301, 'the rest of the host is redirected as before');
    const guarded = await fetchVia(arr.sslport, 'secure.test', true, { path: '/' });
    assert.equal(
      guarded.status,
      403,
      'its allow list refuses every client, the CA was answered all the same',
    );
  });

  it('HTTP-01: the absolute form of a challenge request (RFC 9112 §3.2.2) is answered by arr too, never by an instance', async () => {
    for (const host of ['app1.test', 'secure.test']) {
      const r = await fetchVia(arr.port, host, false, {
        path: `http://${host}/.well-known/acme-challenge/nosuchtoken`,
      });
      assert.equal(r.status, 404, `${host}: ${r.status} ${r.text}`);
      assert.equal(r.text, '404 Not Found: no such ACME challenge\n');
    }
    // The target's host decides, as for any absolute-form request: a Host header naming another.
    const other = await fetchVia(arr.port, 'stranger.test', false, {
      path: 'http://APP1.test:80/.well-known/acme-challenge/nosuchtoken',
    });
    assert.equal(other.text, '404 Not Found: no such ACME challenge\n');
    // Elsewhere the absolute form is routed as before.
    const page = await fetchVia(arr.port, 'app1.test', false, { path: 'http://app1.test/page' });
    assert.match(page.text, /^hello from app1/);
  });

  it('private keys are sealed at rest with ARR_ACME_KEY; files are 0600', () => {
    const certs = join(dir, 'store', 'certs');
    for (const f of readdirSync(certs)) {
      const text = readFileSync(join(certs, f), 'utf8');
      assert.doesNotMatch(text, /PRIVATE KEY/, f);
      assert.match(text, /arr-sealed:v1:/, f);
      assert.equal(statSync(join(certs, f)).mode & 0o777, 0o600, f);
    }
    assert.equal(statSync(certs).mode & 0o777, 0o700);
    assert.doesNotMatch(arr.proc.output(), /PRIVATE KEY|arr-sealed/);
  });

  it('arr certs --json lists each host with its source, issuer and expiry', async () => {
    const r = await runArr(['certs', '--json', '--apps', arr.appsFile!, '--acme-dir', join(dir, 'store')]);
    assert.equal(r.code, 0, r.output);
    const views = JSON.parse(r.output) as {
      host: string;
      source: string;
      issuer?: string;
      expires?: string;
    }[];
    const by = new Map(views.map((v) => [v.host, v]));
    assert.equal(by.get('app1.test')?.source, 'acme');
    assert.match(by.get('app1.test')?.issuer ?? '', /Pebble/i);
    assert.ok(Date.parse(by.get('app1.test')?.expires ?? '') > Date.now());
    assert.equal(by.get('local.localhost')?.source, 'default');
    assert.equal(by.get('optout.test')?.source, 'default');
    assert.doesNotMatch(r.output, /PRIVATE KEY|sealed/);
    const apps = await runArr(['apps', '--apps', arr.appsFile!, '--acme-email', EMAIL]);
    assert.match(apps.output, /app1\.test\s+allowed\s+acme/);
    assert.match(apps.output, /local\.localhost\s+allowed\s+default/);
  });

  it('a restart serves the stored certificate without a new order, and resumes sessions of before', async () => {
    const before = await handshake('127.0.0.1', arr.sslport, 'app1.test', pebble.rootPem);
    assert.ok(before.ticket, 'a session ticket');
    await arr.stop();
    arr = await start();
    assert.equal(await servedSerial(arr.sslport, 'app1.test', pebble.rootPem), before.serial);
    // The ticket keys are kept in the store too: a session of the previous run resumes.
    const resumed = await handshake('127.0.0.1', arr.sslport, 'app1.test', pebble.rootPem, before.ticket);
    assert.equal(resumed.reused, true, 'the session resumed after the restart');
    assert.doesNotMatch(arr.proc.output(), /ordering a certificate/);
  });

  it('a corrupt stored certificate is logged, not served, and ordered again', async () => {
    const file = join(dir, 'store', 'certs', 'secure.test.json');
    const record = JSON.parse(readFileSync(file, 'utf8')) as { cert: string; updatedAt: number };
    const old = await servedSerial(arr.sslport, 'secure.test', pebble.rootPem);
    // At its start arr asks the CA for the renewal window (ARI) and stores the time it chose in
    // the record: the corrupt record must be written after that, or arr's write replaces it.
    await arr.proc.waitFor(/secure\.test renews at/);
    writeFileSync(file, JSON.stringify({ ...record, cert: 'garbage', updatedAt: record.updatedAt + 1 }));
    await arr.proc.waitFor(/stored certificate of secure\.test cannot be used/, 15_000);
    await until(
      'a new certificate for secure.test',
      async () => (await servedSerial(arr.sslport, 'secure.test', pebble.rootPem)) !== old,
      { timeoutMs: 30_000, intervalMs: 200 },
    );
  });

  it('a host added to the registry is ordered without a restart; one removed mid-order is dropped', async () => {
    const added = [...apps, helloApp('fresh', [{ host: 'fresh.test', ssl: 'allowed' }])];
    writeAppsFile(arr.appsFile!, added as never);
    await arr.proc.waitFor(/ordering a certificate for fresh\.test/, 15_000);
    // Removed at once, while its order runs. Pebble may validate before arr has seen the file
    // change, so three outcomes are right: the CA's validation fails (arr no longer answers the
    // challenge), the certificate arrives and is dropped, or it arrived just before the removal.
    // In every one, from the change on, fresh.test gets the default certificate, never its own.
    writeAppsFile(arr.appsFile!, apps as never);
    await arr.proc.waitFor(/registry changed: 4 apps/, 15_000);
    await until(
      'fresh.test to get the default certificate',
      () => presentsDefault(arr.sslport, 'fresh.test'),
      {
        timeoutMs: 5_000,
        intervalMs: 100,
      },
    );
    const after = arr.proc.output().slice(arr.proc.output().search(/registry changed: 4 apps/));
    assert.doesNotMatch(after, /certificate for fresh\.test obtained/);
    // And it stays so once the order has ended either way.
    await arr.proc.waitFor(
      /fresh\.test left the registry while its certificate was ordered|the order for fresh\.test failed|certificate for fresh\.test obtained/,
      30_000,
    );
    assert.equal(await presentsDefault(arr.sslport, 'fresh.test'), true);
  });
});

describe('ACME: TLS-ALPN-01 only, and the CA down at start', { skip: missing }, () => {
  let pebble: Pebble;
  let arr: ArrUnderTest;
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-alpn-'));

  before(async () => {
    const ports = (await freePorts(2)) as [number, number];
    pebble = await startPebble({ httpPort: ports[0], tlsPort: ports[1], noStart: true });
    arr = await startArrWith(
      [helloApp('app2', [{ host: 'app2.test', ssl: 'allowed' }])],
      arrOptions(pebble, ports, dir, ['--acme-challenges', 'tls-alpn-01']),
    );
  });
  after(async () => {
    await stopAll();
    await pebble?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the default certificate while the CA is down, logs the failure, and stays up', async () => {
    await arr.proc.waitFor(/the order for app2\.test failed: .*next try in 60 s/, 15_000);
    assert.equal(await presentsDefault(arr.sslport, 'app2.test'), true);
    const r = await fetchVia(arr.sslport, 'app2.test', true);
    assert.equal(r.status, 200);
  });

  it('once the CA is up, the next try (TLS-ALPN-01 on the TLS port) brings the real certificate', async () => {
    await pebble.restart();
    // The back-off of the first failure is a minute; a restart of arr would not shorten it,
    // but a registry change orders at once only when not in back-off, so the test waits it out.
    await arr.proc.waitFor(/certificate for app2\.test obtained/, 90_000);
    const body = curl([
      '--cacert',
      pebble.rootFile,
      '--resolve',
      `app2.test:${arr.sslport}:127.0.0.1`,
      `https://app2.test:${arr.sslport}/`,
    ]);
    assert.match(body, /hello from app2/);
  });
});

describe('ACME: renewal of a short-lived certificate, without a restart', { skip: missing }, () => {
  let pebble: Pebble;
  let arr: ArrUnderTest;
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-renew-'));

  before(async () => {
    const ports = (await freePorts(3)) as [number, number, number];
    // 30 s certificates: renewed at two thirds of their lifetime, 20 s after they begin.
    pebble = await startPebble({ httpPort: ports[0], tlsPort: ports[1], validitySeconds: 30 });
    const opts = arrOptions(pebble, [ports[0], ports[1]], dir, ['--admin', String(ports[2])]);
    arr = await startArrWith([helloApp('short', [{ host: 'short.test', ssl: 'allowed' }])], opts);
  });
  after(async () => {
    await stopAll();
    await pebble?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the renewed certificate (a new serial) from the next handshake on', async () => {
    await arr.proc.waitFor(/certificate for short\.test obtained/, 30_000);
    const first = await servedSerial(arr.sslport, 'short.test', pebble.rootPem);
    const second = await until(
      'a renewed certificate for short.test',
      async () => {
        const s = await servedSerial(arr.sslport, 'short.test', pebble.rootPem);
        return s !== first ? s : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.notEqual(second, first);
    assert.equal(arr.proc.child.exitCode, null, 'the same arr process');
    const metrics = curl([`http://127.0.0.1:${arr.proc.command.match(/--admin (\d+)/)![1]}/metrics`]);
    assert.match(metrics, /arr_acme_orders_total\{result="success"\} [2-9]/);
    assert.match(metrics, /arr_certificate_expiry_seconds\{host="short\.test"\} \d+/);
  });
});
