// The floor of a gRPC (HTTP/2 -> h2c) reverse proxy written for Node.js: node:http2 in front,
// by prior knowledge on PORT (as h2load reaches arr's plain port), and one node:http2 client
// session to the instance on TARGET behind. Each stream is relayed with its head (less the
// client's X-Forwarded-*, plus the ones arr sets), its body both ways with backpressure, and its
// trailers both ways; a stream reset on one side resets the other. No routing, no policy, no
// limits, no pool of sessions, no bookkeeping: whatever arr spends beyond this is arr's own.
// It takes the two cheap paths arr takes (request options with nghttp2's default priority
// filled in, and listeners shared by every stream, no closures per stream), so that it stays a
// floor rather than a by-the-book proxy that arr's own tuning beats.
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
const { NGHTTP2_FLAG_END_STREAM: END_STREAM, NGHTTP2_NO_ERROR: NO_ERROR, NGHTTP2_CANCEL } = constants;
// `request()` fills in the priority fields it lacks on a copy of its options: given, it does not.
const PRIORITY = { weight: 16, parent: 0, exclusive: false, silent: false } as const;
const WITH_BODY = { endStream: false, waitForTrailers: true, ...PRIORITY } as const;
const WITHOUT_BODY = { endStream: true, ...PRIORITY } as const;
const RESPOND = { waitForTrailers: true } as const;
const RESPOND_END = { endStream: true } as const;

/** The other side of a stream, and the trailers it received, on the stream itself. */
const PEER = Symbol('peer');
const TRAILERS = Symbol('trailers');
type Relayed = (ServerHttp2Stream | ClientHttp2Stream) & {
  [PEER]: Relayed;
  [TRAILERS]?: IncomingHttpHeaders;
};

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

function relay(s: ServerHttp2Stream, h: IncomingHttpHeaders): void {
  const stream = s as Relayed;
  const body = !stream.endAfterHeaders;
  let up: Relayed;
  try {
    up = upstream.request(requestHead(h, s), body ? WITH_BODY : WITHOUT_BODY) as Relayed;
  } catch {
    s.respond({ ':status': 502 }, RESPOND_END);
    return;
  }
  stream[PEER] = up;
  up[PEER] = stream;
  if (body) {
    stream.on('trailers', keepTrailers);
    up.on('wantTrailers', sendTrailers);
    stream.on('data', forward);
    stream.on('end', endPeer);
    up.on('drain', resumePeer);
  }
  up.on('trailers', keepTrailers);
  up.on('response', respond);
  stream.on('close', resetPeer);
  up.on('close', resetPeer);
  stream.on('error', ignore);
  up.on('error', ignore);
}

function respond(this: Relayed, head: IncomingHttpHeaders, flags: number): void {
  const stream = this[PEER] as ServerHttp2Stream & Relayed;
  if (stream.destroyed) return;
  // A trailers-only answer (gRPC's errors) is one HEADERS frame ending the stream.
  if (flags & END_STREAM) {
    stream.respond(head, RESPOND_END);
    return;
  }
  stream.respond(head, RESPOND);
  stream.on('wantTrailers', sendTrailers);
  stream.on('drain', resumePeer);
  this.on('data', forward);
  this.on('end', endPeer);
}

/** Body bytes to the other side; a full side pauses this one until it drains. */
function forward(this: Relayed, chunk: Buffer): void {
  if (!this[PEER].write(chunk)) this.pause();
}

function resumePeer(this: Relayed): void {
  this[PEER].resume();
}

function endPeer(this: Relayed): void {
  this[PEER].end();
}

function keepTrailers(this: Relayed, trailers: IncomingHttpHeaders): void {
  this[TRAILERS] = trailers;
}

/** This side's body is sent: the trailers the other side received (none: an empty set). */
function sendTrailers(this: Relayed): void {
  this.sendTrailers(this[PEER][TRAILERS] ?? {});
}

/** A side that closed with a reset (or failed) resets the other. */
function resetPeer(this: Relayed): void {
  const peer = this[PEER];
  if (this.rstCode !== NO_ERROR && !peer.closed) peer.close(this.rstCode ?? NGHTTP2_CANCEL);
}

function ignore(): void {}

const server = createServer({ settings: { maxConcurrentStreams: 128 } })
  .on('stream', relay)
  .listen(Number(env.PORT ?? 0), '127.0.0.1');
runUntilSignal([server], () => upstream.close());
