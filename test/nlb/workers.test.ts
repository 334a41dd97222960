import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { afterEach, test } from 'node:test';
import { local, logLines, removeTempDirs, writeConfig } from '../support/nlb.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { alive, startNlb, stopAll } from '../support/proc.js';
import {
  closeAllServers,
  connected,
  echoServer,
  exchange,
  idServer,
  readAll,
  refused,
} from '../support/tcp.js';

afterEach(async () => {
  await stopAll();
  await closeAllServers();
  removeTempDirs();
});

/** nlb with `--workers 2` (and `args`) on one route; resolves once both workers serve. */
async function twoWorkers(port: number, backends: number[], args: string[] = []) {
  const file = writeConfig([{ port, host: '127.0.0.1', backends: local(...backends) }]);
  const nlb = startNlb(['--config', file, '--workers', '2', ...args]);
  await nlb.waitFor(/2 workers serving/);
  return nlb;
}

/** The workers under a primary: pid and the whole command line `ps` shows. */
function workersOf(pid: number): { pid: number; args: string }[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=,args=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return []; // ps exits 1 when there are none
  }
  return out
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const m = /^\s*(\d+)\s+(.*)$/.exec(l)!;
      return { pid: Number(m[1]), args: m[2]!.trim() };
    });
}

function tally(ids: string[]): Record<string, number> {
  const t: Record<string, number> = {};
  for (const id of ids) t[id] = (t[id] ?? 0) + 1;
  return t;
}

async function sequential(port: number, n: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < n; i++) out.push((await exchange(port)).data.toString());
  return out;
}

/** Each backend's count within `tolerance` of every other's. */
function assertEven(t: Record<string, number>, ids: string[], total: number, tolerance: number): void {
  const counts = ids.map((id) => t[id] ?? 0);
  assert.equal(
    counts.reduce((a, b) => a + b, 0),
    total,
    `every connection answered: ${JSON.stringify(t)}`,
  );
  assert.ok(Math.max(...counts) - Math.min(...counts) <= tolerance, `even spread: ${JSON.stringify(t)}`);
}

test('--workers 2: workers titled "nlb worker 1" and "nlb worker 2" in ps; connections spread evenly over 3 backends', async () => {
  const backends = await Promise.all(['a', 'b', 'c'].map((id) => idServer(id)));
  const [port] = await freePorts(1);
  const nlb = await twoWorkers(
    port!,
    backends.map((b) => b.port),
  );
  const titles = workersOf(nlb.pid)
    .map((w) => w.args)
    .sort();
  assert.deepEqual(titles, ['nlb worker 1', 'nlb worker 2'], 'the whole title, nothing cut or left of argv');

  // Each worker keeps its own turn; any two backends differ by at most one connection per worker.
  assertEven(tally(await sequential(port!, 30)), ['a', 'b', 'c'], 30, 2);
  const burst = await Promise.all(Array.from({ length: 90 }, () => exchange(port!)));
  assertEven(tally(burst.map((r) => r.data.toString())), ['a', 'b', 'c'], 90, 2);
});

test('--workers 2: a dead backend is skipped by every worker once one of them found it down, logged once, and shared when it is back', async () => {
  const [a, b] = await Promise.all(['a', 'b'].map((id) => idServer(id)));
  const [port, dead] = await freePorts(2);
  const nlb = await twoWorkers(port!, [a!.port, dead!, b!.port], ['--verbose']);
  const failedConnects = () =>
    logLines(nlb.output()).filter(
      (l) => l.msg === 'connect to backend failed' && l.backend === `127.0.0.1:${dead}`,
    );

  // Until one worker tries the dead backend (worker 2 starts its turn there).
  await until('a worker to try the dead backend', async () => {
    await exchange(port!);
    return failedConnects().length > 0;
  });
  await nlb.waitFor(new RegExp(`backend 127\\.0\\.0\\.1:${dead} down \\(ECONNREFUSED\\)`));
  // The other worker hears it from the primary (a debug line with --verbose).
  const finder = failedConnects()[0]!.worker;
  await until('the other worker to be told', () =>
    logLines(nlb.output()).some((l) => l.msg.endsWith('marked down by the primary') && l.worker !== finder),
  );
  const before = failedConnects().length;
  const got = await sequential(port!, 30);
  // Every connection served by a live backend, still in turn within each worker.
  assertEven(tally(got), ['a', 'b'], 30, 2);
  // The primary told every worker: none of them tried it again (each would once on its own).
  assert.equal(failedConnects().length, before, 'no worker tried the dead backend after it was down');
  assert.equal(nlb.output().match(/ down \(/g)?.length, 1, 'logged down once, by the primary');

  await idServer('revived', { port: dead! });
  await nlb.waitFor(new RegExp(`backend 127\\.0\\.0\\.1:${dead} back`), 10_000);
  const again = tally(await sequential(port!, 30));
  assertEven(again, ['a', 'b', 'revived'], 30, 2);
  // Both workers use it again (the kernel picks the worker of each connection: more until both did).
  const servedRevived = () =>
    new Set(
      logLines(nlb.output())
        .filter((l) => l.msg === 'connection closed' && l.backend === `127.0.0.1:${dead}`)
        .map((l) => l.worker),
    );
  await until('both workers to use it again', async () => {
    if (servedRevived().size === 2) return true;
    await exchange(port!);
    return false;
  });
  assert.equal(nlb.output().match(/ back"/g)?.length, 1, 'logged back once');
});

test('--workers 2: a killed worker is replaced under the same title, and the others keep serving', async () => {
  const a = await idServer('a');
  const [port] = await freePorts(1);
  const nlb = await twoWorkers(port!, [a.port]);
  const w2 = workersOf(nlb.pid).find((w) => w.args === 'nlb worker 2')!;
  process.kill(w2.pid, 'SIGKILL');
  await nlb.waitFor(new RegExp(`nlb worker 2 \\(pid ${w2.pid}\\) exited \\(signal SIGKILL\\)`));
  // Meanwhile worker 1 serves.
  assert.equal((await exchange(port!)).data.toString(), 'a');
  const line = await until('another worker 2', () =>
    logLines(nlb.output()).find((l) => l.msg.startsWith('nlb worker 2 serving') && l.pid !== w2.pid),
  );
  assert.equal(line.level, 'info');
  assert.ok(!alive(w2.pid));
  const now = workersOf(nlb.pid);
  assert.deepEqual(now.map((w) => w.args).sort(), ['nlb worker 1', 'nlb worker 2']);
  assert.ok(now.some((w) => w.pid === line.pid));
  const error = logLines(nlb.output()).find((l) => l.msg.includes('exited (signal SIGKILL)'));
  assert.equal(error?.level, 'error');
  assert.deepEqual(tally(await sequential(port!, 6)), { a: 6 });
});

test('--workers 2: SIGTERM stops listening at once, lets an open connection finish, and every process exits', async () => {
  const echo = await echoServer();
  const [port] = await freePorts(1);
  const nlb = await twoWorkers(port!, [echo.port], ['--grace', '20']);
  const pids = workersOf(nlb.pid).map((w) => w.pid);
  const open = await connected(port!);
  open.write('one');
  await until('the echo', () => (open.bytesRead >= 3 ? true : undefined));
  nlb.child.kill('SIGTERM');
  await until('the port to close', () => refused(port!));
  const rest = readAll(open);
  open.end('two');
  assert.equal((await rest).toString(), 'onetwo');
  assert.equal(await nlb.exited, 0);
  for (const pid of pids) await until(`worker ${pid} to exit`, () => !alive(pid));
});

test('--workers: a bad value is a usage error; a port in use stops nlb with one message and no worker left', async () => {
  const file = writeConfig([{ port: 1, backends: local(2) }]);
  const r = startNlb(['--config', file, '--workers', 'many']);
  assert.equal(await r.exited, 2);
  assert.match(
    r.output(),
    /--workers must be auto or a whole number from 0 \(one process\) to 256 \(got "many"\)/,
  );

  const busy = await idServer('busy');
  const taken = writeConfig([{ port: busy.port, host: '127.0.0.1', backends: local(busy.port) }]);
  const nlb = startNlb(['--config', taken, '--workers', '2']);
  assert.equal(await nlb.exited, 1);
  assert.match(nlb.output(), /cannot listen on 127\.0\.0\.1:\d+: the port is already in use \(EADDRINUSE\)/);
  assert.equal(nlb.output().match(/cannot listen/g)?.length, 1, nlb.output());
});
