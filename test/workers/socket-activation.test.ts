import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fetchVia, helloApp, pidOf, provideApps } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { freePorts, freeRange } from '../support/ports.js';
import { ARR_CLI, start, stopAll } from '../support/proc.js';
import { connectionPerWorker, requestOn, titleOf, waitForWorkers } from '../support/workers.js';

const ACTIVATE = '/usr/bin/systemd-socket-activate';
const missing = !existsSync(ACTIVATE);
if (missing) {
  const message = 'systemd-socket-activate missing: run scripts/install-systemd.sh (as root)';
  if (process.env.CI) throw new Error(message);
  console.log(`# SKIPPED: ${message}`);
}

/** Sockets passed by the service manager (LISTEN_FDS) are held by the primary and served by its workers. */
describe('arr --workers under socket activation', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-wsock-'));
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('every worker serves both passed sockets', async () => {
    const host = 'wsock.localhost';
    const apps = (await provideApps([helloApp('wsock', [{ host, ssl: 'allowed' }])]))!;
    const [port, sslport] = await freePorts(2);
    const range = await freeRange(5);
    const proc = start(
      ACTIVATE,
      [
        '-l',
        `127.0.0.1:${port}`,
        '-l',
        `127.0.0.1:${sslport}`,
        '-E',
        `STATE_DIRECTORY=${join(dir, 'state')}`,
        process.execPath,
        ARR_CLI,
        ...['-a', apps, '-p', String(port), '-s', String(sslport), '-r', `${range[0]}-${range[1]}`],
        ...['--advertise', '127.0.0.1', '--workers', '2'],
      ],
      { env: cliEnv() },
    );
    try {
      await proc.waitFor(`Listening on 127.0.0.1:${sslport}`);
      // The first connection starts arr, and waits in the kernel's queue meanwhile.
      const first = await fetchVia(port!, host, false);
      assert.equal(first.status, 200, first.text);
      await proc.waitFor('(sockets passed by the service manager)');
      assert.equal(titleOf(proc.pid), 'arr primary'); // systemd-socket-activate execs arr
      const workers = [...(await waitForWorkers(proc.pid, 2)).values()];
      // Each worker takes a connection on each passed socket, and answers a request on it.
      const held = [
        ...(await connectionPerWorker(port!, workers, false, host)).values(),
        ...(await connectionPerWorker(sslport!, workers, true, host)).values(),
      ];
      for (const r of await Promise.all(held.map((socket) => requestOn(socket, host, '/slow?ms=100')))) {
        assert.equal(r.status, 200, r.text);
        assert.equal(pidOf(r), pidOf(first));
      }
      assert.equal(await proc.stop(), 0);
    } finally {
      rmSync(join(apps, '..'), { recursive: true, force: true });
    }
  });
});
