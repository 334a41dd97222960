import type { AcmeObserver } from '../acme/manager.js';
import type { Activation, Activator } from '../activation/activator.js';
import type { InstanceExit } from '../activation/exit-reason.js';
import type { Unenforced } from '../activation/limit-groups.js';
import type { OutputListener } from '../activation/spawn.js';
import type { AdminAddress } from '../config.js';
import type { FarmRegistry, Registry } from '../registry/registry.js';
import type { App } from '../registry/types.js';
import type { ExchangeObserver } from '../router/observer.js';
import type { Logger } from '../util/log.js';
import { AdminToken } from './admin-auth.js';
import { type AdminServer, type DashboardSource, isLoopback, startAdminServer } from './admin-server.js';
import { buildOverview, buildTick } from './dashboard-data.js';
import { ExitLog } from './exit-log.js';
import { FarmView } from './farm-view.js';
import { InstrumentedFarmRegistry, InstrumentedRegistry } from './instrumented-registry.js';
import { Metrics } from './metrics.js';
import { createObserver } from './observer.js';
import { OutputLog } from './output-log.js';
import { Traffic } from './traffic.js';

export interface OpsOptions {
  /** `--admin`: serve /healthz, /metrics and the dashboard there; no metrics are kept without it. */
  admin?: AdminAddress;
  /** `--admin-token`: every admin path but /healthz and the page's files requires it. */
  adminToken?: string;
  /** `--access-log`: one info line per request and WebSocket. */
  accessLog?: boolean;
  /** This node's address in the farm (the dashboard names nodes by it). */
  advertise: string;
  /** `--acme-email`: ACME is on (the dashboard says which hosts it manages). */
  acme?: unknown;
}

/**
 * Health, metrics, the dashboard's rings and the access log, wired into arr by `startArr`: what
 * the router and the activator are handed (each undefined when off, so that they do nothing for
 * it), and the admin endpoint's listener.
 */
export class Operations {
  readonly metrics: Metrics | undefined;
  /** For the Router: undefined when neither metrics nor the access log are on. */
  readonly observer: ExchangeObserver | undefined;
  /** For the Activator's `onStart`. */
  readonly onStart: ((app: App, start: Promise<Activation>) => void) | undefined;
  /** For the Activator's `onOutput`: the dashboard's last lines per app (--admin only). */
  readonly onOutput: OutputListener | undefined;
  private readonly traffic: Traffic | undefined;
  private readonly output: OutputLog | undefined;
  private readonly exits = new ExitLog();
  /** The limits this host cannot enforce, per app (the dashboard shows them). */
  private unenforced: (app: App) => Unenforced[] = () => [];
  /** When the ACME certificate served for each host expires (ms since the epoch), for the dashboard. */
  private readonly certificateExpiries = new Map<string, number>();
  /** For the ACME manager: its orders and certificates counted and shown (--admin only). */
  readonly acmeObserver: AcmeObserver | undefined;
  private admin: AdminServer | undefined;
  private serving = true;

  constructor(
    private readonly options: OpsOptions,
    private readonly registry: Registry,
    private readonly log: Logger,
  ) {
    this.metrics = options.admin ? new Metrics() : undefined;
    this.traffic = options.admin ? new Traffic() : undefined;
    this.output = options.admin ? new OutputLog() : undefined;
    this.onStart = this.metrics?.activationStarted;
    this.onOutput = this.output?.add;
    this.observer = createObserver(this.metrics, options.accessLog ? log : undefined, this.traffic);
    this.acmeObserver = this.metrics && acmeObserver(this.metrics, this.certificateExpiries);
  }

  /** For the Activator's `ended` event: counted (/metrics) and kept for the dashboard. */
  readonly instanceEnded = (app: App, exit: InstanceExit): void => {
    this.metrics?.instanceEnded(app, exit.reason);
    if (this.metrics) this.exits.add(app.id, exit);
  };

  /** Where the dashboard reads which limits this host cannot enforce. */
  limitsFrom(unenforced: (app: App) => Unenforced[]): void {
    this.unenforced = unenforced;
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
    const { admin, adminToken } = this.options;
    const { metrics, traffic, output } = this;
    if (!admin || !metrics || !traffic || !output) return;
    metrics.countInstances(() => activator.runningCount);
    const token = adminToken === undefined ? undefined : new AdminToken(adminToken);
    if (token) metrics.adminTokenRequired();
    this.admin = await startAdminServer(
      admin,
      metrics,
      {
        serving: () => this.serving,
        apps: () => this.appCount(),
        instances: () => activator.runningCount,
        registryReachable: () => metrics.registryReachable,
      },
      this.dashboard(activator, metrics, traffic, output),
      token,
    );
    const host = admin.host.includes(':') ? `[${admin.host}]` : admin.host;
    const access = token ? 'the token is required' : isLoopback(admin.host) ? 'loopback only' : 'no token';
    this.log.info(
      `admin endpoint on http://${host}:${this.admin.port} (dashboard /, /api, /healthz, /metrics; ${access})`,
    );
  }

  private appCount(): number {
    let n = 0;
    for (const _ of this.registry.apps()) n++;
    return n;
  }

  /** The dashboard's API, read from the activator, the registry's memory and the rings. */
  private dashboard(
    activator: Activator,
    metrics: Metrics,
    traffic: Traffic,
    output: OutputLog,
  ): DashboardSource {
    const registry = this.registry;
    const farm = registry.kind === 'mongo' ? new FarmView(registry as FarmRegistry) : undefined;
    const node = this.options.advertise;
    return {
      overview: async (query) => {
        const picture = await farm?.current();
        return buildOverview(
          {
            now: Date.now(),
            node,
            kind: registry.kind,
            reachable: metrics.registryReachable && picture?.error === undefined,
            apps: registry.apps(),
            activator: activator.snapshot(),
            traffic: (id) => traffic.last(id),
            exits: (id, now) => this.exits.of(id, now),
            unenforced: this.unenforced,
            ...(picture ? { farm: picture } : {}),
            acme: { on: this.options.acme !== undefined, expiries: this.certificateExpiries },
          },
          query,
        );
      },
      tick: () =>
        buildTick(
          Date.now(),
          activator.version,
          metrics.registryReachable,
          this.appCount(),
          activator.snapshot(),
          traffic.active(),
        ),
      findApp: (key) => {
        const byId = registry.app(key);
        if (byId) return byId;
        let found: App | undefined;
        for (const app of registry.apps()) {
          if (app.name !== key) continue;
          if (found) return undefined; // two apps have that name: only the id tells them apart
          found = app;
        }
        return found;
      },
      series: (app) => traffic.series(app.id),
      output: (app) => output.lines(app.id),
    };
  }

  /** arr has begun to stop: /healthz answers 503 from now on. */
  stopping(): void {
    this.serving = false;
  }

  async close(): Promise<void> {
    await this.admin?.close();
    this.traffic?.close();
  }
}

function acmeObserver(metrics: Metrics, expiries: Map<string, number>): AcmeObserver {
  return {
    acmeOrder: (result) => metrics.acmeOrder(result),
    certificateExpiry(host, notAfter) {
      metrics.certificateExpiry(host, notAfter);
      if (notAfter === undefined) expiries.delete(host);
      else expiries.set(host, notAfter);
    },
  };
}
