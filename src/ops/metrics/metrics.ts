import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { ExitReason } from '../../activation/exit-reason.js';
import { type Activation, ActivationError } from '../../activation/target.js';
import type { StoreOperation } from '../../registry/registry.js';
import type { App } from '../../registry/types.js';

/** Cold starts: a small program is ready in tens of ms, a big one in seconds (15 s is the default limit). */
const ACTIVATION_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15, 30];

/** How one start of an app ended. */
export type ActivationResult = 'started' | 'remote' | 'timeout' | 'failed' | 'unavailable';

/** The registry operations whose failures are counted (src/registry/registry.ts lists them). */
export type RegistryOperation = StoreOperation;

/**
 * arr's Prometheus metrics of what the process that owns the instances does (activation,
 * deploys, exits, the registry, ACME, the admin endpoint), in a registry of their own unless
 * given one, with prom-client's default process and Node.js metrics beside them. The metrics of
 * the exchanges are ExchangeMetrics, in the same registry when arr runs alone.
 */
export class Metrics {
  private readonly activations: Counter<'app' | 'result'>;
  private readonly activationDuration: Histogram<'app'>;
  private readonly registryErrors: Counter<'operation'>;
  private readonly deploys: Counter<'app' | 'result'>;
  private readonly exits: Counter<'app' | 'reason'>;
  private readonly certificateExpiries: Gauge<'host'>;
  private readonly acmeOrders: Counter<'result'>;
  private readonly adminRefusals: Counter<'reason'>;
  private runningCount: () => number = () => 0;
  private droppedOutput: () => number = () => 0;
  private lastLoadFailed = false;

  constructor(readonly registry: PromRegistry = new PromRegistry()) {
    const registers = [registry];
    this.activations = new Counter({
      name: 'arr_activations_total',
      help: 'Starts of an app on this node, by result (started here, remote: the cap was full elsewhere, timeout, failed, unavailable)',
      labelNames: ['app', 'result'] as const,
      registers,
    });
    this.activationDuration = new Histogram({
      name: 'arr_activation_duration_seconds',
      help: 'Time a start took, from its first request to a new instance here being ready and registered',
      labelNames: ['app'] as const,
      buckets: ACTIVATION_BUCKETS,
      registers,
    });
    this.registryErrors = new Counter({
      name: 'arr_registry_errors_total',
      help: 'Registry operations that failed, by operation',
      labelNames: ['operation'] as const,
      registers,
    });
    this.deploys = new Counter({
      name: 'arr_deploys_total',
      help: "Rolling replacements of an app's instance on this node, by result (replaced; failed: the previous version keeps serving)",
      labelNames: ['app', 'result'] as const,
      registers,
    });
    this.exits = new Counter({
      name: 'arr_instance_exits_total',
      help: 'Instances of an app on this node that ended, by reason (stopped, idle, deploy, crash, oom, health, recycle, start-timeout)',
      labelNames: ['app', 'reason'] as const,
      registers,
    });
    this.certificateExpiries = new Gauge({
      name: 'arr_certificate_expiry_seconds',
      help: 'When the ACME certificate served for a host expires, in seconds since the epoch',
      labelNames: ['host'] as const,
      registers,
    });
    this.acmeOrders = new Counter({
      name: 'arr_acme_orders_total',
      help: 'Certificate orders this node placed with the ACME CA, by result (success; failure; dropped: the host left the registry meanwhile)',
      labelNames: ['result'] as const,
      registers,
    });
    this.adminRefusals = new Counter({
      name: 'arr_admin_unauthorized_total',
      help: 'Admin requests refused for want of the --admin-token, by reason (missing, wrong)',
      labelNames: ['reason'] as const,
      registers,
    });
    collectDefaultMetrics({ register: this.registry });
    const running = () => this.runningCount();
    new Gauge({
      name: 'arr_instances_running',
      help: 'Application instances running on this node',
      registers,
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

  /** An ACME order ended (src/acme: AcmeObserver). */
  acmeOrder(result: 'success' | 'failure' | 'dropped'): void {
    this.acmeOrders.inc({ result });
  }

  /** The ACME certificate served for a registry host (undefined: none any more). */
  certificateExpiry(host: string, notAfter: number | undefined): void {
    if (notAfter === undefined) this.certificateExpiries.remove(host);
    else this.certificateExpiries.set({ host }, Math.floor(notAfter / 1000));
  }

  /** An admin request came without the token, or with another (the token is never logged). */
  adminUnauthorized(reason: 'missing' | 'wrong'): void {
    this.adminRefusals.labels(reason).inc();
  }

  /** Lists the refusal counts at 0 (with --admin-token), so that an alert sees the first one. */
  adminTokenRequired(): void {
    for (const reason of ['missing', 'wrong']) this.adminRefusals.labels(reason).inc(0);
  }

  /** Where `arr_instances_running` is read from at each scrape. */
  countInstances(count: () => number): void {
    this.runningCount = count;
  }

  /** Where the count of instance output lines dropped is read (src/util/bounded-log.ts). */
  countDroppedOutput(count: () => number): void {
    this.droppedOutput = count;
  }

  /** With workers: `arr_worker_messages_total`, read from `count` at each scrape. */
  countWorkerMessages(count: () => { sent: number; received: number }): void {
    new Counter({
      name: 'arr_worker_messages_total',
      help: "Messages between the primary and its workers, by direction (sent: the primary's notes, asks and answers; received: the workers'); activations, instance changes, summaries every second and scrapes, never one per request",
      labelNames: ['direction'] as const,
      registers: [this.registry],
      collect() {
        const { sent, received } = count();
        this.reset();
        this.labels('sent').inc(sent);
        this.labels('received').inc(received);
      },
    });
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

  /** Lists the operations' failure counts at 0, so that a rate or an alert sees the first failure. */
  registryOperations(operations: readonly RegistryOperation[]): void {
    for (const operation of operations) this.registryErrors.labels(operation).inc(0);
  }

  /**
   * A registry operation ended (InstrumentedRegistry tells): failures are counted, and a load
   * tells whether the registry is reachable.
   */
  registryOperation(operation: RegistryOperation, ok: boolean): void {
    if (!ok) this.registryErrors.labels(operation).inc();
    if (operation === 'load') this.lastLoadFailed = !ok;
  }
}

function activationFailure(err: unknown): ActivationResult {
  return err instanceof ActivationError ? err.kind : 'failed';
}
