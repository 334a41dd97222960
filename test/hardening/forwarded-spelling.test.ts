import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, startArrWith } from '../support/arr.js';
import { stopAll } from '../support/proc.js';
import { head, parseResponses, rawExchange } from '../support/rawhttp.js';
import { assertArrServes, inlineApp } from '../support/wsclient.js';

// A client must not be able to pass an instance its own idea of the forwarded facts under
// another spelling of the names arr sets (X_Forwarded_Proto: a CGI/WSGI app merges it with
// X-Forwarded-Proto), under Forwarded or X-Real-IP (which arr does not set), or by naming a
// header in Connection: on the main path and on the two that go through http-proxy (`OPTIONS *`
// and WebSocket upgrades).

/**
 * Answers every request with the raw header list it received, as JSON. A WebSocket upgrade is
 * accepted, with that list (base64 JSON) in an `X-Seen` header of its 101; it then sends
 * "hello" and drops the connection.
 */
const RECORDER_APP = `
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    const body = JSON.stringify(req.rawHeaders) + '\\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
const wss = new WebSocketServer({ noServer: true });
wss.on('headers', (headers, req) => {
  headers.push('X-Seen: ' + Buffer.from(JSON.stringify(req.rawHeaders)).toString('base64'));
});
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => {});
    ws.send('hello', () => ws.terminate());
  });
});
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

const HOST = 'recorder.localhost';

/** What a client adds to claim forwarded facts, or to strip a header by naming it in Connection. */
const FORGED = [
  'X_Forwarded_Proto: https',
  'X_Forwarded_Host: evil',
  'X_Forwarded_For: 6.6.6.6',
  'Forwarded: for=1.2.3.4;proto=https',
  'X-Real-IP: 1.2.3.4',
  'X-Secret: 1',
];

/** The instance's header list as [lower-cased name, value] pairs. */
function pairs(raw: string[]): [string, string][] {
  const out: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
}

/** None of the forged headers reached the instance; arr's own X-Forwarded-* did, once each. */
function assertClean(what: string, raw: string[]): void {
  const seen = pairs(raw);
  const show = JSON.stringify(raw);
  for (const [name] of seen) {
    assert.ok(!name.includes('_'), `${what}: no header name with "_" (${name}): ${show}`);
    assert.ok(!['forwarded', 'x-real-ip', 'x-secret'].includes(name), `${what}: no ${name}: ${show}`);
  }
  const values = (name: string) => seen.filter(([n]) => n === name).map(([, v]) => v);
  assert.deepEqual(values('x-forwarded-proto'), ['http'], `${what}: X-Forwarded-Proto: ${show}`);
  assert.deepEqual(values('x-forwarded-host'), [HOST], `${what}: X-Forwarded-Host: ${show}`);
  assert.deepEqual(values('x-forwarded-for'), ['127.0.0.1'], `${what}: X-Forwarded-For: ${show}`);
  for (const c of values('connection'))
    assert.doesNotMatch(c, /x-secret/i, `${what}: Connection does not name X-Secret: ${show}`);
}

describe('forwarded headers under other spellings, and headers named in Connection', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith([inlineApp(RECORDER_APP, [{ host: HOST, ssl: 'allowed' }])]);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  for (const [what, requestLine] of [
    ['a GET', 'GET /path HTTP/1.1'],
    ['OPTIONS *', 'OPTIONS * HTTP/1.1'],
  ] as const) {
    it(`${what}: the instance gets none of them`, async () => {
      const r = await rawExchange(
        arr.port,
        head(requestLine, `Host: ${HOST}`, ...FORGED, 'Connection: close, X-Secret'),
      );
      assert.ok(r.closed, `${what}: Connection: close is honoured`);
      const [res] = parseResponses(r.text);
      assert.equal(res?.status, 200, r.text);
      assertClean(what, JSON.parse(res.body) as string[]);
      await assertArrServes(arr, HOST);
    });
  }

  it('a WebSocket upgrade: the instance gets none of them, and the upgrade works', async () => {
    const r = await rawExchange(
      arr.port,
      head(
        'GET /ws HTTP/1.1',
        `Host: ${HOST}`,
        ...FORGED,
        'Upgrade: websocket',
        'Connection: Upgrade, X-Secret',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
      ),
    );
    const headEnd = r.text.indexOf('\r\n\r\n');
    assert.ok(headEnd > 0, `an answer: ${JSON.stringify(r.text)}`);
    const [status = '', ...lines] = r.text.slice(0, headEnd).split('\r\n');
    assert.match(status, /^HTTP\/1\.1 101 /, r.text);
    assert.ok(r.text.slice(headEnd).includes('hello'), `a message after the 101: ${JSON.stringify(r.text)}`);
    const seen = lines
      .find((l) => /^x-seen:/i.test(l))
      ?.slice('x-seen:'.length)
      .trim();
    assert.ok(seen, `the instance's record: ${r.text}`);
    const raw = JSON.parse(Buffer.from(seen, 'base64').toString('utf8')) as string[];
    assertClean('a WebSocket upgrade', raw);
    const headers = pairs(raw);
    assert.ok(
      headers.some(([n, v]) => n === 'connection' && /\bupgrade\b/i.test(v)),
      `Connection: Upgrade reached the instance: ${JSON.stringify(raw)}`,
    );
    assert.ok(
      headers.some(([n, v]) => n === 'upgrade' && v.toLowerCase() === 'websocket'),
      `Upgrade: websocket reached the instance: ${JSON.stringify(raw)}`,
    );
  });
});
