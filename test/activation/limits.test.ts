// Per-app limits (issue #31), with real processes in real cgroups: v2 where the host has the
// controllers there, v1 on hybrid hosts such as this one and CI. Without root, the warnings that
// say the limits are not enforced are what is tested.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import type { Overview } from '../../src/ops/dashboard/dashboard-data.js';
import { type AppDoc, type ArrUnderTest, fetchVia, startArrWith, writeAppsFile } from '../support/arr.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { ARR_CLI, run, stopAll } from '../support/proc.js';

/** /eat allocates until killed; /spin starts a busy loop; /fork starts 60 sleeps; /files opens files until refused. */
const APP = `
const http = require('node:http');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const kept = [];
const kids = [];
http.createServer((req, res) => {
  if (req.url === '/eat') for (;;) kept.push(Buffer.alloc(8 << 20, 1));
  if (req.url === '/spin') {
    const c = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
    kids.push(c);
    return res.end(String(c.pid));
  }
  if (req.url === '/fork') {
    let pending = 60, ok = 0, failed = 0;
    const done = () => { if (--pending === 0) res.end(JSON.stringify({ ok, failed })); };
    for (let i = 0; i < 60; i++) {
      const c = spawn('sleep', ['60'], { stdio: 'ignore' });
      kids.push(c);
      c.once('spawn', () => { ok++; done(); });
      c.once('error', () => { failed++; done(); });
    }
    return;
  }
  if (req.url === '/files') {
    let n = 0;
    try { for (;;) { fs.openSync('/dev/null', 'r'); n++; } } catch (e) { return res.end(JSON.stringify({ n, code: e.code })); }
  }
  res.end(JSON.stringify({ pid: process.pid }));
}).listen(Number(process.env.PORT));
process.on('SIGTERM', () => { for (const k of kids) k.kill('SIGKILL'); process.exit(0); });
`;

const isRoot = process.getuid?.() === 0;

function app(name: string, limits: Record<string, unknown>): AppDoc {
  return {
    _id: new ObjectId(),
    name,
    process: { executable: process.execPath, args: ['-e', APP] },
    hosts: [{ host: `${name}.localhost`, ssl: 'allowed' }],
    limits,
  };
}

/** CPU seconds a process has used (/proc/PID/stat: utime + stime). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

const get = async (arr: ArrUnderTest, name: string, path = '/') =>
  fetchVia(arr.port, `${name}.localhost`, false, { path, timeoutMs: 20_000 });

describe('limits: memory, cpu, pids and files hold each instance', {
  skip: !isRoot && 'limits need root',
}, () => {
  let arr: ArrUnderTest;
  let admin: number;
  const adminGet = async (path: string) =>
    (await fetchVia(admin, `127.0.0.1:${admin}`, false, { path })).text;
  before(async () => {
    admin = await freePort();
    arr = await startArrWith(
      [
        app('eater', { memory: '96M' }),
        app('spinner', { cpu: 0.25 }),
        app('forker', { pids: 40 }),
        app('opener', { files: 64 }),
      ],
      { extraArgs: ['--admin', `127.0.0.1:${admin}`] },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('an instance past its memory limit is killed, reported oom, and started again', async () => {
    const first = JSON.parse((await get(arr, 'eater')).text) as { pid: number };
    const eaten = await get(arr, 'eater', '/eat');
    assert.equal(eaten.status, 502, eaten.text);
    await until('the oom warning', () =>
      new RegExp(`eater\\[${first.pid}\\] was killed by its memory limit \\(96M\\)`).test(arr.proc.output()),
    );
    const next = await until(
      'a new instance',
      async () => {
        const r = await get(arr, 'eater');
        return r.status === 200 && (JSON.parse(r.text) as { pid: number });
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    assert.notEqual(next.pid, first.pid);
    assert.match(await adminGet('/metrics'), /arr_instance_exits_total\{app="eater",reason="oom"\} 1/);
    const overview = JSON.parse(await adminGet('/api/overview?q=eater')) as Overview;
    const eater = overview.apps[0]!;
    assert.equal(eater.restarts, 1);
    assert.equal(eater.lastExit?.reason, 'oom');
    assert.equal(eater.lastExit?.pid, first.pid);
    assert.equal(eater.lastExit?.signal, 'SIGKILL');
    assert.deepEqual(eater.unenforced, []);
    const [instance] = eater.instances;
    assert.equal(instance?.pid, next.pid);
    assert.ok((instance?.memory ?? 0) > 1 << 20, `its memory, from its cgroup: ${instance?.memory}`);
    assert.equal(typeof instance?.cpu, 'number');
  });

  it('a busy loop with cpu 0.25 gets about a quarter of a core', async () => {
    const spin = await get(arr, 'spinner', '/spin');
    const pid = Number(spin.text);
    const before = cpuSeconds(pid);
    const start = Date.now();
    await new Promise((r) => setTimeout(r, 3000)); // a measurement window, not a wait for an event
    const share = (cpuSeconds(pid) - before) / ((Date.now() - start) / 1000);
    assert.ok(share <= 0.3, `the loop had ${share.toFixed(2)} of a core`);
    assert.ok(share >= 0.05, `the loop ran at all (${share.toFixed(2)})`);
  });

  it('a fork bomb stops at pids', async () => {
    const r = JSON.parse((await get(arr, 'forker', '/fork')).text) as { ok: number; failed: number };
    assert.ok(r.failed > 0 && r.ok < 40, JSON.stringify(r));
  });

  it('an app opening files stops at files', async () => {
    const r = JSON.parse((await get(arr, 'opener', '/files')).text) as { n: number; code: string };
    assert.equal(r.code, 'EMFILE');
    assert.ok(r.n < 64, JSON.stringify(r));
  });
});

describe('limits that cannot be enforced are said, never silently', {
  skip: !isRoot && 'runs arr validate as nobody',
}, () => {
  it('arr validate and arr, run as a user who is not root, name each app and limit; the app starts', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'arr-limits-'));
    chmodSync(dir, 0o755);
    try {
      const file = writeAppsFile(join(dir, 'apps.json'), [
        app('capped', { memory: '64M', cpu: 1, files: 64 }),
      ]);
      chmodSync(file, 0o644);
      const r = await run('/usr/bin/setpriv', [
        ...['--reuid', '65534', '--regid', '65534', '--clear-groups'],
        ...[process.execPath, ARR_CLI, 'validate', file],
      ]);
      assert.equal(r.code, 0, r.output);
      assert.match(
        r.output,
        /warning: app \S+: limits\.memory is not enforced here: instances have no cgroup here: arr is not root/,
      );
      assert.match(r.output, /warning: app \S+: limits\.cpu is not enforced here/);
      assert.doesNotMatch(r.output, /limits\.files/, 'prlimit sets files below the hard limit, as any user');
      const asRoot = await run(process.execPath, [ARR_CLI, 'validate', file]);
      assert.doesNotMatch(asRoot.output, /not enforced/, asRoot.output);

      // arr itself as nobody: warned at start, per limit, and the app still starts.
      const state = join(dir, 'state');
      mkdirSync(state);
      chownSync(state, 65534, 65534);
      const arr = await startArrWith([], {
        file,
        via: ['/usr/bin/setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'],
        extraArgs: ['--state-dir', state],
      });
      try {
        const out = arr.proc.output();
        assert.match(out, /capped: limits\.memory is not enforced: instances have no cgroup here/);
        assert.match(out, /capped: limits\.cpu is not enforced/);
        assert.doesNotMatch(out, /limits\.files is not enforced/);
        assert.equal((await get(arr, 'capped')).status, 200);
      } finally {
        await arr.stop();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
