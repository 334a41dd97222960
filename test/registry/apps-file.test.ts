import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { parseAppsText, readAppsFile } from '../../src/registry/apps-file.js';

const OID1 = '65a0000000000000000000c1';
const OID2 = '65a0000000000000000000c2';
const OID3 = '65a0000000000000000000c3';

/** A valid one-line document with an {"$oid"} id. */
const line = (oid: string, host: string) =>
  `{"_id": {"$oid": "${oid}"}, "process": {"executable": "node", "args": ["s.js"]}, "hosts": [{"host": "${host}", "ssl": "allowed"}], "instances": 2, "machines": []}`;

const ids = (docs: { doc: unknown }[]) =>
  docs.map(({ doc }) => {
    const id = (doc as { _id?: unknown })._id;
    return id instanceof ObjectId ? id.toHexString() : id;
  });
const lines = (docs: { line: number }[]) => docs.map((d) => d.line);

describe('parseAppsText', () => {
  it('reads one document per line, {"$oid"} ids as ObjectIds, with their line numbers', () => {
    const r = parseAppsText(`${line(OID1, 'a.test')}\n${line(OID2, 'b.test')}\n`);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(ids(r.docs), [OID1, OID2]);
    assert.deepEqual(lines(r.docs), [1, 2]);
    const doc = r.docs[0]?.doc as Record<string, unknown>;
    assert.ok(doc._id instanceof ObjectId);
    assert.deepEqual(doc.process, { executable: 'node', args: ['s.js'] });
    assert.equal(doc.instances, 2, 'numbers come back as plain numbers');
  });

  it('skips blank lines and keeps the real line numbers; CRLF line ends are fine', () => {
    const r = parseAppsText(`\n${line(OID1, 'a.test')}\r\n\r\n   \n${line(OID2, 'b.test')}\r\n\n`);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(ids(r.docs), [OID1, OID2]);
    assert.deepEqual(lines(r.docs), [2, 5]);
  });

  it('ignores a byte-order mark', () => {
    const r = parseAppsText(`\uFEFF${line(OID1, 'a.test')}\n${line(OID2, 'b.test')}`);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(ids(r.docs), [OID1, OID2]);
    const arr = parseAppsText(`\uFEFF[${line(OID1, 'a.test')}]`);
    assert.deepEqual(arr.problems, []);
    assert.deepEqual(ids(arr.docs), [OID1]);
  });

  it('reads documents spread over several lines, one after another', () => {
    const text = [
      '{',
      `  "_id": {"$oid": "${OID1}"},`,
      '  "process": {"executable": "node", "args": ["a.js"]},',
      '  "hosts": [',
      '    {"host": "a.test", "ssl": "none"}',
      '  ]',
      '}',
      '',
      `{"_id": {"$oid": "${OID2}"}, "process": {"executable": "node"},`,
      '  "hosts": [{"host": "b.test", "ssl": "none", "note": "a } and a { in a string"}]}',
      line(OID3, 'c.test'),
    ].join('\n');
    const r = parseAppsText(text);
    assert.deepEqual(r.problems, []);
    assert.deepEqual(ids(r.docs), [OID1, OID2, OID3]);
    assert.deepEqual(lines(r.docs), [1, 9, 11]);
    const hosts = (r.docs[0]?.doc as { hosts?: unknown[] } | undefined)?.hosts;
    assert.deepEqual(hosts, [{ host: 'a.test', ssl: 'none' }]);
  });

  it('reads a JSON array of documents, on one line or pretty-printed', () => {
    const one = parseAppsText(`[${line(OID1, 'a.test')}, ${line(OID2, 'b.test')}]`);
    assert.deepEqual(one.problems, []);
    assert.deepEqual(ids(one.docs), [OID1, OID2]);
    const pretty = parseAppsText(`  [\n  ${line(OID1, 'a.test')},\n  ${line(OID2, 'b.test')}\n]\n`);
    assert.deepEqual(pretty.problems, []);
    assert.deepEqual(ids(pretty.docs), [OID1, OID2]);
    assert.deepEqual(lines(pretty.docs), [2, 3]);
    assert.deepEqual(parseAppsText('[]'), { docs: [], problems: [] });
  });

  it('an empty or blank text has no documents and no problems', () => {
    assert.deepEqual(parseAppsText(''), { docs: [], problems: [] });
    assert.deepEqual(parseAppsText('\n  \n\t\n'), { docs: [], problems: [] });
  });

  it('reports a broken line by its number and keeps the other lines (brace balanced)', () => {
    const text = [line(OID1, 'a.test'), '{"_id": "b", "hosts": [}', line(OID3, 'c.test')].join('\n');
    const r = parseAppsText(text);
    assert.deepEqual(ids(r.docs), [OID1, OID3]);
    assert.deepEqual(lines(r.docs), [1, 3]);
    assert.equal(r.problems.length, 1);
    assert.equal(r.problems[0]?.line, 2);
    assert.match(r.problems[0]?.message ?? '', /not valid extended JSON/);
  });

  it('reports a truncated line by its number without swallowing the lines after it', () => {
    const text = [
      line(OID1, 'a.test'),
      '{"_id": "b", "process": {"executable": "node"',
      line(OID2, 'b.test'),
      'this is not json',
      line(OID3, 'c.test'),
      '{"_id": "d", "note": "an unterminated string}',
      '{"_id": "e"}',
    ].join('\n');
    const r = parseAppsText(text);
    assert.deepEqual(ids(r.docs), [OID1, OID2, OID3, 'e']);
    assert.deepEqual(lines(r.docs), [1, 3, 5, 7]);
    assert.deepEqual(
      r.problems.map((p) => p.line),
      [2, 4, 6],
      JSON.stringify(r.problems),
    );
  });

  it('a broken document among multi-line ones costs only itself', () => {
    const text = [
      '{',
      '  "_id": "a"',
      '}',
      '{',
      '  "_id": "b"',
      '  "missing": "comma"',
      '}',
      '{',
      '  "_id": "c",',
      '  "hosts": [',
      '    {"host": "c.test"}',
      '  ]',
      '}',
    ].join('\n');
    const r = parseAppsText(text);
    assert.deepEqual(ids(r.docs), ['a', 'c']);
    assert.deepEqual(lines(r.docs), [1, 8]);
    assert.deepEqual(
      r.problems.map((p) => p.line),
      [4],
    );
  });

  it('a broken element of a pretty-printed array costs only itself', () => {
    const text = [
      '[',
      `  ${line(OID1, 'a.test')},`,
      '  {"_id": "b", "process": {',
      `  ${line(OID3, 'c.test')}`,
      ']',
    ].join('\n');
    const r = parseAppsText(text);
    assert.deepEqual(ids(r.docs), [OID1, OID3]);
    assert.deepEqual(
      r.problems.map((p) => p.line),
      [3],
    );
  });

  it('reports an invalid $oid as a problem of its line', () => {
    const r = parseAppsText(`${line(OID1, 'a.test')}\n${line('not-hex', 'b.test')}`);
    assert.deepEqual(ids(r.docs), [OID1]);
    assert.deepEqual(
      r.problems.map((p) => p.line),
      [2],
    );
  });
});

describe('readAppsFile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-apps-file-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file from disk (with a BOM)', async () => {
    const path = join(dir, 'apps.json');
    writeFileSync(path, `\uFEFF${line(OID1, 'a.test')}\n`);
    const r = await readAppsFile(path);
    assert.deepEqual(ids(r.docs), [OID1]);
  });

  it('rejects with the system error of a missing file', async () => {
    await assert.rejects(readAppsFile(join(dir, 'nope.json')), { code: 'ENOENT' });
  });
});
