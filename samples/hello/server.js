// Sample "hello" application for arr (used for app1 and app2).
//
//   PORT=3000 node samples/hello/server.js NAME
//
// Every request gets `hello from NAME (port P, pid N)`, except these test endpoints,
// which exist to exercise a reverse proxy end to end:
//
//   GET  /headers       JSON {method, url, httpVersion, headers} of the request as received
//   POST|PUT /echo      streams the request body back unchanged
//   GET  /bytes?n=N     N bytes of deterministic content (byte i is i % 251)
//   POST /sha256        JSON {sha256, bytes} of the request body
//   GET  /slow?ms=M     answers after M milliseconds
//   GET  /exit          answers "bye", then the process exits with code 1 (crash tests)
//   WS   /ws            WebSocket echo; first sends `hello from NAME (pid N)`

import { createHash } from 'node:crypto';
import http from 'node:http';
import { WebSocketServer } from 'ws';

const name = process.argv[2] || 'hello';
// PORT=0 is allowed (the OS picks a port; the start line tells which).
const port = Number(process.env.PORT || 3000);
let listeningPort = port; // the actual port, once listening

// One block of the /bytes pattern. Its length is a multiple of 251, so every block
// starts at pattern offset 0 and the stream is simply this block repeated.
const BLOCK = Buffer.alloc(251 * 256, 0);
for (let i = 0; i < BLOCK.length; i++) BLOCK[i] = i % 251;

const server = http.createServer(handle);
const wss = new WebSocketServer({ noServer: true });

function handle(req, res) {
  const { path, query } = parseUrl(req.url);
  const route = `${req.method} ${path}`;

  switch (route) {
    case 'GET /headers':
      return sendJson(res, {
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        headers: req.headers,
      });
    case 'POST /echo':
    case 'PUT /echo':
      return echo(req, res);
    case 'GET /bytes':
      return sendBytes(res, query.get('n'));
    case 'POST /sha256':
      return sha256(req, res);
    case 'GET /slow':
      return slow(res, query.get('ms'));
    case 'GET /json':
      return sendPadded(res, Number(query.get('n') ?? 2048));
    case 'GET /events':
      return events(res, Number(query.get('ms') ?? 10000));
    case 'GET /exit':
      // Connection: close, so nobody reuses a socket to a process about to die.
      res.writeHead(200, { 'content-type': 'text/plain', connection: 'close' });
      res.end('bye', () => setTimeout(() => process.exit(1), 50));
      return;
    default:
      req.resume(); // discard any body
      sendText(res, 200, hello());
  }
}

function hello() {
  return `hello from ${name} (port ${listeningPort}, pid ${process.pid})\n`;
}

function echo(req, res) {
  const headers = { 'content-type': 'application/octet-stream' };
  // Same framing as the request: a known length stays a known length, else chunked.
  if (req.headers['content-length'] !== undefined) headers['content-length'] = req.headers['content-length'];
  res.writeHead(200, headers);
  // pipe() handles backpressure both ways; if the client goes away, drop our side too.
  req.pipe(res);
  req.on('error', () => res.destroy());
  res.on('close', () => {
    if (!res.writableFinished) req.destroy();
  });
}

function sendBytes(res, nParam) {
  const n = Number(nParam);
  if (nParam === null || !Number.isSafeInteger(n) || n < 0) {
    return sendText(res, 400, 'n must be a non-negative integer\n');
  }
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': n });
  let remaining = n;
  let closed = false;
  res.on('close', () => {
    closed = true;
  });
  const pump = () => {
    while (remaining > 0 && !closed) {
      const len = Math.min(remaining, BLOCK.length);
      remaining -= len;
      // write() returning false means the socket buffer is full: wait for 'drain'
      // instead of queueing N bytes in memory.
      if (!res.write(len === BLOCK.length ? BLOCK : BLOCK.subarray(0, len))) {
        res.once('drain', pump);
        return;
      }
    }
    if (!closed) res.end();
  };
  pump();
}

function sha256(req, res) {
  const hash = createHash('sha256');
  let bytes = 0;
  req.on('data', (chunk) => {
    hash.update(chunk);
    bytes += chunk.length;
  });
  req.on('end', () => sendJson(res, { sha256: hash.digest('hex'), bytes }));
  req.on('error', () => res.destroy());
}

function slow(res, msParam) {
  const ms = msParam === null ? 1000 : Number(msParam);
  if (!Number.isFinite(ms) || ms < 0) return sendText(res, 400, 'ms must be a non-negative number\n');
  const timer = setTimeout(() => sendText(res, 200, hello()), ms);
  res.on('close', () => clearTimeout(timer)); // client gave up: nothing to answer
}

// A JSON answer of about n bytes (compressible), with a strong ETag.
function sendPadded(res, n) {
  const size = Number.isSafeInteger(n) && n >= 0 && n <= 1e7 ? n : 2048;
  const body = JSON.stringify({ app: name, pad: 'x'.repeat(Math.max(0, size - 20)) });
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    etag: '"v1"',
  });
  res.end(body);
}

// Server-Sent Events: one event now, the next after `ms`, then the end.
function events(res, ms) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(`data: first from ${name}\n\n`);
  const timer = setTimeout(() => res.end('data: second\n\n'), Number.isFinite(ms) ? ms : 10000);
  res.on('close', () => clearTimeout(timer));
}

function sendText(res, status, text) {
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function sendJson(res, value) {
  const body = `${JSON.stringify(value)}\n`;
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

// Splits "/path?query" without new URL(), which would read "//x" as a host name.
function parseUrl(url = '/') {
  const q = url.indexOf('?');
  return {
    path: q === -1 ? url : url.slice(0, q),
    query: new URLSearchParams(q === -1 ? '' : url.slice(q + 1)),
  };
}

server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => socket.destroy());
  if (parseUrl(req.url).path !== '/ws') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.on('error', () => ws.terminate());
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.send(`hello from ${name} (pid ${process.pid})`);
  });
});

server.on('error', (err) => {
  console.error(`${name}: ${err.message}`);
  process.exit(1);
});

server.listen(port, () => {
  listeningPort = server.address().port;
  console.log(`${name} listening on ${listeningPort}`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  for (const ws of wss.clients) ws.close(1001, 'server shutting down');
  // Don't let a long response (or a client that never closes) hold the exit.
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
