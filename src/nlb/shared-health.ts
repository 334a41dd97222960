import type { TcpNetConnectOpts } from 'node:net';
import type { Logger } from '../util/log.js';
import {
  Backend,
  type BackendState,
  backendLabel,
  connectOptionsOf,
  type HealthOptions,
} from './backend-health.js';
import type { BackendConfig, RouteConfig } from './config.js';

// With --workers, the backends' health is one for all workers, kept by the primary. A worker
// marks a backend down the moment a connect to it fails (its next connection already skips it)
// and tells the primary; the primary logs it once, probes it, and tells every worker when it is
// down or back. Only these changes cross processes, never a connection.

/** A change of a backend's health, either way: worker to primary and primary to workers. */
export interface HealthChange {
  /** The route's index, counted from 1 (as in the log). */
  route: number;
  /** The backend's index in its route, from 0. */
  backend: number;
  down: boolean;
  /** Why it went down (worker to primary). */
  reason?: string;
}

/** A worker's view of one backend; the primary keeps the health (HealthBoard). */
export class SharedBackend implements BackendState {
  readonly label: string;
  readonly connectOptions: TcpNetConnectOpts;
  down = false;

  constructor(
    cfg: BackendConfig,
    private readonly route: number,
    private readonly index: number,
    private readonly tell: (change: HealthChange) => void,
  ) {
    this.label = backendLabel(cfg.host, cfg.port);
    this.connectOptions = connectOptionsOf(cfg);
  }

  failed(reason: string): void {
    if (this.down) return;
    this.down = true;
    this.tell({ route: this.route, backend: this.index, down: true, reason });
  }

  succeeded(): void {
    if (!this.down) return;
    this.down = false;
    this.tell({ route: this.route, backend: this.index, down: false });
  }

  stop(): void {}
}

/** The primary's side: every route's backends, probed and logged here as in a single process. */
export class HealthBoard {
  private readonly routes: Backend[][];

  constructor(
    routes: RouteConfig[],
    health: HealthOptions,
    log: Logger,
    /** Called on every change, to pass it on to the workers. */
    broadcast: (change: HealthChange) => void,
  ) {
    this.routes = routes.map((r, i) =>
      r.backends.map((b, j) =>
        Backend.from(b, health, log, i + 1, (down) => broadcast({ route: i + 1, backend: j, down })),
      ),
    );
  }

  /** What a worker saw; ignored when it names no backend (a message from another version). */
  report(change: HealthChange): void {
    const b = this.routes[change.route - 1]?.[change.backend];
    if (!b) return;
    if (change.down) b.failed(String(change.reason ?? 'connect failed'));
    else b.succeeded();
  }

  /** The backends that are down now, for a worker that just started. */
  downNow(): HealthChange[] {
    const out: HealthChange[] = [];
    this.routes.forEach((backends, i) => {
      backends.forEach((b, j) => {
        if (b.down) out.push({ route: i + 1, backend: j, down: true });
      });
    });
    return out;
  }

  stop(): void {
    for (const backends of this.routes) for (const b of backends) b.stop();
  }
}
