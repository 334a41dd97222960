// The floor of the HTTP and HTTPS points: a bare node:http and node:https server that answers
// every request with the same bytes as the hello sample's `/` (the harness passes its body, and
// the headers are the sample's: same content type, so the same header size). Nothing else: no
// URL parsing, no WebSocket upgrade handler. What arr costs beyond this is arr's own.
//
//   BODY='hello from hello (port 40000, pid 1234)\n' PORT=8080 SSLPORT=8443 CERT=certs/default-cert.pem \
//     KEY=certs/default-key.pem node dist/bench/floors/hello.js

import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttps } from 'node:https';
import { runUntilSignal } from './servers.js';

const env = process.env;
const body = Buffer.from(env.BODY ?? 'hello\n');
// The sample's headers for its `/` answer (samples/hello/server.js, sendText).
const headers = { 'content-type': 'text/plain; charset=utf-8', 'content-length': body.length };

function hello(req: IncomingMessage, res: ServerResponse): void {
  req.resume(); // a body, if any, is discarded, as the sample does
  res.writeHead(200, headers);
  res.end(body);
}

const http = createHttp(hello).listen(Number(env.PORT ?? 0), '127.0.0.1');
const https = createHttps(
  {
    cert: readFileSync(env.CERT ?? 'certs/default-cert.pem'),
    key: readFileSync(env.KEY ?? 'certs/default-key.pem'),
  },
  hello,
).listen(Number(env.SSLPORT ?? 0), '127.0.0.1');
runUntilSignal([http, https]);
