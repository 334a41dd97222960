// Deploys without a dropped request: an app's env, cwd and ready path reach its instance, and a
// change of the app (or `arr restart`) replaces the instance under load with zero failed
// requests, WebSockets on the old one kept for the drain, a failing new version leaving the old
// one serving.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import WebSocket from 'ws';
import { validateApp } from '../../src/registry/validate.js';
import { allGone, logLines, startLines } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, fetchVia, startArrWith, writeAppsFile } from '../support/arr.js';
import { holdWs, latest, moreAnswers, startLoad, switchedOnce, versionedApp } from '../support/deploy.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { runArr, stopAll } from '../support/proc.js';

const DRAIN_S = 2;

/** Replaces the apps file at once (a new file renamed over it), as deploy tools do. */
function replaceApps(file: string, docs: AppDoc[]): void {
  const tmp = `${file}.new`;
  writeAppsFile(tmp, docs);
  renameSync(tmp, file);
}

describe('app documents: env, cwd, ready, stopTimeout, revision', () => {
  const base = {
    _id: 'x',
    process: { executable: 'node' },
    hosts: [{ host: 'x.localhost', ssl: 'allowed' }],
  };
  const problems = (extra: Record<string, unknown>) => {
    const v = validateApp({ ...base, ...extra });
    return v.ok ? [] : v.problems.map((p) => `${p.field}: ${p.message}`);
  };

  it('accepts them, and reports each bad one by field', () => {
    assert.deepEqual(
      problems({ env: { A: 'x', B: '' }, cwd: 'sub', ready: '/healthz', stopTimeout: 2.5, revision: 3 }),
      [],
    );
    assert.match(problems({ env: { PORT: '1' } })[0]!, /^env\.PORT: is set by arr/);
    assert.match(problems({ env: { ARR_MONGO: 'x' } })[0]!, /^env\.ARR_MONGO: /);
    assert.match(problems({ env: { A: 1 } })[0]!, /^env\.A: must be a string/);
    assert.match(problems({ env: ['A'] })[0]!, /^env: must be an object/);
    assert.match(problems({ env: { 'A=B': 'x' } })[0]!, /^env: "A=B" is not a variable name/);
    assert.match(problems({ cwd: '' })[0]!, /^cwd: /);
    assert.match(problems({ ready: 'healthz' })[0]!, /^ready: must be an HTTP path/);
    assert.match(problems({ stopTimeout: -1 })[0]!, /^stopTimeout: /);
    assert.match(problems({ revision: 1.5 })[0]!, /^revision: /);
  });
});

describe('deploys', () => {
  const dirs: string[] = [];
  const tmp = (prefix: string) => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  after(async () => {
    await stopAll();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('env, cwd and ready reach the instance; no request is answered before it is ready', async () => {
    const cwd = tmp('arr-cwd-');
    const app = versionedApp(
      'ready1',
      { VERSION: 'v1', READY_AFTER_MS: '1000', SECRET: 'hunter2-do-not-log' },
      { _id: 'ready1', cwd, ready: '/ready' },
    );
    const arr = await startArrWith([app], { extraArgs: ['--state-dir', tmp('arr-state-')] });
    const t0 = Date.now();
    // Many first requests at once, and more while it starts: none is answered before /ready says so.
    const first = Array.from({ length: 6 }, () => fetchVia(arr.port, 'ready1.localhost', false));
    await new Promise((r) => setTimeout(r, 300));
    const later = Array.from({ length: 3 }, () => fetchVia(arr.port, 'ready1.localhost', false));
    const replies = await Promise.all([...first, ...later]);
    assert.ok(Date.now() - t0 >= 900, 'answered only once ready');
    for (const r of replies) {
      assert.equal(r.status, 200, r.text);
      const a = JSON.parse(r.text) as { version: string; cwd: string; early: boolean; secret: string };
      assert.equal(a.early, false, 'no request reached the instance before it was ready');
      assert.equal(a.version, 'v1');
      assert.equal(a.secret, 'hunter2-do-not-log');
      assert.equal(a.cwd, realpathSync(cwd));
    }
    // The values of env are never logged; `arr apps` shows the names only.
    const listed = await runArr(['apps', '--apps', arr.appsFile!]);
    assert.equal(listed.code, 0, listed.output);
    assert.match(listed.output, /VERSION, READY_AFTER_MS, SECRET/);
    await arr.stop();
    assert.doesNotMatch(arr.proc.output() + listed.output, /hunter2/);
  });

  describe('rolling replacement (apps file)', () => {
    let arr: ArrUnderTest;
    let admin: number;
    let stateDir: string;
    const doc = versionedApp('roll1', { VERSION: 'v1' }, { _id: 'roll1' });
    const host = 'roll1.localhost';
    const withEnv = (env: Record<string, string>, extra: Record<string, unknown> = {}) => ({
      ...doc,
      env,
      ...extra,
    });

    before(async () => {
      admin = await freePort();
      stateDir = tmp('arr-state-');
      arr = await startArrWith([doc], {
        extraArgs: ['--drain', String(DRAIN_S), '--admin', String(admin), '--state-dir', stateDir],
      });
    });
    after(async () => {
      await arr?.stop();
    });

    it('a change of env: zero failed requests, answers switch, WebSockets closed only after the drain', async () => {
      const warm = await fetchVia(arr.port, host, false);
      assert.equal(warm.status, 200, warm.text);
      const oldPid = (JSON.parse(warm.text) as { pid: number }).pid;
      const held = [await holdWs(arr.port, host), await holdWs(arr.port, host)];
      for (const h of held) assert.equal(h.greeting, `hello v1 ${oldPid}`);
      const load = startLoad(arr.port, host, 4);
      await until('load running', () => load.total() >= 40);

      replaceApps(arr.appsFile!, [withEnv({ VERSION: 'v2' })]);
      await until('answers from v2', () => latest(load)?.version === 'v2', {
        timeoutMs: 15_000,
        intervalMs: 5,
      });
      const switched = Date.now();
      // The old instance's WebSockets are still open; new ones go to the new version.
      for (const h of held) assert.equal(h.ws.readyState, WebSocket.OPEN);
      const fresh = await holdWs(arr.port, host);
      assert.match(fresh.greeting, /^hello v2 \d+$/);
      const closes = await Promise.all(held.map((h) => h.closedAt));
      for (const c of closes) {
        assert.ok(c.at - switched >= DRAIN_S * 1000 - 200, `closed ${c.at - switched} ms after the switch`);
        assert.equal(c.code, 1001, 'the app said goodbye on SIGTERM');
      }
      await allGone([oldPid]);
      await moreAnswers(load);
      await load.stop();
      assert.deepEqual(load.failures, []);
      assert.ok(switchedOnce(load, 'v1', 'v2'), 'each client saw v1, then v2 only');
      assert.equal(fresh.ws.readyState, WebSocket.OPEN, 'the new instance keeps its WebSockets');
      fresh.ws.close();
      assert.equal(startLines(arr.proc.output(), 'roll1').length, 2, 'one new instance, no more');
    });

    it('a new version that crashes leaves the old one serving; logged with its output, counted, backed off', async () => {
      const before = startLines(arr.proc.output(), 'roll1').length;
      const load = startLoad(arr.port, host, 4);
      await until('load running', () => load.total() >= 20);
      replaceApps(arr.appsFile!, [withEnv({ VERSION: 'v3', CRASH: '1' })]);
      await arr.proc.waitFor('deploy of roll1 failed', 10_000);
      // Tried again: at once after one failure, then after the back-off (0.5 s), not in a loop.
      const attempts = () => startLines(arr.proc.output(), 'roll1').slice(before);
      await until('a third attempt', () => attempts().length >= 3, { timeoutMs: 10_000 });
      await moreAnswers(load);
      await load.stop();
      assert.deepEqual(load.failures, []);
      assert.ok(
        load.answers.every((l) => l.every((a) => a.version === 'v2')),
        'the old version kept serving',
      );
      const failed = logLines(arr.proc.output()).find((l) => l.msg.startsWith('deploy of roll1 failed'));
      assert.ok(failed, 'the failure is logged');
      assert.match(failed.msg, /exited \(code 3\)/);
      assert.match(failed.msg, /version v3 crashes on purpose/, 'with the app output');
      const [, second, third] = attempts();
      const gap = Date.parse(third?.time ?? '') - Date.parse(second?.time ?? '');
      assert.ok(gap >= 500, `the third attempt came ${gap} ms after the second`);
      const metrics = await fetchVia(admin, 'localhost', false, { path: '/metrics' });
      assert.match(metrics.text, /^arr_deploys_total\{app="roll1",result="failed"\} [1-9]/m);
      assert.match(metrics.text, /^arr_deploys_total\{app="roll1",result="replaced"\} 1$/m);

      // A fixed version replaces it (after the back-off).
      replaceApps(arr.appsFile!, [withEnv({ VERSION: 'v4' })]);
      await until(
        'v4 serving',
        async () =>
          (JSON.parse((await fetchVia(arr.port, host, false)).text) as { version: string }).version === 'v4',
        { timeoutMs: 20_000, intervalMs: 100 },
      );
    });

    it('arr restart: a new instance of the same version, zero failed requests; the file keeps every other byte', async () => {
      const file = arr.appsFile!;
      const warm = JSON.parse((await fetchVia(arr.port, host, false)).text) as {
        pid: number;
        version: string;
      };
      const bytes = readFileSync(file, 'utf8');
      const load = startLoad(arr.port, host, 4);
      await until('load running', () => load.total() >= 20);
      const r = await runArr(['restart', 'roll1', '--apps', file, '--wait', '--state-dir', stateDir]);
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /roll1: replaced/);
      await until('a new pid', () => latest(load)?.pid !== warm.pid, { intervalMs: 5 });
      await moreAnswers(load);
      await load.stop();
      assert.deepEqual(load.failures, []);
      assert.ok(switchedOnce(load, warm.version, warm.version));
      const pids = new Set(load.answers.flat().map((a) => a.pid));
      assert.equal(pids.size, 2, 'the old instance, then the new one');
      // Only the revision was added.
      const now = readFileSync(file, 'utf8');
      assert.match(now, /"revision": ?1\b/);
      assert.equal(now.replace(/,\s*"revision": ?1/, ''), bytes);
    });
  });
});
