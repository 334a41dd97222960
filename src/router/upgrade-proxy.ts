import type { ClientRequest, IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Target } from '../activation/activator.js';
import { setForwardedHeaders } from './forwarded.js';
import type { Exchange } from './http-engine.js';

/** The code of the error an `OPTIONS *` is abandoned with when its instance is too slow to answer. */
export const OPTIONS_TIMED_OUT = 'ARR_PROXY_TIMEOUT';

/**
 * How long one side of a WebSocket may take to finish after the other side has closed: what
 * it still had to send is delivered meanwhile, and what it receives is discarded.
 */
const WS_LINGER_MS = 5_000;

/** Where the upgrade path reports what became of an upgrade: the router. */
export interface UpgradeOwner {
  /** The instance answered the upgrade (101, or a refusal of its own), or arr refused it. */
  upgradeAnswered(socket: Duplex, status: number): void;
  /** The exchange with the instance failed before it answered. */
  upgradeFailed(socket: Duplex, target: Target, err: NodeJS.ErrnoException): void;
}

function timedOut(): Error {
  return Object.assign(new Error('the instance did not begin its answer in time'), {
    code: OPTIONS_TIMED_OUT,
  });
}

/**
 * The exchanges undici cannot carry, on node:http through http-proxy: WebSocket upgrades, and
 * `OPTIONS *` (undici only sends paths). As on the HTTP path, an exchange that one side
 * abandons is abandoned on the other, and every error reaches the owner; none escapes.
 */
export class UpgradeProxy {
  /**
   * No connection is kept (an upgraded one never goes back to a pool, and `OPTIONS *` is rare):
   * nothing kept to a port outlives the instance that had it.
   */
  private readonly proxy = httpProxy.createProxyServer({ xfwd: false, agent: false });
  /** Client sockets of upgrades the instance has begun to answer (101 or otherwise). */
  private readonly answered = new WeakSet<Duplex>();

  constructor(
    private readonly owner: UpgradeOwner,
    /** How long an instance has to begin its answer to an `OPTIONS *` (WebSockets are exempt). */
    private readonly timeoutMs: number,
  ) {
    // Callbacks are given per call; this is a last guard against an error without one.
    this.proxy.on('error', () => {});

    // `OPTIONS *`. http-proxy pipes the instance's answer to the client and stops there: a client
    // that goes away would leave the instance's request open (stuck behind unread data), and an
    // instance that breaks off its answer would leave the client waiting for the rest forever.
    this.proxy.on('proxyReq', (proxyReq, _req, res) => {
      abandonWith(res, proxyReq);
      // An instance that has not begun its answer `timeoutMs` after the last byte it was sent:
      // the exchange is abandoned and the client gets 504. (http-proxy's own proxyTimeout would
      // keep the timer running through the answer, and its abort reads as a reset: 502.)
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
        this.owner.upgradeAnswered(socket, res.statusCode ?? 0);
        delete res.headers['transfer-encoding'];
        res.headers.connection = 'close';
        res.once('close', () => {
          if (!res.complete) socket.destroy();
        });
      });
      proxyReq.once('upgrade', (_res: IncomingMessage, proxySocket: Duplex) => {
        this.answered.add(socket);
        this.owner.upgradeAnswered(socket, 101);
        socket.off('close', abandon);
        closeTogether(socket, proxySocket);
      });
    });
  }

  /** Sends an `OPTIONS *` exchange to its target; a failure goes to the exchange's owner. */
  options(x: Exchange): void {
    const { req, res } = x;
    const target = x.target!;
    setForwardedHeaders(req, x.secure);
    // Node has answered "Expect: 100-continue" already; without it the instance need not, and
    // http-proxy emits 'proxyReq' (the hooks above) for this request too.
    if (req.headers.expect !== undefined) delete req.headers.expect;
    this.proxy.web(req, res, { target: { host: target.host, port: target.port }, agent: false }, (err) =>
      x.owner.exchangeFailed(x, err as NodeJS.ErrnoException),
    );
  }

  /** Proxies a WebSocket upgrade to its target (X-Forwarded-* set by the caller). */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target): void {
    this.proxy.ws(
      req,
      socket,
      head,
      { target: { host: target.host, port: target.port }, agent: false },
      (err) => {
        // Once the instance has answered, the client's socket carries that answer (or WebSocket
        // frames): closeTogether, or the 'response' handler above, ends it.
        if (!this.answered.has(socket))
          this.owner.upgradeFailed(socket, target, err as NodeJS.ErrnoException);
      },
    );
  }

  close(): void {
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
export function closeTogether(a: Duplex, b: Duplex): void {
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
