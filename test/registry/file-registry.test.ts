import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { BSON, type Document } from 'mongodb';
import { FileRegistry } from '../../src/registry/file-registry.js';
import { registryContract } from '../support/registry-contract.js';

const dir = mkdtempSync(join(tmpdir(), 'arr-file-registry-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let files = 0;

/** Documents as an apps.json: extended JSON, one per line (ObjectIds as {"$oid": ...}). */
const toLines = (docs: Document[]) =>
  `${docs.map((d) => BSON.EJSON.stringify(d, { relaxed: true })).join('\n')}\n`;

registryContract(
  'FileRegistry',
  async (docs) => {
    const path = join(dir, `apps-${++files}.json`);
    const current = [...docs];
    writeFileSync(path, toLines(current));
    const registry = new FileRegistry(path);
    return {
      registry,
      racers: () => [registry],
      stored: (id) => registry.addressesOf(id),
      put: async (doc) => {
        const i = current.findIndex((d) => String(d._id) === String(doc._id));
        if (i >= 0) current[i] = doc;
        else current.push(doc);
        writeFileSync(path, toLines(current));
      },
      close: async () => {
        await registry.close();
        rmSync(path, { force: true });
      },
    };
  },
  { lines: true },
);

describe('FileRegistry', () => {
  it('load of a missing file rejects with ENOENT (the caller reports it)', async () => {
    await assert.rejects(new FileRegistry(join(dir, 'missing.json')).load(), { code: 'ENOENT' });
  });

  it('a broken line is reported by line number and the other apps are served', async () => {
    const path = join(dir, 'broken.json');
    writeFileSync(
      path,
      [
        '{"_id": {"$oid": "65a0000000000000000000b1"}, "process": {"executable": "node"}, "hosts": [{"host": "one.test", "ssl": "none"}]}',
        '{"_id": "two", "process": {"executable": "node"}, "hosts": [{"host": "two.test", "ssl": "none"}',
        '{"_id": "three", "process": {"executable": "node"}, "hosts": [{"host": "three.test", "ssl": "allow"}]}',
      ].join('\n'),
    );
    const reg = new FileRegistry(path);
    const report = await reg.load();
    assert.equal(report.apps, 2);
    assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
    assert.equal(report.problems[0]?.line, 2);
    assert.equal(reg.route('one.test')?.app.id, '65a0000000000000000000b1');
    assert.equal(reg.route('three.test')?.rule.ssl, 'allowed');
    assert.equal(reg.route('two.test'), undefined);
  });

  it('an empty file loads no apps and no problems', async () => {
    const path = join(dir, 'empty.json');
    writeFileSync(path, '\uFEFF\n\n');
    assert.deepEqual(await new FileRegistry(path).load(), { apps: 0, problems: [], changed: true });
  });

  it('keeps machines across a reload, in memory', async () => {
    const path = join(dir, 'reload.json');
    writeFileSync(
      path,
      '{"_id": "a", "process": {"executable": "node"}, "hosts": [{"host": "a.test", "ssl": "none"}], "instances": 1}\n',
    );
    const reg = new FileRegistry(path);
    await reg.load();
    assert.equal((await reg.claim('a', { host: '10.0.0.1', port: 8001 })).granted, true);
    await reg.load();
    assert.deepEqual(await reg.addressesOf('a'), [{ host: '10.0.0.1', port: 8001 }]);
    assert.equal((await reg.claim('a', { host: '10.0.0.2', port: 8002 })).granted, false);
  });
});
