import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { type ArrUnderTest, fetchVia, helloApp, pidOf, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { connectionsTo, TROUBLE_APP } from '../support/troubleapp.js';
import { assertArrServes, inlineApp, openWs, refusedUpgrade, type WsClient } from '../support/wsclient.js';

const tlsHost = (host: string, certName: string) => ({
  host,
  ssl: 'allowed',
  cert: join(repoRoot, `certs/${certName}-cert.pem`),
  key: join(repoRoot, `certs/${certName}-key.pem`),
});

const apps = () => [
  helloApp('app1', [tlsHost('app1.localhost', 'app1')]),
  // One app per destructive scenario, so that one's crash back-off does not delay another.
  helloApp('download', [{ host: 'download.localhost', ssl: 'allowed' }]),
  helloApp('upload', [{ host: 'upload.localhost', ssl: 'allowed' }]),
  helloApp('victim', [{ host: 'victim-ws.localhost', ssl: 'allowed' }]),
  helloApp('victim', [{ host: 'victim-wss.localhost', ssl: 'allowed' }]),
  inlineApp(TROUBLE_APP, [{ host: 'trouble.localhost', ssl: 'allowed' }]),
  inlineApp(TROUBLE_APP, [{ host: 'exit-http.localhost', ssl: 'allowed' }]),
  inlineApp(TROUBLE_APP, [{ host: 'exit-https.localhost', ssl: 'allowed' }]),
  inlineApp(TROUBLE_APP, [{ host: 'refuse.localhost', ssl: 'allowed' }]),
  // Takes 500 ms to start listening.
  inlineApp(`await new Promise((r) => setTimeout(r, 500));\n${TROUBLE_APP}`, [
    { host: 'late-http.localhost', ssl: 'allowed' },
  ]),
  inlineApp(`await new Promise((r) => setTimeout(r, 500));\n${TROUBLE_APP}`, [
    { host: 'late-https.localhost', ssl: 'allowed' },
  ]),
];

/** The instance port a hello or trouble answer names, or a hello answer's `port P`. */
function portOf(text: string): number {
  const m = /port (\d+)/.exec(text);
  if (!m) throw new Error(`no port in ${text}`);
  return Number(m[1]);
}

/** A WebSocket client error that means arr broke the WebSocket protocol (not just a closed socket). */
function protocolError(err?: Error): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code?.startsWith('WS_ERR') ? `${code}: ${err?.message}` : undefined;
}

/** A GET whose outcome is one of: the whole body, an error, or a timeout (a hang). */
function getOutcome(
  port: number,
  host: string,
  secure: boolean,
  path: string,
  timeoutMs = 5000,
): Promise<{ outcome: 'complete' | 'error' | 'hang'; status?: number; bytes: number; declared?: string }> {
  return new Promise((resolve) => {
    const common = { host: '127.0.0.1', port, path, headers: { host }, agent: false as const };
    const req = secure
      ? httpsRequest({ ...common, servername: host, rejectUnauthorized: false })
      : httpRequest(common);
    let status: number | undefined;
    let declared: string | undefined;
    let bytes = 0;
    let settled = false;
    const settle = (outcome: 'complete' | 'error' | 'hang') => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      resolve({ outcome, status, bytes, declared });
    };
    const timer = setTimeout(() => settle('hang'), timeoutMs);
    req.on('error', () => settle('error'));
    req.on('response', (res) => {
      status = res.statusCode;
      declared = res.headers['content-length'];
      res.on('data', (c: Buffer) => {
        bytes += c.length;
      });
      res.on('error', () => settle('error'));
      res.on('aborted', () => settle('error'));
      res.on('end', () => settle(res.complete ? 'complete' : 'error'));
    });
    req.end();
  });
}

/** A raw connection to arr's plain or TLS port (the TCP socket is returned for resets). */
async function rawConnect(
  port: number,
  secure: boolean,
  servername: string,
): Promise<{ tcp: Socket; io: Socket }> {
  const tcp = netConnect({ host: '127.0.0.1', port });
  tcp.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    tcp.once('connect', resolve);
    tcp.once('error', reject);
  });
  if (!secure) return { tcp, io: tcp };
  const io = tlsConnect({ socket: tcp, servername, rejectUnauthorized: false });
  io.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    io.once('secureConnect', resolve);
    io.once('error', reject);
  });
  return { tcp, io };
}

const upgradeRequest = (host: string, path: string) =>
  `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

describe('errors on either side never take arr down', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(apps());
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  for (const secure of [false, true]) {
    const scheme = secure ? 'HTTPS' : 'HTTP';
    const portFor = () => (secure ? arr.sslport : arr.port);

    it(`a client that aborts a 100 MB download after 1 MB (${scheme})`, async () => {
      const warm = await fetchVia(portFor(), 'download.localhost', secure);
      const instancePort = portOf(warm.text);
      const received = await new Promise<number>((resolve, reject) => {
        const common = {
          host: '127.0.0.1',
          port: portFor(),
          path: `/bytes?n=${100 * 1024 * 1024}`,
          headers: { host: 'download.localhost' },
          agent: false as const,
        };
        const req = secure
          ? httpsRequest({ ...common, servername: 'download.localhost', rejectUnauthorized: false })
          : httpRequest(common);
        req.on('error', () => {});
        req.on('response', (res) => {
          let n = 0;
          res.on('error', () => {});
          res.on('data', (c: Buffer) => {
            n += c.length;
            if (n >= 1024 * 1024) {
              req.destroy();
              resolve(n);
            }
          });
          res.on('end', () => reject(new Error('the download finished before it was aborted')));
        });
        req.end();
      });
      assert.ok(received >= 1024 * 1024);
      // arr gives up the exchange with the instance: no connection stays stuck behind the
      // 99 MB nobody will read.
      await until(
        'arr to drop its connection to the download instance',
        () => connectionsTo(instancePort) === 0,
        { timeoutMs: 8000 },
      );
      await assertArrServes(arr, 'app1.localhost', secure);
    });

    it(`a client that aborts a 10 MB upload after 1 MB (${scheme})`, async () => {
      const warm = await fetchVia(portFor(), 'upload.localhost', secure);
      const instancePort = portOf(warm.text);
      await new Promise<void>((resolve) => {
        const common = {
          host: '127.0.0.1',
          port: portFor(),
          method: 'POST',
          path: '/sha256',
          headers: { host: 'upload.localhost', 'content-length': String(10 * 1024 * 1024) },
          agent: false as const,
        };
        const req = secure
          ? httpsRequest({ ...common, servername: 'upload.localhost', rejectUnauthorized: false })
          : httpRequest(common);
        req.on('error', () => {});
        req.write(randomBytes(1024 * 1024), () => {
          req.destroy();
          resolve();
        });
      });
      await until(
        'arr to drop its connection to the upload instance',
        () => connectionsTo(instancePort) === 0,
        {
          timeoutMs: 8000,
        },
      );
      await assertArrServes(arr, 'app1.localhost', secure);
    });

    it(`a client that gives up waiting for a slow answer (${scheme})`, async () => {
      const warm = await fetchVia(portFor(), 'download.localhost', secure);
      const instancePort = portOf(warm.text);
      const r = await fetchVia(portFor(), 'download.localhost', secure, {
        path: '/slow?ms=20000',
        timeoutMs: 200,
      }).then(
        () => 'answered',
        (err: Error) => err.message,
      );
      assert.equal(r, 'request timed out');
      await until(
        'arr to drop its connection to the slow instance',
        () => connectionsTo(instancePort) === 0,
        {
          timeoutMs: 8000,
        },
      );
      await assertArrServes(arr, 'app1.localhost', secure);
    });

    it(`a client that leaves while its instance is starting (${scheme})`, async () => {
      const host = `late-${scheme.toLowerCase()}.localhost`;
      const id = `early-${scheme}`;
      const plain = fetchVia(portFor(), host, secure, { timeoutMs: 100 }).catch((err: Error) => err.message);
      const { tcp, io } = await rawConnect(portFor(), secure, host);
      io.write(upgradeRequest(host, `/ws-slow?id=${id}`));
      await arr.proc.waitFor(new RegExp(`starting ${host.replace('.', '\\.')} on port`));
      tcp.resetAndDestroy();
      assert.equal(await plain, 'request timed out');
      // Then a WebSocket that stays: it is forwarded, the one that left is not.
      await arr.proc.waitFor(`${host} is ready`);
      const c = await openWs(portFor(), host, secure, { path: `/ws-slow?id=${id}-stays` });
      await arr.proc.waitFor(`slow ${id}-stays open`);
      c.ws.close();
      await c.closed;
      assert.doesNotMatch(
        arr.proc.output(),
        new RegExp(`slow ${id} upgrade`),
        'the abandoned upgrade was not forwarded',
      );
      await assertArrServes(arr, host, secure);
    });

    it(`an instance that breaks off its response mid-body (${scheme})`, async () => {
      for (const path of ['/partial-destroy', '/partial-chunked']) {
        const r = await getOutcome(portFor(), 'trouble.localhost', secure, path);
        assert.equal(r.status, 200, path);
        assert.notEqual(
          r.outcome,
          'hang',
          `${path}: the client is told the body ended short, it does not wait`,
        );
        assert.notEqual(r.outcome, 'complete', `${path}: a truncated body is not passed off as complete`);
      }
      const exit = await getOutcome(
        portFor(),
        `exit-${scheme.toLowerCase()}.localhost`,
        secure,
        '/partial-exit',
      );
      assert.equal(exit.status, 200);
      assert.equal(
        exit.outcome,
        'error',
        `a dying instance's half answer ends in an error, got ${exit.outcome}`,
      );
      await assertArrServes(arr, 'trouble.localhost', secure);
      await assertArrServes(arr, 'app1.localhost', secure);
    });
  }

  it('an instance that resets before answering gets the client a plain 502', async () => {
    for (const secure of [false, true]) {
      const r = await fetchVia(secure ? arr.sslport : arr.port, 'trouble.localhost', secure, {
        path: '/reset',
      });
      assert.equal(r.status, 502);
      assert.match(r.text, /^502 Bad Gateway: the application failed to answer\n$/);
    }
    await assertArrServes(arr, 'trouble.localhost');
  });

  // Needs activator.evict() to release the evicted instance's `machines` entry (otherwise every
  // later claim is refused and the app answers 503 for good).
  it('an instance that stops listening is replaced: 502 (or a new instance), never a hang', async () => {
    const first = await fetchVia(arr.port, 'refuse.localhost', false, { path: '/close-listener' });
    const oldPid = pidOf(first);
    const seen: string[] = [];
    const fresh = await until(
      'a new instance of refuse.localhost',
      async () => {
        const r = await fetchVia(arr.port, 'refuse.localhost', false, { timeoutMs: 5000 });
        if (r.status === 200 && pidOf(r) !== oldPid) return r;
        seen.push(`${r.status} ${r.text}`);
        return undefined;
      },
      { timeoutMs: 6000, intervalMs: 50 },
    );
    assert.match(fresh.text, /^trouble \(pid \d+\)/);
    for (const s of seen) assert.match(s, /^(502|503) /, `while it is replaced: ${s}`);
  });

  for (const secure of [false, true]) {
    const scheme = secure ? 'wss' : 'ws';
    const portFor = () => (secure ? arr.sslport : arr.port);

    it(`a ${scheme} connection whose instance is killed while the client sends`, async () => {
      const victim = `victim-${scheme}.localhost`;
      const c = await openWs(portFor(), victim, secure);
      const greeting = (await c.message(0)).data.toString('utf8');
      const pid = Number(/pid (\d+)/.exec(greeting)?.[1]);
      let sent = 0;
      const sender = setInterval(() => {
        if (c.ws.readyState === c.ws.OPEN) c.ws.send(`message ${sent++} ${'x'.repeat(1000)}`);
      }, 2);
      try {
        await until('a few echoes', () => c.messages.length > 5);
        process.kill(pid, 'SIGKILL');
        const closed = await Promise.race([
          c.closed,
          new Promise<never>((_, reject) =>
            setTimeout(() => reject(new Error('the client was never closed')), 8000),
          ),
        ]);
        assert.equal(protocolError(closed.error), undefined, 'no garbage in the WebSocket stream');
      } finally {
        clearInterval(sender);
      }
      // A new connection gets a new instance (after the crash back-off).
      const next = await until(
        `a new ${scheme} connection to ${victim}`,
        async () => {
          const n = await openWs(portFor(), victim, secure);
          const text = (await n.message(0)).data.toString('utf8');
          n.ws.close();
          await n.closed;
          return text;
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      assert.match(next, /^hello from victim/);
      assert.doesNotMatch(next, new RegExp(`pid ${pid}\\)`));
      await assertArrServes(arr, 'app1.localhost', secure);
    });

    it(`a ${scheme} connection reset by its instance ends cleanly for the client`, async () => {
      const c = await openWs(portFor(), 'trouble.localhost', secure, { path: '/ws-reset' });
      assert.equal((await c.message(0)).data.toString('utf8'), 'bye');
      const closed = await c.closed;
      assert.equal(
        protocolError(closed.error),
        undefined,
        'after the upgrade arr must not write an HTTP answer into the WebSocket stream',
      );
      assert.equal(c.messages.length, 1);
      await assertArrServes(arr, 'trouble.localhost', secure);
    });

    for (const how of ['terminate', 'reset'] as const) {
      it(`a ${scheme} client that goes away (${how}) while the instance floods it`, async () => {
        const id = `${scheme}-${how}`;
        const c: WsClient = await openWs(portFor(), 'trouble.localhost', secure, {
          path: `/ws-flood?id=${id}`,
        });
        await until('some flood', () => c.messages.length > 20);
        if (how === 'terminate') c.ws.terminate();
        else c.tcp.resetAndDestroy(); // an RST, not a FIN
        await c.closed;
        // arr closes the instance's side too, even though the instance has data queued for it.
        await arr.proc.waitFor(`flood ${id} closed`, 8000);
        await assertArrServes(arr, 'trouble.localhost', secure);
      });
    }

    it(`a ${scheme} upgrade answered with a plain HTTP response is passed on`, async () => {
      // /keepalive: the instance keeps its connection open after the answer; the client's ends with it.
      for (const path of ['/plain', '/chunked', '/keepalive']) {
        const r = await refusedUpgrade(portFor(), 'trouble.localhost', secure, { path });
        assert.equal(r.status, 418, path);
        assert.equal(r.body, 'teapot', path);
      }
      const hangup = await refusedUpgrade(portFor(), 'trouble.localhost', secure, { path: '/hangup' });
      assert.equal(hangup.status, 502);
      assert.match(hangup.body, /^502 Bad Gateway: /);
      // An answer head longer than any arr reads (16 KB) is the instance's failure, not a hang.
      const endless = await refusedUpgrade(portFor(), 'trouble.localhost', secure, { path: '/endless-head' });
      assert.equal(endless.status, 502);
      await assertArrServes(arr, 'trouble.localhost', secure);
    });

    it(`a ${scheme} client that sends garbage after the upgrade`, async () => {
      const { io } = await rawConnect(portFor(), secure, 'app1.localhost');
      const chunks: Buffer[] = [];
      io.on('data', (d: Buffer) => chunks.push(d));
      const closed = new Promise<void>((resolve) => io.once('close', () => resolve()));
      io.write(upgradeRequest('app1.localhost', '/ws'));
      await until('the 101', () => Buffer.concat(chunks).includes('\r\n\r\n'));
      assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 101 /);
      io.write(randomBytes(64 * 1024));
      await Promise.race([
        closed,
        new Promise((_, reject) => setTimeout(() => reject(new Error('the connection stayed open')), 8000)),
      ]);
      await assertArrServes(arr, 'app1.localhost', secure);
    });

    it(`a ${scheme} client that resets during the upgrade`, async () => {
      // Half an upgrade request, then a reset.
      const partial = await rawConnect(portFor(), secure, 'app1.localhost');
      partial.io.write(upgradeRequest('app1.localhost', '/ws').slice(0, 60));
      partial.tcp.resetAndDestroy();

      // A whole upgrade request, reset before the instance answers it (it waits 300 ms).
      const id = `${scheme}-early`;
      const whole = await rawConnect(portFor(), secure, 'trouble.localhost');
      whole.io.write(upgradeRequest('trouble.localhost', `/ws-slow?id=${id}`));
      await arr.proc.waitFor(`slow ${id} upgrade received`);
      whole.tcp.resetAndDestroy();
      // arr lets the instance know: its connection is closed (not left open behind a dead client).
      await arr.proc.waitFor(`slow ${id} socket closed`, 8000);
      await assertArrServes(arr, 'trouble.localhost', secure);
    });
  }

  it('arr output shows no escaped error', () => {
    assert.doesNotMatch(arr.proc.output(), /uncaught|unhandled|node:internal|\n\s+at \S+ \(/i);
    assert.equal(arr.proc.child.exitCode, null);
  });
});
