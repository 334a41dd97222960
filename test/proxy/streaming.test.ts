import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, helloApp, pidOf, startArrWith } from '../support/arr.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { assertArrServes, patternSha256 } from '../support/wsclient.js';

const HOST = 'app1.localhost';
const MB = 1024 * 1024;

/** GET through arr, hashing the body as it streams; nothing is kept but the hash and count. */
function download(
  port: number,
  secure: boolean,
  path: string,
): Promise<{ status: number; headers: IncomingMessage['headers']; bytes: number; sha256: string }> {
  return new Promise((resolve, reject) => {
    const common = { host: '127.0.0.1', port, path, headers: { host: HOST }, agent: false as const };
    const req = secure
      ? httpsRequest({ ...common, servername: HOST, rejectUnauthorized: false })
      : httpRequest(common);
    req.setTimeout(60_000, () => req.destroy(new Error('download timed out')));
    req.on('error', reject);
    req.on('response', (res) => {
      const hash = createHash('sha256');
      let bytes = 0;
      res.on('data', (c: Buffer) => {
        hash.update(c);
        bytes += c.length;
      });
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`download aborted after ${bytes} bytes`)));
      res.on('end', () =>
        resolve({ status: res.statusCode ?? 0, headers: res.headers, bytes, sha256: hash.digest('hex') }),
      );
    });
    req.end();
  });
}

describe('large bodies and keep-alive through arr', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith([
      helloApp('app1', [
        {
          host: HOST,
          ssl: 'allowed',
          cert: join(repoRoot, 'certs/app1-cert.pem'),
          key: join(repoRoot, 'certs/app1-key.pem'),
        },
      ]),
    ]);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  const N = 100 * MB;
  const expected = patternSha256(N);

  for (const secure of [false, true]) {
    const scheme = secure ? 'HTTPS' : 'HTTP';

    it(`delivers a 100 MB download intact over ${scheme}`, async () => {
      const r = await download(secure ? arr.sslport : arr.port, secure, `/bytes?n=${N}`);
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-length'], String(N));
      assert.equal(r.bytes, N);
      assert.equal(r.sha256, expected);
    });

    it(`delivers a 3 MB upload intact over ${scheme} (POST /sha256, PUT /echo)`, async () => {
      const port = secure ? arr.sslport : arr.port;
      const body = randomBytes(3 * MB);
      const sha256 = createHash('sha256').update(body).digest('hex');
      const r = await fetchVia(port, HOST, secure, { method: 'POST', path: '/sha256', body });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(JSON.parse(r.text), { sha256, bytes: body.length });

      const echo = await fetchVia(port, HOST, secure, { method: 'PUT', path: '/echo', body });
      assert.equal(echo.status, 200);
      assert.equal(echo.body.length, body.length);
      assert.ok(echo.body.equals(body), 'the 3 MB body comes back unchanged');
    });

    it(`reuses one keep-alive connection for 200 sequential requests over ${scheme}`, async () => {
      const agent = secure
        ? new HttpsAgent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false })
        : new Agent({ keepAlive: true, maxSockets: 1 });
      const sockets = new Set<unknown>();
      const pids = new Set<number>();
      try {
        for (let i = 0; i < 200; i++) {
          const r = await new Promise<{ status: number; text: string; socket: unknown }>(
            (resolve, reject) => {
              const common = {
                host: '127.0.0.1',
                port: secure ? arr.sslport : arr.port,
                path: `/?i=${i}`,
                headers: { host: HOST },
                agent,
              };
              const req = secure ? httpsRequest({ ...common, servername: HOST }) : httpRequest(common);
              req.on('error', reject);
              req.on('response', (res) => {
                let text = '';
                res.setEncoding('utf8');
                res.on('data', (c: string) => {
                  text += c;
                });
                res.on('end', () => resolve({ status: res.statusCode ?? 0, text, socket: req.socket }));
              });
              req.end();
            },
          );
          assert.equal(r.status, 200, `request ${i}: ${r.text}`);
          assert.match(r.text, /^hello from app1/);
          sockets.add(r.socket);
          pids.add(pidOf({ status: r.status, text: r.text, headers: {}, body: Buffer.from(r.text) }));
        }
      } finally {
        agent.destroy();
      }
      assert.equal(sockets.size, 1, 'every request went over the same client connection');
      assert.equal(pids.size, 1, 'every request was answered by the same instance');
    });
  }

  it('is still healthy after all that', async () => {
    await assertArrServes(arr, HOST);
    await assertArrServes(arr, HOST, true);
  });
});
