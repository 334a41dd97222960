import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { allGone, gone, logLines, startLines } from '../support/activation.js';
import { fetchVia, helloApp, pidOf } from '../support/arr.js';
import { moreAnswers, startLoad, versionedApp } from '../support/deploy.js';
import { parseExposition } from '../support/exposition.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { stopAll } from '../support/proc.js';
import {
  connectionOwners,
  connectionPerWorker,
  requestOn,
  requestsRead,
  startWithWorkers,
  titleOf,
  waitForWorkers,
} from '../support/workers.js';

/** Requests sent to show that none of them crosses the IPC pipe. */
const REQUESTS = 2_000;

/** `--workers 2`: the primary and its worker processes, as processes. */
describe('arr --workers: processes', () => {
  after(stopAll);

  it('titles say what each process is; concurrent first requests on both workers start one instance', async () => {
    const name = `wone${process.pid}`;
    const host = `${name}.localhost`;
    const arr = await startWithWorkers([{ ...helloApp(name, [{ host, ssl: 'allowed' }]), name }]);
    try {
      assert.equal(titleOf(arr.proc.pid), 'arr primary');
      const workers = await waitForWorkers(arr.proc.pid, 2);
      assert.deepEqual([...workers.keys()].sort(), [1, 2]);
      for (const [n, pid] of workers) assert.equal(titleOf(pid), `arr worker ${n}`);
      // First requests on both workers at once (a connection held by each), and more beside them.
      const held = await connectionPerWorker(arr.port, [...workers.values()], false, host);
      const replies = await Promise.all([
        ...[...held.values()].map((socket) => requestOn(socket, host, '/slow?ms=300')),
        ...Array.from({ length: 14 }, () => fetchVia(arr.port, host, false, { path: '/slow?ms=300' })),
      ]);
      for (const r of replies) assert.equal(r.status, 200, r.text);
      const pids = new Set(replies.map(pidOf));
      assert.equal(pids.size, 1, `one instance: ${[...pids]}`);
      assert.equal(startLines(arr.proc.output(), name).length, 1, arr.proc.output());
      // Both workers carried requests to it: each keeps connections to the instance.
      const [instance] = pids;
      const port = Number(/port (\d+)/.exec(replies[0]!.text)![1]);
      const owners = new Set(connectionOwners(`dport = :${port}`));
      for (const pid of workers.values())
        assert.ok(owners.has(pid), `worker ${pid} connected to instance ${instance}`);
    } finally {
      await arr.stop();
    }
  });

  it('a worker killed with SIGKILL is replaced; only its requests fail; the instance is untouched', async () => {
    const name = `wkill${process.pid}`;
    const host = `${name}.localhost`;
    const arr = await startWithWorkers([{ ...helloApp(name, [{ host, ssl: 'allowed' }]), name }]);
    try {
      const first = await fetchVia(arr.port, host, false);
      const instance = pidOf(first);
      const instancePort = Number(/port (\d+)/.exec(first.text)![1]);
      const workers = await waitForWorkers(arr.proc.pid, 2);
      const victim = workers.get(1)!;
      const held = await connectionPerWorker(arr.port, [...workers.values()], false, host);
      const outcome = (socket: Socket) =>
        requestOn(socket, host, '/slow?ms=1500').then(
          (r) => r.status,
          () => 'failed' as const,
        );
      const onVictim = outcome(held.get(victim)!);
      const onOther = outcome(held.get(workers.get(2)!)!);
      await until('the slow request in flight on worker 1', () =>
        connectionOwners(`dport = :${instancePort}`).includes(victim),
      );
      process.kill(victim, 'SIGKILL');
      assert.equal(await onVictim, 'failed', "the killed worker's request failed");
      assert.equal(await onOther, 200, "the other worker's request was answered");
      const line = await until('the error line', () =>
        logLines(arr.proc.output()).find((l) => l.level === 'error' && l.event === 'worker-exited'),
      );
      assert.match(line.msg, /worker 1 .*SIGKILL/);
      const again = await waitForWorkers(arr.proc.pid, 2);
      assert.notEqual(again.get(1), victim, 'a new worker 1');
      assert.equal(again.get(2), workers.get(2), 'worker 2 untouched');
      for (let i = 0; i < 4; i++) assert.equal(pidOf(await fetchVia(arr.port, host, false)), instance);
      assert.equal(startLines(arr.proc.output(), name).length, 1, 'no instance started again');
    } finally {
      await arr.stop();
    }
  });

  it('SIGHUP under load replaces every worker with no failed request', async () => {
    const app = versionedApp(`whup${process.pid}`, { VERSION: 'one' });
    const host = app.hosts[0]!.host;
    const arr = await startWithWorkers([app]);
    try {
      const before = await waitForWorkers(arr.proc.pid, 2);
      const load = startLoad(arr.port, host, 4);
      await moreAnswers(load);
      // New connections too: each one is handed to a worker while they are replaced.
      const agentless = (async () => {
        const statuses: (number | string)[] = [];
        while (!arr.proc.output().includes('workers replaced'))
          statuses.push(
            await fetchVia(arr.port, host, false).then(
              (r) => r.status,
              (e: Error) => e.message,
            ),
          );
        return statuses;
      })();
      process.kill(arr.proc.pid, 'SIGHUP');
      await arr.proc.waitFor('2 workers replaced');
      await moreAnswers(load);
      await load.stop();
      const fresh = (await agentless).filter((s) => s !== 200);
      assert.deepEqual(load.failures, [], 'keep-alive clients');
      assert.deepEqual(fresh, [], 'new connections');
      const now = await waitForWorkers(arr.proc.pid, 2);
      for (const [n, pid] of now) assert.notEqual(pid, before.get(n), `worker ${n} is a new process`);
      await allGone([...before.values()], 15_000);
    } finally {
      await arr.stop();
    }
  });

  it('no message crosses between primary and workers per request (arr_worker_messages_total)', async () => {
    const app = versionedApp(`wipc${process.pid}`, { VERSION: 'one' });
    const host = app.hosts[0]!.host;
    const admin = await freePort();
    const arr = await startWithWorkers([app], 2, { extraArgs: ['--admin', String(admin)] });
    try {
      const messages = async () => {
        const text = (
          await fetchVia(admin, `127.0.0.1:${admin}`, false, { path: '/metrics' })
        ).body.toString();
        return parseExposition(text)
          .filter((s) => s.name === 'arr_worker_messages_total')
          .reduce((sum, s) => sum + s.value, 0);
      };
      assert.equal((await fetchVia(arr.port, host, false)).status, 200); // the instance starts
      const before = await messages();
      const started = Date.now();
      const load = startLoad(arr.port, host, 8);
      await moreAnswers(load, REQUESTS);
      await load.stop();
      const seconds = (Date.now() - started) / 1000;
      const crossed = (await messages()) - before;
      assert.deepEqual(load.failures, []);
      // What does cross: a scrape (an ask and an answer per worker), and every second each
      // worker's summary of its activity and the dashboard's ask for its traffic (with its
      // answer): about 6 a second with 2 workers. Per request, even one, would be REQUESTS more.
      assert.ok(
        crossed <= 4 + 2 * 4 * (seconds + 2),
        `${crossed} messages for ${load.total()} requests in ${seconds.toFixed(1)} s`,
      );
      assert.ok(before > 0, 'the counter counts (hello, activation, apps)');
    } finally {
      await arr.stop();
    }
  });

  it('SIGTERM: requests in flight on every worker are answered, then workers and instances stop', async () => {
    const name = `wterm${process.pid}`;
    const host = `${name}.localhost`;
    const arr = await startWithWorkers([{ ...helloApp(name, [{ host, ssl: 'allowed' }]), name }]);
    const instance = pidOf(await fetchVia(arr.port, host, false));
    const workers = await waitForWorkers(arr.proc.pid, 2);
    const held = await connectionPerWorker(arr.port, [...workers.values()], false, host);
    const slow = [...held.values()].map((socket) => requestOn(socket, host, '/slow?ms=1000'));
    // In flight means read by arr: one still in the kernel's buffer may be closed as idle.
    await requestsRead(arr.port, held.values());
    const stopped = arr.stop();
    for (const r of await Promise.all(slow)) assert.equal(r.status, 200, r.text);
    assert.equal(await stopped, 0);
    assert.ok([instance, ...workers.values()].every(gone), 'no process left');
  });
});
