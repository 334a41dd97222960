import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../util/log.js';
import { Backend, type BackendState, type HealthOptions } from './backend-health.js';
import type { BackendConfig, RouteConfig } from './config.js';
import { proxyHeaderFor } from './proxy-protocol.js';

export interface BalancerOptions extends HealthOptions {
  /** Listen address of routes that have no "host"; undefined: all interfaces. */
  bind?: string;
  /** Close a connection after this long without a byte in either direction; 0: never. */
  idleTimeoutMs: number;
  /**
   * Where each backend's health is kept (route counted from 1, backend from 0); default: in
   * this process (`Backend`). A worker of --workers passes the primary's (`SharedBackend`).
   */
  backendFor?: (cfg: BackendConfig, route: number, index: number) => BackendState;
  /**
   * Where each route's turn starts: worker k of N starts at backend k - 1, so that the first
   * connections of the workers do not all go to the first backend. Default 0.
   */
  firstTurn?: number;
  /** Log the "listening on" lines (default true; with --workers, only worker 1 does). */
  announce?: boolean;
}

/** A route that could not listen; the message names the route, the address and why. */
export class ListenError extends Error {}

const LISTEN_ERRORS: Record<string, string> = {
  EADDRINUSE: 'the port is already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'the address is not one of this machine',
  ENOTFOUND: 'the host name does not resolve',
};

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

function clientLabel(client: Socket): string {
  const { remoteAddress, remotePort } = client;
  return remoteAddress ? hostPort(remoteAddress, remotePort ?? 0) : 'unknown';
}

class Route {
  readonly backends: BackendState[];
  /** Index of the backend the next connection goes to (round robin). */
  cursor = 0;
  server: Server | undefined;
  readonly where: string;

  constructor(
    readonly config: RouteConfig,
    readonly index: number,
    readonly host: string | undefined,
    options: BalancerOptions,
    log: Logger,
  ) {
    const { backendFor } = options;
    this.backends = config.backends.map((b, i) =>
      backendFor ? backendFor(b, index, i) : Backend.from(b, options, log, index),
    );
    this.cursor = (options.firstTurn ?? 0) % this.backends.length;
    this.where = `route ${index} (port ${config.port})`;
  }

  /**
   * The first backend for a new connection: the next one that is up, in turn. When every
   * backend is down, the next one anyway (a client is not refused while there is a chance).
   */
  first(): number {
    const { backends } = this;
    const n = backends.length;
    const start = this.cursor;
    for (let k = 0; k < n; k++) {
      let i = start + k;
      if (i >= n) i -= n;
      if (!backends[i]!.down) {
        this.cursor = i + 1 === n ? 0 : i + 1;
        return i;
      }
    }
    this.cursor = start + 1 === n ? 0 : start + 1;
    return start;
  }

  /**
   * The backend to try after a failed connect: the next untried one that is up, else the
   * next untried one that is down; -1 when each was tried once.
   */
  next(from: number, tried: Uint8Array): number {
    const { backends } = this;
    const n = backends.length;
    let fallback = -1;
    for (let k = 1; k < n; k++) {
      let i = from + k;
      if (i >= n) i -= n;
      if (tried[i]) continue;
      if (!backends[i]!.down) return i;
      if (fallback < 0) fallback = i;
    }
    return fallback;
  }
}

/** The relay a socket belongs to: lets one shared handler per event serve every connection. */
const RELAY = Symbol('nlb relay');
type Peer = Socket & { [RELAY]: Relay };

/** The socket across the relay from `socket`. */
function peerOf(socket: Peer): Socket | undefined {
  const r = socket[RELAY];
  return socket === r.client ? r.backend : r.client;
}

// The handlers below are shared by every connection (`this` is the socket): no closures and
// no pipe() machinery per connection, which is where a new connection's JS time went.

function onData(this: Peer, chunk: Buffer): void {
  const to = peerOf(this);
  if (to && !to.write(chunk)) throttle(this, to as Peer);
}

/** Stops reading `from` until `to` has flushed (backpressure). */
function throttle(from: Socket, to: Peer): void {
  from.pause();
  if (to.listenerCount('drain') === 0) to.on('drain', onDrain);
}

function onDrain(this: Peer): void {
  peerOf(this)?.resume();
}

/**
 * `this` ended its sending side: end the same direction on the other socket (half-close). When
 * that one had already ended too and has nothing queued, closing it now is the same on the
 * wire and saves a shutdown() and a trip through the event loop.
 */
function onEnd(this: Peer): void {
  const to = peerOf(this);
  if (!to || to.destroyed) return;
  if (to.readableEnded && to.writableLength === 0) to.destroy();
  else to.end();
}

function onClientError(this: Peer): void {
  this[RELAY].destroy();
}

function onClientClose(this: Peer, hadError: boolean): void {
  this[RELAY].clientClose(hadError);
}

function onIdle(this: Peer): void {
  this[RELAY].destroy();
}

function onBackendConnect(this: Peer): void {
  const r = this[RELAY];
  if (r.backend === this) r.connected(this);
}

function onBackendTimeout(this: Peer): void {
  const r = this[RELAY];
  if (r.backend !== this) return;
  if (r.isConnected) r.destroy();
  else r.fail(this, `no connection within ${r.balancer.options.connectTimeoutMs} ms`);
}

function onBackendError(this: Peer, err: NodeJS.ErrnoException): void {
  const r = this[RELAY];
  if (r.backend !== this) return;
  if (r.isConnected) r.destroy();
  else r.fail(this, err.code ?? err.message);
}

function onBackendClose(this: Peer, hadError: boolean): void {
  const r = this[RELAY];
  if (r.backend === this) r.backendClose(this, hadError);
}

/**
 * One client connection and its backend connection. Bytes are relayed both ways (with
 * backpressure); each direction is ended when its source ends (half-close); an error on either
 * socket destroys both.
 */
class Relay {
  /** The backend socket of the current attempt; events of earlier attempts' sockets are ignored. */
  backend: Socket | undefined;
  isConnected = false;
  private target = -1;
  private tried: Uint8Array | undefined;
  private clientClosed = false;
  private backendClosed = false;
  /** Only with --verbose: when it started and who the client is, for the log. */
  private readonly startedAt: number;
  private readonly from: string;

  constructor(
    readonly route: Route,
    readonly client: Socket,
    readonly balancer: Balancer,
  ) {
    this.startedAt = balancer.verbose ? Date.now() : 0;
    this.from = balancer.verbose ? clientLabel(client) : '';
    (client as Peer)[RELAY] = this;
    client.on('error', onClientError);
    client.on('close', onClientClose);
    this.attempt(route.first());
  }

  clientClose(hadError: boolean): void {
    this.clientClosed = true;
    // Gone before its backend answered, or torn down: nothing more to relay. A client that
    // closed cleanly leaves its backend to flush what it still has to send, then close.
    if (hadError || !this.isConnected) this.backend?.destroy();
    this.settle();
  }

  backendClose(socket: Socket, hadError: boolean): void {
    if (!this.isConnected) {
      this.fail(socket, 'closed while connecting');
      return;
    }
    this.backendClosed = true;
    if (hadError) this.client.destroy();
    this.settle();
  }

  /** Destroys both sockets. */
  destroy(): void {
    this.client.destroy();
    this.backend?.destroy();
  }

  private attempt(i: number): void {
    this.target = i;
    const b = this.route.backends[i]!;
    const socket = connect(b.connectOptions) as Peer;
    socket[RELAY] = this;
    this.backend = socket;
    socket.setTimeout(this.balancer.options.connectTimeoutMs);
    socket.on('connect', onBackendConnect);
    socket.on('timeout', onBackendTimeout);
    socket.on('error', onBackendError);
    socket.on('close', onBackendClose);
  }

  connected(socket: Socket): void {
    this.isConnected = true;
    const { idleTimeoutMs } = this.balancer.options;
    socket.setTimeout(idleTimeoutMs);
    this.route.backends[this.target]!.succeeded();
    if (this.client.destroyed) socket.destroy();
    else this.relay(socket);
  }

  /** The current attempt failed: mark its backend and try the next one. */
  fail(socket: Socket, reason: string): void {
    socket.destroy();
    this.backend = undefined;
    // A client that left while we were connecting says nothing about the backend.
    if (this.client.destroyed) {
      this.settle();
      return;
    }
    const b = this.route.backends[this.target]!;
    b.failed(reason);
    if (this.balancer.verbose)
      this.balancer.log.debug(
        { route: this.route.index, client: this.from, backend: b.label, reason },
        'connect to backend failed',
      );
    this.retry(reason);
  }

  private retry(reason: string): void {
    const n = this.route.backends.length;
    if (!this.tried) this.tried = new Uint8Array(n);
    this.tried[this.target] = 1;
    const i = n === 1 ? -1 : this.route.next(this.target, this.tried);
    if (i >= 0) {
      // Round robin goes on after the backend that takes this connection.
      this.route.cursor = i + 1 === n ? 0 : i + 1;
      this.attempt(i);
      return;
    }
    if (this.balancer.verbose)
      this.balancer.log.debug(
        { route: this.route.index, client: this.from, reason },
        'no backend accepted the connection; closing it',
      );
    this.client.destroy();
  }

  private relay(socket: Socket): void {
    const { client, route, balancer } = this;
    if (route.config.proxyProtocol) socket.write(proxyHeaderFor(client));
    if (balancer.options.idleTimeoutMs > 0) {
      client.setTimeout(balancer.options.idleTimeoutMs);
      client.on('timeout', onIdle);
    }
    socket.on('data', onData);
    socket.on('end', onEnd);
    client.on('data', onData);
    client.on('end', onEnd);
    // Accepted paused (pauseOnConnect) so that nothing is read before there is a backend.
    client.resume();
  }

  /** Called on each close: the relay is over when the client and its backend are closed. */
  private settle(): void {
    if (!this.clientClosed || (this.backend && !this.backendClosed)) return;
    if (!this.balancer.relayFinished(this)) return;
    if (this.balancer.verbose && this.isConnected)
      this.balancer.log.debug(
        {
          route: this.route.index,
          client: this.from,
          backend: this.route.backends[this.target]!.label,
          sent: this.client.bytesRead,
          received: this.client.bytesWritten,
          ms: Date.now() - this.startedAt,
        },
        'connection closed',
      );
  }
}

/**
 * The balancer: one listening server per route, each handing its connections to the route's
 * backends in turn, skipping backends that are down.
 */
export class Balancer {
  readonly routes: Route[];
  readonly verbose: boolean;
  private readonly relays = new Set<Relay>();
  private onDrained: (() => void) | undefined;
  private stopping = false;

  constructor(
    routes: RouteConfig[],
    readonly options: BalancerOptions,
    readonly log: Logger,
  ) {
    this.verbose = log.isLevelEnabled('debug');
    this.routes = routes.map((r, i) => new Route(r, i + 1, r.host ?? options.bind, options, log));
  }

  /** Connections being relayed (or connecting) now. */
  get connections(): number {
    return this.relays.size;
  }

  /** Listens on every route's port; on any failure closes those already open and throws. */
  async listen(): Promise<void> {
    try {
      await Promise.all(this.routes.map((r) => this.listenRoute(r)));
    } catch (err) {
      await Promise.all(this.routes.map((r) => closeServer(r.server)));
      throw err;
    }
    if (this.options.announce === false) return;
    for (const r of this.routes) {
      const addr = r.server?.address();
      const on = addr && typeof addr === 'object' ? hostPort(addr.address, addr.port) : String(r.config.port);
      const to = r.backends.map((b) => b.label);
      this.log.info(
        { route: r.index, listen: on, backends: to, proxyProtocol: r.config.proxyProtocol },
        `listening on ${on} (route ${r.index}) -> ${to.join(', ')}${r.config.proxyProtocol ? ' with PROXY protocol' : ''}`,
      );
    }
  }

  private listenRoute(route: Route): Promise<void> {
    const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (client) =>
      this.accept(route, client),
    );
    route.server = server;
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        const code = err.code ?? 'error';
        const why = LISTEN_ERRORS[code] ?? err.message;
        const on = route.host ? hostPort(route.host, route.config.port) : `port ${route.config.port}`;
        reject(new ListenError(`${route.where}: cannot listen on ${on}: ${why} (${code})`));
      };
      server.once('error', onError);
      server.listen({ port: route.config.port, host: route.host }, () => {
        server.off('error', onError);
        // Accept errors (EMFILE...) are reported and survived.
        server.on('error', (err) =>
          this.log.error({ err, route: route.index }, `${route.where}: ${err.message}`),
        );
        resolve();
      });
    });
  }

  private accept(route: Route, client: Socket): void {
    if (this.stopping) {
      client.destroy();
      return;
    }
    this.relays.add(new Relay(route, client, this));
  }

  /** Removes a finished relay; false if it was already removed. */
  relayFinished(relay: Relay): boolean {
    if (!this.relays.delete(relay)) return false;
    if (this.relays.size === 0) this.onDrained?.();
    return true;
  }

  /**
   * Stops listening and probing, waits up to `graceMs` for open connections to finish, then
   * destroys what is left. Resolves with the number of connections it had to destroy.
   */
  async shutdown(graceMs: number): Promise<number> {
    this.stopping = true;
    for (const r of this.routes) {
      r.server?.close();
      for (const b of r.backends) b.stop();
    }
    if (this.relays.size > 0) {
      this.log.info(
        { connections: this.relays.size, graceMs },
        `stopped listening; waiting up to ${graceMs / 1000} s for ${this.relays.size} open connection(s)`,
      );
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, graceMs);
        this.onDrained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    const left = this.relays.size;
    if (left > 0) {
      this.log.warn({ connections: left }, `grace period over: closing ${left} connection(s)`);
      for (const relay of this.relays) relay.destroy();
    }
    return left;
  }

  /** Ends the grace period now (a second signal). */
  hurry(): void {
    this.onDrained?.();
  }
}

function closeServer(server: Server | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!server?.listening) resolve();
    else server.close(() => resolve());
  });
}
