import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BSON, MongoClient, ObjectId } from 'mongodb';
import type { AppsView } from '../../src/cli/apps-command.js';
import { beatInRegistry, claimInRegistry } from '../support/activation.js';
import { type AppDoc, fetchVia, helloApp, pidOf, provideApps, startArrWith } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { freePort } from '../support/ports.js';
import { ARR_CLI, run, stopAll } from '../support/proc.js';
import { head, parseResponses, rawExchange } from '../support/rawhttp.js';

/** `arr apps` and `arr validate`, run as the real CLI (in the repository root, like arr itself). */
const arr = (args: string[]) =>
  run(process.execPath, [ARR_CLI, ...args], { env: cliEnv(), timeoutMs: 30_000 });

const line = (doc: unknown) => BSON.EJSON.stringify(doc, { relaxed: true });

const goodApps = (): AppDoc[] => [
  {
    ...helloApp('alpha', [
      { host: 'alpha.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/app1-key.pem' },
      { host: 'alpha.example.test', ssl: 'required' },
    ]),
    _id: new ObjectId('000000000000000000000a01'),
    name: 'alpha',
  },
  {
    ...helloApp('beta', [{ host: 'beta.localhost', ssl: 'none' }], 3),
    _id: new ObjectId('000000000000000000000b02'),
    name: 'beta',
  },
];

describe('arr validate and arr apps on an apps file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-admin-'));
  const good = join(dir, 'good.json');
  const bad = join(dir, 'bad.json');
  const missing = join(dir, 'missing.json');

  before(() => {
    writeFileSync(good, `${goodApps().map(line).join('\n')}\n`);
    const [alpha, beta] = goodApps();
    writeFileSync(
      bad,
      [
        line(alpha), // 1: fine, and keeps its host
        '{"_id": "broken", "process": {"executable": "node"', // 2: not JSON
        line({ ...beta, _id: 'badssl', name: 'badssl', hosts: [{ host: 'x.localhost', ssl: 'maybe' }] }), // 3
        line({
          ...beta,
          // After alpha's in MongoDB's order (a string _id would come before any ObjectId).
          _id: new ObjectId('000000000000000000000d04'),
          name: 'dup-host',
          hosts: [{ host: 'alpha.localhost', ssl: 'allowed' }],
        }), // 4
        line({
          ...beta,
          _id: 'nocert',
          name: 'nocert',
          hosts: [{ host: 'n.localhost', ssl: 'allowed', cert: 'certs/none.pem', key: 'certs/app1-key.pem' }],
        }), // 5
        line({
          ...beta,
          _id: 'mismatch',
          name: 'mismatch',
          hosts: [
            { host: 'm0.localhost', ssl: 'none' },
            { host: 'm1.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/ws1-key.pem' },
          ],
        }), // 6
        line(beta), // 7: fine
        line({ ...beta, hosts: [{ host: 'beta2.localhost', ssl: 'none' }] }), // 8: beta's _id again
      ].join('\n'),
    );
  });
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('validate: a good file exits 0 with a summary', async () => {
    const r = await arr(['validate', good]);
    assert.equal(r.code, 0, r.output);
    assert.equal(
      r.output.trim(),
      'ACME-managed with --acme-email (1): alpha.example.test\n2 apps valid, 0 problems',
    );
  });

  it('validate: every problem by line, _id and field, then the summary; exit 1', async () => {
    const r = await arr(['validate', bad]);
    assert.equal(r.code, 1, r.output);
    const lines = r.output.trim().split('\n');
    const expect: [number, RegExp][] = [
      [2, /^line 2: not valid extended JSON/],
      [3, /^line 3, app badssl: hosts\[0\]\.ssl: must be "allowed", "required" or "none" \(got "maybe"\)$/],
      [
        4,
        /^line 4, app 000000000000000000000d04: hosts: host "alpha\.localhost" is already served by app 000000000000000000000a01/,
      ],
      [5, /^line 5, app nocert: hosts\[0\]\.cert: cannot read "certs\/none\.pem" \(ENOENT\)$/],
      [
        6,
        /^line 6, app mismatch: hosts\[1\]\.cert: "certs\/app1-cert\.pem" does not match its key "certs\/ws1-key\.pem"$/,
      ],
      [8, /^line 8, app 000000000000000000000b02: _id: the same _id is used by another document/],
    ];
    for (const [n, re] of expect)
      assert.ok(
        lines.some((l) => re.test(l)),
        `line ${n}'s problem (${re}) is reported:\n${r.output}`,
      );
    // alpha and beta are fine; dup-host, nocert and mismatch are served, but not as written.
    assert.equal(lines.at(-1), `2 apps valid, ${expect.length} problems`);
    // And, before the summary, the hosts that would be ACME-managed.
    assert.equal(lines.at(-2), 'ACME-managed with --acme-email (1): alpha.example.test');
    assert.equal(lines.length, expect.length + 2, r.output);
  });

  it('validate: a file that cannot be read exits 1 naming it', async () => {
    const r = await arr(['validate', missing]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /^arr: validate: cannot read ".*missing\.json" \(ENOENT\)$/m);
  });

  it('apps: a table of apps, hosts, policies, certificates and caps; exit 0', async () => {
    const r = await arr(['apps', '--apps', good]);
    assert.equal(r.code, 0, r.output);
    const rows = r.output.split('\n');
    assert.match(rows[0]!, /^APP\s+ID\s+CAP\s+HOST\s+SSL\s+CERT$/);
    assert.match(rows[1]!, /^alpha\s+000000000000000000000a01\s+1\s+alpha\.localhost\s+allowed\s+own$/);
    assert.match(rows[2]!, /^\s+alpha\.example\.test\s+required\s+default$/);
    assert.match(rows[3]!, /^beta\s+000000000000000000000b02\s+3\s+beta\.localhost\s+none\s+default$/);
    // Aligned: every host starts in the same column.
    const col = rows[0]!.indexOf('HOST');
    for (const [i, host] of [
      [1, 'alpha.localhost'],
      [2, 'alpha.example.test'],
      [3, 'beta.localhost'],
    ] as const)
      assert.equal(rows[i]!.indexOf(host), col, r.output);
    assert.match(r.output, /2 apps in .*good\.json/);
    assert.match(
      r.output,
      /no arr on this machine serves this file \(none has a state file in .*\): no instance runs/,
    );
    assert.doesNotMatch(r.output, /problem/);
  });

  it('apps --json: the same, for machines', async () => {
    const r = await arr(['apps', '--apps', good, '--json']);
    assert.equal(r.code, 0, r.output);
    const view = JSON.parse(r.output) as AppsView;
    assert.deepEqual(view.registry, { kind: 'file', source: good });
    assert.deepEqual(view.apps, [
      {
        id: '000000000000000000000a01',
        name: 'alpha',
        instances: 1,
        hosts: [
          {
            host: 'alpha.localhost',
            ssl: 'allowed',
            ownCertificate: true,
            acme: false,
            served: true,
            cert: 'certs/app1-cert.pem',
            key: 'certs/app1-key.pem',
          },
          {
            host: 'alpha.example.test',
            ssl: 'required',
            ownCertificate: false,
            acme: true,
            served: true,
          },
        ],
        machines: null,
      },
      {
        id: '000000000000000000000b02',
        name: 'beta',
        instances: 3,
        hosts: [{ host: 'beta.localhost', ssl: 'none', ownCertificate: false, acme: false, served: true }],
        machines: null,
      },
    ]);
    assert.match(view.note ?? '', /no arr on this machine serves this file/);
    assert.deepEqual(view.problems, []);
  });

  it('apps: the documents the registry skips are listed after the apps; still exit 0', async () => {
    const r = await arr(['apps', '-a', bad]);
    assert.equal(r.code, 0, r.output);
    const [table, problems] = r.output.split(
      /\n\d+ problems? \(these documents or hosts are not served\):\n/,
    );
    assert.ok(problems, `a problems section:\n${r.output}`);
    assert.match(table!, /^alpha\s/m);
    assert.match(table!, /^mismatch\s/m, 'an app with an unusable certificate is still served');
    assert.match(table!, /^dup-host\s.*\salpha\.localhost \(not served\)\s+allowed/m);
    assert.match(problems, /^ {2}line 2: not valid extended JSON/m);
    assert.match(problems, /^ {2}line 3, app badssl: hosts\[0\]\.ssl: /m);
    assert.match(problems, /app 000000000000000000000d04: hosts: host "alpha\.localhost" is already served/);
    const json = JSON.parse((await arr(['apps', '-a', bad, '--json'])).output) as AppsView;
    assert.ok(json.problems.some((p) => p.id === 'badssl' && p.field === 'hosts[0].ssl' && p.line === 3));
  });

  it('apps: a registry that cannot be read exits 1 with a clear message', async () => {
    const r = await arr(['apps', '--apps', missing]);
    assert.equal(r.code, 1, r.output);
    assert.match(r.output, /^arr: apps: cannot read the registry at .*missing\.json: ENOENT$/m);
  });

  it('apps: an unknown flag is a usage error; --json is known to apps only', async () => {
    const r = await arr(['apps', '--apps', good, '--jsno']);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /unknown option --jsno/);
    const serve = await arr(['--json', '--apps', missing, '-p', '0', '-s', '0']);
    assert.equal(serve.code, 2, serve.output);
    assert.match(serve.output, /unknown option --json/);
  });
});

describe('arr apps on MongoDB', { skip: mongoUnavailable() }, () => {
  let mongo: MongoServer;

  before(async () => {
    mongo = await startMongo('admin');
  });
  after(async () => {
    await stopAll();
    await mongo?.stop();
  });

  it('shows where instances run: claimed through the registry, and started by a live arr', async () => {
    const apps = goodApps();
    await provideApps(apps, mongo.url);
    // One instance of beta as another node would record it...
    await claimInRegistry(mongo.url, apps[1]!._id, { host: '127.0.0.9', port: 8123 });
    // A node that beats: the live arr's heartbeat would remove the entries of one that does not.
    await beatInRegistry(mongo.url, '127.0.0.9');
    // ...and alpha started for real by an arr of the farm.
    const node = await startArrWith([], { mongo: mongo.url, keepApps: true });
    const reply = await fetchVia(node.port, 'alpha.localhost', false);
    assert.equal(reply.status, 200, reply.text);
    pidOf(reply);
    const alphaPort = Number(/\(port (\d+),/.exec(reply.text)![1]);

    const r = await arr(['apps', '--mongo', mongo.url]);
    assert.equal(r.code, 0, r.output);
    const rows = r.output.split('\n');
    assert.match(rows[0]!, /^APP\s+ID\s+CAP\s+HOST\s+SSL\s+CERT\s+RUNNING$/);
    assert.match(rows[1]!, new RegExp(`^alpha\\s.*\\sown\\s+127\\.0\\.0\\.1:${alphaPort}$`));
    assert.match(rows[3]!, /^beta\s.*\s127\.0\.0\.9:8123$/);
    assert.match(r.output, /2 apps in MongoDB mongodb:\/\/.*, 2 instances running/);

    const view = JSON.parse((await arr(['apps', '--mongo', mongo.url, '--json'])).output) as AppsView;
    assert.equal(view.registry.kind, 'mongo');
    assert.equal(view.note, undefined);
    assert.deepEqual(
      view.apps.map((a) => [a.name, a.instances, a.machines]),
      [
        ['alpha', 1, [{ host: '127.0.0.1', port: alphaPort }]],
        ['beta', 3, [{ host: '127.0.0.9', port: 8123 }]],
      ],
    );

    // A document that breaks a rule is listed after the apps.
    const client = new MongoClient(mongo.url);
    try {
      await client
        .db()
        .collection('apps')
        .insertOne({ _id: 'nohosts' as never, process: { executable: 'x' } });
    } finally {
      await client.close();
    }
    const withProblem = await arr(['apps', '-m', mongo.url]);
    assert.equal(withProblem.code, 0, withProblem.output);
    assert.match(
      withProblem.output,
      /1 problem \(these documents or hosts are not served\):\n {2}app nohosts: hosts: /,
    );
    await node.stop();
  });

  it('exits 1 with a clear message when MongoDB cannot be reached', async () => {
    const port = await freePort();
    const r = await arr(['apps', '--mongo', `mongodb://user:secret@127.0.0.1:${port}/arr`]);
    assert.equal(r.code, 1, r.output);
    assert.match(
      r.output,
      new RegExp(
        `^arr: apps: cannot read the registry at mongodb://\\*\\*\\*@127\\.0\\.0\\.1:${port}/arr: `,
        'm',
      ),
    );
    assert.doesNotMatch(r.output, /secret/);
  });
});

describe('the --admin endpoint and DNS rebinding', () => {
  // A page in a browser on this machine, served from a name its owner re-points at 127.0.0.1,
  // sends same-origin requests to the admin port with its own name in Host. Those are refused.
  let node: Awaited<ReturnType<typeof startArrWith>>;
  let admin: number;
  before(async () => {
    admin = await freePort();
    node = await startArrWith([helloApp('alpha', [{ host: 'alpha.localhost', ssl: 'allowed' }])], {
      extraArgs: ['--admin', `127.0.0.1:${admin}`],
    });
  });
  after(async () => {
    await node?.stop();
    await stopAll();
  });

  /** The one answer to a request with these header lines (`Connection: close` added). */
  const ask = async (requestLine: string, ...lines: string[]) => {
    const r = await rawExchange(admin, head(requestLine, ...lines, 'Connection: close'));
    const responses = parseResponses(r.text);
    assert.equal(responses.length, 1, `${requestLine} ${lines.join(' ')}: ${r.text}`);
    return responses[0]!;
  };

  it('refuses a Host that is neither loopback, an IP address nor the admin address: 421, no metrics', async () => {
    for (const host of [
      'evil.example',
      `evil.example:${admin}`,
      `localhost.evil.example:${admin}`,
      `127.0.0.1.nip.io:${admin}`,
      `alpha.localhost:${admin}`,
    ]) {
      for (const path of ['/metrics', '/healthz?verbose', '/']) {
        const r = await ask(`GET ${path} HTTP/1.1`, `Host: ${host}`);
        assert.equal(r.status, 421, `${host} ${path}: ${r.status} ${r.body.slice(0, 200)}`);
        assert.match(r.headers['content-type'] ?? '', /^text\/plain/);
        assert.match(r.body, /^[^\n]*localhost[^\n]*\n$/, `${host}: one line naming the hosts accepted`);
        assert.doesNotMatch(r.body, /arr_|process_|nodejs_|"apps"/, `${host}: nothing of arr's state`);
      }
    }
    const headReq = await ask('HEAD /metrics HTTP/1.1', 'Host: evil.example');
    assert.equal(headReq.status, 421);
  });

  it('answers Host localhost, 127.0.0.1 and [::1], with or without the port', async () => {
    for (const host of [
      `localhost:${admin}`,
      'localhost',
      `LOCALHOST:${admin}`,
      `127.0.0.1:${admin}`,
      '127.0.0.1',
      '127.1.2.3',
      `[::1]:${admin}`,
    ]) {
      const metrics = await ask('GET /metrics HTTP/1.1', `Host: ${host}`);
      assert.equal(metrics.status, 200, `${host}: ${metrics.status} ${metrics.body}`);
      assert.match(metrics.body, /^# TYPE arr_requests_total counter$/m, host);
    }
  });

  it('answers /healthz to a balancer probing by IP address, and to HTTP/1.0 without Host', async () => {
    // A balancer reaches the admin port by this machine's address: an IP literal in Host is
    // never what a rebound name sends.
    for (const host of [`10.1.2.3:${admin}`, '192.0.2.7', `[2001:db8::1]:${admin}`]) {
      const r = await ask('GET /healthz HTTP/1.1', `Host: ${host}`);
      assert.equal(r.status, 200, `${host}: ${r.status} ${r.body}`);
      assert.equal(r.body, 'ok\n');
    }
    const bare = await rawExchange(admin, 'GET /healthz HTTP/1.0\r\n\r\n');
    const [r] = parseResponses(bare.text);
    assert.equal(r?.status, 200, bare.text);
    assert.equal(r.body, 'ok\n');
  });
});
