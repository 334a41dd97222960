import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { allGone, gone, startLines } from '../support/activation.js';
import { type AppDoc, fetchVia, helloApp, pidOf, writeAppsFile } from '../support/arr.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';
import { connectionOwners, serverOf, startWithWorkers, waitForWorkers } from '../support/workers.js';
import { openWs } from '../support/wsclient.js';

/** `--workers 2`: what the instances see of the exchanges of every worker. */

let count = 0;
function app(env: Record<string, string> = {}): { doc: AppDoc; host: string; name: string } {
  const name = `winst${++count}x${process.pid}`;
  const host = `${name}.localhost`;
  return { doc: { ...helloApp(name, [{ host, ssl: 'allowed' }]), name, env }, host, name };
}

/** The instance's port, from the hello sample's answer. */
const portOf = (text: string) => Number(/port (\d+)/.exec(text)![1]);

describe('arr --workers: instances', () => {
  after(stopAll);

  it('idle stop counts the requests in flight and the WebSockets open on every worker', async () => {
    const { doc, host, name } = app();
    const arr = await startWithWorkers([doc], 2, { extraArgs: ['--idle-timeout', '1'] });
    try {
      const workers = await waitForWorkers(arr.proc.pid, 2);
      const pid = pidOf(await fetchVia(arr.port, host, false));
      // A long request on one worker, then a WebSocket: the instance outlives the idle timeout.
      const slow = fetchVia(arr.port, host, false, { path: '/slow?ms=2500' });
      let answered = false;
      void slow.finally(() => {
        answered = true;
      });
      const ws = await openWs(arr.port, host, false);
      const carrier = serverOf(arr.port, ws.tcp.localPort!);
      assert.ok([...workers.values()].includes(carrier!), `the WebSocket is on a worker (${carrier})`);
      const outcome = await until(
        'the slow request',
        () => (gone(pid) ? 'stopped' : answered && 'answered'),
        {
          timeoutMs: 10_000,
          intervalMs: 50,
        },
      );
      assert.equal(outcome, 'answered', 'stopped while a request was in flight');
      assert.equal(pidOf(await slow), pid);
      const until2s = Date.now() + 2_000;
      await until('2 s with the WebSocket open', () => gone(pid) || Date.now() >= until2s, {
        intervalMs: 50,
      });
      assert.ok(!gone(pid), 'stopped while a WebSocket was open');
      ws.ws.close();
      await ws.closed;
      await allGone([pid], 6_000);
      assert.match(arr.proc.output(), new RegExp(`stopping ${name}\\[${pid}\\]: idle for`));
      assert.equal(startLines(arr.proc.output(), name).length, 1);
    } finally {
      await arr.stop();
    }
  });

  it('a deploy drains the requests and the WebSockets of every worker before the old instance stops', async () => {
    const { doc, host } = app({ V: 'one' });
    const arr = await startWithWorkers([doc], 2, { extraArgs: ['--drain', '4'] });
    try {
      const workers = await waitForWorkers(arr.proc.pid, 2);
      const first = await fetchVia(arr.port, host, false);
      const old = pidOf(first);
      const oldPort = portOf(first.text);
      // Long requests on fresh connections (spread over both workers) and a WebSocket.
      const slow = Array.from({ length: 4 }, () =>
        fetchVia(arr.port, host, false, { path: '/slow?ms=2500' }),
      );
      const ws = await openWs(arr.port, host, false);
      await until('long requests on both workers', () => {
        const owners = connectionOwners(`dport = :${oldPort}`);
        return [...workers.values()].every((w) => owners.includes(w));
      });
      const deployedAt = Date.now();
      writeAppsFile(arr.appsFile!, [{ ...doc, env: { V: 'two' } }]);
      const fresh = await until('the new instance to serve', async () => {
        const r = await fetchVia(arr.port, host, false);
        return pidOf(r) !== old && r;
      });
      assert.equal(fresh.status, 200);
      for (const r of await Promise.all(slow)) {
        assert.equal(r.status, 200, r.text);
        assert.equal(pidOf(r), old, 'answered by the old instance');
      }
      assert.ok(!gone(old), 'the old instance still holds the WebSocket');
      ws.ws.send('still there?');
      assert.equal((await ws.message(1)).data.toString(), 'still there?');
      await ws.closed;
      const closedAfter = Date.now() - deployedAt;
      assert.ok(
        closedAfter >= 3_500,
        `the WebSocket was kept for the drain (closed after ${closedAfter} ms)`,
      );
      await allGone([old], 5_000);
    } finally {
      await arr.stop();
    }
  });
});
