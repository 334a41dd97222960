// No orphans: an arr killed by any signal, SIGKILL included, leaves no instance running (its
// watchdog stops them within seconds), and an arr that starts stops the instances a previous
// run left (its watchdog was killed too) before it listens.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { allGone, gone, processesWith, scriptApp } from '../support/activation.js';
import { fetchVia, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

/** An app that starts a child of its own (in its process group), and answers with both pids. */
const PARENT_APP = `
const { spawn } = require('node:child_process');
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
require('node:http')
  .createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, child: child.pid })))
  .listen(Number(process.env.PORT));
`;

function kill(pids: number[], signal: NodeJS.Signals = 'SIGKILL'): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // gone
    }
  }
}

describe('no orphans', () => {
  const dirs: string[] = [];
  const leftovers: number[] = [];
  const stateDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'arr-state-'));
    dirs.push(d);
    return d;
  };
  after(async () => {
    kill(leftovers);
    await stopAll();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('kill -9 of arr: its instances, and what they started, are gone within a few seconds', async () => {
    const dir = stateDir();
    const app = scriptApp('orphan1', 'orphan1.localhost', PARENT_APP);
    const arr = await startArrWith([app], { extraArgs: ['--state-dir', dir] });
    const r = await fetchVia(arr.port, 'orphan1.localhost', false);
    assert.equal(r.status, 200, r.text);
    const { pid, child } = JSON.parse(r.text) as { pid: number; child: number };
    leftovers.push(pid, child);
    assert.ok(!gone(pid) && !gone(child));
    // The state file lists the instance by pid and start time.
    const pidsFile = readdirSync(dir).find((n) => n.endsWith('.pids'));
    assert.ok(pidsFile, 'a state file');
    assert.match(readFileSync(join(dir, pidsFile), 'utf8'), new RegExp(`^${pid} \\d+$`, 'm'));

    process.kill(arr.proc.pid, 'SIGKILL');
    await arr.proc.exited;
    const t0 = Date.now();
    await allGone([pid, child], 5_000);
    assert.ok(Date.now() - t0 < 5_000);
    await until('the watchdog to remove the state files', () => readdirSync(dir).length === 0);
    await arr.stop();
  });

  it('an arr that starts stops the leftovers of its previous run (watchdog killed too) before it listens', async () => {
    const dir = stateDir();
    const app = scriptApp('orphan2', 'orphan2.localhost', PARENT_APP);
    const first = await startArrWith([app], { extraArgs: ['--state-dir', dir] });
    const r = await fetchVia(first.port, 'orphan2.localhost', false);
    assert.equal(r.status, 200, r.text);
    const { pid, child } = JSON.parse(r.text) as { pid: number; child: number };
    leftovers.push(pid, child);
    // arr and its watchdog die together: nothing stops the instance now.
    const watchdogs = processesWith('arr-watchdog', dir);
    assert.equal(watchdogs.length, 1, 'one watchdog, named by its state file');
    kill([first.proc.pid, ...watchdogs]);
    await first.proc.exited;
    await allGone(watchdogs);
    assert.ok(!gone(pid) && !gone(child), 'the instance outlived arr and its watchdog');

    // The same arr again (same ports and state directory), on the same apps file.
    const second = await startArrWith([], {
      file: first.appsFile,
      ports: [first.port, first.sslport],
      range: first.range,
      extraArgs: ['--state-dir', dir],
    });
    // By the time it listens, the leftovers are gone.
    assert.ok(gone(pid), `leftover ${pid} stopped before arr listened`);
    assert.ok(gone(child), `its child ${child} too`);
    const out = second.proc.output();
    const stopped = out.indexOf('left by a previous run of arr');
    assert.ok(stopped >= 0, out);
    assert.ok(stopped < out.indexOf('arr listening on'));
    // And it serves as before, with a new instance.
    const again = await fetchVia(second.port, 'orphan2.localhost', false);
    assert.equal(again.status, 200, again.text);
    const next = JSON.parse(again.text) as { pid: number; child: number };
    leftovers.push(next.pid, next.child);
    assert.notEqual(next.pid, pid);
    await second.stop();
    await allGone([next.pid, next.child]);
    // A clean stop leaves no state behind.
    assert.deepEqual(readdirSync(dir), []);
    rmSync(join(first.appsFile!, '..'), { recursive: true, force: true });
  });
});
