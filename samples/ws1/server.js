// Sample "ws1" application for arr: a page that streams Dante's Inferno, Canto I
// (Longfellow's translation) over a WebSocket, one tercet at a time.
//
//   PORT=3000 WS1_INTERVAL_MS=2000 node samples/ws1/server.js
//
// GET / serves index.html; a WebSocket on any path (the page uses /stream) gets the
// first stanza at once, then one more every WS1_INTERVAL_MS, and is closed normally
// (1000 "end of canto") after the last one.

import { readFileSync } from 'node:fs';
import http from 'node:http';
import { WebSocketServer } from 'ws';

const port = Number(process.env.PORT || 3000);
const intervalMs = Number(process.env.WS1_INTERVAL_MS || 2000);

// Read once at start: a missing file should fail the start, not a request.
const page = readFileSync(new URL('index.html', import.meta.url));
const stanzas = readFileSync(new URL('canto1.txt', import.meta.url), 'utf8')
  .replace(/\r\n/g, '\n')
  .split(/\n\s*\n/)
  .map((s) => s.trim())
  .filter(Boolean);

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  if ((req.method === 'GET' || req.method === 'HEAD') && (path === '/' || path === '/index.html')) {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': page.length });
    res.end(page);
    return;
  }
  req.resume();
  res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
  res.end('not found\n');
});

// Any path is accepted: `server` makes ws handle every upgrade on this port.
const wss = new WebSocketServer({ server, maxPayload: 64 * 1024 });

wss.on('connection', (ws) => {
  let next = 0;
  const sendNext = () => {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(stanzas[next++]);
    if (next === stanzas.length) {
      clearInterval(timer);
      ws.close(1000, 'end of canto');
    }
  };
  const timer = setInterval(sendNext, intervalMs);
  sendNext();
  // One timer per client: stop it as soon as the client goes away.
  ws.on('close', () => clearInterval(timer));
  ws.on('error', () => ws.terminate());
});

server.on('error', (err) => {
  console.error(`ws1: ${err.message}`);
  process.exit(1);
});

server.listen(port, () => {
  console.log(`ws1 listening on ${server.address().port}`);
});

function shutdown() {
  server.close(() => process.exit(0));
  server.closeIdleConnections();
  for (const ws of wss.clients) ws.close(1001, 'server shutting down');
  // Don't let a client that never answers the close handshake hold the exit.
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
