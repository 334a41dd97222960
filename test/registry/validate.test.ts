import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { type App, formatProblem, type Problem } from '../../src/registry/types.js';
import { MAX_COMMAND_BYTES, validateApp } from '../../src/registry/validate.js';
import { isValidHostName, normaliseHostName } from '../../src/util/host-name.js';

const OID = '65a0000000000000000000d1';

/** A valid document; `patch` replaces top-level fields (undefined removes one). */
function doc(patch: Record<string, unknown> = {}): Record<string, unknown> {
  const base: Record<string, unknown> = {
    _id: new ObjectId(OID),
    process: { executable: 'node', args: ['server.js', '--flag'] },
    hosts: [
      { host: 'app1.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/app1-key.pem' },
      { host: 'app1.example.test', ssl: 'none' },
    ],
    instances: 2,
    machines: [],
  };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete base[k];
    else base[k] = v;
  }
  return base;
}

/** A document whose first host is replaced by `host`. */
const withHost = (host: Record<string, unknown>) => doc({ hosts: [host] });

function valid(d: unknown): App {
  const v = validateApp(d);
  assert.ok(v.ok, `expected valid, got ${v.ok ? '' : JSON.stringify(v.problems)}`);
  return v.app;
}

/** Asserts that `d` is rejected with exactly these fields, each in its formatted message. */
function rejected(d: unknown, fields: string[]): Problem[] {
  const v = validateApp(d);
  assert.equal(v.ok, false, 'expected the document to be rejected');
  if (v.ok) return [];
  assert.deepEqual(v.problems.map((p) => p.field).sort(), [...fields].sort(), JSON.stringify(v.problems));
  for (const p of v.problems) {
    const text = formatProblem(p);
    if (p.field) assert.ok(text.includes(p.field), `"${text}" names the field ${p.field}`);
    if (p.id) assert.ok(text.includes(`app ${p.id}`), `"${text}" names the _id`);
  }
  return v.problems;
}

describe('validateApp', () => {
  it('accepts a full document and keeps its values', () => {
    const app = valid(doc());
    assert.equal(app.id, OID);
    assert.ok(app.rawId instanceof ObjectId);
    assert.deepEqual(app.process, { executable: 'node', args: ['server.js', '--flag'] });
    assert.deepEqual(app.hosts, [
      { host: 'app1.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/app1-key.pem' },
      { host: 'app1.example.test', ssl: 'none' },
    ]);
    assert.equal(app.instances, 2);
  });

  it('accepts string and number _ids', () => {
    assert.equal(valid(doc({ _id: 'app-one' })).id, 'app-one');
    assert.equal(valid(doc({ _id: 7 })).id, '7');
  });

  it('rejects what is not a document', () => {
    for (const d of [null, 'x', 3, [doc()]]) {
      const v = validateApp(d);
      assert.equal(v.ok, false, JSON.stringify(d));
      if (!v.ok) assert.match(v.problems[0]?.message ?? '', /not a document/);
    }
  });

  it('_id: missing, empty or of another type', () => {
    for (const id of [undefined, '', {}, null, true, Number.NaN]) {
      const [p] = rejected(doc({ _id: id }), ['_id']);
      assert.equal(p?.id, undefined);
      assert.match(formatProblem(p as Problem), /^document: _id: /);
    }
  });

  it('process and process.executable: missing or invalid', () => {
    rejected(doc({ process: undefined }), ['process']);
    rejected(doc({ process: 'node server.js' }), ['process']);
    rejected(doc({ process: ['node'] }), ['process']);
    for (const executable of [undefined, '', '   ', 5, ['node']]) {
      const [p] = rejected(doc({ process: { executable, args: [] } }), ['process.executable']);
      assert.equal(p?.id, OID);
      assert.match(formatProblem(p as Problem), new RegExp(`app ${OID}: process\\.executable: `));
    }
  });

  it('process.args: strings only; missing means none', () => {
    rejected(doc({ process: { executable: 'node', args: ['a', 1] } }), ['process.args']);
    rejected(doc({ process: { executable: 'node', args: [null] } }), ['process.args']);
    rejected(doc({ process: { executable: 'node', args: 'server.js' } }), ['process.args']);
    assert.deepEqual(valid(doc({ process: { executable: 'node' } })).process.args, []);
  });

  it('process: a NUL byte anywhere, which spawn() would refuse, is rejected by field', () => {
    const [exe] = rejected(doc({ process: { executable: 'node\0x', args: [] } }), ['process.executable']);
    assert.match(exe?.message ?? '', /NUL byte/);
    const [arg] = rejected(doc({ process: { executable: 'node', args: ['ok', 'a\0b'] } }), [
      'process.args[1]',
    ]);
    assert.match(formatProblem(arg as Problem), new RegExp(`app ${OID}: process\\.args\\[1\\]: .*NUL byte`));
  });

  it('process: a command line over 128 KiB, which spawn() would refuse (E2BIG), is rejected', () => {
    const huge = 'x'.repeat(MAX_COMMAND_BYTES);
    const [one] = rejected(doc({ process: { executable: 'node', args: [huge] } }), ['process.args']);
    assert.match(one?.message ?? '', /131076 bytes together; at most 131072 \(128 KiB\)/);
    const many = Array.from({ length: 2000 }, () => 'y'.repeat(100));
    rejected(doc({ process: { executable: 'node', args: many } }), ['process.args']);
    rejected(doc({ process: { executable: `/${'z'.repeat(MAX_COMMAND_BYTES)}` } }), ['process.executable']);
    // Bytes, not characters: 'é' is two.
    rejected(doc({ process: { executable: 'node', args: ['é'.repeat(MAX_COMMAND_BYTES / 2)] } }), [
      'process.args',
    ]);
    const fits = 'x'.repeat(MAX_COMMAND_BYTES - 'node'.length);
    assert.equal(valid(doc({ process: { executable: 'node', args: [fits] } })).process.args[0], fits);
  });

  it('user and group: names or numbers, kept; group goes with user', () => {
    const app = valid(doc({ user: 'www-data', group: '33' }));
    assert.equal(app.user, 'www-data');
    assert.equal(app.group, '33');
    assert.equal(valid(doc({ user: '65534' })).group, undefined);
    const plain = valid(doc());
    assert.equal('user' in plain || 'group' in plain, false, 'absent when not given');
    for (const user of ['', 'a b', 'root;id', 65534, '-x', 'a\0', '4294967296', 'x'.repeat(40), null]) {
      const [p] = rejected(doc({ user }), ['user']);
      assert.match(p?.message ?? '', /must be a user name or a numeric uid/, String(user));
    }
    rejected(doc({ user: 'nobody', group: 'bad group' }), ['group']);
    const [p] = rejected(doc({ group: 'nogroup' }), ['group']);
    assert.match(p?.message ?? '', /goes with "user"/);
  });

  it('protocol: "h2c" kept, "http/1.1" the default (unset), anything else rejected', () => {
    assert.equal(valid(doc({ protocol: 'h2c' })).protocol, 'h2c');
    assert.equal(valid(doc({ protocol: 'http/1.1' })).protocol, undefined);
    assert.equal(valid(doc()).protocol, undefined);
    rejected(doc({ protocol: 'h2' }), ['protocol']);
    rejected(doc({ protocol: 'HTTP/2' }), ['protocol']);
    rejected(doc({ protocol: 2 }), ['protocol']);
  });

  it('hosts: missing, empty or not an array', () => {
    for (const hosts of [undefined, [], 'a.test', { host: 'a.test', ssl: 'none' }])
      rejected(doc({ hosts }), ['hosts']);
  });

  it('hosts[i]: an element that is not an object, with its index', () => {
    rejected(doc({ hosts: [{ host: 'a.test', ssl: 'none' }, 'b.test'] }), ['hosts[1]']);
  });

  it('hosts[i].host: missing or not a valid host name', () => {
    rejected(withHost({ ssl: 'none' }), ['hosts[0].host']);
    rejected(withHost({ host: 42, ssl: 'none' }), ['hosts[0].host']);
    for (const host of [
      '',
      'bad host',
      'a..b',
      '-a.test',
      'a-.test',
      'a.test:8080',
      'http://a.test',
      'a/b',
      'ä.test',
      `${'x'.repeat(64)}.test`,
    ]) {
      const problems = rejected(withHost({ host, ssl: 'none' }), ['hosts[0].host']);
      assert.match(problems[0]?.message ?? '', /not a valid host name/, host);
    }
    const second = rejected(
      doc({
        hosts: [
          { host: 'ok.test', ssl: 'none' },
          { host: 'not ok', ssl: 'none' },
        ],
      }),
      ['hosts[1].host'],
    );
    assert.match(second[0]?.message ?? '', /"not ok"/);
  });

  it('wildcard hosts: "*" as the whole leftmost label, over two labels or more', () => {
    assert.equal(
      valid(withHost({ host: '*.Example.TEST.', ssl: 'allowed' })).hosts[0]?.host,
      '*.example.test',
    );
    assert.equal(
      valid(withHost({ host: '*.apps.example.com', ssl: 'none' })).hosts[0]?.host,
      '*.apps.example.com',
    );
    for (const host of [
      '*',
      '*.',
      '*.test',
      '**.example.com',
      'a*.example.com',
      '*a.example.com',
      'a.*.example.com',
      '*.*.example.com',
      '*.exa*mple.com',
      '*.-a.test',
    ]) {
      const problems = rejected(withHost({ host, ssl: 'none' }), ['hosts[0].host']);
      assert.match(
        problems[0]?.message ?? '',
        /not a valid wildcard host: "\*" must be the whole leftmost label/,
        host,
      );
    }
  });

  it('host names are lower-cased and lose a trailing dot and surrounding blanks', () => {
    const app = valid(withHost({ host: ' App1.Example.TEST. ', ssl: 'none' }));
    assert.equal(app.hosts[0]?.host, 'app1.example.test');
    for (const host of ['localhost', '127.0.0.1', '[::1]', 'a_b.test', 'x1-2.y.z', `${'x'.repeat(63)}.test`])
      assert.equal(valid(withHost({ host, ssl: 'none' })).hosts[0]?.host, host);
  });

  it('the same host twice in one app (after normalising) is reported on hosts', () => {
    rejected(
      doc({
        hosts: [
          { host: 'a.test', ssl: 'none' },
          { host: 'A.TEST.', ssl: 'allowed' },
        ],
      }),
      ['hosts'],
    );
  });

  it('hosts[i].ssl: "maybe", missing or not a string is rejected', () => {
    const [p] = rejected(withHost({ host: 'a.test', ssl: 'maybe' }), ['hosts[0].ssl']);
    assert.match(p?.message ?? '', /"maybe"/);
    assert.match(formatProblem(p as Problem), /hosts\[0\]\.ssl: must be "allowed", "required" or "none"/);
    rejected(withHost({ host: 'a.test' }), ['hosts[0].ssl']);
    rejected(withHost({ host: 'a.test', ssl: true }), ['hosts[0].ssl']);
  });

  it('ssl: both spellings are accepted and normalised', () => {
    const cases: [string, string][] = [
      ['allowed', 'allowed'],
      ['allow', 'allowed'],
      ['required', 'required'],
      ['require', 'required'],
      ['none', 'none'],
      ['Require', 'required'],
    ];
    for (const [given, expected] of cases)
      assert.equal(valid(withHost({ host: 'a.test', ssl: given })).hosts[0]?.ssl, expected, given);
  });

  it('cert and key go together', () => {
    rejected(withHost({ host: 'a.test', ssl: 'allowed', cert: 'c.pem' }), ['hosts[0].key']);
    rejected(withHost({ host: 'a.test', ssl: 'allowed', key: 'k.pem' }), ['hosts[0].cert']);
    rejected(withHost({ host: 'a.test', ssl: 'allowed', cert: 5, key: 'k.pem' }), ['hosts[0].cert']);
    rejected(withHost({ host: 'a.test', ssl: 'allowed', cert: 'c.pem', key: {} }), ['hosts[0].key']);
    // Empty or null means "not given".
    const rule = valid(withHost({ host: 'a.test', ssl: 'allowed', cert: '', key: null })).hosts[0];
    assert.deepEqual(rule, { host: 'a.test', ssl: 'allowed' });
  });

  it('instances: 0, -1, "2", 1.5 and the like are rejected; missing means 1', () => {
    for (const instances of [0, -1, '2', 1.5, Number.NaN, Number.POSITIVE_INFINITY, null, true]) {
      const [p] = rejected(doc({ instances }), ['instances']);
      assert.match(p?.message ?? '', /whole number of at least 1/);
    }
    assert.equal(valid(doc({ instances: undefined })).instances, 1);
    assert.equal(valid(doc({ instances: 1 })).instances, 1);
    assert.equal(valid(doc({ instances: 10 })).instances, 10);
  });

  it('machines: must be an array of {host, port}', () => {
    for (const machines of [
      'x',
      {},
      [1],
      [null],
      [{ host: '10.0.0.1' }],
      [{ port: 8000 }],
      [{ host: 1, port: 8000 }],
      [{ host: '10.0.0.1', port: '8000' }],
      [{ host: '10.0.0.1', port: 8000 }, 'x'],
    ])
      rejected(doc({ machines }), ['machines']);
    valid(doc({ machines: undefined }));
    valid(doc({ machines: [{ host: '10.0.0.1', port: 8000 }] }));
  });

  it('reports every problem of a document at once', () => {
    rejected(
      doc({
        process: { executable: '' },
        hosts: [
          { host: 'a b', ssl: 'maybe' },
          { host: 'ok.test', ssl: 'none', cert: 'c.pem' },
        ],
        instances: 0,
        machines: 'x',
      }),
      ['process.executable', 'hosts[0].host', 'hosts[0].ssl', 'hosts[1].key', 'instances', 'machines'],
    );
  });
});

describe('host names', () => {
  it('normaliseHostName lower-cases and strips one trailing dot', () => {
    assert.equal(normaliseHostName('App1.LocalHost.'), 'app1.localhost');
    assert.equal(normaliseHostName('a.test'), 'a.test');
  });

  it('isValidHostName takes DNS names, IPv4 and bracketed IPv6', () => {
    for (const ok of ['a', 'a.b', 'app1.localhost', '10.0.0.1', '[::1]', '[2001:db8::1]'])
      assert.ok(isValidHostName(ok), ok);
    for (const bad of ['', 'A.test', 'a.test.', 'a b', '::1', 'a.test:80', `${'a.'.repeat(127)}ab`])
      assert.equal(isValidHostName(bad), false, bad);
  });
});
