import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, startArrWith } from '../support/arr.js';
import { stopAll } from '../support/proc.js';
import { parseResponses, rawExchange } from '../support/rawhttp.js';
import { assertArrServes, inlineApp } from '../support/wsclient.js';

// `OPTIONS *` went through http-proxy, which sent the instance `Content-Length: 0` and then the
// body it was given: a chunked body holding a whole request reached the instance as a second
// request of its own, with forged X-Forwarded-* (finding 2 of the security review).

/** Logs every request it parses, with the X-Forwarded-For it was given, and answers 200. */
const RECORDER_APP = `
import http from 'node:http';
http.createServer((req, res) => {
  console.log('SEEN ' + req.method + ' ' + req.url + ' xff=' + (req.headers['x-forwarded-for'] ?? '-'));
  req.resume();
  req.on('end', () => res.end('ok\\n'));
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

const HOST = 'smuggle.localhost';

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: other.localhost\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n';

describe('OPTIONS * cannot carry a request to the instance', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith([inlineApp(RECORDER_APP, [{ host: HOST, ssl: 'allowed' }])]);
    await assertArrServes(arr, HOST); // the instance runs: a smuggled request would reach it
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  for (const [what, framing, body] of [
    ['chunked', 'Transfer-Encoding: chunked', `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`],
    ['Content-Length', `Content-Length: ${SMUGGLED.length}`, SMUGGLED],
  ] as const) {
    it(`a ${what} body: 400, the connection closed, nothing reaches the instance`, async () => {
      for (const secure of [false, true]) {
        const r = await rawExchange(
          secure ? arr.sslport : arr.port,
          `OPTIONS * HTTP/1.1\r\nHost: ${HOST}\r\n${framing}\r\n\r\n${body}GET /after HTTP/1.1\r\nHost: ${HOST}\r\n\r\n`,
          secure ? { tls: true, servername: HOST } : {},
        );
        const [res, ...more] = parseResponses(r.text);
        assert.equal(res?.status, 400, r.text);
        assert.equal(more.length, 0, `one answer, then the connection closes: ${r.text}`);
        assert.ok(r.closed, 'closed');
      }
      assert.doesNotMatch(arr.proc.output(), /SEEN GET \/smuggled|xff=6\.6\.6\.6/);
      // The OPTIONS * itself never reached it (a request pipelined after it may have).
      assert.doesNotMatch(arr.proc.output(), /SEEN OPTIONS/);
    });
  }

  it('OPTIONS * without a body still reaches the instance; other methods with * are refused', async () => {
    const r = await rawExchange(arr.port, `OPTIONS * HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    assert.equal(parseResponses(r.text)[0]?.status, 200, r.text);
    await arr.proc.waitFor('SEEN OPTIONS *');
    const get = await rawExchange(arr.port, `GET * HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`);
    assert.equal(parseResponses(get.text)[0]?.status, 400, get.text);
  });
});
