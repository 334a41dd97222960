import { X509Certificate } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { createServer, type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { H2Request, H2Response, responseClosed } from '../carrying/h2-messages.js';
import { hasBody } from '../carrying/http-engine.js';
import { sendError } from '../carrying/respond.js';
import { markIdentity } from '../deciding/coalescing.js';
import type { RequestHandler } from './request-handler.js';

/**
 * HTTP/2 on the TLS port. The TLS listener (listeners.ts) offers ALPN `h2` before `http/1.1`;
 * a connection that chose `h2` is handed here, to a node:http2 server that never listens itself,
 * and every other connection stays on the https server's own HTTP/1.1 path, untouched (so that
 * path is exactly as fast as without HTTP/2: one property read per connection). That is why
 * this is not `http2.createSecureServer({ allowHTTP1 })`: its HTTP/1.1 fallback is node:http's
 * parser without the https server's limits (header and keep-alive timeouts, closing idle
 * connections on stop).
 *
 * Each stream is one request, given to the same RequestHandler (the Router) as HTTP/1.1
 * requests, as an H2Request and H2Response (h2-messages.ts: the parts of IncomingMessage and
 * ServerResponse the router uses, on the stream's own API); the few places that differ ask
 * `isH2` (downstream.ts).
 * Instances get HTTP/1.1 over the same pools. An extended CONNECT (RFC 8441) for `websocket`
 * goes to h2-websocket.ts.
 */

/**
 * What a client may do on one connection. Node 20's nghttp2 bounds the known floods on its own
 * (test/h2/abuse.test.ts shows each connection closed): RST_STREAM after HEADERS (rapid reset,
 * CVE-2023-44487: a rate limit on resets), SETTINGS and PING frames whose ACKs pile up unread
 * (a bound on queued ACKs), and endless CONTINUATION frames.
 */
export const H2_LIMITS = {
  settings: {
    // Streams open at once on one connection (nginx's default is 128 too).
    maxConcurrentStreams: 128,
    // The request head, as HTTP/1.1's 16 KB (pseudo-header fields and HPACK overhead are counted).
    maxHeaderListSize: 20 * 1024,
    // RFC 8441: WebSockets over HTTP/2.
    enableConnectProtocol: true,
  },
  maxHeaderListPairs: 128,
  // Frames that break the protocol, and streams refused (over the stream limit), before the
  // connection is closed.
  maxSessionInvalidFrames: 100,
  maxSessionRejectedStreams: 100,
  // PINGs and SETTINGS arr sends and has no answer for yet; entries in one SETTINGS frame.
  maxOutstandingPings: 10,
  maxSettings: 32,
  // Memory nghttp2 may hold for one connection (MB), its buffers and HPACK tables.
  maxSessionMemory: 10,
} as const;

const SOCKET = Symbol('arr.h2.socket');
const STREAMS = Symbol('arr.h2.streams');
/** On a stream that carries a WebSocket: a graceful stop does not wait for it. */
export const WEBSOCKET = Symbol('arr.h2.websocket');

type MarkedSession = ServerHttp2Session & {
  [SOCKET]?: TLSSocket | Socket;
  [STREAMS]?: Set<ServerHttp2Stream>;
};
type MarkedStream = ServerHttp2Stream & { [STREAMS]?: Set<ServerHttp2Stream>; [WEBSOCKET]?: true };

const EMPTY = Buffer.alloc(0);

export interface H2Options {
  /** arr's default certificate (PEM), the one a connection gets when its SNI name has none. */
  defaultCert: Buffer;
  /** A connection with no stream open, or whose streams are stalled, for this long is closed. */
  idleTimeoutMs: number;
}

/** The HTTP/2 side of the TLS port: sessions, their streams, and a graceful stop. */
export class H2Front {
  private readonly server: Http2Server;
  private readonly sessions = new Set<MarkedSession>();
  private defaultFingerprint: string;
  private readonly idleTimeoutMs: number;
  /** The socket being handed to the server (its 'session' event comes within that call). */
  private accepting: TLSSocket | Socket | undefined;
  private stopping = false;

  constructor(options: H2Options) {
    this.defaultFingerprint = new X509Certificate(options.defaultCert).fingerprint256;
    this.idleTimeoutMs = options.idleTimeoutMs;
    this.server = createServer(H2_LIMITS);
    this.server.on('session', (session: MarkedSession) => this.opened(session));
    // Before route()'s listener: a stream is known to its session before it is served.
    this.server.on('stream', onStream);
    // A session's errors end it (Node destroys it); nothing to tell anyone.
    this.server.on('sessionError', ignore);
  }

  /** arr's default certificate was replaced (a reload): connections from now on are judged by it. */
  setDefaultCert(cert: Buffer): void {
    this.defaultFingerprint = new X509Certificate(cert).fingerprint256;
  }

  /**
   * A TLS connection that negotiated `h2`, or a plain one that began with HTTP/2's connection
   * preface (h2c by prior knowledge, listeners.ts: its streams are served as the plain port's).
   */
  accept(socket: TLSSocket | Socket): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    socket.on('error', ignore);
    if (socket instanceof TLSSocket) markIdentity(socket, this.defaultFingerprint);
    this.accepting = socket;
    this.server.emit('connection', socket);
    this.accepting = undefined;
  }

  /** Hands every stream to the router from now on. */
  route(router: RequestHandler): void {
    this.server.on(
      'stream',
      (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) =>
        serve(router, stream, headers, rawHeaders),
    );
  }

  /** Connections open now. */
  get connections(): number {
    return this.sessions.size;
  }

  /** Streams open now that are not WebSockets (requests in flight). */
  busyStreams(): number {
    let n = 0;
    for (const session of this.sessions)
      for (const stream of session[STREAMS] ?? []) if (!(stream as MarkedStream)[WEBSOCKET]) n++;
    return n;
  }

  /**
   * A graceful stop: every connection gets GOAWAY (no new stream is taken; those open finish),
   * and closes once its streams are done. New connections are refused.
   */
  stopAccepting(): void {
    this.stopping = true;
    for (const session of this.sessions) session.close();
  }

  /** Ends every WebSocket's stream (its end of stream, as a TCP FIN on HTTP/1.1). */
  endWebSockets(): void {
    for (const session of this.sessions)
      for (const stream of session[STREAMS] ?? []) if ((stream as MarkedStream)[WEBSOCKET]) stream.end();
  }

  private opened(session: MarkedSession): void {
    session[SOCKET] = this.accepting;
    session[STREAMS] = new Set();
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.setTimeout(this.idleTimeoutMs, onSessionTimeout);
    if (this.stopping) session.close();
  }
}

function ignore(): void {}

/** One stream: a request for the router, a WebSocket (RFC 8441), or a refusal. */
function serve(
  router: RequestHandler,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  rawHeaders: string[],
): void {
  // A stream reset or a session gone before its turn came (streams are emitted on next tick).
  if (stream.destroyed) return;
  const connection = (stream.session as MarkedSession | undefined)?.[SOCKET];
  const req = new H2Request(stream, headers, rawHeaders, connection);
  // h2c by prior knowledge came on the plain port.
  const secure = connection instanceof TLSSocket;
  const connect = req.method === 'CONNECT';
  if (connect && headers[':protocol'] !== 'websocket') {
    // A plain CONNECT asks for a tunnel: arr is no forward proxy.
    const what = headers[':protocol'] === undefined ? 'CONNECT' : 'this protocol';
    sendError(new H2Response(stream), 501, `${what} is not served here; WebSockets are`);
    return;
  }
  if (req.url.charCodeAt(0) !== 47 /* / */) {
    // RFC 9113 §8.3.1: an http(s) :path is a path (or `*`); the host is :authority. An absolute
    // URL there would name a host of its own (the router reads HTTP/1.1's absolute form so).
    // `OPTIONS *` goes through http-proxy, which speaks to node:http's objects only.
    const why =
      req.url === '*'
        ? 'the target * is served over HTTP/1.1 only'
        : 'the :path must be a path beginning with /, the host is :authority';
    sendError(new H2Response(stream), 400, why);
    return;
  }
  if (connect) {
    (stream as MarkedStream)[WEBSOCKET] = true;
    router.handleUpgrade(req, stream, EMPTY, secure);
    return;
  }
  const res = new H2Response(stream);
  const expect = headers.expect;
  if (expect !== undefined) {
    // As node:http answers it for HTTP/1.1: 100 Continue at once, any other expectation 417.
    if (expect.toLowerCase() !== '100-continue') {
      sendError(res, 417, 'only Expect: 100-continue is understood');
      return;
    }
    if (hasBody(req)) stream.additionalHeaders({ ':status': 100 });
  }
  router.handleRequest(req, res, secure);
}

/** Each stream is known to its session until it closes (for the idle timeout and a graceful stop). */
function onStream(this: Http2Server, stream: MarkedStream): void {
  const streams = (stream.session as MarkedSession | undefined)?.[STREAMS];
  if (streams) {
    streams.add(stream);
    stream[STREAMS] = streams;
  }
  // 'on', not 'once' (a stream closes once): no wrapper made per stream.
  stream.on('close', onStreamClose);
  // A stream reset by the client must not be an unhandled 'error'.
  stream.on('error', ignore);
}

function onStreamClose(this: MarkedStream): void {
  this[STREAMS]?.delete(this);
  responseClosed(this);
}

/**
 * Nothing came or went on the connection for the idle timeout. Without a stream open, it is
 * idle: GOAWAY, as an idle HTTP/1.1 keep-alive connection is closed. With a stream that has an
 * answer waiting to be sent, the client stopped reading (a zero flow-control window): the
 * connection goes. Streams that merely wait (a slow answer, a quiet event stream) are left.
 */
function onSessionTimeout(this: MarkedSession): void {
  const streams = this[STREAMS];
  if (!streams || streams.size === 0) {
    this.close();
    return;
  }
  for (const stream of streams) {
    if (stream.writableLength > 0) {
      this.destroy();
      return;
    }
  }
}
