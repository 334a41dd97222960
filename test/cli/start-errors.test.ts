import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { helloApp, provideApps } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { freePorts } from '../support/ports.js';
import { ARR_CLI, type Ran, repoRoot, run, stopAll } from '../support/proc.js';

/** Whether this process may drop CAP_NET_BIND_SERVICE for a child (root, with setpriv) and ports below 1024 need it. */
const canDropBind =
  process.getuid?.() === 0 &&
  existsSync('/usr/bin/setpriv') &&
  Number(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')) > 81;

/**
 * Start errors that say what to do, with the documented exit codes: 2 for what the command line
 * or the environment says (a malformed --mongo, a certificate and key that do not belong
 * together, a bad ARR_* value), 1 for what the machine refuses (a port in use, or one that
 * needs privileges), each on one `arr:` line naming the flag or variable.
 */
describe('start errors', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-start-errors-'));
  let apps = '';
  let busy: Server;
  let busyPort = 0;
  let port = 0;
  let sslport = 0;
  let adminPort = 0;

  before(async () => {
    apps = (await provideApps([helloApp('e', [{ host: 'e.localhost', ssl: 'allowed' }])]))!;
    [port = 0, sslport = 0, adminPort = 0] = await freePorts(3);
    busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    busyPort = (busy.address() as { port: number }).port;
  });
  after(async () => {
    busy.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    rmSync(join(apps, '..'), { recursive: true, force: true });
  });

  const arr = (args: string[], env: Record<string, string> = {}, cmd = [process.execPath, ARR_CLI]) =>
    run(
      cmd[0]!,
      [...cmd.slice(1), '-a', apps, '--bind', '127.0.0.1', '--state-dir', join(dir, 'state'), ...args],
      { env: cliEnv(env), timeoutMs: 20_000 },
    );
  /** The one `arr:` line, with the exit code checked. */
  const line = (r: Ran, code: number): string => {
    assert.equal(r.code, code, r.output);
    const found = r.output.split('\n').find((l) => l.startsWith('arr: '));
    assert.ok(found, r.output);
    assert.doesNotMatch(r.output, /\n\s+at /, 'no stack');
    return found;
  };

  it('a port in use names its flag (-p, -s, --admin): exit 1', async () => {
    const p = line(await arr(['-p', String(busyPort), '-s', String(sslport)]), 1);
    assert.match(
      p,
      new RegExp(`^arr: -p ${busyPort} on 127\\.0\\.0\\.1: the port is already in use \\(EADDRINUSE\\)`),
    );
    const s = line(await arr(['-p', String(port), '-s', String(busyPort)]), 1);
    assert.match(
      s,
      new RegExp(
        `^arr: -s ${busyPort} on 127\\.0\\.0\\.1: the port is already in use \\(EADDRINUSE\\): .*give -s another port`,
      ),
    );
    const a = line(await arr(['-p', String(port), '-s', String(sslport), '--admin', String(busyPort)]), 1);
    assert.match(
      a,
      new RegExp(`^arr: --admin ${busyPort} on 127\\.0\\.0\\.1: the port is already in use \\(EADDRINUSE\\)`),
    );
  });

  it('a port below 1024 without the privilege: the ways out (socket activation, or root with per-app users)', {
    skip: canDropBind ? undefined : 'needs root, setpriv, and ports below 1024 privileged',
  }, async () => {
    const r = await arr(['-p', '81', '-s', String(sslport)], {}, [
      '/usr/bin/setpriv',
      '--inh-caps=-all',
      '--bounding-set=-net_bind_service',
      process.execPath,
      ARR_CLI,
    ]);
    const l = line(r, 1);
    assert.match(
      l,
      /^arr: -p 81 on 127\.0\.0\.1: permission denied \(EACCES\): ports below 1024 need privileges/,
    );
    assert.match(l, /socket activation: contrib\/systemd\/arr\.socket/);
    assert.match(l, /run arr as root and give each app a "user"/);
  });

  it('a malformed --mongo is a usage error naming the flag, without the URL: exit 2', async () => {
    const l = line(
      await arr(['-p', String(port), '-s', String(sslport), '--mongo', 'mongo://user:secret@db/arr']),
      2,
    );
    assert.match(l, /^arr: --mongo: not a MongoDB connection string \(/);
    assert.doesNotMatch(l, /secret/);
    const e = line(await arr(['-p', String(port), '-s', String(sslport)], { ARR_MONGO: 'nonsense' }), 2);
    assert.match(e, /^arr: --mongo: not a MongoDB connection string .*\(from ARR_MONGO, value not shown\)$/);
  });

  it('a --cert whose --key does not belong to it names both files: exit 2', async () => {
    const cert = join(repoRoot, 'certs/app1-cert.pem');
    const key = join(repoRoot, 'certs/ws1-key.pem');
    const l = line(await arr(['-p', String(port), '-s', String(sslport), '--cert', cert, '--key', key]), 2);
    assert.equal(l, `arr: --cert and --key: "${cert}" does not match its key "${key}"`);
  });

  it('an ARR_* variable with a bad value names the variable and the value: exit 2', async () => {
    const p = line(await arr(['-s', String(sslport)], { ARR_PORT: 'eighty' }), 2);
    assert.match(p, /^arr: --port must be a port number .* \(from ARR_PORT="eighty"\)$/);
    const level = line(await arr(['-p', String(port), '-s', String(sslport)], { ARR_LOG_LEVEL: 'loud' }), 2);
    assert.match(level, /log-level.*"loud".*\(from ARR_LOG_LEVEL="loud"\)$/);
    // The same option on the command line: the flag alone.
    const flag = line(await arr(['-p', 'eighty', '-s', String(sslport)]), 2);
    assert.doesNotMatch(flag, /ARR_PORT/);
  });

  it('nothing listens after a failed start', async () => {
    line(await arr(['-p', String(port), '-s', String(busyPort), '--admin', String(adminPort)]), 1);
    const probe = createServer();
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen(port, '127.0.0.1', () => resolve());
    });
    probe.close();
  });
});
