import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { allGone, gone, logLines } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, helloApp, pidOf, startArrWith } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { until } from '../support/poll.js';
import { runArr, stopAll } from '../support/proc.js';
import { openWs } from '../support/wsclient.js';

/** `--idle-timeout`: instances that serve nothing are stopped, and started again on demand. */

let count = 0;
async function arrWithIdleApp(): Promise<{ arr: ArrUnderTest; host: string; name: string }> {
  const name = `idle${++count}x${process.pid}`;
  const host = `${name}.localhost`;
  const arr = await startArrWith([{ ...helloApp(name, [{ host, ssl: 'allowed' }]), name }], {
    extraArgs: ['--idle-timeout', '1'],
  });
  return { arr, host, name };
}

/** Fails as soon as the process is gone; resolves once it has lived `ms` more. */
async function staysAlive(pid: number, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  const outcome = await until(
    `${what}: pid ${pid} alive for ${ms} ms`,
    () => (gone(pid) ? 'stopped' : Date.now() >= end && 'alive'),
    { timeoutMs: ms + 2_000, intervalMs: 50 },
  );
  assert.equal(outcome, 'alive', `${what}: pid ${pid} was stopped`);
}

/** The "stopping NAME[pid]: idle for N s" lines of arr's log. */
const idleLines = (arr: ArrUnderTest, name: string, pid: number) =>
  logLines(arr.proc.output()).filter((l) => l.msg.startsWith(`stopping ${name}[${pid}]: idle for `));

describe('--idle-timeout', () => {
  after(stopAll);

  it('an instance that served once stops after the timeout; the next request starts a new one', async () => {
    const { arr, host, name } = await arrWithIdleApp();
    try {
      const first = await fetchVia(arr.port, host, false);
      const served = Date.now();
      const pid = pidOf(first);
      await allGone([pid], 5_000);
      const after = Date.now() - served;
      assert.ok(after >= 900, `stopped ${after} ms after its last request, not before the timeout`);
      assert.equal(idleLines(arr, name, pid).length, 1, `log says idle:\n${arr.proc.output()}`);
      const again = await fetchVia(arr.port, host, false);
      assert.equal(again.status, 200, again.text);
      assert.notEqual(pidOf(again), pid, 'a new instance');
      assert.ok(!gone(pidOf(again)));
    } finally {
      await arr.stop();
    }
  });

  it('an open WebSocket keeps its instance alive; once it closes, the instance stops', async () => {
    const { arr, host, name } = await arrWithIdleApp();
    try {
      const ws = await openWs(arr.port, host, false);
      const greeting = (await ws.message(0)).data.toString();
      const pid = Number(/pid (\d+)/.exec(greeting)?.[1]);
      await staysAlive(pid, 3_000, 'with a WebSocket open');
      ws.ws.send('still there?');
      assert.equal((await ws.message(1)).data.toString(), 'still there?');
      ws.ws.close();
      await ws.closed;
      await allGone([pid], 5_000);
      assert.equal(idleLines(arr, name, pid).length, 1);
    } finally {
      await arr.stop();
    }
  });

  it('a long request in flight keeps its instance alive', async () => {
    const { arr, host, name } = await arrWithIdleApp();
    try {
      const pid = pidOf(await fetchVia(arr.port, host, false));
      const slow = fetchVia(arr.port, host, false, { path: '/slow?ms=2500' });
      let done = false;
      void slow.finally(() => {
        done = true;
      });
      const outcome = await until(
        'the slow request to be answered',
        () => (gone(pid) ? 'stopped' : done && 'answered'),
        { timeoutMs: 10_000, intervalMs: 50 },
      );
      assert.equal(outcome, 'answered', `pid ${pid} was stopped while a request was in flight`);
      const reply = await slow;
      assert.equal(reply.status, 200, reply.text);
      assert.equal(pidOf(reply), pid);
      assert.equal(idleLines(arr, name, pid).length, 0);
      await allGone([pid], 5_000);
    } finally {
      await arr.stop();
    }
  });

  it('is checked like the other options: 0 is off, a negative number is refused', async () => {
    const r = await runArr(['--idle-timeout', '-1', '-a', '/nonexistent/apps.json', '-p', '0', '-s', '0'], {
      env: cliEnv(),
    });
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /^arr: --idle-timeout must be a positive number \(got "-1"\)$/m);
  });
});
