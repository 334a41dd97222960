import cluster, { type Worker } from 'node:cluster';
import type { Logger } from '../util/log.js';
import { Channel } from './channel.js';
import { ASK, type SettleBody, TO_PRIMARY } from './messages.js';

/**
 * How connections reach the workers: `cluster.SCHED_NONE`, the workers accept on the shared
 * socket themselves as the kernel wakes them, not node:cluster's round robin (the primary accepts
 * and hands each connection to the next worker), which cost about twice the CPU per new
 * connection (the primary's accept and the descriptor's trip over the IPC pipe) for no better
 * spread over many connections (bench/decisions.md, "Spreading connections over workers").
 * Set here, once, before the first fork.
 */
export const SCHEDULING_POLICY: number = process.env.NODE_CLUSTER_SCHED_POLICY
  ? cluster.schedulingPolicy // NODE_CLUSTER_SCHED_POLICY=rr|none, as node:cluster read it (the benchmark compares both)
  : cluster.SCHED_NONE;

/** The environment variable that tells a worker its number (1..N, kept by its replacements). */
export const WORKER_NUMBER_ENV = 'ARR_WORKER_NUMBER';

/** One worker process, by its number. */
export interface WorkerHandle {
  number: number;
  worker: Worker;
  channel: Channel;
  /** Its listeners are open. */
  serving: boolean;
  /** Told to stop (a rolling replacement or arr's stop): its exit is expected. */
  retiring: boolean;
  /** It said hello (its channel listens): notes reach it. */
  welcomed: boolean;
  /** Its ports as bound (port 0 picks one). */
  ports?: { port: number; sslport: number };
  /** Settles when it exits. */
  exited: Promise<void>;
}

export interface PoolHooks {
  /** A new worker's channel, before it says anything: what it may ask is answered from here. */
  welcome(handle: WorkerHandle): void;
  /** A worker exited (expected or not): what it counted is let go. */
  gone(handle: WorkerHandle): void;
}

/** A worker that dies this soon after its start counts as failing to start: the next waits longer. */
const STABLE_AFTER_MS = 5_000;
const RESPAWN_MAX_MS = 30_000;

/**
 * The primary's worker processes: started, replaced when one dies (logged at error, with its
 * number and exit), replaced one at a time on a reload, stopped in order. `serving()` gives the
 * channels of the workers serving now (for whoever needs each worker's word: counters, drains).
 */
export class WorkerPool {
  private readonly slots = new Map<number, WorkerHandle>();
  private stopping = false;
  private readonly respawnDelay = new Map<number, number>();
  /** Workers replaced by a reload that still finish their exchanges. */
  private readonly retired = new Set<WorkerHandle>();
  /** Messages exchanged with workers that have exited. */
  private readonly pastCounts = { sent: 0, received: 0 };

  constructor(
    private readonly count: number,
    private readonly log: Logger,
    private readonly hooks: PoolHooks,
  ) {
    cluster.schedulingPolicy = SCHEDULING_POLICY as typeof cluster.schedulingPolicy;
  }

  /** Starts every worker and waits until each serves; rejects when one exits first (it could not start). */
  async start(): Promise<void> {
    const started = [];
    for (let n = 1; n <= this.count; n++) started.push(this.fork(n));
    await Promise.all(started);
  }

  /** The channels of the workers serving now. */
  serving(): Channel[] {
    return this.handles().map((h) => h.channel);
  }

  /** The workers serving now. */
  handles(): WorkerHandle[] {
    return [...this.slots.values()].filter((h) => h.serving && !h.retiring);
  }

  /** Every worker that may still hold connections (serving or retiring): they are told of instances. */
  everyWorker(): WorkerHandle[] {
    return [...this.slots.values()].concat([...this.retired]);
  }

  /** Messages sent to and received from every worker so far, those that exited included. */
  messageCounts(): { sent: number; received: number } {
    const total = { ...this.pastCounts };
    for (const h of this.everyWorker()) {
      total.sent += h.channel.counts.sent;
      total.received += h.channel.counts.received;
    }
    return total;
  }

  /** Sends a note to every worker that has said hello. */
  broadcast(type: string, body: unknown): void {
    for (const h of this.everyWorker()) if (h.welcomed) h.channel.note(type, body);
  }

  /**
   * Replaces the workers one at a time: a new one serves before the old one stops accepting;
   * the old one finishes its requests, keeps its WebSockets until they close or `retireMs` ends,
   * and exits. Stops at the first new worker that cannot start (the old one serves on).
   */
  async replaceAll(graceMs: number, retireMs: number): Promise<string> {
    let replaced = 0;
    for (const old of [...this.slots.values()]) {
      if (this.stopping) break;
      try {
        await this.fork(old.number, old);
      } catch (err) {
        this.log.error(
          `reload: worker ${old.number} was not replaced: ${(err as Error).message}; the old one serves on`,
        );
        return `${replaced} of ${this.count} workers replaced (see the error above)`;
      }
      await this.retire(old, { graceMs, retireMs });
      replaced++;
    }
    return `${replaced} worker${replaced === 1 ? '' : 's'} replaced`;
  }

  /** Every worker stops accepting; resolves once none has a request in flight (or at the deadline). */
  async settle(deadline: number): Promise<void> {
    this.stopping = true;
    const graceMs = Math.max(0, deadline - Date.now());
    await Promise.all(
      [...this.slots.values()].map((h) => {
        h.retiring = true;
        return h.channel.ask(ASK.settle, { graceMs } satisfies SettleBody, graceMs + 2_000).catch(() => {});
      }),
    );
  }

  /** Every worker ends its WebSockets and exits; one still running after `lingerMs` and a margin is killed. */
  async end(lingerMs: number): Promise<void> {
    this.stopping = true;
    const all = this.everyWorker();
    for (const h of all) {
      h.retiring = true;
      h.channel.ask(ASK.end, { lingerMs }, lingerMs + 2_000).catch(() => {});
    }
    await Promise.all(all.map((h) => exitedWithin(h, lingerMs + 3_000)));
  }

  private async retire(h: WorkerHandle, body: SettleBody): Promise<void> {
    h.retiring = true;
    this.retired.add(h);
    await h.channel.ask(ASK.settle, body, body.graceMs + 2_000).catch(() => {});
  }

  /** Starts worker `number` (in place of `old`, which serves on until this one does). */
  private fork(number: number, old?: WorkerHandle): Promise<void> {
    const worker = cluster.fork({ [WORKER_NUMBER_ENV]: String(number) });
    const channel = new Channel(worker);
    const bornAt = Date.now();
    let exit!: () => void;
    const exited = new Promise<void>((r) => {
      exit = r;
    });
    const h: WorkerHandle = {
      number,
      worker,
      channel,
      serving: false,
      retiring: false,
      welcomed: false,
      exited,
    };
    this.hooks.welcome(h);
    return new Promise<void>((resolve, reject) => {
      channel.on<{ port: number; sslport: number }>(TO_PRIMARY.serving, (ports) => {
        h.serving = true;
        h.ports = ports;
        if (old === undefined || this.slots.get(number) === old) this.slots.set(number, h);
        this.respawnDelay.delete(number);
        resolve();
      });
      worker.once('exit', (code, signal) => {
        channel.close();
        this.pastCounts.sent += channel.counts.sent;
        this.pastCounts.received += channel.counts.received;
        exit();
        this.retired.delete(h);
        this.hooks.gone(h);
        const how = signal ? `signal ${signal}` : `code ${code}`;
        if (!h.serving) {
          reject(new Error(`worker ${number} exited with ${how} before it served`));
          if (old || this.stopping) return;
        }
        if (h.retiring || this.stopping) return;
        if (this.slots.get(number) === h) this.slots.delete(number);
        this.respawn(number, worker.process.pid, how, Date.now() - bornAt);
      });
    });
  }

  /** A worker died: another takes its number, at once unless they keep dying young. */
  private respawn(number: number, pid: number | undefined, how: string, livedMs: number): void {
    const delay =
      livedMs >= STABLE_AFTER_MS ? 0 : Math.min((this.respawnDelay.get(number) ?? 250) * 2, RESPAWN_MAX_MS);
    this.respawnDelay.set(number, delay);
    this.log.error(
      { event: 'worker-exited', worker: number, pid },
      `worker ${number} (pid ${pid}) exited with ${how}; its requests in flight failed; another starts${delay > 0 ? ` in ${delay} ms` : ''}`,
    );
    const again = () => {
      if (this.stopping) return;
      this.fork(number).catch((err: unknown) =>
        this.log.error(`worker ${number}: ${(err as Error).message}`),
      );
    };
    if (delay === 0) again();
    else setTimeout(again, delay).unref();
  }
}

function exitedWithin(h: WorkerHandle, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((r) => {
    timer = setTimeout(() => {
      h.worker.process.kill('SIGKILL');
      r();
    }, ms);
  });
  return Promise.race([h.exited, late]).finally(() => clearTimeout(timer));
}
