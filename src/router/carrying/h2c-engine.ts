import { STATUS_CODES } from 'node:http';
import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
  type Settings,
} from 'node:http2';
import type { Target } from '../../activation/target.js';
import { editRequestHeaders } from '../deciding/policy/edge-answer.js';
import { type DownstreamRequest, isH2, isH2Response } from './downstream.js';
import { HOP_BY_HOP, h2RequestHeaders, requestHeaders } from './headers.js';
import { type Exchange, type HttpEngineOptions, hasBody, originOf } from './http-engine.js';
import { ProxyError } from './proxy-errors.js';

/**
 * HTTP/2 without TLS (h2c, by prior knowledge) to the instances of apps with `"protocol": "h2c"`
 * (gRPC servers and others that speak HTTP/2 only), on node:http2 client sessions. The same
 * shape as HttpEngine (send, closeConnections, close), and the same Exchange drives each stream: it is
 * given the calls undici would make (onConnect, onHeaders, onData, onComplete, onError), so that
 * the client's side (HTTP/1.1 or HTTP/2, trailers, backpressure, early answers, failures) is
 * one code path for both engines.
 *
 * Sessions belong to one instance (never shared, closed by `closeConnections` when it goes), up to
 * `maxConnections` of them; a session takes streams up to the instance's
 * SETTINGS_MAX_CONCURRENT_STREAMS (at most STREAMS_PER_SESSION) before another is opened, and
 * when every session is full and no more may be opened, nghttp2 queues the stream in the least
 * busy one until a stream there ends. A session opened before the instance's limit is known
 * sends one stream until its SETTINGS come (nghttp2 queues the others).
 *
 * undici 7's H2CClient (`allowH2` with `useH2c`) was not used: it is itself built on node:http2,
 * sends no request trailers (a TODO in its client-h2.js), and is one connection per Client with
 * no pool of them that opens another when the instance's stream limit is reached.
 */

/** Streams one session is given at most, whatever an instance allows (Go and grpc-js allow more). */
const STREAMS_PER_SESSION = 100;

const { NGHTTP2_CANCEL } = constants;
/** The END_STREAM flag of a HEADERS frame. */
const FLAG_END_STREAM = 0x1;

/**
 * The options of a stream, with the priority fields nghttp2 defaults to (weight 16, no parent):
 * `request()` copies its options and fills in those it lacks, and adding four properties to
 * each copy measured as much as the rest of its validation (Node 20).
 */
const PRIORITY = { weight: 16, parent: 0, exclusive: false, silent: false } as const;
const WITH_BODY = { endStream: false, waitForTrailers: true, ...PRIORITY } as const;
const WITHOUT_BODY = { endStream: true, ...PRIORITY } as const;

const SESSIONS = Symbol('arr.h2c.sessions');
const ACTIVE = Symbol('arr.h2c.active');
const LIMIT = Symbol('arr.h2c.limit');
/** An instance's sessions, and its limit of streams per session once one of them had its SETTINGS. */
type Sessions = Session[] & { [LIMIT]?: number };
type Session = ClientHttp2Session & { [ACTIVE]: number; [SESSIONS]?: Sessions };
type H2cTarget = Target & { [SESSIONS]?: Sessions };

export class H2cEngine {
  private readonly targets = new Set<H2cTarget>();
  private readonly timeoutMs: number;
  private readonly bodyTimeoutMs: number;
  private readonly maxConnections: number;

  constructor(options: HttpEngineOptions) {
    this.timeoutMs = options.timeoutMs;
    this.bodyTimeoutMs = options.bodyTimeoutMs;
    this.maxConnections = Math.max(1, options.maxConnections);
  }

  /** Sends the exchange's request to its target as one stream; its failure goes to the exchange. */
  send(x: Exchange): void {
    const req = x.req;
    const session = this.sessionFor(x.target as H2cTarget);
    const body = hasBody(req);
    let stream: UpstreamStream;
    try {
      // A body may end with trailers (a client's, HTTP/2 or chunked): the stream waits for them.
      stream = session.request(upstreamHeaders(x), body ? WITH_BODY : WITHOUT_BODY);
    } catch (err) {
      x.onError(err as Error);
      return;
    }
    session[ACTIVE]++;
    const upstream = new Upstream(x, stream, session);
    if (body) {
      (stream as UpstreamStream)[REQUEST] = req;
      stream.once('wantTrailers', sendRequestTrailers);
      if (isH2(req)) req.stream.once('trailers', keepTrailers);
      // The stream is the body's destination: a failing body destroys it with its error
      // (RST_STREAM to the instance), which reaches the exchange as the stream's 'error'.
      x.bodyInto(stream, this.bodyTimeoutMs);
    }
    if (this.timeoutMs > 0) stream.setTimeout(this.timeoutMs, onTimeout);
    x.onConnect(upstream.abort);
  }

  /** The instance is gone: its sessions close (now, or with `graceful` once their streams are done). */
  closeConnections(target: Target, graceful = false): void {
    const t = target as H2cTarget;
    const sessions = t[SESSIONS];
    if (!sessions) return;
    t[SESSIONS] = undefined;
    this.targets.delete(t);
    for (const s of sessions.splice(0)) {
      if (graceful) s.close();
      else s.destroy();
    }
  }

  close(): void {
    for (const t of this.targets) this.closeConnections(t);
  }

  /** A session of the target's with room for a stream, opened when none has (up to the limit). */
  private sessionFor(target: H2cTarget): Session {
    let sessions = target[SESSIONS];
    if (!sessions) {
      sessions = [];
      target[SESSIONS] = sessions;
      this.targets.add(target);
    }
    const limit = sessions[LIMIT];
    const room = limit ?? STREAMS_PER_SESSION;
    let least: Session | undefined;
    for (const s of sessions) {
      if (s[ACTIVE] < room) return s;
      if (!least || s[ACTIVE] < least[ACTIVE]) least = s;
    }
    if (least && sessions.length >= this.maxConnections) return least;
    // Streams beyond the instance's limit wait in nghttp2 until a stream ends; before the
    // instance's SETTINGS say what the limit is, beyond one (a stream sent past the limit would
    // be refused, REFUSED_STREAM, and its body could not be sent again).
    const session = connect(originOf(target), { peerMaxConcurrentStreams: limit ?? 1 }) as Session;
    session[ACTIVE] = 0;
    session[SESSIONS] = sessions;
    // A session's error ends it ('close' follows); its streams fail with their own errors.
    session.on('error', ignore);
    session.on('remoteSettings', learnLimit);
    // An instance that says GOAWAY takes no new stream there; 'close' when its streams are done.
    session.once('goaway', leave);
    session.once('close', leave);
    // Sessions do not keep arr's event loop alive when nothing else does.
    session.unref();
    sessions.push(session);
    return session;
  }
}

function ignore(): void {}

/** A session that closed or was told GOAWAY is no longer chosen for new streams. */
function leave(this: Session): void {
  const sessions = this[SESSIONS];
  if (!sessions) return;
  this[SESSIONS] = undefined;
  const i = sessions.indexOf(this);
  if (i !== -1) sessions.splice(i, 1);
}

/** The instance's SETTINGS: its limit of streams per session (at most ours) is every session's. */
function learnLimit(this: Session, settings: Settings): void {
  const sessions = this[SESSIONS];
  if (!sessions) return;
  const max = settings.maxConcurrentStreams;
  sessions[LIMIT] =
    typeof max === 'number' && max < STREAMS_PER_SESSION ? Math.max(1, max) : STREAMS_PER_SESSION;
}

/**
 * The head of the instance's stream: the fields the HTTP/1.1 engine would send (the same rules:
 * hop-by-hop, client claims, X-Forwarded-*), with the Host as `:authority`, and `te: trailers`
 * when the client said it takes trailers (gRPC requires it; it is the one TE HTTP/2 allows).
 */
export function upstreamHeaders(x: Exchange): OutgoingHttpHeaders {
  const req = x.req;
  let flat = x.h2 ? h2RequestHeaders(req, x.secure) : requestHeaders(req, x.secure);
  // The app's edge policies (src/router/deciding/policy) edit the request as for HTTP/1.1 instances.
  if (x.edge !== undefined) flat = editRequestHeaders(flat, x.edge);
  const out: OutgoingHttpHeaders = Object.create(null);
  out[':method'] = req.method ?? 'GET';
  out[':path'] = req.url ?? '/';
  out[':scheme'] = 'http';
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!.toLowerCase();
    const value = flat[i + 1]!;
    if (name === 'host') {
      out[':authority'] = value;
      continue;
    }
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else if (Array.isArray(prior)) prior.push(value);
    else out[name] = [prior as string, value];
  }
  if (takesTrailers(req)) out.te = 'trailers';
  return out;
}

function takesTrailers(req: DownstreamRequest): boolean {
  const te = req.headers.te;
  return te !== undefined && /(?:^|,)\s*trailers\s*(?:;|,|$)/i.test(String(te));
}

/** A header object as undici's flat raw list ([name, value, ...]), less pseudo-header fields. */
function flatten(headers: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name of Object.keys(headers)) {
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const value = headers[name];
    if (Array.isArray(value)) for (const v of value) out.push(name, v);
    else if (value !== undefined) out.push(name, String(value));
  }
  return out;
}

const REQUEST = Symbol('arr.h2c.request');
const TRAILERS = Symbol('arr.h2c.trailers');
const UPSTREAM = Symbol('arr.h2c.upstream');
type UpstreamStream = ClientHttp2Stream & { [REQUEST]?: DownstreamRequest; [UPSTREAM]?: Upstream };
type TrailedStream = ServerHttp2Stream & { [TRAILERS]?: IncomingHttpHeaders };

/** An HTTP/2 client's request trailers, kept on its stream until the instance's stream asks for them. */
function keepTrailers(this: TrailedStream, trailers: IncomingHttpHeaders): void {
  this[TRAILERS] = trailers;
}

/**
 * The request's body is sent: its trailers follow (an HTTP/2 client's, or an HTTP/1.1 client's
 * chunked ones), less pseudo-header and hop-by-hop fields; none, or ones Node will not send,
 * end the stream with an empty DATA frame.
 */
function sendRequestTrailers(this: UpstreamStream): void {
  const req = this[REQUEST];
  this[REQUEST] = undefined;
  if (req === undefined || this.destroyed) return;
  const given = isH2(req) ? (req.stream as TrailedStream)[TRAILERS] : req.trailers;
  const trailers: OutgoingHttpHeaders = Object.create(null);
  if (given !== undefined)
    for (const name of Object.keys(given))
      if (name.charCodeAt(0) !== 58 /* : */ && !HOP_BY_HOP.has(name)) trailers[name] = given[name];
  try {
    this.sendTrailers(trailers);
  } catch {
    try {
      this.sendTrailers({});
    } catch {
      this.close(NGHTTP2_CANCEL);
    }
  }
}

/** The undici error code a stream's failure stands for, so that the router's decisions hold. */
function asFailure(err: NodeJS.ErrnoException): NodeJS.ErrnoException {
  // A stream requested before its session connected fails with the connection's error as cause.
  const cause = (err as { cause?: NodeJS.ErrnoException }).cause;
  return err.code === 'ERR_HTTP2_STREAM_CANCEL' && cause?.code ? cause : err;
}

/**
 * One stream to an instance, driving its exchange as undici's dispatcher would. The stream's
 * body is read as the client takes it (paused while the client's response is full), and its
 * end, trailers, reset or error reach the exchange once. The stream's listeners are functions
 * shared by every stream (no closures per stream), which find this on the stream; its 'close'
 * lets go of it, since a closed stream's object outlives its close (h2-messages.ts,
 * responseClosed): whatever it still held would be promoted to the old generation with it.
 */
class Upstream {
  trailers: string[] | null = null;
  private done = false;

  constructor(
    readonly x: Exchange,
    private readonly stream: UpstreamStream,
    private readonly session: Session,
  ) {
    stream[UPSTREAM] = this;
    stream.on('response', onResponse);
    stream.on('trailers', onTrailers);
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('close', onClose);
  }

  response(headers: IncomingHttpHeaders, flags: number): void {
    // --proxy-timeout is the wait for the head; a stream that flows has none.
    this.stream.setTimeout(0);
    // A head that ends the stream (gRPC's trailers-only answer) ends the client's stream too.
    const res = this.x.res;
    if (flags & FLAG_END_STREAM && isH2Response(res)) res.endWithHead = true;
    const status = Number(headers[':status']);
    // HTTP/2 has no reason phrase: an HTTP/1.1 client gets the standard one.
    const text = STATUS_CODES[status] ?? '';
    if (!this.x.onHeaders(status, flatten(headers), this.resume, text)) this.stream.pause();
  }

  complete(): void {
    if (this.done) return;
    this.done = true;
    this.x.onComplete(this.trailers);
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    this.x.onError(err);
  }

  closed(): void {
    this.session[ACTIVE]--;
    // Reset by the instance (CANCEL emits no 'error'), or closed before its end.
    if (!this.done)
      this.fail(Object.assign(new Error('the instance reset the stream'), { code: 'ARR_H2C_RESET' }));
  }

  readonly resume = (): void => {
    this.stream.resume();
  };

  /** The client left (or the client's side failed): the instance's stream is cancelled. */
  readonly abort = (): void => {
    this.done = true;
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
  };

  timedOut(): void {
    if (this.x.answered || this.done) return;
    this.fail(new ProxyError('timeout', 'the instance did not answer in time'));
    if (!this.stream.destroyed) this.stream.close(NGHTTP2_CANCEL);
  }
}

function onResponse(this: UpstreamStream, headers: IncomingHttpHeaders, flags: number): void {
  this[UPSTREAM]?.response(headers, flags);
}

function onTrailers(this: UpstreamStream, trailers: IncomingHttpHeaders): void {
  const u = this[UPSTREAM];
  if (u) u.trailers = flatten(trailers);
}

function onData(this: UpstreamStream, chunk: Buffer): void {
  const u = this[UPSTREAM];
  if (u && !u.x.onData(chunk)) this.pause();
}

function onEnd(this: UpstreamStream): void {
  this[UPSTREAM]?.complete();
}

function onError(this: UpstreamStream, err: NodeJS.ErrnoException): void {
  this[UPSTREAM]?.fail(asFailure(err));
}

function onClose(this: UpstreamStream): void {
  const u = this[UPSTREAM];
  this[UPSTREAM] = undefined;
  this[REQUEST] = undefined;
  u?.closed();
}

function onTimeout(this: UpstreamStream): void {
  this[UPSTREAM]?.timedOut();
}
