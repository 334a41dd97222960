import { type Activation, ActivationError, type InstanceSource, type Target } from '../activation/target.js';
import type { App } from '../registry/types.js';
import type { Channel } from './channel.js';
import {
  type ActivateAnswer,
  type ActivityRow,
  ASK,
  type GoneBody,
  type InstanceKey,
  TO_PRIMARY,
  TO_WORKER,
} from './messages.js';

export interface WorkerInstancesOptions {
  /** How long an ask for an instance may take (the primary may be starting it): the start timeout and more. */
  askTimeoutMs: number;
  /** How often activity summaries are sent (the idle timeout reads them). */
  summaryMs?: number;
  /** How often draining instances are looked at, to report when this worker is done with them. */
  drainCheckMs?: number;
  /** An instance is gone (`graceful`: it drains): the engines' connections to it go, its WebSockets end. */
  gone(target: Target, graceful: boolean): void;
}

/** What was last sent of a target's activity. */
interface Known {
  target: Target;
  sentActive: number;
  sentExchanges: number;
}

/**
 * The instances of this node as a worker process sees them (the InstanceSource of its
 * InstanceChooser): the targets the primary handed out, kept in memory, so that a request asks
 * nothing of anyone. The primary is asked only for an app without a ready target here (one ask
 * per app in flight, shared by concurrent requests); it tells the worker when an instance is
 * gone or drains. The worker counts its own exchanges on each target (as the single process
 * does) and sends the primary summaries: on an interval, and at once when told of a drain, then
 * again when its last exchange there has ended.
 */
export class WorkerInstances implements InstanceSource {
  private readonly serving = new Map<string, Target>();
  private readonly known = new Map<string, Known>();
  private readonly asking = new Map<string, Promise<Activation>>();
  private readonly draining = new Set<Known>();
  private drainTimer: NodeJS.Timeout | undefined;
  private readonly summaryTimer: NodeJS.Timeout;

  constructor(
    private readonly channel: Channel,
    private readonly options: WorkerInstancesOptions,
  ) {
    channel.on<GoneBody>(TO_WORKER.gone, (body) => this.gone(body));
    channel.on<InstanceKey>(TO_WORKER.unserved, ({ appId, port }) => {
      if (this.serving.get(appId)?.port === port) this.serving.delete(appId);
    });
    channel.on<InstanceKey>(ASK.idle, ({ appId, port }) => this.row(appId, port));
    this.summaryTimer = setInterval(() => this.summarise(), options.summaryMs ?? 1000);
    this.summaryTimer.unref();
  }

  /** The hot path: one Map lookup. */
  localTarget(appId: string): Target | undefined {
    return this.serving.get(appId);
  }

  activate(app: App): Promise<Activation> {
    const cached = this.serving.get(app.id);
    if (cached) return Promise.resolve({ kind: 'local', target: cached });
    let pending = this.asking.get(app.id);
    if (!pending) {
      pending = this.ask(app.id).finally(() => this.asking.delete(app.id));
      this.asking.set(app.id, pending);
    }
    return pending;
  }

  evict(appId: string, why: string, port?: number): void {
    const t = this.serving.get(appId);
    if (t && (port === undefined || t.port === port)) this.serving.delete(appId);
    this.channel.note(TO_PRIMARY.evict, { appId, why, port });
  }

  /** The counts of every target this worker has, for whoever asks (the dashboard, tests). */
  *targets(): Iterable<Target> {
    for (const k of this.known.values()) yield k.target;
  }

  /** Sends what changed since the last summary; the primary adds up every worker's. */
  summarise(): void {
    const rows: ActivityRow[] = [];
    for (const k of this.known.values()) {
      const a = k.target.activity!;
      if (a.active === k.sentActive && a.exchanges === k.sentExchanges) continue;
      rows.push(this.rowOf(k));
    }
    if (rows.length > 0) this.channel.note(TO_PRIMARY.activity, rows);
  }

  close(): void {
    clearInterval(this.summaryTimer);
    clearInterval(this.drainTimer);
    this.drainTimer = undefined;
  }

  private async ask(appId: string): Promise<Activation> {
    let answer: ActivateAnswer;
    try {
      answer = await this.channel.ask<ActivateAnswer>(ASK.activate, { appId }, this.options.askTimeoutMs);
    } catch (err) {
      throw new ActivationError(
        'unavailable',
        'The service is not available now; try again shortly.',
        `no instance from arr's primary: ${(err as Error).message}`,
        1,
      );
    }
    if (answer.kind === 'failed')
      throw new ActivationError(
        answer.failure,
        answer.publicMessage,
        answer.detail,
        answer.retryAfterSeconds,
      );
    if (answer.kind === 'remote') return answer;
    const { target: t } = answer;
    const key = keyOf(t.appId, t.port);
    let known = this.known.get(key);
    if (!known) {
      const target: Target = {
        appId: t.appId,
        machine: t.machine,
        host: t.host,
        port: t.port,
        local: true,
        activity: { active: 0, lastActive: Date.now(), exchanges: 0 },
        webSockets: new Set(),
      };
      known = { target, sentActive: 0, sentExchanges: 0 };
      this.known.set(key, known);
    }
    if (!this.draining.has(known)) this.serving.set(t.appId, known.target);
    return { kind: 'local', target: known.target };
  }

  private gone({ appId, port, graceful }: GoneBody): void {
    const key = keyOf(appId, port);
    const known = this.known.get(key);
    if (this.serving.get(appId)?.port === port) this.serving.delete(appId);
    if (!graceful) {
      if (!known) return;
      this.known.delete(key);
      this.draining.delete(known);
      this.options.gone(known.target, false);
      return;
    }
    // Told of a drain: the primary waits for this worker's word, sent now and when it is done.
    if (!known) {
      this.channel.note(TO_PRIMARY.activity, [[appId, port, 0, 0, 0]]);
      return;
    }
    this.options.gone(known.target, true);
    this.channel.note(TO_PRIMARY.activity, [this.rowOf(known)]);
    if (known.target.activity!.active > 0) this.watchDrain(known);
  }

  private watchDrain(known: Known): void {
    this.draining.add(known);
    this.drainTimer ??= setInterval(() => {
      for (const k of this.draining) {
        if (k.target.activity!.active > 0) continue;
        this.draining.delete(k);
        this.channel.note(TO_PRIMARY.activity, [this.rowOf(k)]);
      }
      if (this.draining.size === 0) {
        clearInterval(this.drainTimer);
        this.drainTimer = undefined;
      }
    }, this.options.drainCheckMs ?? 25);
  }

  private row(appId: string, port: number): ActivityRow {
    const known = this.known.get(keyOf(appId, port));
    return known ? this.rowOf(known) : [appId, port, 0, 0, 0];
  }

  private rowOf(k: Known): ActivityRow {
    const a = k.target.activity!;
    k.sentActive = a.active;
    k.sentExchanges = a.exchanges;
    return [k.target.appId, k.target.port, a.active, a.lastActive, a.exchanges];
  }
}

export function keyOf(appId: string, port: number): string {
  return `${appId}\u0000${port}`;
}
