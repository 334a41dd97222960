// What tells arr, at its start, that a process group its previous run listed is still one of
// its instances: a cgroup of that run, or the instance's token in the environment. Real
// processes (and, as root with cgroup v2, a real cgroup); nothing else convinces it.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { verifyLeftovers } from '../../src/activation/leftovers.js';
import { INSTANCE_TOKEN } from '../../src/activation/spawn.js';
import { allGone } from '../support/activation.js';
import { until } from '../support/poll.js';

const children: ChildProcess[] = [];

/** `sh -c script` as the leader of a process group of its own, with `env` added. */
function group(script: string, env: Record<string, string> = {}): ChildProcess {
  const child = spawn('/bin/sh', ['-c', script], {
    detached: true,
    stdio: 'ignore',
    env: { ...process.env, ...env },
  });
  children.push(child);
  return child;
}

const token = () => randomBytes(16).toString('hex');

/** A dead owner: no process has this pid. */
const OWNER = 4_000_001;

function startOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

/** Where a cgroup of a dead arr would be made (cgroup v2, as root), or why not. */
function cgroupBase(): string | undefined {
  if (process.geteuid?.() !== 0) return undefined;
  const mount = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' - '))
    .find(([, after]) => after?.startsWith('cgroup2 '))?.[0]
    ?.split(' ');
  const own = /^0::(\/.*)$/m.exec(readFileSync('/proc/self/cgroup', 'utf8'))?.[1];
  if (mount?.[3] !== '/' || own === undefined) return undefined;
  return join(mount[4]!, own);
}

describe('leftovers of a previous run: verified before they are stopped', () => {
  after(async () => {
    for (const c of children) {
      try {
        process.kill(-c.pid!, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await allGone(children.map((c) => c.pid!));
  });

  it('the token arr gave the instance proves it; a wrong token, or none, does not', () => {
    const t = token();
    const mine = group('exec sleep 600', { [INSTANCE_TOKEN]: t });
    const listed = (tok?: string) => [{ pid: mine.pid!, start: startOf(mine.pid!), token: tok }];
    assert.deepEqual(verifyLeftovers(listed(t), OWNER, true), { ours: [mine.pid], unproven: [] });
    assert.deepEqual(verifyLeftovers(listed(token()), OWNER, true).ours, []);
    assert.deepEqual(verifyLeftovers(listed(undefined), OWNER, true).ours, []);
    // Whatever a forged line holds instead of a token proves nothing either.
    assert.deepEqual(verifyLeftovers(listed(''), OWNER, true).ours, []);
  });

  it('a group whose leader is gone: proven by a member that carries the token', async () => {
    const t = token();
    const leader = group('sleep 600 & exit 0', { [INSTANCE_TOKEN]: t });
    const pid = leader.pid!;
    await new Promise((r) => leader.once('exit', r));
    assert.deepEqual(verifyLeftovers([{ pid, start: '1', token: t }], OWNER, true), {
      ours: [pid],
      unproven: [],
    });
    assert.deepEqual(verifyLeftovers([{ pid, start: '1', token: token() }], OWNER, true).ours, []);
  });

  it('a cgroup of the previous run proves it, when that run is gone', {
    skip: cgroupBase() === undefined ? 'needs root and cgroup v2 (CI has both)' : false,
  }, async () => {
    const base = join(cgroupBase()!, `arr-${OWNER}`);
    const dir = join(base, 'app-1');
    mkdirSync(dir, { recursive: true });
    try {
      const inside = group('exec sleep 600');
      writeFileSync(join(dir, 'cgroup.procs'), String(inside.pid));
      const listed = [{ pid: inside.pid!, start: startOf(inside.pid!) }];
      assert.deepEqual(verifyLeftovers(listed, OWNER, true), { ours: [inside.pid], unproven: [] });
      // A live process holds the owner's pid: a cgroup named after that pid proves nothing.
      assert.deepEqual(verifyLeftovers(listed, OWNER, false).ours, []);
      // Another arr's cgroup neither.
      assert.deepEqual(verifyLeftovers(listed, OWNER + 1, true).ours, []);
      process.kill(-inside.pid!, 'SIGKILL');
      await allGone([inside.pid!]);
    } finally {
      await until('the test cgroup to be removable', () => {
        try {
          if (existsSync(dir)) rmdirSync(dir);
          if (existsSync(base)) rmdirSync(base);
          return true;
        } catch {
          return false;
        }
      });
    }
  });
});
