import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { ConfigError, loadConfig, validateConfig } from '../../src/nlb/config.js';
import { local, removeTempDirs, tempDir, writeConfig } from '../support/nlb.js';
import { freePorts } from '../support/ports.js';
import { repoRoot, runNlb, stopAll } from '../support/proc.js';
import { closeAllServers, tcpServer } from '../support/tcp.js';

after(async () => {
  await stopAll();
  await closeAllServers();
  removeTempDirs();
});

/** Runs nlb on `config` (written to a file unless it is undefined) and expects it to fail. */
async function rejects(config: unknown, message: RegExp, args: string[] = []): Promise<string> {
  const cli = config === undefined ? args : ['--config', writeConfig(config), ...args];
  const { code, output } = await runNlb(cli, { cwd: tempDir() });
  assert.notEqual(code, 0, `nlb should fail, it exited ${code}:\n${output}`);
  assert.match(output, message);
  assert.doesNotMatch(output, /listening on/);
  assert.doesNotMatch(output, /\n\s+at /, 'no stack trace, a message');
  return output;
}

describe('nlb.json errors: non-zero exit and a message naming the route and field', () => {
  test('not an array', async () => {
    await rejects({ port: 80, backends: [] }, /^nlb: .*nlb\.json: must be a JSON array/m);
  });

  test('an empty array', async () => {
    await rejects([], /nlb\.json: has no routes/);
  });

  test('a route that is not an object', async () => {
    await rejects([{ port: 8080, backends: local(9) }, 'x'], /route 2: must be an object/);
  });

  test('a listen port out of range', async () => {
    await rejects(
      [{ port: 70000, backends: local(9) }],
      /nlb\.json: route 1 \(port 70000\): port must be a port number from 1 to 65535 \(got 70000\)/,
    );
    await rejects([{ port: 0, backends: local(9) }], /route 1 \(port 0\): port must be a port number/);
    await rejects([{ port: '80', backends: local(9) }], /route 1: port must be a port number .*got "80"/);
    await rejects([{ backends: local(9) }], /route 1: port is missing/);
  });

  test('no backends', async () => {
    await rejects(
      [
        { port: 8080, backends: local(9) },
        { port: 8081, backends: [] },
      ],
      /route 2 \(port 8081\): backends is empty/,
    );
    await rejects([{ port: 8080 }], /route 1 \(port 8080\): backends is missing/);
    await rejects(
      [{ port: 8080, backends: { host: 'a', port: 1 } }],
      /route 1 \(port 8080\): backends must be a list/,
    );
  });

  test('a duplicate listen port', async () => {
    await rejects(
      [
        { port: 8080, backends: local(9) },
        { port: 8081, backends: local(9) },
        { port: 8080, backends: local(10) },
      ],
      /route 3 \(port 8080\): port 8080 is already the listen port of route 1/,
    );
    await rejects(
      [
        { port: 8080, host: '127.0.0.1', backends: local(9) },
        { port: 8080, backends: local(10) },
      ],
      /route 2 \(port 8080\): port 8080 is already the listen port of route 1 \(on 127\.0\.0\.1\)/,
    );
  });

  test('a backend without host or port, or with a bad one', async () => {
    await rejects(
      [{ port: 8080, backends: [{ port: 9 }] }],
      /route 1 \(port 8080\): backends\[0\]\.host is missing/,
    );
    await rejects(
      [{ port: 8080, backends: [{ host: 'a', port: 1 }, { host: 'b' }] }],
      /route 1 \(port 8080\): backends\[1\]\.port is missing/,
    );
    await rejects(
      [
        { port: 8080, backends: local(9) },
        {
          port: 8081,
          backends: [
            { host: 'a', port: 1 },
            { host: 'b', port: 65536 },
          ],
        },
      ],
      /nlb\.json: route 2 \(port 8081\): backends\[1\]\.port must be a port number from 1 to 65535 \(got 65536\)/,
    );
    await rejects(
      [{ port: 8080, backends: [{ host: 'not a host!', port: 9 }] }],
      /backends\[0\]\.host must be a host name or an IP address/,
    );
    await rejects([{ port: 8080, backends: ['127.0.0.1:9'] }], /backends\[0\] must be an object/);
  });

  test('misspelled and mistyped fields', async () => {
    await rejects(
      [{ port: 8080, backend: local(9) }],
      /route 1 \(port 8080\): "backend" is not a route field/,
    );
    await rejects(
      [{ port: 8080, backends: [{ host: 'a', port: 1, weight: 2 }] }],
      /backends\[0\]\."weight" is not a backend field/,
    );
    await rejects(
      [{ port: 8080, backends: local(9), proxyProtocol: 'yes' }],
      /proxyProtocol must be true or false/,
    );
    await rejects(
      [{ port: 8080, host: 5, backends: local(9) }],
      /route 1 \(port 8080\): host must be a host name/,
    );
  });

  test('every problem is listed, one line each', async () => {
    const out = await rejects(
      [
        { port: 8080, backends: [] },
        { port: 99999, backends: [{ host: 'a' }] },
      ],
      /route 1 \(port 8080\): backends is empty/,
    );
    assert.match(out, /route 2 \(port 99999\): port must be/);
    assert.match(out, /route 2 \(port 99999\): backends\[0\]\.port is missing/);
  });

  test('an unreadable file', async () => {
    await rejects(undefined, /^nlb: nlb\.json: no such file .*\(ENOENT\)/m, []);
    await rejects(undefined, /nlb: \/nonexistent\/nlb\.json: no such file/, [
      '--config',
      '/nonexistent/nlb.json',
    ]);
    await rejects(undefined, /is a directory \(EISDIR\)/, ['--config', tempDir()]);
  });

  test('invalid JSON', async () => {
    await rejects(
      '[{"port": 8080,\n  x}]',
      /nlb\.json: is not valid JSON \(line 2, column 3\): Expected double-quoted/,
    );
    await rejects('[{"port": 8080, "backends": [}]', /nlb\.json: is not valid JSON/);
    await rejects('', /nlb\.json: is not valid JSON/);
  });

  test('bad options name the option', async () => {
    const config = [{ port: 8080, backends: local(9) }];
    await rejects(config, /--grace must be a number of seconds/, ['--grace', '-1']);
    await rejects(config, /--connect-timeout must be a positive number/, ['--connect-timeout', '0']);
    await rejects(config, /--bind must be an IP address/, ['--bind', 'nowhere']);
    await rejects(config, /unknown option --frobnicate/, ['--frobnicate']);
  });
});

test('a listen port already in use: clear message, non-zero exit, nothing left listening', async () => {
  const busy = await tcpServer(() => {});
  const [free] = await freePorts(1);
  const { code, output } = await runNlb([
    '--config',
    writeConfig([
      { port: free, host: '127.0.0.1', backends: local(9) },
      { port: busy.port, host: '127.0.0.1', backends: local(9) },
    ]),
  ]);
  assert.equal(code, 1, output);
  assert.match(
    output,
    new RegExp(
      `nlb: .*nlb\\.json: route 2 \\(port ${busy.port}\\): cannot listen on 127\\.0\\.0\\.1:${busy.port}: the port is already in use \\(EADDRINUSE\\)`,
    ),
  );
});

test('--help lists every option', async () => {
  const { code, output } = await runNlb(['--help']);
  assert.equal(code, 0);
  for (const option of [
    '--config',
    '--bind',
    '--connect-timeout',
    '--idle-timeout',
    '--grace',
    '--verbose',
    '--log-level',
    '--help',
    '--version',
  ])
    assert.ok(output.includes(option), `--help should list ${option}:\n${output}`);
});

test('validateConfig returns routes with defaults', () => {
  const routes = validateConfig([
    { port: 80, backends: [{ host: 'localhost', port: 31415 }] },
    { port: 443, host: '[::1]', backends: [{ host: '[::1]', port: 31416 }], proxyProtocol: true },
  ]);
  assert.deepEqual(routes, [
    { port: 80, host: undefined, backends: [{ host: 'localhost', port: 31415 }], proxyProtocol: false },
    { port: 443, host: '::1', backends: [{ host: '::1', port: 31416 }], proxyProtocol: true },
  ]);
  assert.throws(
    () => validateConfig([{ port: 80, backends: [] }], 'x.json'),
    (err: unknown) =>
      err instanceof ConfigError && err.problems.length === 1 && /^x\.json: route 1/.test(err.message),
  );
});

test('the sample nlb.json at the repository root is valid', () => {
  const routes = loadConfig(`${repoRoot}/nlb.json`);
  assert.deepEqual(
    routes.map((r) => [r.port, r.backends]),
    [
      [8080, [{ host: '127.0.0.1', port: 31415 }]],
      [8443, [{ host: '127.0.0.1', port: 31416 }]],
    ],
  );
});
