// Nothing an instance starts runs outside its cgroup. The instance was moved into its group after
// spawn() returned: a compiled program that forks a daemon (setsid) as its very first action
// left it in arr's group, outside the instance's process group, and it outlived the instance
// and arr (3 of 3). Now a wrapper joins the group before the program runs. And the groups of an
// arr that was killed (with its watchdog) are removed by the next arr that starts, what is in
// them killed; a live arr's groups are left alone. Security review #25, finding 2.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { allGone, gone, processesWith, scriptApp } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, fetchVia, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

/** Forks a daemon (setsid, then pause) before anything else, then runs its arguments with DAEMON_PID set. */
const RACER_C = `
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
int main(int argc, char **argv) {
  pid_t daemon = fork();
  if (daemon == 0) {
    setsid();
    for (;;) pause();
  }
  char pid[32];
  snprintf(pid, sizeof pid, "%d", (int)daemon);
  setenv("DAEMON_PID", pid, 1);
  if (argc > 1) execvp(argv[1], argv + 1);
  return 127;
}
`;

/** Answers every request with {pid, daemon, args} (its arguments after the script). */
const SERVER = `
const args = process.argv.slice(1);
require('node:http')
  .createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, daemon: Number(process.env.DAEMON_PID), args })))
  .listen(Number(process.env.PORT));
`;

const isRoot = process.getuid?.() === 0;
const inCI = process.env.CI === 'true';
const hasCc = spawnSync('cc', ['--version']).status === 0;
const skip = !isRoot ? 'cgroups need root' : !hasCc && !inCI ? 'no C compiler (cc)' : false;

/** The cgroup v2 path of a process (/proc/PID/cgroup, the "0::" line). */
function cgroupOf(pid: number): string | undefined {
  try {
    return /^0::(\/.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

/** Where the cgroup2 file system is mounted (/sys/fs/cgroup, or /sys/fs/cgroup/unified on a hybrid layout). */
function cgroup2Mount(): string | undefined {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [before, after] = line.split(' - ');
    if (before && after?.startsWith('cgroup2 ') && before.split(' ')[3] === '/') return before.split(' ')[4];
  }
  return undefined;
}

/**
 * A cgroup (v2) of the test's own for arr to run in, through `via`: an arr started meanwhile on
 * this machine (a test file run alongside, another checkout's) sweeps the stale folders beside
 * its own group, and must not do what the test waits for.
 */
function openBox(name: string): { box: string; via: string[] } {
  const box = join(cgroup2Mount()!, cgroupOf(process.pid)!, `${name}-test-${process.pid}`);
  mkdirSync(box);
  return { box, via: ['/bin/sh', '-c', 'echo $$ > "$0" && exec "$@"', join(box, 'cgroup.procs')] };
}

/** Kills what is left in the box and removes it, its groups first. */
async function closeBox(box: string): Promise<void> {
  writeFileSync(join(box, 'cgroup.kill'), '1');
  await until(`${box} to be removed`, () => {
    for (const dir of subtreeOf(box).reverse()) rmdirSync(dir);
    return !existsSync(box);
  });
}

/** A folder and the folders below it, parents first. */
function subtreeOf(dir: string): string[] {
  const all = [dir];
  for (let i = 0; i < all.length; i++)
    for (const e of readdirSync(all[i]!, { withFileTypes: true }))
      if (e.isDirectory()) all.push(join(all[i]!, e.name));
  return all;
}

/** The next arr after `first` (dead): on its ports, with its apps file and state directory, in the box. */
function restarted(first: ArrUnderTest, state: string, via: string[]): Promise<ArrUnderTest> {
  return startArrWith([], {
    file: first.appsFile,
    ports: [first.port, first.sslport],
    range: first.range,
    extraArgs: ['--state-dir', state],
    via,
  });
}

function kill(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

describe('cgroups: a daemon forked at once stays in its instance group', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-racer-'));
  const racer = join(dir, 'racer');
  const leftovers: number[] = [];
  /** Words a shell would expand, were the wrapper to read the arguments as shell words. */
  const hostile = [`$(touch ${join(dir, 'pwned')})`, '`id`', '"; exit 3; "', "'", '*', '$0 $@ $$', '\nx'];
  const racerApp = (name: string): AppDoc => ({
    _id: new ObjectId(),
    name,
    process: { executable: racer, args: [process.execPath, '-e', SERVER, ...hostile] },
    hosts: [{ host: `${name}.localhost`, ssl: 'allowed' }],
  });
  /** Starts each app through arr; its instance's and daemon's pids. */
  const startAll = async (arr: ArrUnderTest, names: string[]) => {
    const started: { pid: number; daemon: number; args: string[] }[] = [];
    for (const name of names) {
      const r = await fetchVia(arr.port, `${name}.localhost`, false);
      assert.equal(r.status, 200, r.text);
      const s = JSON.parse(r.text) as { pid: number; daemon: number; args: string[] };
      leftovers.push(s.pid, s.daemon);
      started.push(s);
    }
    return started;
  };

  before(() => {
    writeFileSync(join(dir, 'racer.c'), RACER_C);
    const cc = spawnSync('cc', ['-O2', '-o', racer, join(dir, 'racer.c')], { encoding: 'utf8' });
    assert.equal(cc.status, 0, `cc: ${cc.stderr}`);
  });
  after(async () => {
    kill(leftovers);
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('3 racers: each daemon is in its instance group, and is stopped with arr; arguments pass as they are', async (t) => {
    const names = ['racer1', 'racer2', 'racer3'];
    const arr = await startArrWith(names.map(racerApp), {
      extraArgs: ['--state-dir', mkdtempSync(join(dir, 'state-'))],
    });
    if (/instances run without a cgroup of their own/.test(arr.proc.output())) {
      assert.ok(!inCI, `CI runs as root with cgroup2: ${arr.proc.output()}`);
      t.skip('no cgroup here');
      await arr.stop();
      return;
    }
    const started = await startAll(arr, names);
    for (const { pid, daemon, args } of started) {
      assert.deepEqual(args, hostile, 'the arguments, as they are');
      const group = cgroupOf(pid);
      assert.match(group ?? '', new RegExp(`/arr-${arr.proc.pid}/[^/]+$`), 'the instance is in its group');
      assert.equal(cgroupOf(daemon), group, `daemon ${daemon} is in its instance's group`);
    }
    assert.ok(!existsSync(join(dir, 'pwned')), 'no argument was run by a shell');
    await arr.stop();
    await allGone(started.flatMap((s) => [s.pid, s.daemon]));
  });

  it("the groups of a killed arr are removed by the next one, their processes killed; a live arr's are not", async (t) => {
    const state = mkdtempSync(join(dir, 'state-'));
    const { box, via } = openBox('sweep');
    const first = await startArrWith([racerApp('racer4')], { extraArgs: ['--state-dir', state], via });
    const sleepers: number[] = [];
    try {
      if (/instances run without a cgroup of their own/.test(first.proc.output())) {
        t.skip('no cgroup here');
        await first.stop();
        return;
      }
      const { pid, daemon } = (await startAll(first, ['racer4']))[0]!;
      // arr and its watchdog die together: nothing stops the instance, its daemon, or removes the group.
      const watchdogs = processesWith('arr-watchdog', state);
      assert.equal(watchdogs.length, 1, 'one watchdog');
      kill([first.proc.pid, ...watchdogs]);
      await first.proc.exited;
      const stale = join(box, `arr-${first.proc.pid}`);
      assert.ok(existsSync(stale) && !gone(daemon), 'the group and the daemon outlived arr');

      // A live "arr" (a sleeper in arr's own group, the box) with a process in its folder.
      const [liveArr, kept] = [spawn('sleep', ['600']), spawn('sleep', ['600'])].map((c) => c.pid!) as [
        number,
        number,
      ];
      sleepers.push(liveArr, kept);
      writeFileSync(join(box, 'cgroup.procs'), String(liveArr));
      const live = join(box, `arr-${liveArr}`);
      mkdirSync(join(live, 'keep'), { recursive: true });
      writeFileSync(join(live, 'keep', 'cgroup.procs'), String(kept));
      const second = await restarted(first, state, via);
      assert.match(
        second.proc.output(),
        new RegExp(
          `removed the cgroups of arr\\[${first.proc.pid}\\], which is gone: \\d+ process(es)? left in them killed`,
        ),
      );
      await allGone([pid, daemon]);
      await until('the stale group to be removed', () => !existsSync(stale));
      assert.ok(!gone(kept), "a live arr's group is left alone");
      assert.ok(cgroupOf(kept)?.endsWith(`/arr-${liveArr}/keep`), "it is still in the live arr's group");
      await second.stop();
      rmSync(join(first.appsFile!, '..'), { recursive: true, force: true });
    } finally {
      kill(sleepers);
      await closeBox(box);
    }
  });
});

/** Forks a grandchild that leaves the instance's process group (setsid), and answers with its pid. */
const FORKER = `
const { spawn } = require('node:child_process');
const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e6)'], { detached: true, stdio: 'ignore' });
child.unref();
require('node:http').createServer((req, res) => res.end(String(child.pid))).listen(Number(process.env.PORT));
`;

/** The v1 folders of arr `pid` for limits: `arr-<pid>` beside its group in each v1 hierarchy it is in. */
function v1FoldersOf(pid: number): string[] {
  const mounts = new Map<string, string>();
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const [before, after] = line.split(' - ');
    if (!before || !after?.startsWith('cgroup ')) continue;
    for (const c of ['memory', 'cpu', 'pids'])
      if (after.split(' ')[2]?.split(',').includes(c)) mounts.set(c, before.split(' ')[4]!);
  }
  const found: string[] = [];
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n')) {
    const [, controllers, path] = line.split(':');
    for (const c of controllers?.split(',') ?? []) {
      const dir = mounts.get(c) && join(mounts.get(c)!, path!, `arr-${pid}`);
      if (dir && existsSync(dir)) found.push(dir);
    }
  }
  return found;
}

describe('cgroups: when arr dies, its watchdog kills and removes them', {
  skip: isRoot ? false : 'cgroups need root',
}, () => {
  it('a detached grandchild dies with arr (SIGKILL), the groups go, and the next arr finds none', async (t) => {
    if (!cgroup2Mount()) {
      assert.ok(!inCI, 'CI has cgroup2');
      t.skip('no cgroup2 here');
      return;
    }
    // Another arr started meanwhile must not do the watchdog's work.
    const { box, via } = openBox('watchdog');
    const state = mkdtempSync(join(tmpdir(), 'arr-state-'));
    const app = { ...scriptApp('forker', 'forker.localhost', FORKER), limits: { memory: '256M', pids: 100 } };
    const first = await startArrWith([app], { extraArgs: ['--state-dir', state], via });
    let grandchild = 0;
    try {
      if (/instances run without a cgroup of their own/.test(first.proc.output())) {
        assert.ok(!inCI, `CI runs as root with cgroup2: ${first.proc.output()}`);
        t.skip('no cgroup here');
        await first.stop();
        return;
      }
      const r = await fetchVia(first.port, 'forker.localhost', false);
      assert.equal(r.status, 200, r.text);
      grandchild = Number(r.text);
      assert.ok(grandchild > 0 && !gone(grandchild), 'the grandchild runs');
      const folders = [join(box, `arr-${first.proc.pid}`), ...v1FoldersOf(first.proc.pid)];
      assert.ok(existsSync(folders[0]!), 'arr made its folder of groups in the box');
      assert.equal(processesWith('arr-watchdog', state).length, 1, 'one watchdog');

      process.kill(first.proc.pid, 'SIGKILL');
      await first.proc.exited;
      // The watchdog alone: TERM to the instance's process group, KILL 2 s later, then the groups.
      await allGone([grandchild], 10_000);
      await until(`${folders.join(', ')} to be removed`, () => !folders.some((f) => existsSync(f)));

      const second = await restarted(first, state, via);
      assert.doesNotMatch(second.proc.output(), /removed the cgroups of arr\[/, 'nothing was left to sweep');
      await second.stop();
    } finally {
      if (grandchild > 0 && !gone(grandchild)) kill([grandchild]);
      await stopAll();
      rmSync(join(first.appsFile!, '..'), { recursive: true, force: true });
      rmSync(state, { recursive: true, force: true });
      // Whatever is left (a failure: the watchdog did not clean up) is killed, the groups removed.
      await closeBox(box);
    }
  });
});
