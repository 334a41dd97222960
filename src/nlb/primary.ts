import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../util/log.js';
import { Channel } from '../workers/channel.js';
import type { HealthOptions } from './backend-health.js';
import type { RouteConfig } from './config.js';
import { HealthBoard, type HealthChange } from './shared-health.js';

/**
 * How the connections of the routes' ports reach the workers: each worker accepts on the shared
 * socket and the kernel picks (node:cluster's SCHED_NONE), not the primary accepting and handing
 * each to a worker (SCHED_RR), which cost nlb twice the CPU per new connection and halved its
 * connection rate (bench/decisions.md, "Spreading connections over workers"). The one setting;
 * NODE_CLUSTER_SCHED_POLICY=rr|none overrides it for a run.
 */
export const SCHEDULING_POLICY: number = process.env.NODE_CLUSTER_SCHED_POLICY
  ? cluster.schedulingPolicy
  : cluster.SCHED_NONE;

/** The environment variable that tells a worker its number (1..N), which its title shows. */
export const WORKER_NUMBER_ENV = 'NLB_WORKER_NUMBER';

/** A worker that lived less than this was a crash loop: its replacement waits (back-off). */
const STABLE_MS = 10_000;
const RESTART_MIN_MS = 250;
const RESTART_MAX_MS = 30_000;

/** A worker that could not listen: nlb stops, as a single process would. */
export class WorkerStartError extends Error {}

interface Slot {
  number: number;
  worker: Worker;
  channel: Channel;
  startedAt: number;
  ready: boolean;
  /** The wait before the next replacement of this slot; doubles while it keeps dying young. */
  restartMs: number;
}

/**
 * nlb's primary with --workers N: it forks N workers (titled `nlb worker 1`..`N`), which listen
 * on the routes' ports through node:cluster and relay the connections; it keeps the backends'
 * health for all of them (shared-health.ts), replaces a worker that dies, and stops them
 * gracefully on SIGTERM. It carries no connection itself.
 */
export class NlbPrimary {
  private readonly slots = new Map<number, Slot>();
  private readonly board: HealthBoard;
  private stopping = false;
  private onStarted: { resolve(): void; reject(err: Error): void } | undefined;
  private onAllExited: (() => void) | undefined;

  constructor(
    private readonly workers: number,
    routes: RouteConfig[],
    health: HealthOptions,
    private readonly log: Logger,
  ) {
    this.board = new HealthBoard(routes, health, log, (change) => this.broadcast('health', change));
  }

  /** Forks every worker; resolves when all listen, rejects (WorkerStartError) when one cannot. */
  start(): Promise<void> {
    cluster.schedulingPolicy = SCHEDULING_POLICY as typeof cluster.schedulingPolicy;
    const started = new Promise<void>((resolve, reject) => {
      this.onStarted = { resolve, reject };
    });
    for (let n = 1; n <= this.workers; n++) this.fork(n, RESTART_MIN_MS);
    return started;
  }

  /** Workers serving now. */
  get serving(): number {
    let n = 0;
    for (const s of this.slots.values()) if (s.ready) n++;
    return n;
  }

  /** Asks every worker to stop gracefully (each waits up to --grace); resolves when all exited. */
  stop(): Promise<void> {
    this.stopping = true;
    this.board.stop();
    for (const slot of this.slots.values())
      if (slot.ready) slot.channel.note('stop');
      // Not serving yet: it may not listen to its pipe yet either; a signal stops it either way.
      else slot.worker.process.kill('SIGTERM');
    if (this.slots.size === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.onAllExited = resolve;
    });
  }

  /** A second signal: the workers close their open connections now. */
  hurry(): void {
    this.broadcast('hurry');
  }

  private fork(number: number, restartMs: number): void {
    const worker = cluster.fork({ [WORKER_NUMBER_ENV]: String(number) });
    const channel = new Channel(worker);
    const slot: Slot = { number, worker, channel, startedAt: Date.now(), ready: false, restartMs };
    this.slots.set(number, slot);
    channel.on<HealthChange>('health', (change) => this.board.report(change));
    channel.on<{ message: string }>('listen-failed', ({ message }) => {
      if (this.onStarted) this.onStarted.reject(new WorkerStartError(message));
      else this.log.error({ worker: number }, `nlb worker ${number}: ${message}`);
    });
    channel.on('ready', () => this.ready(slot));
    worker.on('exit', (code, signal) => {
      // Only once its pipe is closed too, so that every message it sent (why it could not
      // listen) has been read.
      if (worker.isConnected()) worker.once('disconnect', () => this.exited(slot, code, signal));
      else this.exited(slot, code, signal);
    });
  }

  private ready(slot: Slot): void {
    slot.ready = true;
    for (const change of this.board.downNow()) slot.channel.note('health', change);
    this.log.info(
      { worker: slot.number, pid: slot.worker.process.pid },
      `nlb worker ${slot.number} serving (pid ${slot.worker.process.pid})`,
    );
    if (this.serving === this.workers) {
      this.onStarted?.resolve();
      this.onStarted = undefined;
    }
  }

  private exited(slot: Slot, code: number | null, signal: string | null): void {
    slot.channel.close();
    if (this.slots.get(slot.number) === slot) this.slots.delete(slot.number);
    if (this.stopping) {
      if (this.slots.size === 0) this.onAllExited?.();
      return;
    }
    const how = signal ? `signal ${signal}` : `code ${code}`;
    if (!slot.ready && this.onStarted) {
      // Before serving, at start: a worker that cannot listen; nlb stops (start() rejects).
      this.onStarted.reject(new WorkerStartError(`nlb worker ${slot.number} exited at start (${how})`));
      return;
    }
    const lived = Date.now() - slot.startedAt;
    const wait = lived >= STABLE_MS ? 0 : slot.restartMs;
    const next = lived >= STABLE_MS ? RESTART_MIN_MS : Math.min(slot.restartMs * 2, RESTART_MAX_MS);
    this.log.error(
      { worker: slot.number, pid: slot.worker.process.pid, code, signal, restartInMs: wait },
      `nlb worker ${slot.number} (pid ${slot.worker.process.pid}) exited (${how}); starting another${wait ? ` in ${wait} ms` : ''}`,
    );
    setTimeout(() => {
      if (!this.stopping) this.fork(slot.number, next);
    }, wait);
  }

  private broadcast(type: string, body?: unknown): void {
    for (const s of this.slots.values()) s.channel.note(type, body);
  }
}
