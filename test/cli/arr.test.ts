import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cliEnv } from '../support/cli-env.js';
import { freePorts } from '../support/ports.js';
import { ARR_CLI, runArr, run as runCommand, stopAll } from '../support/proc.js';

/**
 * The arr command line, run as a real process. Every invocation that should fail gets distinct
 * free ports and an apps file that does not exist, so that a check that wrongly passes makes
 * the test fail (or time out) instead of serving on the default ports.
 */
describe('arr command line', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-cli-'));
  const apps = join(dir, 'no-apps.json');
  let port = 0;
  let sslport = 0;
  const run = (args: string[], env: Record<string, string> = {}) =>
    runCommand(process.execPath, [ARR_CLI, ...args], { cwd: dir, env: cliEnv(env), timeoutMs: 15_000 });
  /** Options that are all fine, but for the ones in `over` (given once each). */
  const fine = (over: Record<string, string> = {}) =>
    Object.entries({
      '--apps': apps,
      '-p': String(port),
      '-s': String(sslport),
      '--bind': '127.0.0.1',
      ...over,
    }).flat();

  before(async () => {
    [port = 0, sslport = 0] = await freePorts(2);
  });
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Asserts a usage error: exit code 2 and a message on one `arr:` line naming `what`. */
  function usageError(r: { code: number | string; output: string }, ...what: (string | RegExp)[]): void {
    assert.equal(r.code, 2, r.output);
    const line = r.output.split('\n').find((l) => l.startsWith('arr: '));
    assert.ok(line, `an "arr: ..." message in:\n${r.output}`);
    for (const w of what) {
      if (typeof w === 'string') assert.ok(line.includes(w), `"${line}" names ${w}`);
      else assert.match(line, w);
    }
  }

  it('--help lists every option and the import command', async () => {
    const r = await run(['--help']);
    assert.equal(r.code, 0, r.output);
    for (const o of [
      '-m, --mongo',
      '-a, --apps',
      '-r, --range',
      '-p, --port',
      '-s, --sslport',
      '-c, --cert',
      '-k, --key',
      '--advertise',
      '--bind',
      '-h, --help',
    ])
      assert.ok(r.output.includes(o), `--help lists ${o}:\n${r.output}`);
    assert.match(r.output, /arr import <file>/);
    assert.match(r.output, /default: "apps\.json"/);
    assert.match(r.output, /default: "8000-9000"/);
    assert.match(r.output, /default: 31415/);
    assert.match(r.output, /default: 31416/);
    assert.match(r.output, /ARR_/, 'mentions the environment variables');
    const short = await run(['-h']);
    assert.equal(short.output, r.output);
  });

  it('an apps file that cannot be read: one plain line naming --apps and the cause, exit 2', async () => {
    const r = await run(fine({ '--apps': '/nonexistent/apps.json' }));
    usageError(r, '--apps', '/nonexistent/apps.json', 'ENOENT');
    assert.doesNotMatch(r.output, /\n\s+at |"stack"|"level":"fatal"/, 'no stack, no fatal JSON');
  });

  it('a MongoDB that cannot be reached at start: one plain line naming --mongo, exit 1', async () => {
    const [closed] = await freePorts(1);
    const r = await run(fine({ '--mongo': `mongodb://user:secret@127.0.0.1:${closed}/arr` }));
    assert.equal(r.code, 1, r.output);
    const line = r.output.split('\n').find((l) => l.startsWith('arr: '));
    assert.match(
      line ?? '',
      /^arr: --mongo: cannot read the registry at mongodb:\/\/\*\*\*@127\.0\.0\.1:\d+\/arr \(/,
    );
    assert.doesNotMatch(r.output, /secret|\n\s+at |"stack"/, 'no password, no stack');
  });

  it('equal --port and --sslport', async () => {
    usageError(await run(['--apps', apps, '-p', String(port), '-s', String(port)]), '--sslport', '--port');
    usageError(
      await run(['--apps', apps, '--port', String(port), '--sslport', String(port)]),
      '--sslport',
      '--port',
    );
  });

  it('a port out of range or not a number', async () => {
    usageError(await run(fine({ '-p': '70000' })), '--port', '70000');
    usageError(await run(fine({ '-s': '-1' })), '--sslport');
    usageError(await run(fine({ '-p': 'abc' })), '--port');
  });

  for (const range of ['9000-8000', 'abc', '0-10', '1-70000']) {
    it(`--range ${range}`, async () => {
      usageError(await run(fine({ '-r': range })), '--range', `"${range}"`);
    });
  }

  it('--range via its long name', async () => {
    usageError(await run(fine({ '--range': '5-4' })), '--range', '"5-4"');
  });

  it('an unreadable --cert names the option and the file', async () => {
    const missing = join(dir, 'missing-cert.pem');
    usageError(await run(fine({ '--cert': missing })), '--cert', missing, 'ENOENT');
    usageError(await run(fine({ '-c': dir })), '--cert', dir, 'not a regular file');
  });

  it('a --cert or --key that is not a regular file is not read: exit 2 at once', async () => {
    // Before, /dev/zero was read until memory ran out.
    usageError(await run(fine({ '--cert': '/dev/zero' })), '--cert', '/dev/zero', 'not a regular file');
    usageError(await run(fine({ '-k': '/dev/zero' })), '--key', '/dev/zero', 'not a regular file');
  });

  it('an unreadable --key names the option and the file', async () => {
    const missing = join(dir, 'missing-key.pem');
    usageError(await run(fine({ '--key': missing })), '--key', missing, 'ENOENT');
  });

  it('a --key without read permission names the option and the file', {
    skip: process.getuid?.() === 0 ? 'root reads any file' : undefined,
  }, async () => {
    const locked = join(dir, 'locked-key.pem');
    writeFileSync(locked, 'x');
    chmodSync(locked, 0);
    usageError(await run(fine({ '-k': locked })), '--key', locked, 'EACCES');
  });

  it('a bad --advertise or --bind address names the option', async () => {
    usageError(await run(fine({ '--advertise': 'not-an-ip' })), '--advertise', 'not-an-ip');
    usageError(await run(fine({ '--bind': '300.1.1.1' })), '--bind', '300.1.1.1');
  });

  it('reads ARR_ environment variables: equal ARR_PORT and ARR_SSLPORT fail', async () => {
    usageError(
      await run(['--apps', apps], { ARR_PORT: String(port), ARR_SSLPORT: String(port) }),
      '--sslport',
      '--port',
    );
    usageError(
      await run(['--apps', apps, '-p', String(port), '-s', String(sslport)], { ARR_RANGE: '9000-8000' }),
      '--range',
      '"9000-8000"',
    );
    usageError(
      await run(['-p', String(port), '-s', String(sslport)], { ARR_CERT: join(dir, 'env-cert.pem') }),
      '--cert',
      'env-cert.pem',
    );
  });

  it('an unknown option or command fails and names it', async () => {
    const r = await run([...fine(), '--bogus-option']);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /bogus-option/);
    const c = await run([...fine(), 'serve']);
    assert.notEqual(c.code, 0, c.output);
    assert.match(c.output, /serve/);
  });

  it('import without a file fails', async () => {
    const r = await run(['import']);
    assert.notEqual(r.code, 0, r.output);
    assert.match(r.output, /arr import <file>/);
  });

  it('ignores ARR_ variables that name no option (such as ARR_TEST_MONGO_URL)', async () => {
    const r = await run(['--apps', apps, '-p', String(port), '-s', String(port)], {
      ARR_TEST_MONGO_URL: 'mongodb://127.0.0.1:1/x',
    });
    // The equal ports must be what fails, not the unrelated variable.
    usageError(r, '--sslport');
  });

  it('--help works from any working directory', async () => {
    const r = await runArr(['--help'], { cwd: tmpdir(), env: cliEnv() });
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /--sslport/);
  });
});
