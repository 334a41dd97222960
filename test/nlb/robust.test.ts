import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { afterEach, test } from 'node:test';
import { local, removeTempDirs, runningNlb } from '../support/nlb.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { alive, stopAll } from '../support/proc.js';
import {
  closeAllServers,
  connected,
  echoServer,
  exchange,
  fdCount,
  readAll,
  refused,
  tcpServer,
} from '../support/tcp.js';

afterEach(async () => {
  await stopAll();
  await closeAllServers();
  removeTempDirs();
});

type Kind = 'normal' | 'client-reset' | 'client-gone' | 'all-down';

/** One client connection of a given behaviour; resolves when it is closed, whatever happened. */
function client(port: number, kind: Kind): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    s.setTimeout(10_000, () => s.destroy());
    s.on('error', () => {});
    s.on('close', () => resolve());
    s.on('data', () => {});
    s.on('connect', () => {
      if (kind === 'normal' || kind === 'all-down') s.end('ping');
      else if (kind === 'client-reset') {
        s.write('ping');
        s.resetAndDestroy();
      } else s.destroy(); // gone before nlb reached its backend, or right after
    });
  });
}

test('no descriptor leak: 10,000 connections with failures among them leave the fd count at baseline', async () => {
  const echo = await echoServer();
  // Resets when the request comes: nlb's backend socket errors in the middle of a relay.
  const resetter = await tcpServer((s) => s.once('data', () => s.resetAndDestroy()));
  // Answers half and closes.
  const rude = await tcpServer((s) =>
    s.once('data', () => {
      s.write('pi');
      s.destroy();
    }),
  );
  // Resets right after accepting: nlb sees a failed connect (ECONNRESET) and marks it down.
  const instant = await tcpServer((s) => s.resetAndDestroy());
  const [port, allDown, dead1, dead2] = await freePorts(4);
  const nlb = await runningNlb([
    { port: port!, backends: local(echo.port, resetter.port, dead1!, rude.port, instant.port) },
    { port: allDown!, backends: local(dead2!) },
  ]);

  // Warm up (lazy allocations at the first connections), then the baseline.
  for (let i = 0; i < 20; i++) await client(port!, 'normal');
  await client(allDown!, 'all-down');
  const baseline = fdCount(nlb.pid);

  const TOTAL = 10_000;
  const kinds: Kind[] = ['normal', 'normal', 'client-reset', 'client-gone', 'all-down'];
  let next = 0;
  const worker = async () => {
    while (next < TOTAL) {
      const kind = kinds[next++ % kinds.length]!;
      await client(kind === 'all-down' ? allDown! : port!, kind);
    }
  };
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, fdCount(nlb.pid));
  }, 50);
  const t0 = Date.now();
  await Promise.all(Array.from({ length: 50 }, worker));
  clearInterval(sampler);
  const ms = Date.now() - t0;

  const settled = await until(
    `nlb's descriptors to return to the baseline of ${baseline} (probes and closing sockets may hold one for a moment)`,
    () => {
      const n = fdCount(nlb.pid);
      return n <= baseline ? n : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 50 },
  );
  assert.ok(alive(nlb.pid), 'nlb survived');
  assert.ok(peak > baseline, `connections were open at once (peak ${peak} fds)`);
  // The failures did happen: resets and early closes by backends, refusals.
  assert.ok(resetter.accepted > 500 && rude.accepted > 500, `${resetter.accepted}, ${rude.accepted}`);
  assert.match(nlb.output(), new RegExp(`backend 127\\.0\\.0\\.1:${dead1} down \\(ECONNREFUSED\\)`));
  assert.match(nlb.output(), new RegExp(`backend 127\\.0\\.0\\.1:${dead2} down \\(ECONNREFUSED\\)`));
  console.log(
    `# ${TOTAL} connections in ${ms} ms; fds: baseline ${baseline}, peak ${peak}, after ${settled}`,
  );
  // Still serving.
  for (let i = 0; i < 4; i++) {
    const r = await exchange(port!, 'still there?');
    if (r.data.toString() === 'still there?') return;
  }
  assert.fail('nlb no longer relays to the echo backend');
});

test('SIGTERM: stops listening, lets the open connection finish, then exits 0', async () => {
  const backend = await echoServer();
  const [port] = await freePorts(1);
  const nlb = await runningNlb(
    [{ port: port!, host: '127.0.0.1', backends: local(backend.port) }],
    ['--grace', '20'],
  );

  const c = await connected(port!);
  c.write('before ');
  await once(c, 'data');
  const t0 = Date.now();
  nlb.child.kill('SIGTERM');
  await nlb.waitFor(/waiting up to 20 s for 1 open connection/);
  await until('the port to refuse new connections', () => refused(port!));
  assert.ok(alive(nlb.pid), 'still running for the open connection');

  const rest = readAll(c);
  c.end('after');
  assert.equal((await rest).toString(), 'after', 'the open connection still works to its end');
  assert.equal(await nlb.exited, 0);
  assert.ok(
    Date.now() - t0 < 10_000,
    'exited as soon as the connection was done, not at the end of the grace',
  );
});

test('SIGTERM: a connection still open after --grace is closed and nlb exits 0', async () => {
  const backend = await echoServer();
  const [port] = await freePorts(1);
  const nlb = await runningNlb([{ port: port!, backends: local(backend.port) }], ['--grace', '0.5']);
  const c = await connected(port!);
  c.on('error', () => {});
  c.write('x');
  await once(c, 'data');
  const closed = once(c, 'close');
  const t0 = Date.now();
  nlb.child.kill('SIGINT');
  assert.equal(await nlb.exited, 0);
  await closed;
  const ms = Date.now() - t0;
  assert.ok(ms >= 450 && ms < 5000, `closed at the end of the grace period (${ms} ms)`);
  assert.match(nlb.output(), /grace period over: closing 1 connection/);
  await until('the backend side to be closed too', () => backend.sockets.size === 0);
});

test('SIGTERM with no open connection exits 0 at once', async () => {
  const [port, b] = await freePorts(2);
  const nlb = await runningNlb([{ port: port!, backends: local(b!) }]);
  const t0 = Date.now();
  nlb.child.kill('SIGTERM');
  assert.equal(await nlb.exited, 0);
  assert.ok(Date.now() - t0 < 3000);
  assert.match(nlb.output(), /stopped/);
});

test('a second signal ends the grace period at once', async () => {
  const backend = await echoServer();
  const [port] = await freePorts(1);
  const nlb = await runningNlb([{ port: port!, backends: local(backend.port) }], ['--grace', '30']);
  const c = await connected(port!);
  c.on('error', () => {});
  c.write('x');
  await once(c, 'data');
  const t0 = Date.now();
  nlb.child.kill('SIGTERM');
  await nlb.waitFor(/waiting up to 30 s/);
  nlb.child.kill('SIGINT');
  assert.equal(await nlb.exited, 0);
  assert.ok(Date.now() - t0 < 5000);
  assert.match(nlb.output(), /SIGINT again: closing open connections now/);
});
