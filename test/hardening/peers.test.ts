import assert from 'node:assert/strict';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { rssBytes } from '../support/tcp.js';
import { certificateFor } from '../support/tls.js';

const MB = 1024 * 1024;

describe('peers under stress: backpressure and no cross-host answers', () => {
  let arr: ArrUnderTest;
  const names = Array.from({ length: 10 }, (_, i) => `cold${i}`);
  const own = (name: string) => ({
    cert: join(repoRoot, `certs/${name}-cert.pem`),
    key: join(repoRoot, `certs/${name}-key.pem`),
  });

  before(async () => {
    arr = await startArrWith(
      [
        helloApp('bulk', [{ host: 'bulk.localhost', ssl: 'allowed' }]),
        helloApp('tlsa', [{ host: 'app1.localhost', ssl: 'allowed', ...own('app1') }]),
        helloApp('tlsb', [{ host: 'ws1.localhost', ssl: 'allowed', ...own('ws1') }]),
        ...names.map((n) => helloApp(n, [{ host: `${n}.localhost`, ssl: 'allowed' }])),
      ],
      { rangeSize: 20 },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('a slow client of a 100 MB answer does not make arr buffer it (memory stays flat)', async () => {
    await fetchVia(arr.port, 'bulk.localhost', false); // start the instance first
    const before = rssBytes(arr.proc.pid);
    let received = 0;
    const done = new Promise<void>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: arr.port,
          path: `/bytes?n=${100 * MB}`,
          headers: { host: 'bulk.localhost' },
        },
        (res) => {
          res.pause();
          // Read 1 MB every 100 ms for 2 s, then everything.
          let ticks = 0;
          const timer = setInterval(() => {
            let read = 0;
            while (read < MB) {
              const chunk: Buffer | null = res.read();
              if (chunk === null) break;
              read += chunk.length;
            }
            received += read;
            if (++ticks === 20) {
              clearInterval(timer);
              res.on('data', (c: Buffer) => {
                received += c.length;
              });
              res.on('end', resolve);
              res.resume();
            }
          }, 100);
          res.on('error', reject);
        },
      );
      req.on('error', reject);
      req.end();
    });
    // While the client is slow, arr holds what the sockets hold, not the 100 MB the instance has.
    await until('2 s of slow reading', () => received >= 10 * MB || undefined, { timeoutMs: 10_000 });
    const during = rssBytes(arr.proc.pid);
    await done;
    assert.equal(received, 100 * MB);
    console.log(`# arr grew by ${((during - before) / MB).toFixed(1)} MB while a client read 100 MB slowly`);
    assert.ok(
      during - before < 50 * MB,
      `arr grew by ${((during - before) / MB).toFixed(1)} MB with a slow client`,
    );
  });

  it('concurrent first requests for 10 cold apps: every answer comes from the app its host names', async () => {
    const asks = names.flatMap((n) =>
      Array.from({ length: 5 }, () => ({ n, p: fetchVia(arr.port, `${n}.localhost`, false) })),
    );
    for (const { n, p } of asks) {
      const r = await p;
      assert.equal(r.status, 200, r.text);
      assert.match(r.text, new RegExp(`^hello from ${n} `));
    }
  });

  it('under concurrent TLS handshakes each host gets its own certificate and its own app', async () => {
    const work = Array.from({ length: 40 }, async (_, i) => {
      const host = i % 2 ? 'app1.localhost' : 'ws1.localhost';
      const [cn, reply] = await Promise.all([
        certificateFor(arr.sslport, host),
        fetchVia(arr.sslport, host, true),
      ]);
      assert.equal(cn, host);
      assert.match(reply.text, new RegExp(`^hello from ${i % 2 ? 'tlsa' : 'tlsb'} `));
    });
    await Promise.all(work);
  });
});
