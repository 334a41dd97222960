import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { after, describe, it } from 'node:test';
import { logLines } from '../support/activation.js';
import {
  type AppDoc,
  type ArrUnderTest,
  fetchVia,
  helloApp,
  provideApps,
  startArrWith,
} from '../support/arr.js';
import { until } from '../support/poll.js';
import { freePorts, freeRange } from '../support/ports.js';
import { startArr, stopAll } from '../support/proc.js';
import { inlineApp, openWs, refusedUpgrade } from '../support/wsclient.js';

const ECHO_WS = `
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => res.end('echo'));
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
server.listen(Number(process.env.PORT));
`;

const apps = (): AppDoc[] => [
  { ...helloApp('alpha', [{ host: 'alpha.localhost', ssl: 'allowed' }]), name: 'alpha' },
  { ...inlineApp(ECHO_WS, [{ host: 'echo.localhost', ssl: 'allowed' }]), name: 'echo' },
];

const ACCESS_FIELDS = ['app', 'bytes', 'client', 'host', 'method', 'ms', 'path', 'protocol', 'status'];

/** The access lines in arr's output: JSON lines with a status and a method. */
function accessLines(output: string) {
  return logLines(output).filter((l) => 'status' in l && 'method' in l);
}

/** The same mix of exchanges for both runs: 5 requests and 2 WebSocket upgrades. */
async function exchanges(arr: ArrUnderTest): Promise<{ one: number; post: number; tls: number }> {
  const one = await fetchVia(arr.port, 'alpha.localhost', false, { path: '/one?x=1' });
  assert.equal(one.status, 200);
  const post = await fetchVia(arr.port, 'alpha.localhost', false, {
    method: 'POST',
    path: '/echo',
    body: 'hi',
  });
  assert.equal(post.status, 200);
  assert.equal((await fetchVia(arr.port, 'unknown.localhost', false, { path: '/x' })).status, 404);
  const tls = await fetchVia(arr.sslport, 'alpha.localhost', true, { path: '/tls' });
  assert.equal(tls.status, 200);
  assert.equal((await fetchVia(arr.port, '', false)).status, 400);

  const ws = await openWs(arr.port, 'echo.localhost', false, { path: '/live' });
  ws.ws.send('x');
  await ws.message(0);
  ws.ws.close(1000);
  await ws.closed;
  assert.equal((await refusedUpgrade(arr.port, 'nobody.localhost', false)).status, 404);
  return { one: one.body.length, post: post.body.length, tls: tls.body.length };
}

describe('--access-log', () => {
  after(stopAll);

  it('writes one line per request and WebSocket, with its fields', async () => {
    const arr = await startArrWith(apps(), { extraArgs: ['--access-log'] });
    let bodies: Awaited<ReturnType<typeof exchanges>>;
    try {
      bodies = await exchanges(arr);
      await until('7 access lines', () => accessLines(arr.proc.output()).length >= 7);
    } finally {
      assert.equal(await arr.stop(), 0);
    }
    const lines = accessLines(arr.proc.output());
    assert.equal(lines.length, 7, JSON.stringify(lines, null, 1));
    for (const l of lines) {
      assert.equal(l.level, 'info');
      assert.deepEqual(
        Object.keys(l)
          .filter((k) => !['level', 'time', 'name', 'msg', 'websocket'].includes(k))
          .sort(),
        ACCESS_FIELDS,
      );
      assert.equal(l.client, '127.0.0.1');
      assert.ok(typeof l.ms === 'number' && l.ms >= 0, `ms: ${l.ms}`);
      assert.ok(typeof l.bytes === 'number' && l.bytes > 0, `bytes: ${l.bytes}`);
    }
    const find = (path: string, host?: string) => {
      const l = lines.find((x) => x.path === path && (host === undefined || x.host === host));
      assert.ok(l, `an access line for ${host ?? ''}${path}: ${JSON.stringify(lines)}`);
      return l;
    };

    const one = find('/one?x=1');
    assert.equal(one.method, 'GET');
    assert.equal(one.host, 'alpha.localhost');
    assert.equal(one.status, 200);
    assert.equal(one.app, 'alpha');
    // What arr sent the client, headers included.
    assert.ok(
      (one.bytes as number) > bodies.one && (one.bytes as number) < bodies.one + 1024,
      `${one.bytes}`,
    );
    assert.match(one.msg, /^127\.0\.0\.1 GET alpha\.localhost\/one\?x=1 200 \d+ B [\d.]+ ms alpha$/);

    const post = find('/echo');
    assert.equal(post.method, 'POST');
    assert.equal(post.status, 200);
    assert.equal(post.app, 'alpha');

    const unknown = find('/x');
    assert.equal(unknown.status, 404);
    assert.equal(unknown.host, 'unknown.localhost');
    assert.equal(unknown.app, '-');

    const tls = find('/tls');
    assert.equal(tls.status, 200);
    assert.ok(
      (tls.bytes as number) > bodies.tls && (tls.bytes as number) < bodies.tls + 1024,
      `${tls.bytes}`,
    );

    const noHost = lines.find((l) => l.status === 400);
    assert.ok(noHost && noHost.app === '-' && noHost.host === null, JSON.stringify(noHost));

    const ws = find('/live', 'echo.localhost');
    assert.equal(ws.websocket, true);
    assert.equal(ws.status, 101);
    assert.equal(ws.app, 'echo');
    const refused = find('/ws', 'nobody.localhost');
    assert.equal(refused.websocket, true);
    assert.equal(refused.status, 404);
    assert.equal(refused.app, '-');
  });

  it('is off by default: not one access line', async () => {
    const arr = await startArrWith(apps());
    try {
      await exchanges(arr);
    } finally {
      assert.equal(await arr.stop(), 0);
    }
    // "arr stopped" comes after every exchange has ended: an access line would be there by now.
    assert.match(arr.proc.output(), /arr stopped/);
    assert.deepEqual(accessLines(arr.proc.output()), []);
  });
});

describe('--log-level', () => {
  after(stopAll);

  it('warn hides info lines (access lines too) and keeps warnings', async () => {
    const bad = { ...helloApp('bad', [{ host: 'bad.localhost', ssl: 'maybe' }]), name: 'bad' };
    const file = (await provideApps([...apps(), bad]))!;
    const [port, sslport] = await freePorts(2);
    const range = await freeRange(10);
    const arr = startArr([
      ...['-a', file, '-p', String(port), '-s', String(sslport), '-r', `${range[0]}-${range[1]}`],
      ...['--bind', '127.0.0.1', '--advertise', '127.0.0.1', '--access-log', '--log-level', 'warn'],
    ]);
    try {
      // Nothing says it listens: ask it.
      await until('arr to answer', async () => {
        const r = await fetchVia(port!, 'unknown.localhost', false).catch(() => undefined);
        return r?.status === 404;
      });
      assert.equal((await fetchVia(port!, 'alpha.localhost', false)).status, 200);
    } finally {
      assert.equal(await arr.stop(), 0);
      rmSync(dirname(file), { recursive: true, force: true });
    }
    const lines = logLines(arr.output());
    assert.ok(
      lines.some((l) => l.level === 'warn' && /^registry: .*hosts\[0\]\.ssl/.test(l.msg)),
      `the warning about the bad app is there:\n${arr.output()}`,
    );
    assert.deepEqual(
      lines.filter((l) => l.level !== 'warn' && l.level !== 'error'),
      [],
      'no info line: not "arr listening", not "starting alpha", no access line',
    );
    assert.doesNotMatch(arr.output(), /arr listening on/);
  });
});
