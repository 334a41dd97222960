import { Registry as PromRegistry } from 'prom-client';
import type { AcmeObserver } from '../acme/manager.js';
import type { Activator } from '../activation/activator.js';
import type { InstanceExit } from '../activation/exit-reason.js';
import type { Unenforced } from '../activation/limit-groups.js';
import type { OutputListener } from '../activation/spawn.js';
import type { Activation } from '../activation/target.js';
import type { AdminAddress } from '../config.js';
import type { FarmRegistry, Registry } from '../registry/registry.js';
import type { App, Problem } from '../registry/types.js';
import type { ExchangeObserver } from '../router/deciding/observer.js';
import { type BoundedLog, createBoundedLog } from '../util/bounded-log.js';
import { createAccessLog, type Logger } from '../util/log.js';
import { AdminToken } from './admin/admin-auth.js';
import {
  type AdminMetrics,
  type AdminServer,
  type DashboardSource,
  isLoopback,
  startAdminServer,
} from './admin/admin-server.js';
import { CertificateExpiries } from './dashboard/certificate-expiry.js';
import {
  buildOverview,
  buildTick,
  type CertificateRenewal,
  type Overview,
} from './dashboard/dashboard-data.js';
import { ExitLog } from './dashboard/exit-log.js';
import { FarmView } from './dashboard/farm-view.js';
import { ExchangeMetrics } from './metrics/exchange-metrics.js';
import { InstrumentedFarmRegistry, InstrumentedRegistry } from './metrics/instrumented-registry.js';
import { Metrics } from './metrics/metrics.js';
import { createObserver } from './metrics/observer.js';
import { Traffic, UNKNOWN_HOST } from './metrics/traffic.js';
import { OutputLog } from './output-log.js';
import type { WorkerFleet } from './worker-asks.js';
import { WorkersView } from './workers-view.js';

/** Why a host's own certificate is not served, or its last ACME order failed (src/router/accepting/tls.ts knows). */
export interface CertificateFailures {
  failure(host: string): string | undefined;
  orderFailure(host: string): string | undefined;
}

export interface OpsOptions {
  /** `--admin`: serve /healthz, /metrics and the dashboard there; no metrics are kept without it. */
  admin?: AdminAddress;
  /** `--admin-token`: every admin path but /healthz and the page's files requires it. */
  adminToken?: string;
  /** `--access-log`: one info line per request and WebSocket (with workers, each writes its own). */
  accessLog?: boolean;
  /** This node's address in the farm (the dashboard names nodes by it). */
  advertise: string;
  /** `--acme-email`: ACME is on (the dashboard says which hosts it manages). */
  acme?: unknown;
  /** The default certificate (PEM; replaced on a reload): the dashboard shows its expiry. */
  cert?: Buffer;
}

/**
 * Health, metrics, the dashboard's rings and the access log, wired into arr by `openCore` (src/core.ts): what
 * the router and the activator are handed (each undefined when off, so that they do nothing for
 * it), and the admin endpoint's listener.
 *
 * With workers (`fleet` given), this is the primary's part: the router runs in the workers,
 * each with its WorkerOps (src/ops/worker-ops.ts), and the primary's metrics and dashboard show
 * them all (WorkersView): here only what the primary itself does is counted.
 */
export class Operations {
  readonly metrics: Metrics | undefined;
  /** For the Router: undefined when neither metrics nor the access log are on, or with workers. */
  readonly observer: ExchangeObserver | undefined;
  /** For the Activator's `onStart`. */
  readonly onStart: ((app: App, start: Promise<Activation>) => void) | undefined;
  /** For the Activator's `onOutput`: the dashboard's last lines per app (--admin only). */
  readonly onOutput: OutputListener | undefined;
  /** For the Activator: instances' output lines, logged without ever blocking arr (drops counted). */
  readonly outputLog: BoundedLog;
  private readonly traffic: Traffic | undefined;
  /** With workers and --admin: their counters and traffic, asked for. */
  private readonly workers: WorkersView | undefined;
  private readonly output: OutputLog | undefined;
  private readonly exits = new ExitLog();
  /** The limits this host cannot enforce, per app (the dashboard shows them). */
  private unenforced: (app: App) => Unenforced[] = () => [];
  /** When the ACME certificate served for each host expires (ms since the epoch), for the dashboard. */
  private readonly certificateExpiries = new Map<string, number>();
  /** When each is to be renewed, and whether the CA (ARI) or its lifetime said so. */
  private readonly certificateRenewals = new Map<string, CertificateRenewal>();
  /** For the ACME manager: its orders and certificates counted and shown (--admin only). */
  readonly acmeObserver: AcmeObserver | undefined;
  private admin: AdminServer | undefined;
  private serving = true;
  /** What the start checks found (programs, directories, users, certificates), for the dashboard. */
  private startProblems: Problem[] = [];
  private readonly expiries = new CertificateExpiries();

  constructor(
    private readonly options: OpsOptions,
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly fleet?: WorkerFleet,
  ) {
    // Alone, the exchanges' metrics come first in the registry, as they always have.
    const prom = options.admin ? new PromRegistry() : undefined;
    const exchanges = prom && !fleet ? new ExchangeMetrics(prom) : undefined;
    this.metrics = prom ? new Metrics(prom) : undefined;
    this.traffic = options.admin ? new Traffic(Date.now, { fed: fleet !== undefined }) : undefined;
    this.output = options.admin ? new OutputLog() : undefined;
    this.onStart = this.metrics?.activationStarted;
    this.onOutput = this.output?.add;
    this.outputLog = createBoundedLog(log);
    if (fleet) {
      if (this.metrics && this.traffic)
        this.workers = new WorkersView(fleet, this.metrics, this.traffic, log);
    } else {
      this.observer = createObserver(
        exchanges,
        options.accessLog ? createAccessLog(log) : undefined,
        this.traffic,
      );
    }
    this.acmeObserver =
      this.metrics && acmeObserver(this.metrics, this.certificateExpiries, this.certificateRenewals);
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

  /** The start checks found these problems (they are logged already). */
  noteStartProblems(problems: Problem[]): void {
    this.startProblems = problems;
  }

  /** The registry's problems, then those of the start checks. */
  private problems(): Problem[] {
    return [...this.registry.problems(), ...this.startProblems];
  }

  /** Starts the admin endpoint, when there is one. */
  async listen(activator: Activator, certs?: CertificateFailures): Promise<void> {
    const { admin, adminToken } = this.options;
    const { metrics, traffic, output } = this;
    if (!admin || !metrics || !traffic || !output) return;
    metrics.countInstances(() => activator.runningCount);
    metrics.countDroppedOutput(() => this.outputLog.dropped);
    const messages = this.fleet?.messages;
    if (messages) metrics.countWorkerMessages(messages);
    const token = adminToken === undefined ? undefined : new AdminToken(adminToken);
    if (token) metrics.adminTokenRequired();
    const workers = this.workers;
    const scrape: AdminMetrics = {
      contentType: metrics.registry.contentType,
      text: workers ? () => workers.scrape() : () => metrics.registry.metrics(),
      adminUnauthorized: (reason) => metrics.adminUnauthorized(reason),
    };
    workers?.start();
    this.admin = await startAdminServer(
      admin,
      scrape,
      {
        serving: () => this.serving,
        apps: () => this.appCount(),
        instances: () => activator.runningCount,
        registryReachable: () => metrics.registryReachable,
        ...(workers ? { workers: () => workers.serving } : {}),
      },
      this.dashboard(activator, metrics, traffic, output, certs),
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
    certs: CertificateFailures | undefined,
  ): DashboardSource {
    const registry = this.registry;
    const farm = registry.kind === 'mongo' ? new FarmView(registry as FarmRegistry) : undefined;
    const node = this.options.advertise;
    return {
      overview: async (query) => {
        const picture = await farm?.current();
        const overview = buildOverview(
          {
            now: Date.now(),
            node,
            kind: registry.kind,
            reachable: metrics.registryReachable && picture?.error === undefined,
            problems: this.problems(),
            apps: registry.apps(),
            activator: activator.snapshot(),
            traffic: (id) => traffic.last(id),
            exits: (id, now) => this.exits.of(id, now),
            unenforced: this.unenforced,
            unknownHosts: traffic.last(UNKNOWN_HOST)?.requests ?? 0,
            ...(picture ? { farm: picture } : {}),
            acme: {
              on: this.options.acme !== undefined,
              expiries: this.certificateExpiries,
              renewals: this.certificateRenewals,
            },
          },
          query,
        );
        await this.addExpiries(overview, certs);
        return overview;
      },
      tick: () =>
        buildTick(
          Date.now(),
          activator.version,
          { reachable: metrics.registryReachable, problemCount: this.problems().length },
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

  /**
   * The expiry of the certificates the page's hosts are served: their own files' (or why they
   * are not served), the default one's. ACME's are known already.
   */
  private async addExpiries(overview: Overview, certs: CertificateFailures | undefined): Promise<void> {
    const fallback = this.options.cert ? this.expiries.ofPem(this.options.cert) : undefined;
    const iso = (ms: number | undefined) => (ms === undefined ? null : new Date(ms).toISOString());
    for (const app of overview.apps) {
      const rules = this.registry.app(app.id)?.hosts;
      for (const [i, view] of app.hosts.entries()) {
        const c = view.certificate;
        const rule = rules?.[i];
        if (c.source === 'default') c.expires = iso(fallback);
        if (c.source === 'acme') {
          const failed = certs?.orderFailure(view.host);
          if (failed) c.problem = `the order failed: ${failed}`;
        }
        if (c.source !== 'own' || !rule?.cert) continue;
        const failed = certs?.failure(view.host);
        const file = await this.expiries.ofFile(rule.cert);
        c.expires = failed ? null : iso(file.expires);
        const problem = failed ?? file.problem;
        if (problem) c.problem = `${problem}; the default certificate is served`;
      }
    }
  }

  /** arr has begun to stop: /healthz answers 503 from now on. */
  stopping(): void {
    this.serving = false;
  }

  async close(): Promise<void> {
    await this.admin?.close();
    this.workers?.close();
    this.traffic?.close();
  }
}

function acmeObserver(
  metrics: Metrics,
  expiries: Map<string, number>,
  renewals: Map<string, CertificateRenewal>,
): AcmeObserver {
  return {
    acmeOrder: (result) => metrics.acmeOrder(result),
    certificateExpiry(host, notAfter) {
      metrics.certificateExpiry(host, notAfter);
      if (notAfter === undefined) expiries.delete(host);
      else expiries.set(host, notAfter);
    },
    certificateRenewal(host, renewal) {
      if (renewal === undefined) renewals.delete(host);
      else renewals.set(host, renewal);
    },
  };
}
