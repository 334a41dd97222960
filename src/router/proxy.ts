import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Target } from '../activation/activator.js';
import type { App } from '../registry/types.js';
import { setForwardedHeaders } from './forwarded.js';
import { type Exchange, TIMED_OUT as HEADERS_TIMED_OUT, HttpEngine } from './http-engine.js';
import { rejectUpgrade, sendError } from './respond.js';

export type TargetErrorHandler = (target: Target, err: NodeJS.ErrnoException) => void;

/** Sends a request again, to another or a new instance of its app. */
export type Replay = (req: IncomingMessage, res: ServerResponse, app: App, secure: boolean) => void;

/** Errors that mean the instance is not there at all (as opposed to failing mid-exchange). */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * How long one side of a WebSocket may take to finish after the other side has closed: what
 * it still had to send is delivered meanwhile, and what it receives is discarded.
 */
const WS_LINGER_MS = 5_000;

/** A request that can be sent to another instance after the first refused it. */
function isReplayable(req: IncomingMessage): boolean {
  const m = req.method;
  return (
    (m === 'GET' || m === 'HEAD' || m === 'OPTIONS') &&
    !req.headers['transfer-encoding'] &&
    (req.headers['content-length'] === undefined || req.headers['content-length'] === '0')
  );
}

/** The code of the error an exchange is abandoned with when its instance is too slow to answer. */
const TIMED_OUT = 'ARR_PROXY_TIMEOUT';

function timedOut(): Error {
  return Object.assign(new Error('the instance did not begin its answer in time'), { code: TIMED_OUT });
}

export function isUnreachable(err: NodeJS.ErrnoException): boolean {
  return UNREACHABLE.has(err.code ?? '');
}

/**
 * Moves requests and WebSockets to instances over plain HTTP. Connections to instances are
 * kept alive and reused. Every error on either side ends in a short answer to the client (or a
 * closed socket once the answer has begun) and a call to `onTargetError`; none escapes. An
 * exchange that one side abandons is abandoned on the other side too, so that nothing stays
 * open behind a client or an instance that is gone.
 *
 * Requests go through undici (HttpEngine), the fast path. WebSockets, and the one request
 * form undici cannot send (`OPTIONS *`), go through http-proxy on node:http.
 */
export class ProxyEngine {
  private readonly http: HttpEngine;
  private readonly agent = new Agent({
    keepAlive: true,
    maxSockets: Number.POSITIVE_INFINITY,
    maxFreeSockets: 256,
  });
  private readonly proxy = httpProxy.createProxyServer({ xfwd: false, agent: this.agent });
  /** Client sockets of upgrades the instance has begun to answer (101 or otherwise). */
  private readonly answered = new WeakSet<Duplex>();
  /** `--proxy-timeout`: how long an instance has to begin an answer (WebSockets are exempt). */

  constructor(
    private readonly onTargetError: TargetErrorHandler,
    private readonly replay: Replay,
    /** How long an instance has to begin its answer before the client gets 504. */
    private readonly timeoutMs = 60_000,
  ) {
    this.http = new HttpEngine(timeoutMs, (exchange, err) => this.exchangeFailed(exchange, err));
    // Callbacks are given per call; this is a last guard against an error without one.
    this.proxy.on('error', () => {});

    // HTTP. http-proxy pipes the instance's answer to the client and stops there: a client that
    // goes away would leave the instance's request open (stuck behind unread data), and an
    // instance that breaks off its answer would leave the client waiting for the rest forever.
    this.proxy.on('proxyReq', (proxyReq, _req, res) => {
      abandonWith(res, proxyReq);
      // An instance that has not begun its answer `timeoutMs` after the last byte it was sent:
      // the exchange is abandoned and the client gets 504. Once the answer has begun it streams
      // at the instance's pace. (http-proxy's own proxyTimeout would keep the timer running
      // through the answer, and its abort reads as a reset: 502.)
      proxyReq.setTimeout(this.timeoutMs, () => proxyReq.destroy(timedOut()));
      proxyReq.once('response', () => proxyReq.setTimeout(0));
    });
    this.proxy.on('proxyRes', (proxyRes, _req, res) => {
      // Hop-by-hop: the instance's keep-alive hint is about its connection with arr, not the client's.
      delete proxyRes.headers['keep-alive'];
      abandonWith(res, proxyRes);
      proxyRes.once('close', () => {
        if (!proxyRes.complete) res.destroy();
      });
    });

    // WebSockets: the same, and http-proxy's own handling of the answer is corrected.
    this.proxy.on('proxyReqWs', (proxyReq, _req, socket) => {
      const abandon = () => proxyReq.destroy();
      socket.once('close', abandon);
      proxyReq.once('response', (res: IncomingMessage) => {
        // Not an upgrade: http-proxy copies these headers and pipes the decoded body, so a
        // chunked answer would reach the client unframed. The end of the connection frames it.
        this.answered.add(socket);
        delete res.headers['transfer-encoding'];
        res.headers.connection = 'close';
        res.once('close', () => {
          if (!res.complete) socket.destroy();
        });
      });
      proxyReq.once('upgrade', (_res: IncomingMessage, proxySocket: Duplex) => {
        this.answered.add(socket);
        socket.off('close', abandon);
        closeTogether(socket, proxySocket);
      });
    });
  }

  /**
   * Proxies one request. When the instance cannot be reached at all and the request is safe to
   * send again (GET, HEAD or OPTIONS without a body), it is replayed (the constructor's
   * `replay`) instead of answered 502, so that it can go to another or a new instance; `app`
   * allows that, and is left out for a request that is itself a replay.
   */
  web(req: IncomingMessage, res: ServerResponse, target: Target, secure: boolean, app?: App): void {
    if (req.socket.destroyed) return; // the client left while its instance was being found
    if (req.url === '*') this.webByHttpProxy(req, res, target, secure);
    else this.http.send(req, res, target, secure, app);
  }

  private exchangeFailed(x: Exchange, err: NodeJS.ErrnoException): void {
    this.onTargetError(x.target, err);
    // The answer has begun: the client can only be told by the end of the connection.
    if (x.answered) {
      x.res.destroy();
      return;
    }
    const { app } = x;
    const retry = app ? () => this.replay(x.req, x.res, app, x.secure) : undefined;
    this.answerFailure(x.req, x.res, err, retry);
  }

  /** The client's answer when its exchange failed before the instance's answer began. */
  private answerFailure(
    req: IncomingMessage,
    res: ServerResponse,
    e: NodeJS.ErrnoException,
    retry?: () => void,
  ): void {
    if (res.destroyed || req.socket.destroyed) return; // the client went away: nothing to answer
    if (e.code === TIMED_OUT || e.code === HEADERS_TIMED_OUT) {
      sendError(res, 504, 'the application did not answer in time');
      return;
    }
    if (retry && isUnreachable(e) && !res.headersSent && isReplayable(req)) {
      retry();
      return;
    }
    sendError(
      res,
      502,
      isUnreachable(e) ? 'the application is not reachable' : 'the application failed to answer',
    );
  }

  /** `OPTIONS *`: undici only sends paths, so this one goes through http-proxy. */
  private webByHttpProxy(req: IncomingMessage, res: ServerResponse, target: Target, secure: boolean): void {
    setForwardedHeaders(req, secure);
    // Node has answered "Expect: 100-continue" already; without it the instance need not, and
    // http-proxy emits 'proxyReq' (the hooks above) for this request too.
    if (req.headers.expect !== undefined) delete req.headers.expect;
    const options = { target: { host: target.host, port: target.port } };
    this.proxy.web(req, res, options, (err) => {
      const e = err as NodeJS.ErrnoException;
      this.onTargetError(target, e);
      this.answerFailure(req, res, e);
    });
  }

  ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target): void {
    if (socket.destroyed) return; // the client left while its instance was being found
    // An upgraded connection never goes back to a pool, so no agent here.
    this.proxy.ws(
      req,
      socket,
      head,
      { target: { host: target.host, port: target.port }, agent: false },
      (err) => {
        const e = err as NodeJS.ErrnoException;
        this.onTargetError(target, e);
        // Once the instance has answered, the client's socket carries that answer (or WebSocket
        // frames): an HTTP error written now would be garbage in it. closeTogether, or the
        // 'response' handler above, ends it instead.
        if (this.answered.has(socket)) return;
        rejectUpgrade(
          socket,
          502,
          isUnreachable(e) ? 'the application is not reachable' : 'the application failed',
        );
      },
    );
  }

  close(): void {
    this.http.close();
    this.agent.destroy();
    this.proxy.close();
  }
}

/** When the client's response closes before it is complete, the exchange with the instance goes too. */
function abandonWith(res: ServerResponse, upstream: ClientRequest | IncomingMessage): void {
  if (res.destroyed) {
    if (!res.writableFinished) upstream.destroy();
    return;
  }
  res.once('close', () => {
    if (!res.writableFinished) upstream.destroy();
  });
}

/**
 * The two sides of a proxied WebSocket end together. When one closes, the other is ended (what
 * it still has to send is delivered), what it sends from now on is read and discarded (so that
 * it is not stuck writing to nobody), and it is destroyed if it has not closed in a while.
 */
function closeTogether(a: Duplex, b: Duplex): void {
  const follow = (gone: Duplex, other: Duplex) =>
    gone.once('close', () => {
      if (other.destroyed) return;
      other.end();
      other.resume();
      const timer = setTimeout(() => other.destroy(), WS_LINGER_MS);
      timer.unref();
      other.once('close', () => clearTimeout(timer));
    });
  follow(a, b);
  follow(b, a);
}
