import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BSON, ObjectId } from 'mongodb';
import { logLines } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { certificateFor } from '../support/tls.js';

const pem = (name: string) => join(repoRoot, 'certs', name);

describe('hostile registry data: reported, never fatal, never serving one host for another', () => {
  let arr: ArrUnderTest;
  const winner = new ObjectId('000000000000000000000010');
  const loser = new ObjectId('000000000000000000000020');

  before(async () => {
    arr = await startArrWith([
      helloApp('good', [
        { host: 'good.localhost', ssl: 'allowed', cert: pem('app1-cert.pem'), key: pem('app1-key.pem') },
      ]),
      // Certificate files that cannot be used: the host gets the default certificate.
      helloApp('nocert', [
        {
          host: 'nocert.localhost',
          ssl: 'allowed',
          cert: '/nonexistent/cert.pem',
          key: '/nonexistent/key.pem',
        },
      ]),
      helloApp('mismatch', [
        { host: 'mismatch.localhost', ssl: 'allowed', cert: pem('app1-cert.pem'), key: pem('ws1-key.pem') },
      ]),
      { ...helloApp('zero', [{ host: 'zero.localhost', ssl: 'allowed' }]), instances: 0 },
      { ...helloApp('negative', [{ host: 'negative.localhost', ssl: 'allowed' }]), instances: -1 },
      {
        ...helloApp('text', [{ host: 'text.localhost', ssl: 'allowed' }]),
        instances: 'two' as unknown as number,
      },
      // The same host name in two apps, listed loser first: the smaller _id keeps it.
      { ...helloApp('loser', [{ host: 'shared.localhost', ssl: 'allowed' }]), _id: loser },
      { ...helloApp('winner', [{ host: 'shared.localhost', ssl: 'allowed' }]), _id: winner },
    ]);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('reports bad documents by _id and field and serves the others', async () => {
    const warnings = logLines(arr.proc.output())
      .filter((l) => l.level === 'warn')
      .map((l) => l.msg);
    for (const field of ['instances']) {
      assert.equal(warnings.filter((w) => w.includes(`${field}:`)).length, 3, warnings.join('\n'));
    }
    assert.ok(warnings.some((w) => w.includes(loser.toHexString()) && w.includes('shared.localhost')));
    for (const host of ['zero', 'negative', 'text']) {
      assert.equal((await fetchVia(arr.port, `${host}.localhost`, false)).status, 404, host);
    }
    const good = await fetchVia(arr.port, 'good.localhost', false);
    assert.match(good.text, /^hello from good/);
  });

  it('gives a duplicated host to the app with the smaller _id', async () => {
    const r = await fetchVia(arr.port, 'shared.localhost', false);
    assert.match(r.text, /^hello from winner/);
  });

  it('serves the default certificate for a host whose certificate is missing or does not match its key', async () => {
    assert.equal(await certificateFor(arr.sslport, 'good.localhost'), 'app1.localhost');
    assert.equal(await certificateFor(arr.sslport, 'nocert.localhost'), 'localhost');
    assert.equal(await certificateFor(arr.sslport, 'mismatch.localhost'), 'localhost');
    const r = await fetchVia(arr.sslport, 'nocert.localhost', true);
    assert.match(r.text, /^hello from nocert/);
    const log = arr.proc.output();
    assert.match(log, /certificate of nocert\.localhost cannot be used/);
    assert.match(log, /certificate of mismatch\.localhost cannot be used/);
    assert.doesNotMatch(log, /PRIVATE KEY/, 'no key material in the log');
    assert.ok(arr.proc.child.exitCode === null, 'arr is alive');
  });
});

describe('a 10 MB apps.json', () => {
  let dir: string;
  after(async () => {
    await stopAll();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('loads, and arr routes every host from memory', async () => {
    dir = mkdtempSync(join(tmpdir(), 'arr-big-'));
    const file = join(dir, 'apps.json');
    const lines: string[] = [];
    let n = 0;
    let size = 0;
    while (size < 10 * 1024 * 1024) {
      const doc = helloApp(`big${n}`, [
        { host: `big${n}.localhost`, ssl: 'allowed' },
        { host: `www.big${n}.example.test`, ssl: 'none' },
      ]);
      const line = BSON.EJSON.stringify({ ...doc, machines: [] }, { relaxed: true });
      lines.push(line);
      size += line.length + 1;
      n++;
    }
    writeFileSync(file, `${lines.join('\n')}\n`);
    assert.ok(statSync(file).size >= 10 * 1024 * 1024);
    const started = Date.now();
    const arr = await startArrWith([], { file });
    const tookMs = Date.now() - started;
    assert.match(arr.proc.output(), new RegExp(`registry: ${n} apps`));
    const last = await fetchVia(arr.port, `big${n - 1}.localhost`, false);
    assert.match(last.text, new RegExp(`^hello from big${n - 1} `));
    const missing = await fetchVia(arr.port, `big${n}.localhost`, false);
    assert.equal(missing.status, 404);
    console.log(`# ${n} apps (${(size / 1048576).toFixed(1)} MB) loaded and listening in ${tookMs} ms`);
    assert.equal(await arr.stop(), 0);
  });
});
