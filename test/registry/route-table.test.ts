import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { parseAppsText } from '../../src/registry/apps-file.js';
import { buildRouteTable } from '../../src/registry/load.js';
import { formatProblem } from '../../src/registry/types.js';

const app = (id: unknown, hosts: string[], extra: Record<string, unknown> = {}) => ({
  doc: {
    _id: id,
    process: { executable: 'node', args: [] },
    hosts: hosts.map((host) => ({ host, ssl: 'none' })),
    ...extra,
  },
});

describe('route table', () => {
  it('routes every host of every valid app', () => {
    const { table, problems } = buildRouteTable([app('a', ['a.test', 'www.a.test']), app('b', ['b.test'])]);
    assert.deepEqual(problems, []);
    assert.equal(table.apps.size, 2);
    assert.equal(table.hostCount, 3);
    assert.equal(table.route('a.test')?.app.id, 'a');
    assert.equal(table.route('www.a.test')?.app.id, 'a');
    assert.equal(table.route('b.test')?.rule.host, 'b.test');
    assert.equal(table.route('c.test'), undefined);
  });

  it('wildcard hosts: an exact host first, then the wildcard one label up, never deeper or at its base', () => {
    const { table, problems } = buildRouteTable([
      app('wild', ['*.apps.test']),
      app('exact', ['special.apps.test', 'apps.test']),
      app('deeper', ['*.b.apps.test']),
    ]);
    assert.deepEqual(problems, []);
    assert.equal(table.hostCount, 4);
    assert.equal(table.route('a.apps.test')?.app.id, 'wild');
    assert.equal(table.route('a.apps.test')?.rule.host, '*.apps.test', 'the route carries the wildcard rule');
    assert.equal(table.route('special.apps.test')?.app.id, 'exact', 'an exact host beside it wins');
    assert.equal(table.route('apps.test')?.app.id, 'exact');
    assert.equal(table.route('c.b.apps.test')?.app.id, 'deeper');
    assert.equal(table.route('x.c.b.apps.test'), undefined, 'one label only');
    assert.equal(table.route('b.apps.test')?.app.id, 'wild', 'b.apps.test is one label under *.apps.test');
    assert.equal(table.route('other.test'), undefined);
    assert.equal(table.route('*.apps.test')?.rule.host, '*.apps.test', "a wildcard's own name finds it");
    assert.equal(buildRouteTable([app('exact', ['a.test'])]).table.route('x.a.test'), undefined);
  });

  it('two apps may not claim the same wildcard: the smaller id keeps it, the other is reported', () => {
    const { table, problems } = buildRouteTable([app('b', ['*.apps.test']), app('a', ['*.apps.test'])]);
    assert.equal(table.route('x.apps.test')?.app.id, 'a');
    assert.deepEqual(
      problems.map((p) => [p.id, p.field]),
      [['b', 'hosts']],
    );
    assert.match(problems[0]?.message ?? '', /"\*\.apps\.test" is already served by app a/);
  });

  it('routes by the normalised name (lower case, no trailing dot)', () => {
    const { table } = buildRouteTable([app('a', ['WWW.A.Test.'])]);
    assert.equal(table.route('www.a.test')?.app.id, 'a');
  });

  it('a host claimed by two apps goes to the smaller id, whatever the order; the other is reported', () => {
    for (const order of [
      ['a', 'b'],
      ['b', 'a'],
    ]) {
      const docs = order.map((id) => app(id, ['shared.test', `${id}.test`]));
      const { table, problems } = buildRouteTable(docs);
      assert.equal(table.route('shared.test')?.app.id, 'a', `order ${order}`);
      assert.equal(table.route('b.test')?.app.id, 'b', 'the loser keeps its other hosts');
      assert.equal(problems.length, 1, JSON.stringify(problems));
      assert.equal(problems[0]?.id, 'b');
      assert.equal(problems[0]?.field, 'hosts');
      assert.match(problems[0]?.message ?? '', /"shared\.test" is already served by app a/);
      assert.match(formatProblem(problems[0] as never), /app b: hosts: /);
    }
  });

  it('the duplicate is found after normalising, and with ObjectIds the smaller hex wins', () => {
    const small = new ObjectId('65a0000000000000000000e1');
    const big = new ObjectId('65a0000000000000000000e2');
    for (const docs of [
      [app(big, ['Shared.Test.']), app(small, ['shared.test'])],
      [app(small, ['shared.test']), app(big, ['Shared.Test.'])],
    ]) {
      const { table, problems } = buildRouteTable(docs);
      assert.equal(table.route('shared.test')?.app.id, small.toHexString());
      assert.deepEqual(
        problems.map((p) => p.id),
        [big.toHexString()],
      );
    }
  });

  it('ids compare as MongoDB orders them: numbers by value, then strings by code point, then ObjectIds', () => {
    const oid = (hex: string) => new ObjectId(hex.padStart(24, '0'));
    // [keeps the host, loses it]
    const pairs: [unknown, unknown][] = [
      [2, 10],
      [-1, 0.5],
      [10, '1'],
      ['10', '9'],
      ['Z', 'a'],
      // U+FFFF before U+10000 (code points), though its UTF-16 code unit is the greater.
      ['\uffff', '\u{10000}'],
      ['zzz', oid('1')],
      [oid('2'), oid('10')],
    ];
    for (const [winner, loser] of pairs) {
      for (const docs of [
        [app(winner, ['shared.test']), app(loser, ['shared.test'])],
        [app(loser, ['shared.test']), app(winner, ['shared.test'])],
      ]) {
        const { table, problems } = buildRouteTable(docs);
        const expected = winner instanceof ObjectId ? winner.toHexString() : String(winner);
        assert.equal(table.route('shared.test')?.app.id, expected, `${String(winner)} over ${String(loser)}`);
        assert.deepEqual(
          problems.map((p) => p.field),
          ['hosts'],
        );
      }
    }
  });

  it('a number and a string that print alike are one _id, as before: the number is kept', () => {
    for (const docs of [
      [app('10', ['string.test']), app(10, ['number.test'])],
      [app(10, ['number.test']), app('10', ['string.test'])],
    ]) {
      const { table, problems } = buildRouteTable(docs);
      assert.equal(table.apps.size, 1);
      assert.equal(table.route('number.test')?.app.rawId, 10);
      assert.deepEqual(
        problems.map((p) => [p.id, p.field]),
        [['10', '_id']],
      );
    }
  });

  it('a duplicate _id keeps one document and reports the other on _id', () => {
    const { table, problems } = buildRouteTable([app('a', ['one.test']), app('a', ['two.test'])]);
    assert.equal(table.apps.size, 1);
    assert.equal(table.route('one.test')?.app.id, 'a');
    assert.equal(table.route('two.test'), undefined);
    assert.equal(problems.length, 1);
    assert.equal(problems[0]?.id, 'a');
    assert.equal(problems[0]?.field, '_id');
    assert.match(problems[0]?.message ?? '', /same _id/);
  });

  it('the same ObjectId twice in a file is a duplicate _id too', () => {
    const oid = '65a0000000000000000000e3';
    const text = [
      `{"_id": {"$oid": "${oid}"}, "process": {"executable": "node"}, "hosts": [{"host": "one.test", "ssl": "none"}]}`,
      `{"_id": {"$oid": "${oid}"}, "process": {"executable": "node"}, "hosts": [{"host": "two.test", "ssl": "none"}]}`,
    ].join('\n');
    const { table, problems } = buildRouteTable(parseAppsText(text).docs);
    assert.equal(table.apps.size, 1);
    assert.deepEqual(
      problems.map((p) => [p.id, p.field]),
      [[oid, '_id']],
    );
  });

  it('invalid documents are reported with their line and do not hide the valid ones', () => {
    const text = [
      '{"_id": "good", "process": {"executable": "node"}, "hosts": [{"host": "good.test", "ssl": "allow"}]}',
      '{"_id": "bad", "process": {"executable": "node"}, "hosts": [{"host": "bad.test", "ssl": "maybe"}]}',
      '{"_id": "worse", "process": {"executable": "node"}, "hosts": [{"host": "good.test", "ssl": "none"}]}',
    ].join('\n');
    const { table, problems } = buildRouteTable(parseAppsText(text).docs);
    assert.deepEqual([...table.apps.keys()].sort(), ['good', 'worse']);
    assert.equal(table.route('good.test')?.app.id, 'good');
    assert.equal(table.route('good.test')?.rule.ssl, 'allowed');
    assert.deepEqual(
      problems.map((p) => [p.id, p.line, p.field]),
      [
        ['bad', 2, 'hosts[0].ssl'],
        ['worse', undefined, 'hosts'],
      ],
    );
    assert.equal(formatProblem(problems[0] as never).startsWith('line 2, app bad: hosts[0].ssl: '), true);
  });

  it('tlsRoutes has the hosts with a certificate and key only', () => {
    const { table } = buildRouteTable([
      {
        doc: {
          _id: 'a',
          process: { executable: 'node' },
          hosts: [
            { host: 'tls.test', ssl: 'required', cert: 'c.pem', key: 'k.pem' },
            { host: 'plain.test', ssl: 'allowed' },
          ],
        },
      },
      app('b', ['b.test']),
    ]);
    assert.deepEqual(
      [...table.tlsRoutes()].map((r) => [r.rule.host, r.rule.cert, r.rule.key]),
      [['tls.test', 'c.pem', 'k.pem']],
    );
  });
});
