import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { TROUBLE_APP } from '../support/troubleapp.js';
import { assertArrServes, inlineApp, refusedUpgrade } from '../support/wsclient.js';

const cert = (name: string) => ({
  cert: join(repoRoot, `certs/${name}-cert.pem`),
  key: join(repoRoot, `certs/${name}-key.pem`),
});

const MISSING_PROGRAM = '/nonexistent/arr-test/bin/program';

const apps = () => [
  helloApp('app1', [
    { host: 'app1.localhost', ssl: 'allowed', ...cert('app1') },
    { host: 'secure-app1.localhost', ssl: 'required', ...cert('secure-app1') },
    { host: 'plain-app1.localhost', ssl: 'none' },
  ]),
  inlineApp(TROUBLE_APP, [{ host: 'trouble.localhost', ssl: 'allowed' }]),
  // Never listens: the start times out (--start-timeout 1).
  inlineApp('setInterval(() => {}, 1000);', [{ host: 'never.localhost', ssl: 'allowed' }]),
  inlineApp('setInterval(() => {}, 1000);', [{ host: 'never-ws.localhost', ssl: 'allowed' }]),
  // Exits before it listens.
  inlineApp('process.exit(3);', [{ host: 'dies.localhost', ssl: 'allowed' }]),
  // Cannot be started at all.
  {
    _id: new ObjectId(),
    process: { executable: MISSING_PROGRAM, args: [] },
    hosts: [{ host: 'missing.localhost', ssl: 'allowed' }],
    instances: 1,
  },
];

/** What a careful proxy's own error answer looks like: one short line of plain text, no internals. */
function assertPlainError(
  what: string,
  r: { status: number; body: string; headers: Record<string, unknown> },
  status: number,
): void {
  assert.equal(r.status, status, `${what}: ${r.status} ${r.body}`);
  assert.match(String(r.headers['content-type']), /^text\/plain/, what);
  assert.match(r.body, new RegExp(`^${status} [A-Za-z' -]+: [^\\n]+\\n$`), `${what}: one line "${r.body}"`);
  assert.ok(r.body.length < 160, `${what}: short (${r.body.length} bytes)`);
  const internals = [
    /\/work|\/nonexistent|\/tmp\/|node_modules|\.[jt]s:\d|\bat \S+ \(/i, // paths, stack frames
    /\w*Error\b|\bE[A-Z]{4,}\b|ERR_/, // error classes and codes (ECONNRESET, ENOENT...)
    /mongo|bson|topology|\bspawn\b|\bpid\b|\bport \d/i, // driver and process details
  ];
  for (const re of internals) assert.doesNotMatch(r.body, re, `${what}: no internals in "${r.body}"`);
}

describe("arr's own error answers carry no internals", () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(apps(), { extraArgs: ['--start-timeout', '1'] });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  const http = async (
    port: number,
    host: string,
    secure: boolean,
    opts: Parameters<typeof fetchVia>[3] = {},
  ) => {
    const r = await fetchVia(port, host, secure, opts);
    return { status: r.status, body: r.text, headers: r.headers as Record<string, unknown> };
  };

  it('400 without a Host, 404 for an unknown host', async () => {
    assertPlainError('no Host', await http(arr.port, '', false), 400);
    assertPlainError('unknown host', await http(arr.port, 'nobody.localhost', false), 404);
    assertPlainError('unknown host, TLS', await http(arr.sslport, 'nobody.localhost', true), 404);
    assertPlainError('unknown host, ws', await refusedUpgrade(arr.port, 'nobody.localhost', false), 404);
    assertPlainError('unknown host, wss', await refusedUpgrade(arr.sslport, 'nobody.localhost', true), 404);
  });

  it('403 for the wrong scheme, 421 for a Host other than the TLS name', async () => {
    assertPlainError('ssl none over TLS', await http(arr.sslport, 'plain-app1.localhost', true), 403);
    assertPlainError(
      'ssl required, POST over plain',
      await http(arr.port, 'secure-app1.localhost', false, { method: 'POST', body: 'x' }),
      403,
    );
    assertPlainError(
      'ssl none over wss',
      await refusedUpgrade(arr.sslport, 'plain-app1.localhost', true),
      403,
    );
    assertPlainError(
      'ssl required over ws',
      await refusedUpgrade(arr.port, 'secure-app1.localhost', false),
      403,
    );
    assertPlainError(
      'Host differs from SNI',
      await http(arr.sslport, 'secure-app1.localhost', true, { servername: 'app1.localhost' }),
      421,
    );
    assertPlainError(
      'Host differs from SNI, wss',
      await refusedUpgrade(arr.sslport, 'secure-app1.localhost', true, { servername: 'app1.localhost' }),
      421,
    );
  });

  it('502 when the instance fails to answer, or cannot be started, or dies while starting', async () => {
    assertPlainError(
      'instance resets',
      await http(arr.port, 'trouble.localhost', false, { path: '/reset' }),
      502,
    );
    assertPlainError(
      'instance hangs up on an upgrade',
      await refusedUpgrade(arr.port, 'trouble.localhost', false, { path: '/hangup' }),
      502,
    );
    assertPlainError('missing program', await http(arr.port, 'missing.localhost', false), 502);
    assertPlainError('exits while starting', await http(arr.sslport, 'dies.localhost', true), 502);
  });

  it('504 when the instance does not listen in time', async () => {
    assertPlainError('never listens', await http(arr.port, 'never.localhost', false), 504);
    assertPlainError(
      'never listens, wss',
      await refusedUpgrade(arr.sslport, 'never-ws.localhost', true),
      504,
    );
    await assertArrServes(arr, 'app1.localhost');
  });
});
