import type { IncomingMessage } from 'node:http';
import { PassThrough, type Writable } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import { exchangeBegan, exchangeEnded, type Target } from '../../activation/target.js';
import type { App } from '../../registry/types.js';
import {
  type Encoder,
  editFlatHead,
  editObjectHead,
  editRequestHeaders,
} from '../deciding/policy/edge-answer.js';
import type { EdgeRequest } from '../deciding/policy/gate.js';
import { type DownstreamRequest, type DownstreamResponse, isH2, isH2Response } from './downstream.js';
import type { H2Request, H2Response } from './h2-messages.js';
import { h2RequestHeaders, h2ResponseHeaders, requestHeaders, responseHeaders } from './headers.js';
import { instanceConnector } from './instance-connection.js';
import { lingerOnClose } from './linger.js';
import { ProxyError } from './proxy-errors.js';

/** Where an exchange reports that an attempt failed: the router, which decides what follows. */
export interface ExchangeOwner {
  /** `err` as undici, node:net or http-proxy reported it, or a ProxyError of arr's own. */
  exchangeFailed(exchange: Exchange, err: Error): void;
}

/**
 * An answer that is complete while the client is still sending its body: a body of at most
 * this many bytes in all is read and discarded, and the connection kept; a larger one (or a
 * chunked one, of unknown size) gets the answer with `Connection: close`.
 */
const DISCARD_MAX_BYTES = 64 * 1024;

export interface HttpEngineOptions {
  /** How long an instance has, after the last byte it was sent, to begin its answer. */
  timeoutMs: number;
  /** How long a request body may stall (no byte arriving) before the client gets 408. */
  bodyTimeoutMs: number;
  /** At most this many connections to one instance; further requests wait in arr for one. */
  maxConnections: number;
}

const POOL = Symbol('arr.pool');
/** A target with the connections kept to it: they belong to that instance, not to its address. */
type PooledTarget = Target & { [POOL]?: Pool };

/**
 * Plain HTTP requests to instances, on undici: kept-alive connections per instance (an undici
 * Pool per target, that is per running instance: when it goes, `closeConnections` closes them, so that
 * a port given again never receives what was meant for the instance that had it) and undici's
 * HTTP/1.1 client, which costs about half of what node's http.request does per request
 * (docs/BENCHMARKS.md, "Engine"). Each exchange is driven by a handler of undici's raw
 * dispatch interface: the instance's header lines are handed on as read, with no header
 * object built on either side.
 */
export class HttpEngine {
  private readonly pools = new Set<Pool>();
  private readonly poolOptions: Pool.Options;
  private readonly bodyTimeoutMs: number;

  constructor(options: HttpEngineOptions) {
    this.bodyTimeoutMs = options.bodyTimeoutMs;
    this.poolOptions = {
      connections: options.maxConnections,
      headersTimeout: options.timeoutMs,
      // Once begun, an answer streams at the instance's pace (a long download, a slow feed).
      bodyTimeout: 0,
      // A connection to an instance that is not there fails at once on loopback; across a
      // farm, a node that vanished (no RST) is given up on after this. A write the instance
      // refuses by closing does not lose the answer it sent first (instance-connection.ts).
      connect: instanceConnector(5_000),
      // The instance's own limit on a reply head is the client's concern; arr's is Node's.
      maxHeaderSize: 64 * 1024,
    };
  }

  /**
   * Sends the exchange's request to its target and the answer to the client. A failure goes to
   * the exchange's owner, once.
   */
  send(x: Exchange): void {
    const req = x.req;
    const target = x.target as PooledTarget;
    let headers = isH2(req) ? h2RequestHeaders(req, x.secure) : requestHeaders(req, x.secure);
    if (x.edge !== undefined) headers = editRequestHeaders(headers, x.edge);
    (target[POOL] ?? this.poolFor(target)).dispatch(
      {
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers,
        body: hasBody(req) ? x.bodyStream(this.bodyTimeoutMs) : null,
      },
      x,
    );
  }

  /**
   * The instance is gone (exited, stopped, unreachable): its connections are closed now, those
   * in use too. With `graceful` (it is only no longer used: the farm's registry no longer lists
   * it), idle connections close now and those in use when their exchange is done.
   */
  closeConnections(target: Target, graceful = false): void {
    const t = target as PooledTarget;
    const pool = t[POOL];
    if (!pool) return;
    t[POOL] = undefined;
    this.pools.delete(pool);
    void (graceful ? pool.close() : pool.destroy()).catch(() => {});
  }

  close(): void {
    for (const pool of this.pools) void pool.destroy().catch(() => {});
    this.pools.clear();
  }

  private poolFor(target: PooledTarget): Pool {
    const pool = new Pool(originOf(target), this.poolOptions);
    target[POOL] = pool;
    this.pools.add(pool);
    return pool;
  }
}

/** The URL origin of an instance (an IPv6 address in brackets). */
export function originOf(t: Target): string {
  return t.host.includes(':') ? `http://[${t.host}]:${t.port}` : `http://${t.host}:${t.port}`;
}

/**
 * Whether the client announced a body (Node has checked the framing already). An HTTP/2
 * request has one unless its HEADERS frame ended the stream (Content-Length is optional there).
 */
export function hasBody(req: DownstreamRequest): boolean {
  if (isH2(req)) return !req.stream.endAfterHeaders;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * Where a request's body is read from: the request itself on HTTP/1.1, the stream on HTTP/2
 * (h2-messages.ts). Its 'timeout' is the body's stall: on HTTP/1.1 the server passes the
 * socket's on to the request.
 */
type BodySource = (IncomingMessage | H2Request['stream']) & { [EXCHANGE]?: Exchange };

/**
 * One request and its answer, over one or more attempts (each with an instance: `target`).
 * An attempt that one side abandons is abandoned on the other: a client that goes away aborts
 * the request to the instance (so that nothing stays open behind it), and an instance that
 * breaks off its answer ends the client's connection (so the client does not wait for the
 * rest forever). The state of the current attempt is reset by `begin`.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  /** The instance of the current attempt. */
  target: Target | undefined = undefined;
  /** Attempts begun so far. */
  attempts = 0;
  private abort: ((err?: Error) => void) | undefined = undefined;
  private resume: (() => void) | undefined = undefined;
  /** Whether the current attempt is over (answered, failed, or abandoned by the client). */
  private ended = false;
  /** Body bytes still to come by the answer's Content-Length; -1 when it has none. */
  private unread = -1;
  /** The body's last chunk, held for res.end(). */
  private last: Buffer | undefined = undefined;
  /** The request's body on its way to the instance, while it is being sent. */
  private body: Writable | undefined = undefined;
  /** Whether the answer said `Connection: close` (it began before a large body was all sent). */
  private closeAfter = false;
  /** The answer's body on its way through a compressor (an app with `compress`). */
  private encoder: Encoder | undefined = undefined;
  /** Body bytes the client has sent so far (counted against an app's `maxBodySize` only). */
  bodyBytes = 0;
  /**
   * An HTTP/2 stream (h2-messages.ts: req and res stand for it): its body and timeouts are the
   * stream's own, not the connection's, its head is one object, and it has no Connection
   * field, no status text and no lingering close.
   */
  readonly h2: boolean;

  constructor(
    readonly req: DownstreamRequest,
    readonly res: DownstreamResponse,
    readonly app: App,
    readonly secure: boolean,
    readonly owner: ExchangeOwner,
    /** The edge policies of an app that has some (src/router/deciding/policy), and what they decided. */
    readonly edge?: EdgeRequest,
  ) {
    // One listener shared by every exchange (no closure per request): it finds this one on res.
    (res as ExchangeResponse)[EXCHANGE] = this;
    res.on('close', onClientClose);
    this.h2 = isH2(req);
  }

  /**
   * The request's body as undici is given it. undici destroys a body stream when the exchange
   * fails, and destroying a request that was not read to its end destroys the client's
   * connection with it: the client would get no answer (504, 502) at all. The body is
   * therefore piped through a stream of its own; once that is dropped, what is left of the
   * request is discarded before the client's next one is read. A body that stalls for
   * `timeoutMs` fails the exchange (a ProxyError `body-timeout`).
   */
  bodyStream(timeoutMs: number): PassThrough {
    const body = new PassThrough();
    // undici listens for the body's errors only while the request is under way: one failing
    // while the request waits for a connection must not be an unhandled 'error'.
    body.on('error', ignore);
    this.bodyInto(body, timeoutMs);
    return body;
  }

  /**
   * The request's body piped into `body` (the h2c engine's stream to the instance, which is
   * only ever closed or reset, never the client's): what bodyStream does, without a stream
   * between. `body` is destroyed with the error when the body fails.
   */
  bodyInto(body: Writable, timeoutMs: number): void {
    const source = this.bodySource();
    this.body = body;
    source[EXCHANGE] = this;
    source.pipe(body);
    source.once('close', onRequestClose);
    source.once('end', onRequestEnd);
    source.on('timeout', onBodyTimeout);
    source.setTimeout(timeoutMs);
    if (this.edge !== undefined && this.edge.policy.maxBodySize >= 0) source.on('data', countBody);
  }

  private bodySource(): BodySource {
    const req = this.req;
    return isH2(req) ? req.stream : req;
  }

  /**
   * The client stopped before the end of the body it announced, or sent nothing for too long:
   * the exchange fails, or, when the answer is done already, the connection goes.
   */
  bodyFailed(err: Error): void {
    const body = this.body;
    if (body && !body.destroyed) body.destroy(err);
    else this.req.socket.destroy();
  }

  /** A new attempt, with `target`; it counts as in flight there until the client's answer closes. */
  begin(target: Target): void {
    if (this.target) exchangeEnded(this.target);
    exchangeBegan(target);
    this.target = target;
    this.attempts++;
    this.abort = undefined;
    this.resume = undefined;
    this.ended = false;
    this.unread = -1;
    this.last = undefined;
    this.closeAfter = false;
    this.encoder?.destroy();
    this.encoder = undefined;
  }

  /** The client's response closed: before the answer was complete, the attempt is abandoned. */
  clientClosed(): void {
    if (this.target) exchangeEnded(this.target);
    this.encoder?.destroy();
    if (this.ended) return;
    this.ended = true;
    this.abort?.();
  }

  /** Whether the client has had the head of an answer (so an error can no longer be sent). */
  get answered(): boolean {
    return this.res.headersSent;
  }

  onConnect(abort: (err?: Error) => void): void {
    // The client may have gone while the request waited for a connection.
    if (this.ended) abort();
    else this.abort = abort;
  }

  onHeaders(
    status: number,
    raw: Buffer[] | string[] | null,
    resume: () => void,
    statusText: string,
  ): boolean {
    if (status < 200) return true; // 103 Early Hints and the like are not passed on
    this.resume = resume;
    const res = this.res;
    if (res.destroyed) return false;
    if (isH2Response(res)) return this.h2Head(res, status, (raw ?? []) as Buffer[]);
    let headers = responseHeaders((raw ?? []) as Buffer[]);
    if (this.edge !== undefined)
      ({ headers, encoder: this.encoder } = editFlatHead(status, headers, this.edge, res));
    // An answer while the body is still coming: if it completes first, a large body will not
    // be waited for, and the connection is closed after the answer.
    if (this.body && !this.req.complete && !discardable(this.req)) {
      headers.push('connection', 'close');
      this.closeAfter = true;
    }
    try {
      res.writeHead(status, statusText, headers);
    } catch (err) {
      // A header Node will not send (an invalid value): as if the instance had failed.
      this.abort?.(err as Error);
      return false;
    }
    this.unread = this.encoder === undefined ? contentLength(headers) : -1;
    return true;
  }

  /**
   * The head on an HTTP/2 stream: one header object, no status text. While the body is still
   * coming, the rest of it is read and discarded (the stream is not the connection).
   */
  private h2Head(res: H2Response, status: number, raw: Buffer[]): boolean {
    const headers = h2ResponseHeaders(raw);
    if (this.edge !== undefined) this.encoder = editObjectHead(status, headers, this.edge, res);
    try {
      res.writeHead(status, headers);
    } catch (err) {
      // A head Node will not send (a repeated Content-Type...): as if the instance had failed.
      this.abort?.(err as Error);
      return false;
    }
    const length = headers['content-length'];
    this.unread =
      this.encoder === undefined && typeof length === 'string' && /^\d{1,15}$/.test(length)
        ? Number(length)
        : -1;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.encoder !== undefined) return this.encoder.write(chunk, this.resume);
    // The body's last chunk is kept for res.end(): a small answer's head, body and end then
    // leave in one system call, not a write followed by an end.
    if (this.unread >= 0) {
      this.unread -= chunk.length;
      if (this.unread === 0) {
        this.last = chunk;
        return true;
      }
    }
    if (this.res.write(chunk)) return true;
    if (this.resume) this.res.once('drain', this.resume);
    return false;
  }

  onComplete(trailers: Buffer[] | string[] | null): void {
    this.ended = true;
    const res = this.res;
    if (this.body && !this.req.complete) this.answeredEarly();
    if (trailers && trailers.length > 0) addTrailers(res, trailers as Buffer[]);
    if (this.encoder !== undefined) this.encoder.end();
    else if (this.last) res.end(this.last);
    else res.end();
  }

  /**
   * The instance's answer is complete and the client is still sending its body (the instance
   * answered from the head alone): the rest is read and discarded, so that the client is not
   * left writing into a full window. When the answer said `Connection: close`, the connection
   * closes after it, lingering; otherwise the client's next request is read after the body.
   */
  private answeredEarly(): void {
    const source = this.bodySource();
    if (this.body) {
      source.unpipe(this.body);
      this.body.destroy();
    }
    source.resume();
    const res = this.res;
    const req = this.req;
    if (isH2Response(res)) res.stopClient();
    else if (this.closeAfter && !isH2(req)) lingerOnClose(req.socket);
  }

  /**
   * arr answers the request itself (the attempt failed) while the client is still sending its
   * body: as after an early answer, the rest is read and discarded, so that the connection is
   * neither left unread (a graceful stop would wait for it) nor read as a next request. True
   * when the answer must close the connection: HTTP/1.1 with more than a little left to come.
   */
  leaveBody(): boolean {
    if (!this.body || this.req.complete) return false;
    this.closeAfter = !this.h2 && !discardable(this.req);
    this.answeredEarly();
    return this.closeAfter;
  }

  onError(err: Error): void {
    // Aborted because the client left: nothing to tell anyone.
    if (this.ended) return;
    this.ended = true;
    this.owner.exchangeFailed(this, err);
  }
}

/** The Content-Length of a flat header list, or -1 (none, or not a plain number). */
function contentLength(headers: string[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      const value = headers[i + 1]!;
      return /^\d{1,15}$/.test(value) ? Number(value) : -1;
    }
  }
  return -1;
}

const EXCHANGE = Symbol('arr.exchange');
type ExchangeResponse = DownstreamResponse & { [EXCHANGE]?: Exchange };

function onClientClose(this: ExchangeResponse): void {
  this[EXCHANGE]?.clientClosed();
}

function ignore(): void {}

/** A client that sends less than it announced leaves the instance's request unfinished. */
function onRequestClose(this: BodySource): void {
  const x = this[EXCHANGE];
  // An HTTP/2 stream outlives its close (h2-messages.ts, responseClosed): it lets go of the exchange.
  this[EXCHANGE] = undefined;
  if (x && !x.req.complete) x.bodyFailed(new Error('the client did not send its whole body'));
}

/** A chunk of the body of an app with `maxBodySize`: past it, the exchange is cut (413). */
function countBody(this: BodySource, chunk: Buffer): void {
  const x = this[EXCHANGE];
  if (!x || x.edge === undefined) return;
  x.bodyBytes += chunk.length;
  if (x.bodyBytes <= x.edge.policy.maxBodySize) return;
  this.off('data', countBody);
  const res = x.res;
  const req = x.req;
  if (isH2Response(res)) res.stopClient();
  else if (!isH2(req)) lingerOnClose(req.socket);
  x.bodyFailed(new ProxyError('body-too-large', 'the request body is too large'));
}

/** The whole body arrived: its stall timer stops. */
function onRequestEnd(this: BodySource): void {
  this.setTimeout(0);
  this.off('timeout', onBodyTimeout);
}

/** No byte of the body for `--body-timeout`: the exchange fails, and the client gets 408. */
function onBodyTimeout(this: BodySource): void {
  const x = this[EXCHANGE];
  if (!x) return;
  const req = x.req;
  if (req.complete) return;
  if (!isH2(req)) lingerOnClose(req.socket);
  x.bodyFailed(new ProxyError('body-timeout', 'the request body stalled'));
}

/** Whether what is left of a request's body is small enough to read and discard. */
function discardable(req: DownstreamRequest): boolean {
  const length = req.headers['content-length'];
  return (
    length !== undefined &&
    req.headers['transfer-encoding'] === undefined &&
    Number(length) <= DISCARD_MAX_BYTES
  );
}

function addTrailers(res: DownstreamResponse, raw: Buffer[]): void {
  // Hop-by-hop names are dropped as in a head (HTTP/2 would refuse them when sending).
  if (isH2Response(res)) {
    res.addTrailers(h2ResponseHeaders(raw));
    return;
  }
  const flat = responseHeaders(raw);
  const trailers: [string, string][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) trailers.push([flat[i]!, flat[i + 1]!]);
  if (trailers.length === 0) return;
  try {
    res.addTrailers(trailers);
  } catch {
    // an invalid trailer is dropped; the body is complete
  }
}
