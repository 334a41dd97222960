import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { InstanceChooser } from '../../activation/chooser.js';
import { ActivationError, exchangeBegan, exchangeEnded, type Target } from '../../activation/target.js';
import type { Registry } from '../../registry/registry.js';
import type { App, Route } from '../../registry/types.js';
import type { Logger } from '../../util/log.js';
import type { RequestHandler } from '../accepting/request-handler.js';
import { type DownstreamRequest, type DownstreamResponse, isH2 } from '../carrying/downstream.js';
import { setForwardedHeaders } from '../carrying/forwarded.js';
import { endGrpcCall, refuseRequest } from '../carrying/grpc-errors.js';
import { H2WebSocketJoiner } from '../carrying/h2-websocket.js';
import type { H2cEngine } from '../carrying/h2c-engine.js';
import { Exchange, type ExchangeOwner, type HttpEngine, hasBody } from '../carrying/http-engine.js';
import {
  answerFor,
  counted,
  instanceGone,
  proxyError,
  retryable,
  upgradeAnswerFor,
} from '../carrying/proxy-errors.js';
import { rejectUpgrade, sendError } from '../carrying/respond.js';
import { type UpgradeOwner, UpgradeProxy } from '../carrying/upgrade-proxy.js';
import { FILES_OR_DEFAULT, misdirected, noSni, type ServedCertificates } from './coalescing.js';
import { absoluteTarget, hostName, manyHosts } from './host.js';
import type { ExchangeObserver } from './observer.js';
import { EdgePolicies } from './policy/edge-policy.js';
import {
  type EdgeApp,
  EdgeGate,
  type EdgeRequest,
  editUpgradeHeaders,
  type GateOwner,
} from './policy/gate.js';

/** Why a request is refused before it reaches an application (with the app, when one owns the host). */
interface Refusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
  app?: App;
}

export interface RouterOptions {
  registry: Registry;
  instances: InstanceChooser;
  log: Logger;
  /** The TLS port as clients see it, for redirects to https. */
  httpsPort: number;
  /** The HTTP path to instances (it keeps their connections; told by activation when one goes). */
  http: HttpEngine;
  /** The HTTP/2 path to instances of apps with `"protocol": "h2c"`. */
  h2c: H2cEngine;
  /** `--proxy-timeout`: how long an instance has to begin its answer to an `OPTIONS *`. */
  proxyTimeoutMs: number;
  /** Metrics and the access log; undefined when both are off. */
  observer?: ExchangeObserver;
  /** With ACME's HTTP-01 on: the answers to the CA's challenges (see answerChallenge). */
  challenges?: HttpChallenges;
  /** Which certificate each host is served with, for HTTP/2 coalescing (else: files or the default). */
  certificates?: ServedCertificates;
}

/** The answers to ACME HTTP-01 challenges, wherever the order that needs them runs. */
export interface HttpChallenges {
  /** The key authorization for `token` of `host`, when an order waits for it. */
  httpChallenge(host: string, token: string): Promise<string | undefined>;
}

export const CHALLENGE_PATH = '/.well-known/acme-challenge/';
/** An ACME token: base64url. */
const TOKEN = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * Turns each request and WebSocket upgrade into an exchange with the right instance: the host
 * and its policy (`admit`), the instance (`attempt`), the exchange (`send`), and what a
 * failure leads to (`exchangeFailed`): another attempt, or an answer of arr's own.
 */
export class Router implements RequestHandler, ExchangeOwner, UpgradeOwner, GateOwner {
  private readonly registry: Registry;
  private readonly instances: InstanceChooser;
  private readonly log: Logger;
  private readonly httpsPort: number;
  private readonly observer: ExchangeObserver | undefined;
  private readonly http: HttpEngine;
  private readonly h2c: H2cEngine;
  private readonly upgrades: UpgradeProxy;
  private readonly challenges: HttpChallenges | undefined;
  private readonly certificates: ServedCertificates;
  private readonly h2WebSockets: H2WebSocketJoiner;
  private readonly policies = new EdgePolicies();
  /** The edge policies of apps that have some (one property check for the others). */
  private readonly gate: EdgeGate;

  constructor(options: RouterOptions) {
    this.challenges = options.challenges;
    this.certificates = options.certificates ?? FILES_OR_DEFAULT;
    this.registry = options.registry;
    this.instances = options.instances;
    this.log = options.log;
    this.httpsPort = options.httpsPort;
    this.observer = options.observer;
    this.http = options.http;
    this.h2c = options.h2c;
    this.upgrades = new UpgradeProxy(this, options.proxyTimeoutMs);
    this.h2WebSockets = new H2WebSocketJoiner(this);
    this.gate = new EdgeGate(this.policies, this, this.observer);
  }

  handleRequest(req: DownstreamRequest, res: DownstreamResponse, secure: boolean): void {
    // Before routing and before the ssl policy: a `required` host must not redirect the CA.
    if (this.challenges !== undefined && !secure && isChallenge(req)) {
      this.answerChallenge(req, res, this.challenges);
      return;
    }
    const route = this.admit(req, secure, true);
    this.observer?.request(req, res, route.app);
    if ('status' in route) {
      refuseRequest(req, res, route.status, route.message, route.headers);
      return;
    }
    if (route.app.edge !== undefined) this.gate.request(req, res, route.app as EdgeApp, secure);
    else this.attempt(new Exchange(req, res, route.app, secure, this));
  }

  /** A request of an app with edge policies that passed them (EdgeGate). */
  proxy(req: DownstreamRequest, res: DownstreamResponse, app: App, secure: boolean, edge: EdgeRequest): void {
    this.attempt(new Exchange(req, res, app, secure, this, edge));
  }

  /**
   * One attempt of a request: its instance (known at once on the hot path; found or started
   * for an app's first request and for a second attempt), then the exchange with it.
   */
  private attempt(x: Exchange): void {
    const target = this.instances.pick(x.app);
    if (target) this.send(x, target);
    else
      this.instances.resolve(x.app).then(
        (t) => this.send(x, t),
        (err: unknown) =>
          this.refuse(x.app, err, (status, message, headers) =>
            refuseRequest(x.req, x.res, status, message, headers),
          ),
      );
  }

  private send(x: Exchange, target: Target): void {
    if (x.req.socket.destroyed) return; // the client left while its instance was being found
    x.begin(target);
    if (x.req.url === '*') this.upgrades.options(x);
    else if (x.app.protocol === 'h2c') this.h2c.send(x);
    else this.http.send(x);
  }

  /**
   * An attempt failed. Once the answer has begun, only the end of the connection can tell the
   * client. Before: an instance that is not there is forgotten, and a request the catalogue
   * calls retryable (proxy-errors.ts) goes to another or a new instance; otherwise the client
   * gets the catalogue's answer (408, 502, 504).
   */
  exchangeFailed(x: Exchange, err: Error): void {
    const error = proxyError(err);
    const gone = instanceGone(error);
    if (counted(error)) this.observer?.proxyError(x.app, gone);
    if (gone) this.instances.unreachable(x.target!);
    else
      this.log.debug({ app: x.app.name, code: error.detail ?? error.code }, `proxy error: ${error.message}`);

    const { req, res } = x;
    if (x.answered) {
      // A gRPC call past `maxBodySize` ends with its status; any other broken answer is reset.
      if (error.code !== 'body-too-large' || !endGrpcCall(req, res, 413, answerFor(error).message))
        res.destroy();
      return;
    }
    if (res.destroyed || req.socket.destroyed) return; // the client went away: nothing to answer
    if (retryable(error, { method: req.method, body: hasBody(req), attempts: x.attempts })) {
      this.attempt(x);
      return;
    }
    // What the client still sends of its body is read and dropped (or the connection closes).
    const close = x.leaveBody() ? CLOSE : undefined;
    const answer = answerFor(error);
    if (error.code === 'body-too-large') this.observer?.policyRefused(x.app, 'body_size');
    // A body stalled or refused leaves the connection in the middle of a request: it is not read further.
    refuseRequest(req, res, answer.status, answer.message, answer.closes ? CLOSE : close);
  }

  handleUpgrade(req: DownstreamRequest, socket: Duplex, head: Buffer, secure: boolean): void {
    // A client that resets the connection must not take arr down with an unhandled 'error'.
    socket.on('error', () => socket.destroy());
    const route = this.admit(req, secure, false);
    this.observer?.upgrade(req, socket, route.app);
    if ('status' in route) {
      this.refuseUpgrade(socket, route.status, route.message, route.headers);
      return;
    }
    if (route.app.edge !== undefined) this.gate.upgrade(req, socket, head, route.app as EdgeApp, secure);
    else this.proxyUpgrade(req, socket, head, route.app, secure);
  }

  /** An upgrade that is admitted (and passed the edge policies its app has: `edge`). */
  proxyUpgrade(
    req: DownstreamRequest,
    socket: Duplex,
    head: Buffer,
    app: App,
    secure: boolean,
    edge?: EdgeRequest,
  ): void {
    setForwardedHeaders(req, secure);
    if (edge !== undefined) editUpgradeHeaders(req.headers, edge);
    const target = this.instances.pick(app);
    if (target) {
      this.sendUpgrade(req, socket, head, target);
      return;
    }
    // While the instance starts, the client's connection is read (into its buffer, nothing is
    // lost), so that a client that leaves meanwhile is noticed and not forwarded.
    socket.read(0);
    this.instances.resolve(app).then(
      (t) => this.sendUpgrade(req, socket, head, t),
      (err: unknown) =>
        this.refuse(app, err, (status, message, headers) =>
          this.refuseUpgrade(socket, status, message, headers),
        ),
    );
  }

  /** A WebSocket counts as in flight at its instance (for the idle timeout) until it closes. */
  private sendUpgrade(req: DownstreamRequest, socket: Duplex, head: Buffer, target: Target): void {
    // The client left while its instance was being found (an upgrade has no body: a client
    // whose side has ended has gone).
    if (socket.destroyed || socket.readableEnded) {
      socket.destroy();
      return;
    }
    exchangeBegan(target);
    // A local instance's WebSockets are known to it, for the drain of a deploy.
    const open = target.webSockets;
    open?.add(socket);
    socket.once('close', () => {
      exchangeEnded(target);
      open?.delete(socket);
    });
    // An extended CONNECT on an HTTP/2 stream (h2.ts): joined to an HTTP/1.1 upgrade.
    if (isH2(req)) this.h2WebSockets.join(req, target);
    else this.upgrades.ws(req, socket, head, target);
  }

  upgradeAnswered(socket: Duplex, status: number): void {
    this.observer?.upgradeAnswered(socket, status);
  }

  /** An upgrade's exchange failed before the instance answered: the client gets 502. */
  upgradeFailed(socket: Duplex, target: Target, err: Error): void {
    const error = proxyError(err);
    const gone = instanceGone(error);
    const app = this.registry.app(target.appId);
    if (app) this.observer?.proxyError(app, gone);
    if (gone) this.instances.unreachable(target);
    const answer = upgradeAnswerFor(error);
    this.refuseUpgrade(socket, answer.status, answer.message);
  }

  refuseUpgrade(socket: Duplex, status: number, message: string, headers?: Record<string, string>): void {
    this.observer?.upgradeAnswered(socket, status);
    rejectUpgrade(socket, status, message, headers);
  }

  /** No instance could be had: the client is told why, in words fit for it; the log gets the detail. */
  private refuse(
    app: App,
    err: unknown,
    answer: (status: number, message: string, headers?: Record<string, string>) => void,
  ): void {
    if (err instanceof ActivationError) {
      this.log.error({ app: app.name, id: app.id }, `activation of ${app.name} failed: ${err.message}`);
      const headers = err.retryAfterSeconds ? { 'retry-after': String(err.retryAfterSeconds) } : undefined;
      answer(err.status, err.publicMessage, headers);
    } else {
      this.log.error({ app: app.name, id: app.id, err }, `activation of ${app.name} failed`);
      answer(503, 'the application is unavailable');
    }
  }

  /**
   * `GET /.well-known/acme-challenge/TOKEN` on the plain port: answered by arr for hosts of the
   * registry, from the shared store, so that whichever node the CA reaches answers for the node
   * that placed the order. Anything else there is a 404; no instance sees these paths.
   */
  private answerChallenge(req: DownstreamRequest, res: DownstreamResponse, challenges: HttpChallenges): void {
    const host = hostName(req.headers.host);
    const token = req.url!.slice(CHALLENGE_PATH.length);
    if (!host || !this.registry.route(host) || !TOKEN.test(token) || req.method !== 'GET') {
      sendError(res, 404, 'no such ACME challenge');
      return;
    }
    challenges.httpChallenge(host, token).then(
      (answer) => {
        if (answer === undefined) return sendError(res, 404, 'no such ACME challenge');
        res.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': Buffer.byteLength(answer),
          'cache-control': 'no-store',
        });
        res.end(answer);
      },
      (err: Error) => {
        this.log.warn({ host }, `acme: cannot read the challenge store: ${err.message}`);
        sendError(res, 503, 'the challenge cannot be answered now');
      },
    );
  }

  close(): void {
    this.policies.close();
    this.http.close();
    this.h2c.close();
    this.upgrades.close();
  }

  /** The route of an acceptable request, or why it is refused. */
  private admit(req: DownstreamRequest, secure: boolean, redirectable: boolean): Route | Refusal {
    let host = hostName(req.headers.host);
    if (!host) return { status: 400, message: 'a valid Host header is required' };
    if (manyHosts(req.rawHeaders))
      return { status: 400, message: 'one Host header is required, not several' };
    const url = req.url ?? '/';
    // `OPTIONS *` goes through http-proxy, which would not frame a body as it came (a chunked
    // body would reach the instance unframed: a request smuggled inside it). It has no use for one.
    if (url === '*' && (req.method !== 'OPTIONS' || hasBody(req)))
      return { status: 400, message: 'the target * is for OPTIONS without a body', headers: CLOSE };
    if (url.charCodeAt(0) !== 47 /* / */ && url !== '*') {
      // Absolute form (RFC 9112 §3.2.2): the target's authority names the host, and the Host
      // header is made to agree with it, so that no instance sees a request naming another host.
      const target = absoluteTarget(url);
      host = target && hostName(target.authority);
      if (!target || !host)
        return { status: 400, message: 'the request target must be a path or an http(s) URL' };
      req.headers.host = target.authority;
      req.url = target.path;
    }
    const route = this.registry.route(host);
    if (!route) return { status: 404, message: `no application serves ${host}` };
    const app = route.app;
    if (secure) {
      if (route.rule.ssl === 'none')
        return { status: 403, message: `${host} is not served over HTTPS; use http://`, app };
      if (isH2(req)) {
        // HTTP/2 connections are shared by the hosts their certificate covers (coalescing).
        const why = misdirected(req, route, host, this.certificates);
        if (why) return { status: 421, message: why, app };
      } else {
        // The certificate was chosen by SNI: a request for another host on this connection would
        // be answered under the wrong name. Without SNI it is the default one, which a host with
        // its own never gets (the same rule as HTTP/2's).
        const sni = (req.socket as TLSSocket).servername;
        if (typeof sni === 'string' && sni.toLowerCase() !== host) {
          return { status: 421, message: `this connection was opened for ${sni}, not ${host}`, app };
        }
        if (typeof sni !== 'string' && route.rule.cert && route.rule.key)
          return { status: 421, message: noSni(host), app };
      }
    } else if (route.rule.ssl === 'required') {
      if (redirectable && (req.method === 'GET' || req.method === 'HEAD')) {
        const port = this.httpsPort;
        const authority = port === 443 ? host : `${host}:${port}`;
        return {
          status: 301,
          message: `${host} is served over HTTPS only`,
          headers: { location: `https://${authority}${req.url?.startsWith('/') ? req.url : '/'}` },
          app,
        };
      }
      return { status: 403, message: `${host} is served over HTTPS only; use https://`, app };
    }
    return route;
  }
}

/** A refusal after which the connection is closed: what the client sent after it is not read as a request. */
const CLOSE = { connection: 'close' };

/**
 * Whether a request is for an ACME HTTP-01 challenge, its target in origin form or in absolute
 * form (RFC 9112 §3.2.2: `GET http://host/.well-known/acme-challenge/T`), which is reduced here
 * as `admit` would reduce it: the challenge's host is then the target's authority.
 */
function isChallenge(req: DownstreamRequest): boolean {
  const url = req.url ?? '';
  if (url.charCodeAt(0) === 47 /* / */) return url.startsWith(CHALLENGE_PATH);
  const target = absoluteTarget(url);
  if (!target?.path.startsWith(CHALLENGE_PATH)) return false;
  req.headers.host = target.authority;
  req.url = target.path;
  return true;
}
