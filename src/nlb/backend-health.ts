import { connect, type Socket, type TcpNetConnectOpts } from 'node:net';
import type { Logger } from '../util/log.js';
import type { BackendConfig } from './config.js';

export interface HealthOptions {
  /** How long a connect (a client's or a probe's) may take before the backend counts as failed. */
  connectTimeoutMs: number;
  /** The first wait before probing a backend that just failed. */
  probeMinMs: number;
  /** The longest wait between two probes; the wait doubles from probeMinMs up to this. */
  probeMaxMs: number;
}

export const DEFAULT_HEALTH: HealthOptions = { connectTimeoutMs: 2000, probeMinMs: 1000, probeMaxMs: 30_000 };

/**
 * What the balancer needs of a backend: where to connect, whether it is down, and a way to say
 * how a connect went. `Backend` keeps the health itself; with --workers, a worker's
 * `SharedBackend` (shared-health.ts) leaves it to the primary's.
 */
export interface BackendState {
  readonly label: string;
  readonly connectOptions: TcpNetConnectOpts;
  readonly down: boolean;
  failed(reason: string): void;
  succeeded(): void;
  stop(): void;
}

/** `host:port`, with IPv6 addresses in brackets. */
export function backendLabel(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/** What a client's connection to a backend is opened with (one object per backend, reused). */
export function connectOptionsOf(cfg: BackendConfig): TcpNetConnectOpts {
  return { host: cfg.host, port: cfg.port, allowHalfOpen: true, noDelay: true };
}

/**
 * One backend and what nlb knows of its health. A backend is up until a connect to it fails
 * (refused, unreachable, or not done within the connect timeout). It is then down: clients
 * skip it, and a TCP connect probe runs in the background after 1 s, then 2, 4, ... up to 30 s
 * between probes. The first connect that succeeds (a probe's, or a client's when every backend
 * of the route was down) brings it back.
 */
export class Backend implements BackendState {
  readonly label: string;
  /** What a client's connection to this backend is opened with (one object, reused). */
  readonly connectOptions: TcpNetConnectOpts;
  down = false;
  /** Why it went down, for the log. */
  reason = '';
  private probeDelayMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private probe: Socket | undefined;
  private stopped = false;

  constructor(
    readonly host: string,
    readonly port: number,
    private readonly health: HealthOptions,
    private readonly log: Logger,
    readonly route: number,
    /** Told of every change, after it is logged (the primary of --workers passes it on). */
    private readonly onChange?: (down: boolean) => void,
  ) {
    this.label = backendLabel(host, port);
    this.connectOptions = connectOptionsOf({ host, port });
  }

  static from(
    cfg: BackendConfig,
    health: HealthOptions,
    log: Logger,
    route: number,
    onChange?: (down: boolean) => void,
  ): Backend {
    return new Backend(cfg.host, cfg.port, health, log, route, onChange);
  }

  /** A connect to this backend failed: take it out of rotation (once) and start probing. */
  failed(reason: string): void {
    if (this.down || this.stopped) return;
    this.down = true;
    this.reason = reason;
    this.probeDelayMs = this.health.probeMinMs;
    this.log.warn(
      { route: this.route, backend: this.label, reason, retryInMs: this.probeDelayMs },
      `backend ${this.label} down (${reason}); probing in ${this.probeDelayMs} ms`,
    );
    this.schedule();
    this.onChange?.(true);
  }

  /** A connect to this backend succeeded: put it back in rotation if it was down. */
  succeeded(): void {
    if (!this.down) return;
    this.down = false;
    this.clearProbe();
    this.log.info({ route: this.route, backend: this.label }, `backend ${this.label} back`);
    this.onChange?.(false);
  }

  /** Stops probing (at shutdown). */
  stop(): void {
    this.stopped = true;
    this.clearProbe();
  }

  private clearProbe(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.probe?.destroy();
    this.probe = undefined;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => this.runProbe(), this.probeDelayMs);
    this.timer.unref();
  }

  private runProbe(): void {
    this.timer = undefined;
    if (!this.down || this.stopped) return;
    const socket = connect({ host: this.host, port: this.port });
    this.probe = socket;
    socket.setTimeout(this.health.connectTimeoutMs);
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      socket.destroy();
      if (this.probe === socket) this.probe = undefined;
      if (!this.down || this.stopped) return;
      if (ok) this.succeeded();
      else {
        this.probeDelayMs = Math.min(this.probeDelayMs * 2, this.health.probeMaxMs);
        this.schedule();
      }
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.on('error', () => done(false));
    socket.once('close', () => done(false));
  }
}
