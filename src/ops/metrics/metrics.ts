import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { ExitReason } from '../../activation/exit-reason.js';
import { type Activation, ActivationError } from '../../activation/target.js';
import type { StoreOperation } from '../../registry/registry.js';
import type { App } from '../../registry/types.js';
import type { RefusalReason } from '../../router/deciding/policy/refusal.js';

/**
 * The `app` label of exchanges no application owns (no usable Host, or a host no app serves).
 * Labels only ever carry names of registry apps, never what a client sent, so that the number
 * of series stays bounded whatever clients do.
 */
export const NO_APP = '-';

/** Request durations through a proxy: from a cached answer (1 ms) to a slow one (10 s). */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** Cold starts: a small program is ready in tens of ms, a big one in seconds (15 s is the default limit). */
const ACTIVATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30];

/** How one start of an app ended. */
export type ActivationResult = 'started' | 'remote' | 'timeout' | 'failed' | 'unavailable';

/** The protocol of a client's connection, as ALPN names it (HTTP/1.0 counts as http/1.1). */
export type Protocol = 'http/1.1' | 'h2';

/** The registry operations whose failures are counted (src/registry/registry.ts lists them). */
export type RegistryOperation = StoreOperation;

/** The label children of one app, looked up once: the hot path only increments and observes. */
interface AppSeries {
  byStatus: Map<number, Counter.Internal>;
  duration: Histogram.Internal<'app'>;
}

/**
 * arr's Prometheus metrics (prom-client), in a registry of their own, with prom-client's
 * default process and Node.js metrics beside them.
 */
export class Metrics {
  readonly registry = new PromRegistry();
  private readonly apps = new Map<string, AppSeries>();
  private readonly requests = new Counter({
    name: 'arr_requests_total',
    help: 'HTTP requests answered, by app and status code (0: no complete answer, the connection closed before or during it)',
    labelNames: ['app', 'status'] as const,
    registers: [this.registry],
  });
  private readonly requestDuration = new Histogram({
    name: 'arr_request_duration_seconds',
    help: 'Time from a request reaching arr to the end of its answer, by app',
    labelNames: ['app'] as const,
    buckets: REQUEST_BUCKETS,
    registers: [this.registry],
  });
  private readonly byProtocol = new Counter({
    name: 'arr_requests_by_protocol_total',
    help: 'Requests and WebSocket upgrades that reached arr, by the protocol of their connection (http/1.1, h2)',
    labelNames: ['protocol'] as const,
    registers: [this.registry],
  });
  /** The two series, looked up once (0 at start, so that a rate sees the first one). */
  private readonly protocols = {
    'http/1.1': this.byProtocol.labels('http/1.1'),
    h2: this.byProtocol.labels('h2'),
  };
  private readonly upgrades = new Counter({
    name: 'arr_websocket_upgrades_total',
    help: 'WebSocket upgrade requests, by app and the status of their answer (101: upgraded; 0: none)',
    labelNames: ['app', 'status'] as const,
    registers: [this.registry],
  });
  private readonly websocketsOpen = new Gauge({
    name: 'arr_websockets_open',
    help: 'WebSockets open through arr now, by app',
    labelNames: ['app'] as const,
    registers: [this.registry],
  });
  private readonly activations = new Counter({
    name: 'arr_activations_total',
    help: 'Starts of an app on this node, by result (started here, remote: the cap was full elsewhere, timeout, failed, unavailable)',
    labelNames: ['app', 'result'] as const,
    registers: [this.registry],
  });
  private readonly activationDuration = new Histogram({
    name: 'arr_activation_duration_seconds',
    help: 'Time a start took, from its first request to a new instance here being ready and registered',
    labelNames: ['app'] as const,
    buckets: ACTIVATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly policyRefusals = new Counter({
    name: 'arr_policy_refusals_total',
    help: 'Requests and WebSocket upgrades refused by an edge policy, by app and reason (ip, rate, auth, forward_auth, body_size)',
    labelNames: ['app', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly proxyErrors = new Counter({
    name: 'arr_proxy_errors_total',
    help: 'Exchanges with an instance that failed, by app and kind (unreachable: refused; failed: broke off)',
    labelNames: ['app', 'kind'] as const,
    registers: [this.registry],
  });
  private readonly registryErrors = new Counter({
    name: 'arr_registry_errors_total',
    help: 'Registry operations that failed, by operation',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  private readonly deploys = new Counter({
    name: 'arr_deploys_total',
    help: "Rolling replacements of an app's instance on this node, by result (replaced; failed: the previous version keeps serving)",
    labelNames: ['app', 'result'] as const,
    registers: [this.registry],
  });
  private readonly exits = new Counter({
    name: 'arr_instance_exits_total',
    help: 'Instances of an app on this node that ended, by reason (stopped, idle, deploy, crash, oom, health, recycle, start-timeout)',
    labelNames: ['app', 'reason'] as const,
    registers: [this.registry],
  });
  private readonly certificateExpiries = new Gauge({
    name: 'arr_certificate_expiry_seconds',
    help: 'When the ACME certificate served for a host expires, in seconds since the epoch',
    labelNames: ['host'] as const,
    registers: [this.registry],
  });
  private readonly acmeOrders = new Counter({
    name: 'arr_acme_orders_total',
    help: 'Certificate orders this node placed with the ACME CA, by result (success; failure; dropped: the host left the registry meanwhile)',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  private readonly adminRefusals = new Counter({
    name: 'arr_admin_unauthorized_total',
    help: 'Admin requests refused for want of the --admin-token, by reason (missing, wrong)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  private runningCount: () => number = () => 0;
  private droppedOutput: () => number = () => 0;
  private lastLoadFailed = false;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.protocols['http/1.1'].inc(0);
    this.protocols.h2.inc(0);
    const running = () => this.runningCount();
    new Gauge({
      name: 'arr_instances_running',
      help: 'Application instances running on this node',
      registers: [this.registry],
      collect() {
        this.set(running());
      },
    });
    const dropped = () => this.droppedOutput();
    new Counter({
      name: 'arr_instance_output_dropped_lines_total',
      help: "Lines of instances' output not logged: stdout did not take them as fast as the instances wrote them",
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(dropped());
      },
    });
  }

  /** One HTTP request ended, `seconds` after it reached arr. The hot path: two map lookups. */
  request(app: string, status: number, seconds: number): void {
    let series = this.apps.get(app);
    if (!series) {
      series = { byStatus: new Map(), duration: this.requestDuration.labels(app) };
      this.apps.set(app, series);
    }
    let counter = series.byStatus.get(status);
    if (!counter) {
      counter = this.requests.labels(app, String(status));
      series.byStatus.set(status, counter);
    }
    counter.inc();
    series.duration.observe(seconds);
  }

  /** An ACME order ended (src/acme: AcmeObserver). */
  acmeOrder(result: 'success' | 'failure' | 'dropped'): void {
    this.acmeOrders.inc({ result });
  }

  /** The ACME certificate served for a registry host (undefined: none any more). */
  certificateExpiry(host: string, notAfter: number | undefined): void {
    if (notAfter === undefined) this.certificateExpiries.remove(host);
    else this.certificateExpiries.set({ host }, Math.floor(notAfter / 1000));
  }

  /** A request or upgrade reached arr on a connection of this protocol. */
  protocol(protocol: Protocol): void {
    this.protocols[protocol].inc();
  }

  /** A WebSocket upgrade was answered (or its connection closed unanswered: status 0). */
  upgrade(app: string, status: number): void {
    this.upgrades.labels(app, String(status)).inc();
  }

  websocketOpened(app: string): void {
    this.websocketsOpen.labels(app).inc();
  }

  websocketClosed(app: string): void {
    this.websocketsOpen.labels(app).dec();
  }

  /** An admin request came without the token, or with another (the token is never logged). */
  adminUnauthorized(reason: 'missing' | 'wrong'): void {
    this.adminRefusals.labels(reason).inc();
  }

  /** Lists the refusal counts at 0 (with --admin-token), so that an alert sees the first one. */
  adminTokenRequired(): void {
    for (const reason of ['missing', 'wrong']) this.adminRefusals.labels(reason).inc(0);
  }

  /** A request or upgrade refused by an edge policy of `app`. */
  policyRefused(app: string, reason: RefusalReason): void {
    this.policyRefusals.labels(app, reason).inc();
  }

  proxyError(app: string, kind: 'unreachable' | 'failed'): void {
    this.proxyErrors.labels(app, kind).inc();
  }

  /** Where `arr_instances_running` is read from at each scrape. */
  countInstances(count: () => number): void {
    this.runningCount = count;
  }

  /** Where the count of instance output lines dropped is read (src/util/bounded-log.ts). */
  countDroppedOutput(count: () => number): void {
    this.droppedOutput = count;
  }

  /** Whether the last read of the registry's apps succeeded (the farm's registry is reachable). */
  get registryReachable(): boolean {
    return !this.lastLoadFailed;
  }

  /** For Activator's `onStart`: counts and times each start of an app, however it ends. */
  readonly activationStarted = (app: App, start: Promise<Activation>): void => {
    const began = performance.now();
    start.then(
      (activation) => {
        if (activation.kind === 'local') {
          this.activations.labels(app.name, 'started').inc();
          this.activationDuration.labels(app.name).observe((performance.now() - began) / 1000);
        } else {
          this.activations.labels(app.name, 'remote').inc();
        }
      },
      (err: unknown) => this.activations.labels(app.name, activationFailure(err)).inc(),
    );
  };

  /** For the Activator's `ended` event: an instance ended, for this reason. */
  readonly instanceEnded = (app: App, reason: ExitReason): void => {
    this.exits.labels(app.name, reason).inc();
  };

  /** For the Activator's `deployed` event: a rolling replacement ended. */
  readonly deployed = (app: App, result: 'replaced' | 'failed'): void => {
    this.deploys.labels(app.name, result).inc();
  };

  /**
   * A registry operation ended (InstrumentedRegistry tells): failures are counted, and a load
   * tells whether the registry is reachable.
   */
  /** Lists the operations' failure counts at 0, so that a rate or an alert sees the first failure. */
  registryOperations(operations: readonly RegistryOperation[]): void {
    for (const operation of operations) this.registryErrors.labels(operation).inc(0);
  }

  registryOperation(operation: RegistryOperation, ok: boolean): void {
    if (!ok) this.registryErrors.labels(operation).inc();
    if (operation === 'load') this.lastLoadFailed = !ok;
  }
}

function activationFailure(err: unknown): ActivationResult {
  return err instanceof ActivationError ? err.kind : 'failed';
}
