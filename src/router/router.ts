import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { ActivationError, type Activity, type Target } from '../activation/activator.js';
import type { ExchangeObserver } from '../ops/observer.js';
import type { Registry } from '../registry/registry.js';
import type { App, Route } from '../registry/types.js';
import type { Logger } from '../util/log.js';
import type { Dispatcher } from './dispatcher.js';
import { setForwardedHeaders } from './forwarded.js';
import { absoluteTarget, hostName, manyHosts } from './host.js';
import { isUnreachable, ProxyEngine } from './proxy.js';
import { rejectUpgrade, sendError } from './respond.js';

/** Why a request is refused before it reaches an application. */
interface Refusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/**
 * Turns each request and WebSocket upgrade into a proxied exchange with the right instance:
 * host resolution, the host's security policy, the choice of instance, then the proxy.
 */
export class Router {
  private readonly proxy: ProxyEngine;

  constructor(
    private readonly registry: Registry,
    private readonly dispatcher: Dispatcher,
    private readonly log: Logger,
    /** The TLS port as clients see it, for redirects to https. */
    private readonly sslPort: () => number,
    /** `--proxy-timeout`: how long an instance has to begin its answer before the client gets 504. */
    proxyTimeoutMs: number,
    /** Metrics and the access log; undefined when both are off. */
    private readonly observer?: ExchangeObserver,
  ) {
    this.proxy = new ProxyEngine(
      (target, err) => this.onTargetError(target, err),
      (req, res, app, secure) => this.replay(req, res, app, secure),
      proxyTimeoutMs,
    );
  }

  handleRequest(req: IncomingMessage, res: ServerResponse, secure: boolean): void {
    const route = this.admit(req, secure, true);
    this.observer?.request(req, res, 'app' in route ? route.app : undefined);
    if ('status' in route) {
      sendError(res, route.status, route.message, route.headers);
      return;
    }
    const app = route.app;
    const target = this.dispatcher.pick(app);
    if (target) this.web(req, res, target, secure, app);
    else
      this.withActivation(
        app,
        (t) => this.web(req, res, t, secure, app),
        (status, message, headers) => sendError(res, status, message, headers),
      );
  }

  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, secure: boolean): void {
    // A client that resets the connection must not take arr down with an unhandled 'error'.
    socket.on('error', () => socket.destroy());
    const route = this.admit(req, secure, false);
    this.observer?.upgrade(req, socket, 'app' in route ? route.app : undefined);
    if ('status' in route) {
      rejectUpgrade(socket, route.status, route.message, route.headers);
      return;
    }
    setForwardedHeaders(req, secure);
    const target = this.dispatcher.pick(route.app);
    if (target) this.ws(req, socket, head, target);
    else
      this.withActivation(
        route.app,
        (t) => this.ws(req, socket, head, t),
        (status, message, headers) => rejectUpgrade(socket, status, message, headers),
      );
  }

  close(): void {
    this.proxy.close();
  }

  /**
   * Proxies a request; an instance with an idle timeout counts it until the answer is done.
   * `app` is given when the request may be replayed should the instance be unreachable.
   */
  private web(req: IncomingMessage, res: ServerResponse, t: Target, secure: boolean, app?: App): void {
    if (t.activity && !req.socket.destroyed) track(t.activity, res);
    this.proxy.web(req, res, t, secure, app);
  }

  /** One more try, on another or a new instance, when the first one turned out to be gone. */
  private replay(req: IncomingMessage, res: ServerResponse, app: App, secure: boolean): void {
    this.withActivation(
      app,
      (t) => this.web(req, res, t, secure),
      (status, message, headers) => sendError(res, status, message, headers),
    );
  }

  /** Proxies a WebSocket; an instance with an idle timeout counts it until it closes. */
  private ws(req: IncomingMessage, socket: Duplex, head: Buffer, t: Target): void {
    if (t.activity && !socket.destroyed) track(t.activity, socket);
    this.proxy.ws(req, socket, head, t);
  }

  /** The route of an acceptable request, or why it is refused. */
  private admit(req: IncomingMessage, secure: boolean, redirectable: boolean): Route | Refusal {
    let host = hostName(req.headers.host);
    if (!host) return { status: 400, message: 'a valid Host header is required' };
    if (manyHosts(req.rawHeaders))
      return { status: 400, message: 'one Host header is required, not several' };
    const url = req.url ?? '/';
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
    if (secure) {
      if (route.rule.ssl === 'none')
        return { status: 403, message: `${host} is not served over HTTPS; use http://` };
      // The certificate was chosen by SNI: a request for another host on this connection would
      // be answered under the wrong name.
      const sni = (req.socket as TLSSocket).servername;
      if (typeof sni === 'string' && sni.toLowerCase() !== host) {
        return { status: 421, message: `this connection was opened for ${sni}, not ${host}` };
      }
    } else if (route.rule.ssl === 'required') {
      if (redirectable && (req.method === 'GET' || req.method === 'HEAD')) {
        const port = this.sslPort();
        const authority = port === 443 ? host : `${host}:${port}`;
        return {
          status: 301,
          message: `${host} is served over HTTPS only`,
          headers: { location: `https://${authority}${req.url?.startsWith('/') ? req.url : '/'}` },
        };
      }
      return { status: 403, message: `${host} is served over HTTPS only; use https://` };
    }
    return route;
  }

  private withActivation(
    app: App,
    proceed: (target: Target) => void,
    refuse: (status: number, message: string, headers?: Record<string, string>) => void,
  ): void {
    this.dispatcher.resolve(app).then(proceed, (err: unknown) => {
      if (err instanceof ActivationError) {
        this.log.error({ app: app.name, id: app.id }, `activation of ${app.name} failed: ${err.message}`);
        const headers = err.retryAfterSeconds ? { 'retry-after': String(err.retryAfterSeconds) } : undefined;
        refuse(err.status, err.publicMessage, headers);
      } else {
        this.log.error({ app: app.name, id: app.id, err }, `activation of ${app.name} failed`);
        refuse(503, 'the application is unavailable');
      }
    });
  }

  private onTargetError(target: Target, err: NodeJS.ErrnoException): void {
    this.observer?.proxyError(target.appId, isUnreachable(err));
    if (isUnreachable(err)) this.dispatcher.unreachable(target);
    else this.log.debug({ app: target.appId, code: err.code }, `proxy error: ${err.message}`);
  }
}

/** One more exchange in flight until `done` closes: a counter and a clock read, no I/O. */
function track(a: Activity, done: { once(event: 'close', listener: () => void): unknown }): void {
  a.active++;
  done.once('close', () => {
    a.active--;
    a.lastActive = Date.now();
  });
}
