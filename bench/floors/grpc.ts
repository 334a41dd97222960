// The floor of a gRPC (HTTP/2 -> h2c) reverse proxy written for Node.js: node:http2 in front,
// by prior knowledge on PORT (as h2load reaches arr's plain port), and one node:http2 client
// session to the instance on TARGET behind. Each stream is relayed with its head (less the
// client's X-Forwarded-*, plus the ones arr sets), its body piped both ways, and its trailers
// both ways; a stream reset on one side resets the other. No routing, no policy, no limits, no
// pool of sessions, no bookkeeping: whatever arr spends beyond this is arr's own.
//
//   PORT=8080 TARGET=40000 node dist/bench/floors/grpc.js

import {
  type ClientHttp2Stream,
  connect,
  constants,
  createServer,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2';
import { runUntilSignal } from './servers.js';

const env = process.env;
const upstream = connect(`http://127.0.0.1:${Number(env.TARGET)}`);
upstream.on('error', (err) => {
  console.error(`floor: instance session: ${err.message}`);
  process.exit(1);
});
const END_STREAM = constants.NGHTTP2_FLAG_END_STREAM;
const NO_ERROR = constants.NGHTTP2_NO_ERROR;

/** The client's head for the instance: its own fields less X-Forwarded-*, then arr's. */
function requestHead(h: IncomingHttpHeaders, stream: ServerHttp2Stream): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = Object.create(null);
  for (const name of Object.keys(h)) if (!name.startsWith('x-forwarded-')) out[name] = h[name];
  out[':scheme'] = 'http';
  const socket = stream.session?.socket;
  out['x-forwarded-for'] = socket?.remoteAddress ?? '';
  out['x-forwarded-proto'] = 'http';
  out['x-forwarded-host'] = h[':authority'] ?? '';
  out['x-forwarded-port'] = String(socket?.localPort ?? '');
  return out;
}

function relay(stream: ServerHttp2Stream, h: IncomingHttpHeaders): void {
  const body = !stream.endAfterHeaders;
  let up: ClientHttp2Stream;
  try {
    up = upstream.request(requestHead(h, stream), { endStream: !body, waitForTrailers: body });
  } catch {
    stream.respond({ ':status': 502 }, { endStream: true });
    return;
  }
  if (body) {
    let requestTrailers: OutgoingHttpHeaders = {};
    stream.once('trailers', (t: IncomingHttpHeaders) => {
      requestTrailers = t;
    });
    up.once('wantTrailers', () => up.sendTrailers(requestTrailers));
    stream.pipe(up);
  }
  let responseTrailers: OutgoingHttpHeaders = {};
  up.once('trailers', (t: IncomingHttpHeaders) => {
    responseTrailers = t;
  });
  up.once('response', (head: IncomingHttpHeaders, flags: number) => {
    if (stream.destroyed) return;
    // A trailers-only answer (gRPC's errors) is one HEADERS frame ending the stream.
    if (flags & END_STREAM) {
      stream.respond(head, { endStream: true });
      return;
    }
    stream.respond(head, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers(responseTrailers));
    up.pipe(stream);
  });
  // A reset or failure on either side resets the other.
  stream.once('close', () => {
    if (stream.rstCode !== NO_ERROR && !up.closed) up.close(constants.NGHTTP2_CANCEL);
  });
  up.once('close', () => {
    if (up.rstCode !== NO_ERROR && !stream.closed) stream.close(up.rstCode);
  });
  stream.on('error', () => {});
  up.on('error', () => {});
}

const server = createServer({ settings: { maxConcurrentStreams: 128 } })
  .on('stream', relay)
  .listen(Number(env.PORT ?? 0), '127.0.0.1');
runUntilSignal([server], () => upstream.close());
