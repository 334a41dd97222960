import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchVia, helloApp, pidOf, provideApps } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { until } from '../support/poll.js';
import { freePorts, freeRange } from '../support/ports.js';
import { ARR_CLI, repoRoot, start, stopAll } from '../support/proc.js';

const ACTIVATE = '/usr/bin/systemd-socket-activate';
const missing = !existsSync(ACTIVATE) || !existsSync('/usr/bin/python3');
if (missing) {
  const message = `systemd-socket-activate or python3 missing: run scripts/install-systemd.sh (as root)`;
  if (process.env.CI) throw new Error(message);
  console.log(`# SKIPPED: ${message}`);
}

/** Receives sd_notify datagrams on a unix socket and prints each (Node has no unix datagram sockets). */
const RECEIVER = `
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    print("message: " + s.recv(4096).decode().replace("\\n", " "), flush=True)
`;

/** A process's environment, one variable a line. */
function environOf(pid: number): string {
  return readFileSync(`/proc/${pid}/environ`, 'utf8').replace(/\0/g, '\n');
}

/** The socket inodes a process holds open (/proc/PID/fd). */
function socketsOf(pid: number): Set<string> {
  const out = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (link.startsWith('socket:')) out.add(link);
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/**
 * arr under a service manager, with systemd's own tools: systemd-socket-activate binds both
 * ports and starts arr only when the first connection comes (which waits in the kernel's queue
 * meanwhile), passing the sockets as LISTEN_FDS; systemd-notify (which arr runs) tells a
 * NOTIFY_SOCKET when arr is ready, reloads and stops.
 */
describe('arr as a service', { skip: missing }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-service-'));
  let apps = '';
  let range: [number, number];

  before(async () => {
    apps = (await provideApps([helloApp('svc', [{ host: 'svc.localhost', ssl: 'allowed' }])]))!;
    range = await freeRange(5);
  });
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
    rmSync(join(apps, '..'), { recursive: true, force: true });
  });

  /** arr under systemd-socket-activate on both ports; `names`: its --fdname, if any. */
  async function activated(names: string | undefined, notify?: string) {
    const [port, sslport] = await freePorts(2);
    const stateDir = join(dir, `state-${port}`);
    const env = cliEnv(notify ? { NOTIFY_SOCKET: notify } : {});
    const args = [
      '-l',
      `127.0.0.1:${port}`,
      '-l',
      `127.0.0.1:${sslport}`,
      ...(names ? [`--fdname=${names}`] : []),
      // systemd's state directory: arr's state file goes there by default.
      `-E`,
      `STATE_DIRECTORY=${stateDir}`,
      ...(notify ? ['-E', `NOTIFY_SOCKET=${notify}`] : []),
      process.execPath,
      ARR_CLI,
      '-a',
      apps,
      '-p',
      String(port),
      '-s',
      String(sslport),
      '-r',
      `${range[0]}-${range[1]}`,
      '--advertise',
      '127.0.0.1',
    ];
    const proc = start(ACTIVATE, args, { env });
    await proc.waitFor(`Listening on 127.0.0.1:${sslport}`);
    return { proc, port: port!, sslport: sslport!, stateDir };
  }

  it('serves both ports from sockets passed in the order of -p, -s; connections made before arr runs are served', async () => {
    const { proc, port, sslport, stateDir } = await activated(undefined);
    // arr does not run yet: the first connection starts it, and waits in the backlog meanwhile.
    const plain = await fetchVia(port, 'svc.localhost', false);
    assert.equal(plain.status, 200, plain.text);
    const secure = await fetchVia(sslport, 'svc.localhost', true);
    assert.equal(secure.status, 200, secure.text);
    assert.equal(pidOf(secure), pidOf(plain));
    await proc.waitFor('(sockets passed by the service manager)');
    assert.ok(
      readdirSync(stateDir).some((f) => f.endsWith('.pids')),
      'the state file is in STATE_DIRECTORY',
    );
    // The instance holds none of arr's listening sockets.
    const arrPid = proc.pid; // systemd-socket-activate execs arr in its own process
    const listening = [...socketsOf(arrPid)];
    const shared = [...socketsOf(pidOf(plain))].filter((s) => listening.includes(s));
    assert.deepEqual(shared, [], 'no socket of arr in the instance');
    assert.doesNotMatch(environOf(pidOf(plain)), /^LISTEN_/m, 'no LISTEN_* in the instance');
    assert.equal(await proc.stop(), 0);
  });

  it('takes the sockets by name (LISTEN_FDNAMES), whatever their order', async () => {
    const { proc, port, sslport } = await activated('https:http');
    // Named the other way round: the first socket (bound to "port") is arr's HTTPS one.
    const secure = await fetchVia(port, 'svc.localhost', true);
    assert.equal(secure.status, 200, secure.text);
    const plain = await fetchVia(sslport, 'svc.localhost', false);
    assert.equal(plain.status, 200, plain.text);
    assert.equal(await proc.stop(), 0);
  });

  it('refuses sockets it cannot tell apart: exit 2 naming LISTEN_FDNAMES', async () => {
    const { proc, port } = await activated('http:http');
    await fetchVia(port, 'svc.localhost', false).catch(() => undefined);
    assert.equal(await proc.exited, 2);
    assert.match(proc.output(), /^arr: LISTEN_FDNAMES="http:http": socket 2 is named "http"/m);
  });

  it('tells NOTIFY_SOCKET: READY=1 when it serves, RELOADING=1 then READY=1 on SIGHUP, STOPPING=1', async () => {
    const socket = join(dir, 'notify.sock');
    const receiver = start('/usr/bin/python3', ['-c', RECEIVER, socket]);
    await receiver.waitFor('listening');
    const { proc, port } = await activated(undefined, socket);
    const answer = await fetchVia(port, 'svc.localhost', false);
    assert.equal(answer.status, 200);
    assert.doesNotMatch(environOf(pidOf(answer)), /^NOTIFY_SOCKET=/m, 'the instance cannot speak for arr');
    await receiver.waitFor(/message: READY=1/);
    proc.child.kill('SIGHUP');
    await receiver.waitFor(/message: READY=1[\s\S]*message: RELOADING=1[\s\S]*message: READY=1/);
    await proc.waitFor('reload: default certificate read');
    assert.equal(await proc.stop(), 0);
    await until('STOPPING=1', () => /message: STOPPING=1/.test(receiver.output()));
    assert.doesNotMatch(proc.output(), /cannot notify/);
    await receiver.stop();
  });

  it('LISTEN_FDS meant for another process is ignored: arr binds its ports itself', async () => {
    const [port, sslport] = await freePorts(2);
    const r = start(process.execPath, [ARR_CLI, '-a', apps, '-p', String(port), '-s', String(sslport)], {
      env: cliEnv({ LISTEN_FDS: '2', LISTEN_PID: '1', STATE_DIRECTORY: join(dir, 'other') }),
    });
    await r.waitFor(`arr listening on http://*:${port}`);
    assert.doesNotMatch(r.output(), /sockets passed/);
    assert.equal(await r.stop(), 0);
  });

  it('the unit files ask for what arr does', () => {
    const unit = readFileSync(join(repoRoot, 'contrib/systemd/arr.service'), 'utf8');
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'ExecReload=/bin/kill -HUP $MAINPID',
      'StateDirectory=arr',
      'KillMode=mixed',
    ])
      assert.ok(unit.includes(`\n${line}\n`), line);
    const socket = readFileSync(join(repoRoot, 'contrib/systemd/arr.socket'), 'utf8');
    assert.match(socket, /\nListenStream=80\nListenStream=443\n/);
  });
});
