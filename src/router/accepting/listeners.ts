import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { type AddressInfo, Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type SecureContext, TLSSocket } from 'node:tls';
import { listenOrExplain } from '../../util/listen.js';
import { isWebSocketUpgrade } from '../deciding/host.js';
import { divertAcmeTls } from './client-hello.js';
import { H2Front } from './h2.js';
import { acceptPriorKnowledge } from './prior-knowledge.js';
import { expectProxyHeaders } from './proxy-protocol.js';
import type { RequestHandler } from './request-handler.js';
import type { CertificateStore } from './tls.js';

export interface Listeners {
  http: Server;
  https: HttpsServer;
  /** The TLS port as bound (the one picked, for port 0). */
  httpsPort: number;
  /** HTTP/2 on the TLS port and by prior knowledge on the plain one; undefined with neither. */
  h2: H2Front | undefined;
  /** Hands every request and upgrade to the router from now on. */
  route(router: RequestHandler): void;
  /** Serves this default certificate from the next handshake on (a reload); connections open keep theirs. */
  setDefaultCertificate(cert: Buffer, key: Buffer): void;
  /** Stops accepting and closes connections that have sent nothing yet; exchanges under way go on. */
  stopAccepting(): Promise<void>;
  /** Closes idle keep-alive connections now, then every connection after `graceMs`. */
  drain(graceMs: number): Promise<void>;
  /**
   * Another process takes over (a worker replaced on reload): stops taking connections and
   * closes none. Each HTTP/1.1 connection ends after its next answer (`Connection: close`), so a
   * client never sends on a connection being closed; HTTP/2 ones get GOAWAY. Resolves once every
   * connection is closed.
   */
  retire(): Promise<void>;
}

/** Limits on clients' connections (`--header-timeout`, `--keepalive-timeout`), and the proxy's. */
export interface ConnectionLimits {
  /** Default 20 s. */
  headerTimeoutMs?: number;
  /** Default 65 s. */
  keepAliveTimeoutMs?: number;
}

function serverOptions(limits: ConnectionLimits) {
  const headersTimeout = limits.headerTimeoutMs ?? 20_000;
  return {
    // Idle keep-alive connections are closed after this; a little longer than common clients'.
    keepAliveTimeout: limits.keepAliveTimeoutMs ?? 65_000,
    // Slow or stalled request heads (slowloris) are cut off (408) rather than held open. Node
    // looks for them every connectionsCheckingInterval (30 s by default: far too coarse).
    headersTimeout,
    connectionsCheckingInterval: Math.min(1_000, Math.max(100, headersTimeout / 4)),
    requestTimeout: 0,
    // arr answers a missing Host itself, with the same plain-text body as its other errors.
    requireHostHeader: false,
    // Pinned, whatever NODE_OPTIONS says (--insecure-http-parser, --max-http-header-size):
    // ambiguous framing (Content-Length with Transfer-Encoding...) is a 400, a head over 16 KB a 431.
    insecureHTTPParser: false,
    maxHeaderSize: 16 * 1024,
  };
}

/**
 * The plain and the TLS listener, bound; requests and upgrades go to the router once `route` is
 * called (in the same turn as the bind completes, so that no request comes before).
 */
export async function openListeners(
  certs: CertificateStore,
  options: {
    port: number;
    sslport: number;
    bind?: string;
    cert: Buffer;
    key: Buffer;
    /** `--trust-proxy-protocol`: every connection begins with a PROXY v1 header. */
    trustProxyProtocol?: boolean;
    /** With ACME's TLS-ALPN-01 on: the challenge certificate for a host, when an order waits for it. */
    alpnChallenge?: (host: string) => Promise<SecureContext | undefined>;
    /** HTTP/2 on the TLS port (default on; `--no-http2`). */
    http2?: boolean;
    /** HTTP/2 with prior knowledge on the plain port (default on; `--no-h2c`). */
    h2c?: boolean;
    /** Listening sockets passed by the service manager, taken instead of binding `port`/`sslport`. */
    sockets?: { http?: number; https?: number };
  } & ConnectionLimits,
): Promise<Listeners> {
  const limits = serverOptions(options);
  const http = createHttpServer(limits);

  const https = createHttpsServer({
    ...limits,
    // A TLS handshake that stalls is a slow request head too.
    handshakeTimeout: limits.headersTimeout,
    ...defaultContext(options.cert, options.key),
    SNICallback: certs.SNICallback,
    // h2 first: a client offering both gets HTTP/2. Without HTTP/2, only http/1.1 is offered.
    ALPNProtocols: options.http2 === false ? ['http/1.1'] : ['h2', 'http/1.1'],
  });
  const h2 =
    options.http2 === false && options.h2c === false
      ? undefined
      : new H2Front({ defaultCert: options.cert, idleTimeoutMs: limits.keepAliveTimeout });
  if (h2 && options.http2 !== false) {
    // The https server takes a TLS connection in with its one 'secureConnection' listener
    // (node:http's connection listener). It is wrapped: a connection that chose h2 goes to the
    // HTTP/2 side instead; every other one is handed to it as before.
    const [http1] = https.listeners('secureConnection') as ((this: Server, s: TLSSocket) => void)[];
    if (!http1) throw new Error('the https server has no connection listener to hand sockets to');
    https.removeListener('secureConnection', http1);
    https.on('secureConnection', function secureConnection(this: Server, s: TLSSocket) {
      if (s.alpnProtocol === 'h2') h2.accept(s);
      else http1.call(this, s);
    });
  }

  const alpnChallenge = options.alpnChallenge;
  if (alpnChallenge) {
    // Before the PROXY header reader (installed next), which then hands sockets to this.
    divertAcmeTls(https, limits.headersTimeout, (socket, host) =>
      answerAlpnChallenge(socket, host, alpnChallenge),
    );
  }

  if (options.trustProxyProtocol) {
    // Before any other 'connection' listener: the header is read before the servers see a byte.
    expectProxyHeaders(http, false, limits.headersTimeout);
    expectProxyHeaders(https, true, limits.headersTimeout);
  }

  // Upgraded sockets leave the servers' own bookkeeping, so they are tracked here to be closed
  // on shutdown.
  const sockets = new Set<Socket>();
  // Connections that have not sent a request yet: Node does not count them as idle, so a
  // silent client would hold a graceful stop for its whole grace period.
  const fresh = new Set<Socket>();
  const track = (s: Socket, isFresh: boolean) => {
    sockets.add(s);
    if (isFresh) fresh.add(s);
    s.once('close', () => {
      sockets.delete(s);
      fresh.delete(s);
    });
  };
  const used = (req: IncomingMessage) => fresh.delete(req.socket as Socket);
  // An h2c connection is not fresh either (GOAWAY, as on the TLS port).
  if (h2 && options.h2c !== false) acceptPriorKnowledge(http, h2, (s) => fresh.delete(s));
  http.on('connection', (s: Socket) => track(s, true));
  // A TLS connection is fresh from its first byte: one still in its handshake when arr stops
  // would otherwise hold the stop. Once secure, its TLS socket stands for it.
  https.on('connection', (s: Socket) => track(s, true));
  // An HTTP/2 connection is not fresh: it is told to stop with GOAWAY, and its streams finish.
  https.on('secureConnection', (s: TLSSocket) => {
    fresh.delete((s as Socket & { _parent?: Socket })._parent as Socket);
    track(s, s.alpnProtocol !== 'h2');
  });
  for (const server of [http, https]) {
    server.prependListener('request', used);
    server.prependListener('upgrade', used);
  }

  // Until route(): a connection that waited for arr (socket activation) is handed over as soon
  // as one port listens, before the router is there; its request waits for it.
  const early = holdEarly([http, https]);

  const { port, sslport, bind: host, sockets: passed } = options;
  await Promise.all([
    listenOrExplain(http, { port, host, fd: passed?.http }, '-p'),
    listenOrExplain(https, { port: sslport, host, fd: passed?.https }, '-s'),
  ]).catch((err: unknown) => {
    // The one that opened is closed: a failed start leaves no port behind.
    http.close();
    https.close();
    throw err;
  });

  return {
    http,
    https,
    httpsPort: boundPort(https),
    h2,
    route(router) {
      h2?.route(router);
      const waiting = early();
      http.on('request', (req, res) => router.handleRequest(req, res, false));
      http.on('upgrade', (req, socket, head) =>
        isWebSocketUpgrade(req)
          ? router.handleUpgrade(req, socket, head, false)
          : reinject(http, 'connection', req, socket, head),
      );
      https.on('request', (req, res) => router.handleRequest(req, res, true));
      https.on('upgrade', (req, socket, head) =>
        isWebSocketUpgrade(req)
          ? router.handleUpgrade(req, socket, head, true)
          : reinject(https, 'secureConnection', req, socket, head),
      );
      for (const replay of waiting) replay();
    },
    setDefaultCertificate(cert, key) {
      // The session ticket keys are kept: tickets issued before still resume (and stay shared
      // with the farm's other nodes).
      https.setSecureContext({ ...defaultContext(cert, key), ticketKeys: https.getTicketKeys() });
      h2?.setDefaultCert(cert);
    },
    stopAccepting: () => {
      const closed = Promise.all([http, https].map((s) => new Promise<void>((r) => s.close(() => r()))));
      for (const s of fresh) s.destroy();
      h2?.stopAccepting();
      return closed.then(() => {});
    },
    retire() {
      const lastAnswer = (_req: IncomingMessage, res: ServerResponse) => {
        res.shouldKeepAlive = false;
      };
      for (const s of [http, https]) s.prependListener('request', lastAnswer);
      h2?.stopAccepting();
      // net's own close: http's would close the idle keep-alive connections at once.
      return Promise.all(
        [http, https].map((s) => new Promise<void>((r) => NetServer.prototype.close.call(s, () => r()))),
      ).then(() => {});
    },
    async drain(graceMs) {
      http.closeIdleConnections();
      https.closeIdleConnections();
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) {
        http.closeIdleConnections();
        https.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const s of sockets) s.destroy();
    },
  };
}

/**
 * Holds the requests and upgrades the servers get before they are routed; the function returned
 * stops holding and gives back a replay of each (emitted again once the router listens).
 */
function holdEarly(servers: Server[]): () => (() => void)[] {
  const held: (() => void)[] = [];
  const holders = servers.flatMap((server) =>
    (['request', 'upgrade'] as const).map((event) => {
      const hold = (...args: unknown[]) => held.push(() => server.emit(event, ...args));
      server.on(event, hold);
      return () => server.off(event, hold);
    }),
  );
  return () => {
    for (const release of holders) release();
    return held;
  };
}

/** The TLS server's own context: the default certificate, and what every handshake shares. */
function defaultContext(cert: Buffer, key: Buffer) {
  return {
    cert,
    key,
    minVersion: 'TLSv1.2' as const,
    // The same on every node, so that with shared ticket keys (setTicketKeys) a session made on
    // one node resumes on another.
    sessionIdContext: 'arr',
  };
}

/**
 * A TLS-ALPN-01 validation connection (RFC 8737): the handshake presents the challenge
 * certificate and selects `acme-tls/1`; then the connection is closed. No such certificate (no
 * order waits): closed at once.
 */
function answerAlpnChallenge(
  socket: Socket,
  host: string,
  challenge: (host: string) => Promise<SecureContext | undefined>,
): void {
  socket.on('error', () => socket.destroy());
  challenge(host).then(
    (ctx) => {
      if (!ctx || socket.destroyed) return socket.destroy();
      const tls = new TLSSocket(socket, {
        isServer: true,
        secureContext: ctx,
        ALPNProtocols: ['acme-tls/1'],
      });
      tls.on('error', () => tls.destroy());
      tls.once('secure', () => tls.end());
      tls.setTimeout(10_000, () => tls.destroy());
    },
    () => socket.destroy(),
  );
}

/** Hop-by-hop headers of an upgrade offer, dropped when the offer is declined. */
const OFFER_HEADERS = new Set(['upgrade', 'http2-settings']);

/**
 * Declines an upgrade arr does not do (curl --http2 offers "Upgrade: h2c" on plain requests),
 * as HTTP/1.1 lets a server do: the request head is put back on the connection without the
 * offer, and the connection is handed back to the server, which reads it (body included) as an
 * ordinary request. The server's 'connection' event is documented to accept injected streams;
 * the TLS server's HTTP handling hangs off 'secureConnection'.
 */
function reinject(
  server: Server,
  event: 'connection' | 'secureConnection',
  req: IncomingMessage,
  socket: Duplex,
  head: Buffer,
): void {
  const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) {
    const name = req.rawHeaders[i]!;
    let value = req.rawHeaders[i + 1]!;
    const lower = name.toLowerCase();
    if (OFFER_HEADERS.has(lower)) continue;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t && !OFFER_HEADERS.has(t.toLowerCase()))
        .join(', ');
      if (!value) continue;
    }
    lines.push(`${name}: ${value}`);
  }
  socket.unshift(Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), head]));
  server.emit(event, socket);
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
