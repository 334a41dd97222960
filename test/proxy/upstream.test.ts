import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, startArrWith } from '../support/arr.js';
import { stopAll } from '../support/proc.js';
import { head, parseResponses, rawExchange } from '../support/rawhttp.js';
import { inlineApp } from '../support/wsclient.js';

/**
 * Tells what it received: the connection it came on (arr's side of it), the raw header lines
 * and the body's length. /hop answers with hop-by-hop fields of its own, /cookies with two
 * Set-Cookie lines, /binary with every byte value, /trailer with a chunked body and a trailer.
 */
const MIRROR_APP = `
import http from 'node:http';
http.createServer((req, res) => {
  let bytes = 0;
  req.on('data', (c) => { bytes += c.length; });
  req.on('end', () => {
    if (req.url === '/hop') {
      res.writeHead(200, [
        'Connection', 'keep-alive, X-Private', 'X-Private', 'secret', 'Keep-Alive', 'timeout=5',
        'Proxy-Connection', 'keep-alive', 'X-Public', 'shown', 'Content-Length', '2',
      ]);
      return res.end('ok');
    }
    if (req.url === '/cookies') {
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; Path=/']);
      res.setHeader('X-Mixed-Case', 'Kept');
      return res.end('cookies');
    }
    if (req.url === '/binary') {
      const all = Buffer.alloc(256 * 3);
      for (let i = 0; i < all.length; i++) all[i] = i % 256;
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': all.length });
      return res.end(all);
    }
    if (req.url === '/trailer') {
      res.writeHead(200, { Trailer: 'X-Checksum' });
      res.write('part one, ');
      res.addTrailers({ 'X-Checksum': 'abc123' });
      return res.end('part two');
    }
    const body = JSON.stringify({ remotePort: req.socket.remotePort, rawHeaders: req.rawHeaders, bytes });
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
}).listen(Number(process.env.PORT), '127.0.0.1');
`;

interface Mirror {
  remotePort: number;
  rawHeaders: string[];
  bytes: number;
}

const HOST = 'mirror.localhost';

describe('requests to instances (the undici engine)', () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith([inlineApp(MIRROR_APP, [{ host: HOST, ssl: 'allowed' }])]);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  const mirror = async (opts: Parameters<typeof fetchVia>[3] = {}, secure = false): Promise<Mirror> => {
    const r = await fetchVia(secure ? arr.sslport : arr.port, HOST, secure, opts);
    assert.equal(r.status, 200, r.text);
    return JSON.parse(r.text) as Mirror;
  };
  const names = (m: Mirror) => m.rawHeaders.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase());

  it('keeps connections to the instance alive: 30 clients, one after the other, share one', async () => {
    const ports = new Set<number>();
    for (let i = 0; i < 15; i++) {
      ports.add((await mirror()).remotePort);
      ports.add((await mirror({}, true)).remotePort);
    }
    assert.equal(
      ports.size,
      1,
      `arr used ${ports.size} connections to the instance for 30 sequential requests`,
    );
  });

  it('drops hop-by-hop request fields, and those the Connection header names', async () => {
    const m = await mirror({
      headers: {
        connection: 'keep-alive, X-Hop',
        'x-hop': 'private to this connection',
        'keep-alive': 'timeout=5',
        'proxy-connection': 'keep-alive',
        te: 'trailers',
        'x-end-to-end': 'kept',
      },
    });
    const seen = names(m);
    for (const h of ['x-hop', 'keep-alive', 'proxy-connection', 'te'])
      assert.ok(!seen.includes(h), `${h} reached the instance: ${seen.join(', ')}`);
    // arr's own connection to the instance says keep-alive; the client's value is not passed.
    const connection = m.rawHeaders.filter(
      (_, i) => i > 0 && m.rawHeaders[i - 1]?.toLowerCase() === 'connection',
    );
    assert.deepEqual(connection, ['keep-alive']);
    assert.ok(seen.includes('x-end-to-end'));
    assert.equal(seen.filter((h) => h === 'host').length, 1, 'one Host');
    assert.equal(seen.filter((h) => h === 'x-forwarded-for').length, 1, 'one X-Forwarded-For');
  });

  it('passes request header names with their case, and bodies whole, chunked or not', async () => {
    const m = await mirror({ method: 'POST', headers: { 'X-Camel-Case': 'v' }, body: 'x'.repeat(70_000) });
    assert.ok(m.rawHeaders.includes('X-Camel-Case'), m.rawHeaders.join(', '));
    assert.equal(m.bytes, 70_000);
    const chunked = await rawExchange(
      arr.port,
      `${head('POST / HTTP/1.1', `Host: ${HOST}`, 'Transfer-Encoding: chunked', 'Connection: close')}5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`,
    );
    const [reply] = parseResponses(chunked.text);
    assert.equal(reply?.status, 200, chunked.text);
    assert.equal((JSON.parse(reply!.body) as Mirror).bytes, 11);
  });

  it("drops the instance's hop-by-hop answer fields, and keeps the rest as sent", async () => {
    const hop = await fetchVia(arr.port, HOST, false, { path: '/hop' });
    assert.equal(hop.text, 'ok');
    assert.equal(hop.headers['x-public'], 'shown');
    assert.equal(hop.headers['x-private'], undefined, 'a field named by Connection');
    assert.equal(hop.headers['proxy-connection'], undefined);
    // arr's own connection with the client is kept alive on its own terms, not the instance's.
    assert.notEqual(hop.headers['keep-alive'], 'timeout=5');

    const cookies = await rawExchange(
      arr.port,
      head('GET /cookies HTTP/1.1', `Host: ${HOST}`, 'Connection: close'),
    );
    assert.match(cookies.text, /\r\nSet-Cookie: a=1; Path=\/\r\nSet-Cookie: b=2; Path=\/\r\n/);
    assert.match(cookies.text, /\r\nX-Mixed-Case: Kept\r\n/);
  });

  it('passes small binary bodies byte for byte, and HEAD answers without a body', async () => {
    const bin = await fetchVia(arr.port, HOST, false, { path: '/binary' });
    assert.equal(bin.body.length, 768);
    for (let i = 0; i < bin.body.length; i++) assert.equal(bin.body[i], i % 256, `byte ${i}`);
    // HEAD, then GET on the same connection: the HEAD answer's Content-Length frames no body.
    const r = await rawExchange(
      arr.port,
      head('HEAD /binary HTTP/1.1', `Host: ${HOST}`) +
        head('GET /cookies HTTP/1.1', `Host: ${HOST}`, 'Connection: close'),
    );
    assert.match(
      r.text,
      /^HTTP\/1\.1 200 OK\r\n[\s\S]*?content-length: 768\r\n[\s\S]*?\r\n\r\nHTTP\/1\.1 200 OK\r\n/i,
    );
    assert.match(r.text, /cookies$/);
  });

  it('passes a chunked answer with its trailer', async () => {
    const r = await rawExchange(
      arr.port,
      head('GET /trailer HTTP/1.1', `Host: ${HOST}`, 'Connection: close'),
    );
    assert.match(r.text, /part one, /);
    assert.match(r.text, /part two/);
    assert.match(r.text, /\r\nX-Checksum: abc123\r\n/i, r.text);
  });
});
