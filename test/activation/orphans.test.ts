// No orphans: an arr killed by any signal, SIGKILL included, leaves no instance running (its
// watchdog stops them within seconds), and an arr that starts stops the instances a previous
// run left (its watchdog was killed too) before it listens.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { allGone, gone, processesWith, scriptApp } from '../support/activation.js';
import { fetchVia, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';

/** An app that starts a child of its own (in its process group), and answers with both pids. */
const PARENT_APP = `
const { spawn } = require('node:child_process');
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
require('node:http')
  .createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, child: child.pid })))
  .listen(Number(process.env.PORT));
`;

/** A process that is no instance of arr: a `sleep` in a process group of its own. */
function foreignProcess(): number {
  const child = spawn('sleep', ['600'], { detached: true, stdio: 'ignore' });
  child.unref();
  return child.pid!;
}

/** Its start time (/proc/PID/stat field 22), which anyone can read. */
function startTime(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

const bootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

/** A pid that no process has now (for a forged owner that looks dead). */
function unusedPid(): number {
  for (let pid = 4_000_000; ; pid--) if (gone(pid)) return pid;
}

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
    // The state file lists the instance by pid, start time and token.
    const pidsFile = readdirSync(dir).find((n) => n.endsWith('.pids'));
    assert.ok(pidsFile, 'a state file');
    assert.match(readFileSync(join(dir, pidsFile), 'utf8'), new RegExp(`^${pid} \\d+ [0-9a-f]{32}$`, 'm'));

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

  it('a forged state file does not make arr stop a process group that is not its instance', async () => {
    const dir = stateDir();
    const [port, sslport] = await freePorts(2);
    // Everything in the file is what anyone can read in /proc: pids, start times, the boot id.
    const old = foreignProcess();
    const wrongToken = foreignProcess();
    leftovers.push(old, wrongToken);
    writeFileSync(
      join(dir, `127.0.0.1_${port}_${sslport}.pids`),
      [
        `arr ${unusedPid()} 1 ${bootId()}`,
        `${old} ${startTime(old)}`,
        `${wrongToken} ${startTime(wrongToken)} ${'0'.repeat(32)}`,
        '',
      ].join('\n'),
      { mode: 0o600 },
    );
    const arr = await startArrWith([], { ports: [port!, sslport!], extraArgs: ['--state-dir', dir] });
    assert.ok(!gone(old) && !gone(wrongToken), 'the foreign groups were left alone');
    assert.match(
      arr.proc.output(),
      /no instances of arr \(neither in its cgroup nor carrying its token\): left alone/,
    );
    assert.doesNotMatch(arr.proc.output(), /left by a previous run/);
    await arr.stop();
    kill([old, wrongToken]);
  });

  it('the watchdog stops only what its arr told it of, whatever the state file says', async () => {
    const dir = stateDir();
    const app = scriptApp('orphan3', 'orphan3.localhost', PARENT_APP);
    const arr = await startArrWith([app], { extraArgs: ['--state-dir', dir] });
    const r = await fetchVia(arr.port, 'orphan3.localhost', false);
    assert.equal(r.status, 200, r.text);
    const { pid, child } = JSON.parse(r.text) as { pid: number; child: number };
    const foreign = foreignProcess();
    leftovers.push(pid, child, foreign);
    // A foreign group added to the state file, as another user who could write it would.
    const pidsFile = join(dir, readdirSync(dir).find((n) => n.endsWith('.pids'))!);
    writeFileSync(pidsFile, `${readFileSync(pidsFile, 'utf8')}${foreign} ${startTime(foreign)}\n`);
    process.kill(arr.proc.pid, 'SIGKILL');
    await arr.proc.exited;
    await allGone([pid, child], 5_000);
    // The watchdog removes the state files last, when it has stopped what it stops.
    await until('the watchdog to finish', () => readdirSync(dir).length === 0);
    assert.ok(!gone(foreign), 'the foreign group was left alone');
    kill([foreign]);
    await arr.stop();
  });
});
