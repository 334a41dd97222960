import { Counter, Gauge, Histogram, type Registry as PromRegistry } from 'prom-client';
import type { RefusalReason } from '../../router/deciding/policy/refusal.js';

/**
 * The `app` label of exchanges no application owns (no usable Host, or a host no app serves).
 * Labels only ever carry names of registry apps, never what a client sent, so that the number
 * of series stays bounded whatever clients do.
 */
export const NO_APP = '-';

/** Request durations through a proxy: from a cached answer (1 ms) to a slow one (10 s). */
const REQUEST_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The protocol of a client's connection, as ALPN names it (HTTP/1.0 counts as http/1.1). */
export type Protocol = 'http/1.1' | 'h2';

/** The label children of one app, looked up once: the hot path only increments and observes. */
interface AppSeries {
  byStatus: Map<number, Counter.Internal>;
  duration: Histogram.Internal<'app'>;
}

/**
 * The metrics of the exchanges a process carries (requests, upgrades, WebSockets, refusals,
 * failures with instances): what the router's observer counts, in the process that carries the
 * traffic (arr alone, or each worker: the primary sums them, src/ops/workers-view.ts). Counters,
 * histograms and the open-WebSockets gauge all add up across processes.
 */
export class ExchangeMetrics {
  private readonly apps = new Map<string, AppSeries>();
  private readonly requests: Counter<'app' | 'status'>;
  private readonly requestDuration: Histogram<'app'>;
  private readonly protocols: Record<Protocol, Counter.Internal>;
  private readonly upgrades: Counter<'app' | 'status'>;
  private readonly websocketsOpen: Gauge<'app'>;
  private readonly policyRefusals: Counter<'app' | 'reason'>;
  private readonly proxyErrors: Counter<'app' | 'kind'>;

  constructor(registry: PromRegistry) {
    const registers = [registry];
    this.requests = new Counter({
      name: 'arr_requests_total',
      help: 'HTTP requests answered, by app and status code (0: no complete answer, the connection closed before or during it)',
      labelNames: ['app', 'status'] as const,
      registers,
    });
    this.requestDuration = new Histogram({
      name: 'arr_request_duration_seconds',
      help: 'Time from a request reaching arr to the end of its answer, by app',
      labelNames: ['app'] as const,
      buckets: REQUEST_BUCKETS,
      registers,
    });
    const byProtocol = new Counter({
      name: 'arr_requests_by_protocol_total',
      help: 'Requests and WebSocket upgrades that reached arr, by the protocol of their connection (http/1.1, h2)',
      labelNames: ['protocol'] as const,
      registers,
    });
    // The two series, looked up once (0 at start, so that a rate sees the first one).
    this.protocols = { 'http/1.1': byProtocol.labels('http/1.1'), h2: byProtocol.labels('h2') };
    this.protocols['http/1.1'].inc(0);
    this.protocols.h2.inc(0);
    this.upgrades = new Counter({
      name: 'arr_websocket_upgrades_total',
      help: 'WebSocket upgrade requests, by app and the status of their answer (101: upgraded; 0: none)',
      labelNames: ['app', 'status'] as const,
      registers,
    });
    this.websocketsOpen = new Gauge({
      name: 'arr_websockets_open',
      help: 'WebSockets open through arr now, by app',
      labelNames: ['app'] as const,
      registers,
    });
    this.policyRefusals = new Counter({
      name: 'arr_policy_refusals_total',
      help: 'Requests and WebSocket upgrades refused by an edge policy, by app and reason (ip, rate, auth, forward_auth, body_size)',
      labelNames: ['app', 'reason'] as const,
      registers,
    });
    this.proxyErrors = new Counter({
      name: 'arr_proxy_errors_total',
      help: 'Exchanges with an instance that failed, by app and kind (unreachable: refused; failed: broke off)',
      labelNames: ['app', 'kind'] as const,
      registers,
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

  /** A request or upgrade refused by an edge policy of `app`. */
  policyRefused(app: string, reason: RefusalReason): void {
    this.policyRefusals.labels(app, reason).inc();
  }

  proxyError(app: string, kind: 'unreachable' | 'failed'): void {
    this.proxyErrors.labels(app, kind).inc();
  }
}
