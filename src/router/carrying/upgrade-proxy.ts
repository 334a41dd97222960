import { type ClientRequest, type IncomingMessage, request, type ServerResponse } from 'node:http';
import { connect, type Socket } from 'node:net';
import { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Target } from '../../activation/target.js';
import { isH2, isH2Response } from './downstream.js';
import { setForwardedHeaders } from './forwarded.js';
import type { Exchange } from './http-engine.js';
import { ProxyError } from './proxy-errors.js';

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
  upgradeFailed(socket: Duplex, target: Target, err: Error): void;
}

/** What an `OPTIONS *` is abandoned with when its instance is too slow to answer. */
function timedOut(): Error {
  return new ProxyError('timeout', 'the instance did not begin its answer in time');
}

/**
 * The exchanges undici cannot carry: WebSocket upgrades (relayed by arr itself, see `ws`), and
 * `OPTIONS *` (undici only sends paths; on node:http through http-proxy). As on the HTTP path, an exchange that one side
 * abandons is abandoned on the other, and every error reaches the owner; none escapes.
 */
export class UpgradeProxy {
  /**
   * No connection is kept (an upgraded one never goes back to a pool, and `OPTIONS *` is rare):
   * nothing kept to a port outlives the instance that had it.
   */
  private readonly proxy = httpProxy.createProxyServer({ xfwd: false, agent: false });

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
  }

  /** Sends an `OPTIONS *` exchange to its target; a failure goes to the exchange's owner. */
  options(x: Exchange): void {
    const { req, res } = x;
    const target = x.target!;
    // HTTP/2 refuses `*` before routing (h2.ts): http-proxy gets node:http's objects only.
    if (isH2(req) || isH2Response(res)) {
      x.owner.exchangeFailed(x, new ProxyError('failed', 'OPTIONS * over HTTP/2'));
      return;
    }
    setForwardedHeaders(req, x.secure);
    // Node has answered "Expect: 100-continue" already; without it the instance need not, and
    // http-proxy emits 'proxyReq' (the hooks above) for this request too.
    if (req.headers.expect !== undefined) delete req.headers.expect;
    this.proxy.web(req, res, { target: { host: target.host, port: target.port }, agent: false }, (err) =>
      x.owner.exchangeFailed(x, err),
    );
  }

  /**
   * Proxies a WebSocket upgrade to its target (X-Forwarded-* set by the caller), with no HTTP
   * client in between: the request head is written on a new connection to the instance, its 101
   * is passed on byte for byte, and from then on the two sockets are piped to each other. An
   * answer other than 101 (a refusal, rare) is read by node:http's parser (see `passRefusal`).
   */
  ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target): void {
    const up = connect({ host: target.host, port: target.port });
    up.setNoDelay(true);
    // A WebSocket has no idle timeout of arr's; TCP keep-alive probes find a peer that vanished.
    const client = socket as Socket;
    client.setTimeout(0);
    client.setKeepAlive(true, 0);
    // What the client sent after its request head reaches the instance after the 101, not before.
    if (head.length > 0) socket.unshift(head);

    let answered = false;
    let received: Buffer | undefined;
    const abandon = () => up.destroy();
    socket.once('close', abandon);
    const fail = (err: Error) => {
      up.destroy();
      if (answered) return;
      answered = true;
      socket.off('close', abandon);
      this.owner.upgradeFailed(socket, target, err);
    };
    const hungUp = () => fail(new ProxyError('failed', 'socket hang up'));
    const onData = (chunk: Buffer) => {
      received = received === undefined ? chunk : Buffer.concat([received, chunk]);
      const end = received.indexOf('\r\n\r\n');
      if (end === -1) {
        if (received.length > MAX_ANSWER_HEAD) fail(new ProxyError('failed', 'the answer head is too large'));
        return;
      }
      up.off('data', onData);
      up.off('close', hungUp);
      if (!isSwitching(received)) {
        this.passRefusal(
          socket,
          up,
          received,
          (status) => {
            answered = true;
            this.owner.upgradeAnswered(socket, status);
          },
          fail,
        );
        return;
      }
      answered = true;
      socket.off('close', abandon);
      this.owner.upgradeAnswered(socket, 101);
      socket.write(received); // the 101, and whatever the instance sent right after it
      socket.pipe(up);
      up.pipe(socket);
      closeTogether(socket, up);
    };
    up.on('error', fail);
    up.on('close', hungUp);
    up.on('data', onData);
    up.write(requestHead(req), 'latin1');
  }

  /**
   * The instance answered the upgrade with another status. What was read so far, and the rest,
   * goes through node:http's parser (a request on a stream that replays it), which frames the
   * body as the instance sent it; the client gets the head and the decoded body, and the end
   * of its connection frames it. A parse failure is the instance's failure (502).
   */
  private passRefusal(
    socket: Duplex,
    up: Socket,
    received: Buffer,
    answered: (status: number) => void,
    fail: (err: Error) => void,
  ): void {
    const replay = new Duplex({
      read: () => up.resume(),
      // The request went out already: node:http's own copy of it is dropped.
      write: (_chunk, _encoding, done) => done(),
      destroy: (err, done) => {
        up.destroy();
        done(err);
      },
    });
    up.on('data', (chunk: Buffer) => {
      if (!replay.push(chunk)) up.pause();
    });
    up.on('end', () => replay.push(null));
    up.on('close', () => replay.destroy());
    replay.push(received);
    const parse = request({
      createConnection: () => replay as Socket,
      method: 'GET',
      path: '/',
      headers: {},
    });
    parse.on('error', fail);
    // A 1xx before a 101: not passed on (node:http would hand the stream over as upgraded).
    parse.once('upgrade', () => fail(new ProxyError('failed', 'an upgrade after an interim answer')));
    parse.once('response', (res: IncomingMessage) => {
      answered(res.statusCode ?? 0);
      if (socket.destroyed) {
        up.destroy();
        return;
      }
      socket.write(refusalHead(res), 'latin1');
      res.pipe(socket);
      res.once('close', () => {
        if (!res.complete) socket.destroy();
        up.destroy();
      });
    });
    parse.end();
  }

  close(): void {
    this.proxy.close();
  }
}

/** The longest answer head to an upgrade read (node:http's default limit for a head). */
const MAX_ANSWER_HEAD = 16 * 1024;

/** The instance's upgrade request: the client's, as the router prepared it (HTTP/1.1, latin1). */
function requestHead(req: IncomingMessage): string {
  let head = `GET ${req.url} HTTP/1.1\r\n`;
  const headers = req.headers;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === 'string') head += `${name}: ${value}\r\n`;
    else for (const v of value) head += `${name}: ${v}\r\n`;
  }
  return `${head}\r\n`;
}

/** Whether an answer head is a 101 Switching Protocols. */
function isSwitching(answer: Buffer): boolean {
  return (
    answer.toString('latin1', 0, 9) === 'HTTP/1.1 ' &&
    answer.toString('latin1', 9, 12) === '101' &&
    (answer[12] === 0x20 || answer[12] === 0x0d)
  );
}

/**
 * The head of a refusal for the client: as the instance sent it, less the fields of its
 * connection with arr (the body is decoded, and the end of the connection frames it).
 */
function refusalHead(res: IncomingMessage): string {
  let head = `HTTP/1.1 ${res.statusCode} ${res.statusMessage}\r\n`;
  const raw = res.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (lower === 'transfer-encoding' || lower === 'connection' || lower === 'keep-alive') continue;
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${head}connection: close\r\n\r\n`;
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
