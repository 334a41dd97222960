import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { type ArrUnderTest, helloApp } from '../support/arr.js';
import { until } from '../support/poll.js';
import { run, stopAll } from '../support/proc.js';
import { rawExchange } from '../support/rawhttp.js';
import { serverOf, startWithWorkers, waitForWorkers } from '../support/workers.js';

/** `--workers 2`: what the listeners promise holds in every worker. */

const HOST = 'wedge.localhost';

/** A TLS connection to arr, resuming `session` when given; open until the caller ends it. */
function tlsTo(port: number, session?: Buffer): Promise<{ socket: TLSSocket; ticket: Promise<Buffer> }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: HOST, rejectUnauthorized: false, session });
    // TLS 1.3 sends its tickets after the handshake.
    const ticket = new Promise<Buffer>((r) => socket.once('session', r));
    socket.once('secureConnect', () => resolve({ socket, ticket }));
    socket.once('error', reject);
  });
}

describe('arr --workers: listeners', () => {
  let arr: ArrUnderTest;
  let workers: number[];
  const dir = mkdtempSync(join(tmpdir(), 'arr-wedge-'));
  before(async () => {
    arr = await startWithWorkers([helloApp('wedge', [{ host: HOST, ssl: 'allowed' }])], 2, {
      extraArgs: ['--header-timeout', '1'],
    });
    workers = [...(await waitForWorkers(arr.proc.pid, 2)).values()];
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  // node:cluster itself hands the first worker's default ticket keys to the others listening on
  // the same address (cluster's _getServerData); the primary's keys, sent to every worker, are
  // what keeps them shared across the 12-hour rotations and with ACME's store.
  it('a TLS session from one worker resumes on another', async () => {
    const first = await tlsTo(arr.sslport);
    const ticket = await first.ticket;
    const issuer = serverOf(arr.sslport, first.socket.localPort!);
    assert.ok(workers.includes(issuer!), `served by a worker (${issuer})`);
    // Round robin: one of the next connections lands on the other worker.
    const resumed = await until('a connection on the other worker', async () => {
      const next = await tlsTo(arr.sslport, ticket);
      const on = serverOf(arr.sslport, next.socket.localPort!);
      const reused = next.socket.isSessionReused();
      next.socket.destroy();
      return on !== issuer && { on, reused };
    });
    first.socket.destroy();
    assert.ok(workers.includes(resumed.on!));
    assert.equal(resumed.reused, true, 'the session resumed on the other worker');
  });

  it('an instance that answers before reading a large body: the client gets the answer (each worker)', async () => {
    const big = join(dir, 'big.bin');
    const fd = openSync(big, 'w');
    ftruncateSync(fd, 50 * 1024 * 1024);
    closeSync(fd);
    for (let i = 0; i < 2; i++) {
      // The hello sample answers /exit-less paths without reading a PUT body to /.
      const began = Date.now();
      const r = await run(
        'curl',
        [
          '-sS',
          '-T',
          big,
          '-w',
          '\\n%{http_code}',
          '--max-time',
          '20',
          '-H',
          `Host: ${HOST}`,
          `http://127.0.0.1:${arr.port}/`,
        ],
        { timeoutMs: 30_000 },
      );
      assert.equal(r.code, 0, r.output);
      assert.match(r.output, /hello from wedge.*\n200$/s);
      assert.ok(Date.now() - began < 15_000);
    }
  });

  it('a client that does not finish its request head within --header-timeout is closed, without an answer', async () => {
    const outcomes = await Promise.all(
      [0, 1].map(() => rawExchange(arr.port, `GET / HTTP/1.1\r\nHost: ${HOST}\r\n`, { waitMs: 5_000 })),
    );
    for (const o of outcomes) {
      assert.ok(o.closed, 'closed by arr');
      assert.ok(o.ms >= 900 && o.ms < 4_500, `after the 1 s timeout (${o.ms} ms)`);
    }
  });
});

describe('arr --workers --trust-proxy-protocol', () => {
  after(stopAll);

  it("the PROXY header's source address is the client's; a connection without one is closed", async () => {
    const arr = await startWithWorkers([helloApp('wpp', [{ host: HOST, ssl: 'allowed' }])], 2, {
      extraArgs: ['--trust-proxy-protocol'],
    });
    try {
      const get = `GET /headers HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`;
      for (const source of ['198.51.100.2', '198.51.100.3']) {
        const o = await rawExchange(arr.port, `PROXY TCP4 ${source} 127.0.0.1 40000 80\r\n${get}`);
        assert.match(o.text, /^HTTP\/1\.1 200/);
        const body = JSON.parse(o.text.slice(o.text.indexOf('\r\n\r\n') + 4)) as {
          headers: Record<string, string>;
        };
        assert.equal(body.headers['x-forwarded-for'], source);
      }
      const bare = await rawExchange(arr.port, get);
      assert.equal(bare.text, '', 'no answer without a header');
      assert.ok(bare.closed);
    } finally {
      await arr.stop();
    }
  });
});
