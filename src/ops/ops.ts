import type { Activation, Activator } from '../activation/activator.js';
import type { AdminAddress } from '../config.js';
import type { FarmRegistry, Registry } from '../registry/registry.js';
import type { App } from '../registry/types.js';
import type { ExchangeObserver } from '../router/observer.js';
import type { Logger } from '../util/log.js';
import { type AdminServer, isLoopback, startAdminServer } from './admin-server.js';
import { InstrumentedFarmRegistry, InstrumentedRegistry } from './instrumented-registry.js';
import { Metrics } from './metrics.js';
import { createObserver } from './observer.js';

export interface OpsOptions {
  /** `--admin`: serve /healthz and /metrics there; no metrics are kept without it. */
  admin?: AdminAddress;
  /** `--access-log`: one info line per request and WebSocket. */
  accessLog?: boolean;
}

/**
 * Health, metrics and the access log, wired into arr by `startArr`: what the router and the
 * activator are handed (each undefined when off, so that they do nothing for it), and the
 * admin endpoint's listener.
 */
export class Operations {
  readonly metrics: Metrics | undefined;
  /** For the Router: undefined when neither metrics nor the access log are on. */
  readonly observer: ExchangeObserver | undefined;
  /** For the Activator's `onStart`. */
  readonly onStart: ((app: App, start: Promise<Activation>) => void) | undefined;
  private admin: AdminServer | undefined;
  private serving = true;

  constructor(
    private readonly options: OpsOptions,
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {
    this.metrics = options.admin ? new Metrics() : undefined;
    this.onStart = this.metrics?.activationStarted;
    this.observer = createObserver(this.metrics, options.accessLog ? log : undefined);
  }

  /** The registry as the activator and the farm use it: its operations counted when metrics are on. */
  instrument(registry: FarmRegistry): FarmRegistry;
  instrument(registry: Registry): Registry;
  instrument(registry: Registry | FarmRegistry): Registry {
    if (!this.metrics) return registry;
    if (registry.kind === 'mongo')
      return new InstrumentedFarmRegistry(registry as FarmRegistry, this.metrics);
    return new InstrumentedRegistry(registry, this.metrics);
  }

  /** Starts the admin endpoint, when there is one. */
  async listen(activator: Activator): Promise<void> {
    const { admin } = this.options;
    const metrics = this.metrics;
    if (!admin || !metrics) return;
    metrics.countInstances(() => activator.runningCount);
    if (!isLoopback(admin.host)) {
      this.log.warn(
        `--admin ${admin.host} is not a loopback address: /healthz and /metrics can be reached from the network`,
      );
    }
    this.admin = await startAdminServer(admin, metrics, {
      serving: () => this.serving,
      apps: () => {
        let n = 0;
        for (const _ of this.registry.apps()) n++;
        return n;
      },
      instances: () => activator.runningCount,
      registryReachable: () => metrics.registryReachable,
    });
    const host = admin.host.includes(':') ? `[${admin.host}]` : admin.host;
    this.log.info(`admin endpoint on http://${host}:${this.admin.port} (/healthz, /metrics)`);
  }

  /** arr has begun to stop: /healthz answers 503 from now on. */
  stopping(): void {
    this.serving = false;
  }

  async close(): Promise<void> {
    await this.admin?.close();
  }
}
