// The files and directories whose content arr acts on: the state directory (which process groups arr
// stops at its start) and the ACME directory (which certificate it serves, where its keys go).
// One that another user owns or can write is refused at start, as OpenSSH's StrictModes does,
// with the path and the fix; and an apps file that other users can read is warned about when
// it holds `env` values.
import assert from 'node:assert/strict';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { helloApp, provideApps, startArrWith, writeAppsFile } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { freePorts } from '../support/ports.js';
import { ARR_CLI, run, stopAll } from '../support/proc.js';

/** uid of `nobody`: another user than arr's. */
const NOBODY = 65534;
const asRoot =
  process.geteuid?.() === 0 ? false : 'needs root, to give a directory to another user (CI runs as root)';

describe('state and ACME directories that another user could write are refused', () => {
  let base: string;
  let apps: string;
  before(async () => {
    base = mkdtempSync(join(tmpdir(), 'arr-private-'));
    apps = (await provideApps([helloApp('priv', [{ host: 'priv.localhost', ssl: 'allowed' }])]))!;
  });
  after(async () => {
    await stopAll();
    rmSync(base, { recursive: true, force: true });
    rmSync(join(apps, '..'), { recursive: true, force: true });
  });

  /** A directory for one case (0700, the test's). */
  let n = 0;
  const dir = (mode = 0o700) => {
    const d = join(base, `d${n++}`);
    mkdirSync(d, { mode });
    chmodSync(d, mode);
    return d;
  };

  /** arr with these options: it must exit 2 (a usage error) before it listens. */
  async function refused(args: string[]): Promise<string> {
    const [port, sslport] = await freePorts(2);
    const r = await run(
      process.execPath,
      [ARR_CLI, '-a', apps, '-p', String(port), '-s', String(sslport), '--bind', '127.0.0.1', ...args],
      // If arr took the directory, it would serve: the timeout ends it.
      { env: cliEnv(), timeoutMs: 10_000 },
    );
    assert.doesNotMatch(r.output, /arr listening on/, r.output);
    assert.equal(r.code, 2, r.output);
    return r.output;
  }

  it('a state directory owned by another user', { skip: asRoot }, async () => {
    const d = dir();
    chownSync(d, NOBODY, NOBODY);
    const out = await refused(['--state-dir', d]);
    assert.match(
      out,
      new RegExp(`--state-dir: ${d} is owned by uid ${NOBODY}, not by arr's user \\(uid 0\\)`),
    );
    assert.ok(out.includes(`chown 0 ${d}`), out);
    assert.deepEqual(readdirSync(d), [], 'nothing written there');
  });

  it('a state directory writable by its group, or by others', async () => {
    const group = dir(0o770);
    assert.match(await refused(['--state-dir', group]), /is writable by its group \(mode 0770\).*chmod 700/);
    const all = dir(0o777);
    const out = await refused(['--state-dir', all]);
    assert.ok(out.includes(`${all} is writable by its group and others (mode 0777)`), out);
    assert.ok(out.includes(`chmod 700 ${all}`), out);
  });

  it('a state file that another user owns, in a directory of arr', { skip: asRoot }, async () => {
    const d = dir();
    const planted = join(d, '127.0.0.1_1_2.pids');
    writeFileSync(planted, 'arr 1 1 x\n');
    chownSync(planted, NOBODY, NOBODY);
    const out = await refused(['--state-dir', d]);
    assert.ok(out.includes(`${planted} is owned by uid ${NOBODY}`), out);
    assert.ok(out.includes('remove it'), out);
  });

  it('a directory above it that others can write (no sticky bit), or a symlink to a foreign one', async () => {
    const open = dir(0o777);
    const inner = join(open, 'state');
    mkdirSync(inner, { mode: 0o700 });
    const out = await refused(['--state-dir', inner]);
    assert.ok(out.includes(`${open} (above ${inner}) is writable by its group and others`), out);
    assert.ok(out.includes(`chmod go-w ${open}`), out);
    // Through a symlink: the directory it leads to is what counts.
    const link = join(base, 'link');
    const target = dir(0o777);
    symlinkSync(target, link);
    assert.ok((await refused(['--state-dir', link])).includes(`${target} is writable by`));
  });

  const acme = (d: string) => [
    '--acme-email',
    'ops@example.org',
    '--acme-directory',
    'https://127.0.0.1:9/directory',
    '--acme-dir',
    d,
    '--state-dir',
    dir(),
  ];

  it('an ACME directory owned by another user: no key is written below it, no certificate read', {
    skip: asRoot,
  }, async () => {
    const d = dir();
    mkdirSync(join(d, 'certs'), { mode: 0o700 });
    writeFileSync(join(d, 'certs', 'priv.localhost.json'), '{"host":"priv.localhost"}', { mode: 0o600 });
    chownSync(d, NOBODY, NOBODY);
    const out = await refused(acme(d));
    assert.match(out, new RegExp(`--acme-dir: ${d} is owned by uid ${NOBODY}`));
    assert.deepEqual(readdirSync(d), ['certs'], 'no account or ticket key written');
  });

  it('an ACME directory writable by its group; a certificate file in it that others can write', async () => {
    assert.match(await refused(acme(dir(0o770))), /--acme-dir: .* is writable by its group \(mode 0770\)/);
    const d = dir();
    mkdirSync(join(d, 'certs'), { mode: 0o700 });
    const cert = join(d, 'certs', 'priv.localhost.json');
    writeFileSync(cert, '{}');
    chmodSync(cert, 0o666);
    const out = await refused(acme(d));
    assert.ok(out.includes(`${cert} is writable by its group and others (mode 0666)`), out);
    assert.ok(out.includes(`chmod go-w ${cert}`), out);
  });
});

describe('an apps file that other users can read, with env values', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-exposed-'));
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });
  const validate = (file: string) => run(process.execPath, [ARR_CLI, 'validate', file], { env: cliEnv() });
  const warning =
    /warning: .*apps\.json is readable by others \(mode 0604\) and holds the env of 1 app \(secretive\.localhost\): .*chmod 600/;

  it('is warned about at start and by arr validate, until only its owner can read it', async () => {
    const secretive = {
      ...helloApp('s', [{ host: 'secretive.localhost', ssl: 'allowed' }]),
      env: { DB_PASSWORD: 'x' },
    };
    const plain = helloApp('p', [{ host: 'plain.localhost', ssl: 'allowed' }]);
    const file = join(dir, 'apps.json');
    writeAppsFile(file, [secretive, plain]);
    chmodSync(file, 0o604);
    const arr = await startArrWith([], { file, extraArgs: ['--state-dir', join(dir, 'state')] });
    assert.match(arr.proc.output(), /"msg":"registry: .*apps\.json is readable by others \(mode 0604\)/);
    await arr.stop();
    const r = await validate(file);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, warning);
    chmodSync(file, 0o640);
    assert.match((await validate(file)).output, /is readable by its group \(mode 0640\)/);
    chmodSync(file, 0o600);
    assert.doesNotMatch((await validate(file)).output, /warning/);
    // Readable by all, but no app has env: nothing to warn about.
    writeAppsFile(file, [plain]);
    chmodSync(file, 0o644);
    assert.doesNotMatch((await validate(file)).output, /warning/);
  });
});
