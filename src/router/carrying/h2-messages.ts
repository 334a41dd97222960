import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';

/**
 * One HTTP/2 stream seen as the request and response the router reads and writes for
 * HTTP/1.1: the few parts of IncomingMessage and ServerResponse it uses, on the stream's own API
 * (`stream.respond` with one header object, `write`, `end`, `sendTrailers`).
 *
 * node:http2's compatibility objects (Http2ServerRequest/Response) do the same for any program,
 * and cost a quarter of arr's CPU per HTTP/2 request (the "h2" profile of `npm run bench`): a
 * Readable and a Stream per stream, eleven listeners on it (two of them closures), every
 * response field validated, lower-cased and copied twice, and a trailers round on every
 * answer. arr's answers come from undici's parser, whose names and values are valid already.
 */

/**
 * On an HTTP/2 request (src/router/accepting/h2.ts), the TLS socket of its connection. Node's `req.socket`
 * of an HTTP/2 request is a proxy object that no WeakMap (the PROXY header's client addresses)
 * recognises; on HTTP/1.1 this is unset and `req.socket` is the connection.
 */
export const CONNECTION = Symbol('arr.connection');

/** The request of a stream: its head; its body is the stream itself (`body` below). */
export class H2Request {
  readonly httpVersionMajor = 2;
  readonly httpVersionMinor = 0;
  readonly httpVersion = '2.0';
  readonly headers: IncomingHttpHeaders;
  readonly rawHeaders: string[];
  url: string;
  readonly method: string;
  readonly stream: ServerHttp2Stream;
  /** The socket of the stream's connection, TLS or plain (h2c) (the router's connectionOf reads it). */
  readonly [CONNECTION]: Socket | undefined;

  constructor(
    stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    rawHeaders: string[],
    connection: Socket | undefined,
  ) {
    this.stream = stream;
    this.headers = headers;
    this.rawHeaders = rawHeaders;
    // The host is `:authority` (Host when a client sends none; RFC 9113 §8.3.1).
    const authority = headers[':authority'];
    if (typeof authority === 'string') headers.host = authority;
    this.url = String(headers[':path'] ?? '');
    this.method = String(headers[':method'] ?? '');
    this[CONNECTION] = connection;
  }

  /** What the router closes or checks as a request's "connection": on HTTP/2, the stream. */
  get socket(): ServerHttp2Stream {
    return this.stream;
  }

  /** Whether the whole request has arrived (or never will: the stream is gone). */
  get complete(): boolean {
    const s = this.stream;
    return s.endAfterHeaders || s.readableEnded || s.destroyed || s.closed;
  }
}

const RESPONSE = Symbol('arr.h2.response');
type ResponseStream = ServerHttp2Stream & { [RESPONSE]?: H2Response };

/** NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR. */
const NO_ERROR = 0;
const INTERNAL_ERROR = 2;
const WAIT_FOR_TRAILERS = { waitForTrailers: true } as const;
const END_STREAM = { endStream: true } as const;

/**
 * The answer of a stream. Of an emitter it has what the router and the access log use: 'close'
 * listeners (called once, when the stream closes, `this` the response) and a 'drain' listener
 * (the stream's own).
 */
export class H2Response {
  statusCode = 200;
  /**
   * Body bytes given to the stream, for the access log: a stream's share of its connection's
   * bytes is not known otherwise (heads are compressed for the whole connection).
   */
  bodyBytes = 0;
  readonly stream: ResponseStream;
  /** Trailers to send after the body (the stream asks for them: 'wantTrailers'). */
  private trailers: OutgoingHttpHeaders | undefined = undefined;
  /** Whether the client is asked to stop sending once the answer is complete (see stopClient). */
  private stopping = false;
  private closeListeners: (() => void)[] | undefined = undefined;
  /**
   * The answer is its head alone, ended with it (an HTTP/2 instance's HEADERS with END_STREAM:
   * gRPC's "trailers-only" answer, whose grpc-status is in the head and must stay there).
   */
  endWithHead = false;

  constructor(stream: ServerHttp2Stream) {
    this.stream = stream;
    (stream as ResponseStream)[RESPONSE] = this;
  }

  on(event: 'close' | 'drain', listener: () => void): this {
    return this.once(event, listener);
  }

  once(event: 'close' | 'drain', listener: () => void): this {
    if (event === 'drain') this.stream.once('drain', listener);
    else if (this.closeListeners) this.closeListeners.push(listener);
    else this.closeListeners = [listener];
    return this;
  }

  /** The stream closed: the 'close' listeners are called, once. */
  closed(): void {
    const listeners = this.closeListeners;
    this.closeListeners = undefined;
    if (listeners) for (const listener of listeners) listener.call(this);
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  get destroyed(): boolean {
    return this.stream.destroyed;
  }

  /**
   * Whether the answer went out whole (the access log and metrics count its status, else 0).
   * A stream's 'finish' may come after its 'close' (an answer without trailers whose stream
   * closes as its END_STREAM goes out): once closed, an answer arr ended on a stream that was
   * neither reset by the client nor destroyed before its end counts as finished.
   */
  get writableFinished(): boolean {
    const s = this.stream;
    return s.writableFinished || (s.closed && s.writableEnded && !s.aborted && s.rstCode === NO_ERROR);
  }

  /**
   * Sends the head. `headers` is an object of lower-case names (arrays for repeated fields), as
   * h2ResponseHeaders makes it; arr's own answers (respond.ts) give theirs the same way. The
   * stream waits for trailers when the answer may have some (no Content-Length: a chunked
   * answer) or when the request's body is still coming (see stopClient).
   */
  writeHead(status: number, headers: OutgoingHttpHeaders): this {
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return this;
    headers[':status'] = status;
    this.statusCode = status;
    if (this.endWithHead) {
      stream.respond(headers, END_STREAM);
      return this;
    }
    const waitForTrailers =
      headers['content-length'] === undefined || !(stream.endAfterHeaders || stream.readableEnded);
    // No options object when none is needed: respond() copies what it is given, and a fresh
    // object per answer measured 1.5 µs of respond's time per request (and more to collect).
    if (waitForTrailers) {
      stream.respond(headers, WAIT_FOR_TRAILERS);
      stream.once('wantTrailers', onWantTrailers);
    } else stream.respond(headers);
    return this;
  }

  write(chunk: Buffer): boolean {
    const stream = this.stream;
    // A HEAD, 204 or 304 answer ended the stream with its head.
    if (stream.writableEnded || stream.destroyed) return true;
    this.bodyBytes += chunk.length;
    return stream.write(chunk);
  }

  end(chunk?: Buffer | string): this {
    const stream = this.stream;
    if (!stream.writableEnded && !stream.destroyed) {
      if (chunk === undefined) stream.end();
      else {
        this.bodyBytes += typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
        stream.end(chunk);
      }
    }
    return this;
  }

  /**
   * The answer is cut short (the instance broke it off): RST_STREAM INTERNAL_ERROR, so that the
   * client knows its answer is incomplete (a plain destroy resets with NO_ERROR, which a client
   * may take for the end of a complete answer).
   */
  destroy(): void {
    const stream = this.stream;
    if (!stream.destroyed) stream.close(INTERNAL_ERROR);
  }

  addTrailers(trailers: OutgoingHttpHeaders): void {
    this.trailers = trailers;
  }

  /**
   * RFC 9113 §8.1: once the answer is complete (its END_STREAM sent, after the trailers the
   * stream asks for), the client is asked to stop sending the rest of its body with RST_STREAM
   * NO_ERROR, rather than made to send it for nothing (curl waits to finish its upload).
   */
  stopClient(): void {
    this.stopping = true;
  }

  /** After the trailers (or their empty list) are sent. */
  trailersSent(): void {
    if (this.stopping) setImmediate(stopSending, this.stream);
  }

  /** The trailers to send, at most once. */
  takeTrailers(): OutgoingHttpHeaders {
    const t = this.trailers ?? {};
    this.trailers = undefined;
    return t;
  }
}

/**
 * The stream closed (h2.ts calls this from the stream's one 'close' listener): its response's
 * 'close' listeners are called, and the stream lets go of it. A closed stream's object lives on
 * well after its 'close' (Node's native stream lets go of it later), long enough to outlive two
 * young-generation collections: whatever it still held (the response, its exchange, the request
 * to the instance in undici) was promoted to the old generation with it. That was 2.5 KB per
 * request, and the collector's work slowed every request (bench/decisions.md).
 */
export function responseClosed(stream: ServerHttp2Stream): void {
  const s = stream as ResponseStream;
  const res = s[RESPONSE];
  if (!res) return;
  s[RESPONSE] = undefined;
  res.closed();
}

/**
 * Sends a final answer's head (`:status` included) on a stream whose client may keep its side
 * open for good (a refused extended CONNECT, RFC 8441): once the body is sent, RST_STREAM
 * NO_ERROR closes the stream (as after an early answer), so that it is not held open, in flight,
 * for as long as its client likes.
 */
export function closeAfterAnswer(stream: ServerHttp2Stream, headers: OutgoingHttpHeaders): void {
  const res = new H2Response(stream);
  res.stopClient();
  res.writeHead(Number(headers[':status']), headers);
}

function onWantTrailers(this: ResponseStream): void {
  const res = this[RESPONSE];
  if (!res) return;
  try {
    this.sendTrailers(res.takeTrailers());
  } catch {
    // A trailer Node will not send is dropped; the body is complete.
    try {
      this.sendTrailers({});
    } catch {
      this.destroy();
      return;
    }
  }
  res.trailersSent();
}

function stopSending(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) stream.close(NO_ERROR);
}
