// The cgroup v2 side of limit-groups.ts, on a folder laid out as a cgroup v2 group is (this
// host and CI have the controllers in v1 only; test/activation/limits.test.ts runs them there).
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LimitGroups, oomKills } from '../../src/activation/limit-groups.js';

describe('limit groups, cgroup v2', () => {
  const own = mkdtempSync(join(tmpdir(), 'arr-v2-'));
  after(() => rmSync(own, { recursive: true, force: true }));
  const base = join(own, 'arr-1');
  const group = join(base, 'app-1');
  mkdirSync(group, { recursive: true });
  for (const dir of [own, base]) {
    writeFileSync(join(dir, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    writeFileSync(join(dir, 'cgroup.subtree_control'), '');
  }
  writeFileSync(join(group, 'memory.swap.max'), 'max\n');

  it('enables the controllers below arr and writes memory.max (no swap), cpu.max and pids.max', () => {
    const groups = LimitGroups.open(own, base);
    assert.equal(groups.describe(), 'memory v2, cpu v2, pids v2');
    const prepared = groups.prepare(group, 'app-1', { memory: 64 << 20, cpu: 0.25, pids: 40, files: 100 });
    assert.deepEqual(prepared.join, [], 'nothing to join beside the v2 group');
    assert.deepEqual(prepared.failed, []);
    const read = (f: string) => readFileSync(join(group, f), 'utf8');
    assert.equal(read('memory.max'), String(64 << 20));
    assert.equal(read('memory.swap.max'), '0');
    assert.equal(read('cpu.max'), '25000 100000');
    assert.equal(read('pids.max'), '40');
    assert.deepEqual(groups.unenforced({ memory: 1, cpu: 1, pids: 1 }), []);

    writeFileSync(join(group, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n');
    assert.equal(oomKills(prepared.memory), 1);
  });

  it('names the limits a host without the controller cannot enforce', async () => {
    writeFileSync(join(own, 'cgroup.controllers'), 'cpu\n');
    const groups = LimitGroups.open(own, base);
    const unenforced = groups.unenforced({ memory: 1, cpu: 1 }).map((u) => u.limit);
    // memory and pids fall back to v1 where the host mounts them there.
    assert.ok(!unenforced.includes('cpu'));
    await groups.close(); // arr's v1 folders, where it made them
  });
});
