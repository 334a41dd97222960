import type { Registry } from '../registry/registry.js';
import type { App } from '../registry/types.js';
import type { BoundedLog } from '../util/bounded-log.js';
import { every } from '../util/every.js';
import type { Logger, OutputLevel } from '../util/log.js';
import { formatSize } from '../util/size.js';
import { backoffWait, oneMoreFailure } from './backoff.js';
import { type Clock, systemClock } from './clock.js';
import type { Confinement } from './confine.js';
import { Deploys } from './deploys.js';
import type { InstanceExit } from './exit-reason.js';
import { type AppRecord, AppTable, type Instance } from './instances.js';
import { type ExitStatus, Launcher, type Ports, processSpawner, type Spawner } from './launcher.js';
import { memoryOf } from './limit-groups.js';
import { probeOk } from './readiness.js';
import { InstanceWatch, type Renewal, type Watched } from './renewal.js';
import { Slots } from './slots.js';
import { type ActivatorSnapshot, snapshotOf } from './snapshot.js';
import type { OutputListener, SpawnedProcess } from './spawn.js';
import { type Activation, ActivationError, type InstanceSource, type Target } from './target.js';

/**
 * Activation on this node, as the rest of arr sees it. The work is below it, dependencies
 * pointing one way: deploys.ts (rolling replacement) -> slots.ts (the registry side) ->
 * launcher.ts (one process: port, spawn, cgroup, readiness, stop) -> spawn.ts; one record per
 * app and an explicit state per instance (instances.ts); the back-off (backoff.ts); the
 * dashboard's snapshot (snapshot.ts).
 */

/** What the activator tells of its processes and deploys (the state file, metrics). */
export interface ActivatorEvents {
  /** A process was spawned (before it is ready). */
  spawned?(proc: SpawnedProcess, app: App, port: number): void;
  /** It has exited. */
  exited?(proc: SpawnedProcess): void;
  /** An instance of the app ended, and why. */
  ended?(app: App, exit: InstanceExit): void;
  /** A rolling replacement ended: the new version serves, or it failed (and the old one serves). */
  deployed?(app: App, result: 'replaced' | 'failed', detail?: string): void;
}

export interface ActivatorOptions {
  advertise: string;
  startTimeoutMs: number;
  /** A run shorter than this counts as a crash for the restart back-off. */
  stableAfterMs?: number;
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** How long a stopped instance has between SIGTERM and SIGKILL, unless its app says (`stopTimeout`). */
  stopGraceMs?: number;
  /** `--drain`: how long a replaced instance keeps its WebSockets (and requests in flight). */
  drainMs?: number;
  /**
   * In a farm: how long a replaced instance lives at least, so that the other nodes, which send
   * their requests straight to it, learn of its successor first (a few polls).
   */
  lingerMs?: number;
  /** The process and deploy events (state file, metrics). */
  events?: ActivatorEvents;
  /** A local instance that served nothing for this long is stopped (see stopIdle); 0: never. */
  idleTimeoutMs?: number;
  /** Told of each start of an app (one at a time per app, however many wait for it): metrics. */
  onStart?: (app: App, start: Promise<Activation>) => void;
  /**
   * Told when an instance has exited, before its port can be given again: connections kept
   * to it must go, or another app given the port could be sent what was meant for this one.
   * `graceful` when it was replaced and drains: the idle ones go now, the others when done.
   */
  onInstanceGone?: (target: Target, graceful?: boolean) => void;
  /** Told when an instance stops taking new exchanges, before it is stopped (worker processes drop it). */
  onUnserved?: (target: Target) => void;
  /**
   * Asked before an instance that looks idle is stopped, when others count part of its
   * exchanges (worker processes): whether it is idle there too. Without it: it is.
   */
  confirmIdle?: (target: Target) => Promise<boolean>;
  /** What instances go through before their program runs (cgroup, user, capabilities); none: a plain spawn. */
  confinement?: Confinement;
  /** Told of each line of an instance's output (the dashboard's output ring; --admin only). */
  onOutput?: OutputListener;
  /** The level of instances' stderr lines in the log (`--app-stderr-level`; default info). */
  stderrLevel?: OutputLevel;
  /** Where instances' output lines are logged, dropping what stdout cannot take; default: the log. */
  outputLog?: BoundedLog;
  /** Time and timers (tests move a clock of their own). */
  clock?: Clock;
  /** How processes are started (tests start none). */
  spawner?: Spawner;
}

/**
 * Starts, tracks and stops the instances that run on this node: at most one per app. Any
 * number of concurrent activations of one app share a single start. A program that keeps
 * failing is started again only after a delay that doubles with each failure.
 */
export class Activator implements InstanceSource {
  private readonly table: AppTable;
  /** Instances whose idleness is being confirmed (confirmIdle). */
  private readonly confirming = new Set<Instance>();
  private readonly clock: Clock;
  private readonly launcher: Launcher;
  private readonly slots: Slots;
  private readonly deploys: Deploys;
  private readonly stableAfterMs: number;
  private readonly backoff: { baseMs: number; maxMs: number };
  /** The unenforced limits already warned about (app, limit, why). */
  private readonly toldUnenforced = new Set<string>();

  constructor(
    registry: Registry,
    ports: Ports,
    private readonly log: Logger,
    private readonly options: ActivatorOptions,
  ) {
    this.clock = options.clock ?? systemClock;
    const unserved = options.onUnserved;
    this.table = new AppTable(unserved && ((instance) => unserved(instance.target)));
    this.stableAfterMs = options.stableAfterMs ?? 2_000;
    this.backoff = { baseMs: options.backoffBaseMs ?? 500, maxMs: options.backoffMaxMs ?? 30_000 };
    const currentApp = (id: string) => registry.app(id);
    const failed = (id: string) => this.recordFailure(id);
    const events = options.events;
    this.launcher = new Launcher(
      ports,
      options.spawner ?? processSpawner(log, options),
      this.table,
      this.clock,
      log,
      {
        advertise: options.advertise,
        startTimeoutMs: options.startTimeoutMs,
        stopGraceMs: options.stopGraceMs ?? 10_000,
        currentApp,
        failed,
        spawned: (proc, app, port) => events?.spawned?.(proc, app, port),
        exited: (proc) => events?.exited?.(proc),
        ended: (app, exit) => events?.ended?.(app, exit),
        gone: options.onInstanceGone,
      },
    );
    this.slots = new Slots(registry, this.table, log, options.advertise);
    this.deploys = new Deploys(this.table, this.launcher, this.slots, this.clock, log, {
      drainMs: options.drainMs ?? 30_000,
      lingerMs: options.lingerMs ?? 0,
      currentApp,
      failed,
      onExit: (instance, exit) => this.exited(instance, exit),
      gone: options.onInstanceGone,
      deployed: (app, result, detail) => events?.deployed?.(app, result, detail),
    });
  }

  /** The running instance of this app on this node, if any: the hot path, no I/O. */
  localTarget(appId: string): Target | undefined {
    const instance = this.table.serving(appId);
    // One that failed its health checks takes no new exchange while another can (activate).
    return instance && !instance.unhealthy ? instance.target : undefined;
  }

  get runningCount(): number {
    return this.table.servingCount();
  }

  /** A number that changes whenever the snapshot's instances or states do. */
  get version(): number {
    return this.table.version;
  }

  /**
   * Every process of this node with its state, and the apps in restart back-off: for the
   * dashboard, read about once a second, off the request path.
   */
  snapshot(): ActivatorSnapshot {
    return snapshotOf(this.launcher.live, this.table);
  }

  /** Finds or starts an instance for the app; concurrent callers share one attempt. */
  activate(app: App): Promise<Activation> {
    const record = this.table.of(app.id);
    const serving = record.serving;
    if (serving && !serving.unhealthy) return Promise.resolve({ kind: 'local', target: serving.target });
    // The instance went (or failed its health checks) while its successor starts: that one.
    if (record.successor) return record.successor;
    if (serving) return Promise.resolve({ kind: 'local', target: serving.target });
    let pending = record.starting;
    if (!pending) {
      pending = this.start(app).finally(() => {
        record.starting = undefined;
        this.table.tidy(record);
      });
      record.starting = pending;
      this.options.onStart?.(app, pending);
    }
    return pending;
  }

  /** Stops this node's instance of an app (it refused a connection, or the app was removed). */
  evict(appId: string, why: string, port?: number): void {
    const record = this.table.find(appId);
    const instance = record?.serving;
    // A late error from an instance already replaced must not stop its replacement.
    if (!record || !instance || (port !== undefined && instance.target.port !== port)) return;
    const { app, proc } = instance;
    this.log.warn(
      { event: 'instance-stopping', app: app.name, id: appId, pid: proc.pid },
      `stopping ${app.name}[${proc.pid}]: ${why}`,
    );
    this.table.unserve(record, instance);
    // Its exit will not find it serving any more: its entry goes now, or the app stays at its cap.
    this.slots.release(instance);
    void this.launcher.stop(instance, 'stopped');
  }

  /** Stops the instances of apps that are no longer in the registry. */
  evictMissing(known: Set<string>): void {
    for (const record of [...this.table.all()])
      if (record.serving && !known.has(record.id)) this.evict(record.id, 'its app left the registry');
  }

  /**
   * Puts back the registry entry of each running instance when it is missing (another node
   * took this one for dead, or a release raced a claim). When the cap is full meanwhile, the
   * instance is stopped: the farm's count must not exceed it.
   */
  reassert(): Promise<void> {
    return this.slots.reassert((instance) => void this.launcher.stop(instance, 'stopped'));
  }

  /**
   * Stops the local instances that have served nothing (no request in flight, no open
   * WebSocket) for the idle timeout, and removes their entries: the next request starts one
   * again. Off the request path: run by a timer.
   */
  stopIdle(now = this.clock.now()): void {
    const idleMs = this.options.idleTimeoutMs ?? 0;
    if (idleMs <= 0 || this.table.stopping) return;
    for (const record of [...this.table.all()]) {
      const instance = record.serving;
      const a = instance?.target.activity;
      if (!instance || !a || a.active > 0 || now - a.lastActive < idleMs) continue;
      if (this.options.confirmIdle) this.confirmThenStop(record, instance, idleMs);
      else this.stopIdleInstance(record, instance, now);
    }
  }

  /** Asks whether the instance is idle everywhere (confirmIdle); stops it when it still is. */
  private confirmThenStop(record: AppRecord, instance: Instance, idleMs: number): void {
    if (this.confirming.has(instance)) return;
    this.confirming.add(instance);
    void this.options.confirmIdle!(instance.target)
      .then((idle) => {
        const a = instance.target.activity!;
        const now = this.clock.now();
        if (idle && !this.table.stopping && a.active === 0 && now - a.lastActive >= idleMs)
          this.stopIdleInstance(record, instance, now);
      })
      .catch(() => {}) // not confirmed: kept
      .finally(() => this.confirming.delete(instance));
  }

  private stopIdleInstance(record: AppRecord, instance: Instance, now: number): void {
    if (record.serving !== instance) return;
    const a = instance.target.activity!;
    const { app, proc } = instance;
    this.log.info(
      { event: 'instance-stopping', app: app.name, id: record.id, pid: proc.pid },
      `stopping ${app.name}[${proc.pid}]: idle for ${Math.round((now - a.lastActive) / 1000)} s`,
    );
    this.table.unserve(record, instance);
    this.slots.release(instance);
    void this.launcher.stop(instance, 'idle');
  }

  /**
   * With an idle timeout: looks for idle instances about once a second (stopIdle) until the
   * returned function is called. Without one: nothing.
   */
  watchIdle(): () => void {
    const idleMs = this.options.idleTimeoutMs ?? 0;
    if (idleMs <= 0) return () => {};
    return every(Math.min(1000, idleMs / 2), async () => this.stopIdle());
  }

  /**
   * Checks the instances of apps with `health` or `recycle` twice a second (renewal.ts) until
   * the returned function is called.
   */
  watchInstances(): () => void {
    const watch = new InstanceWatch({
      now: () => this.clock.now(),
      probe: (port, path, timeoutMs, h2c) => probeOk('127.0.0.1', port, path, timeoutMs, h2c),
      renew: (appId, port, renewal) => this.renew(appId, port, renewal),
    });
    return every(500, async () => watch.tick(this.watched()));
  }

  /** The serving instances of this node whose app has health checks or recycling. */
  private *watched(): Generator<Watched> {
    for (const record of this.table.all()) {
      const instance = record.serving;
      if (!instance || (!instance.app.health && !instance.app.recycle)) continue;
      const { app, proc, target, startedAt } = instance;
      yield {
        appId: app.id,
        port: target.port,
        health: app.health,
        recycle: app.recycle,
        h2c: app.protocol === 'h2c',
        startedAt,
        exchanges: target.activity?.exchanges ?? 0,
        memory: () => memoryOf(proc.pid, proc.limitGroups?.memory),
      };
    }
  }

  /** Replaces the app's instance on `port` as a deploy does: it failed its health checks, or is due for recycling. */
  renew(appId: string, port: number, renewal: Renewal): void {
    const record = this.table.find(appId);
    const instance = record?.serving;
    if (this.table.stopping || !record || !instance || instance.target.port !== port) return;
    const { app, proc } = instance;
    const fields = {
      event: 'instance-renewing',
      app: app.name,
      id: appId,
      pid: proc.pid,
      reason: renewal.reason,
    };
    const line = `replacing ${app.name}[${proc.pid}] (${renewal.reason}): ${renewal.why}`;
    if (renewal.reason === 'health') {
      instance.unhealthy = true;
      this.log.warn(fields, line);
    } else this.log.info(fields, line);
    record.renewal = renewal;
    this.deploys.redeploy(appId);
  }

  /** Warns once per app, limit and reason of each limit this host cannot hold the app's instances to. */
  tellUnenforced(app: App): void {
    if (!app.limits) return;
    const { confinement } = this.options;
    const unenforced = confinement
      ? confinement.unenforced(app.limits)
      : Object.keys(app.limits).map((limit) => ({ limit, why: 'arr confines no instance here' }));
    for (const { limit, why } of unenforced) {
      const key = `${app.id}\0${limit}\0${why}`;
      if (this.toldUnenforced.has(key)) continue;
      this.toldUnenforced.add(key);
      this.log.warn(
        { app: app.name, id: app.id, limit },
        `${app.name}: limits.${limit} is not enforced: ${why}`,
      );
    }
  }

  /** Stops every instance this node started and waits until they are gone. */
  async stopAll(): Promise<void> {
    this.table.stopping = true;
    this.deploys.cancelRetries();
    for (const record of [...this.table.all()])
      if (record.serving) this.table.unserve(record, record.serving);
    await Promise.all([...this.launcher.live].map((i) => this.launcher.stop(i, 'stopped')));
    await this.options.confinement?.cgroups?.close();
  }

  /**
   * Replaces, one app at a time, each instance of this node whose app has another version in
   * the registry now (its process, env, cwd, ready, user, group or revision changed).
   */
  redeployChanged(): void {
    for (const record of [...this.table.all()]) if (record.serving) this.deploys.redeploy(record.id);
  }

  /** Replaces the app's instance when the registry has another version of it (deploys.ts). */
  redeploy(appId: string): void {
    this.deploys.redeploy(appId);
  }

  private async start(app: App): Promise<Activation> {
    if (this.table.stopping)
      throw new ActivationError('unavailable', 'the server is shutting down', 'stopping');
    const elsewhere = await this.slots.elsewhere(app);
    if (elsewhere.length >= app.instances) return { kind: 'remote', machines: elsewhere };

    const record = this.table.of(app.id);
    const failures = record.failures;
    const wait = backoffWait(failures, this.clock.now());
    if (wait > 0) {
      throw new ActivationError(
        'unavailable',
        'the application is failing to start; try again shortly',
        `${app.name} is in restart back-off for ${wait} ms after ${failures?.count} failures`,
        Math.ceil(wait / 1000),
      );
    }

    this.tellUnenforced(app);
    const instance = await this.launcher.launch(app, (i, exit) => this.exited(i, exit));
    const { proc, port, startedAt, target } = instance;
    const machine = target.machine;

    let claim: Awaited<ReturnType<Slots['claim']>>;
    try {
      claim = await this.slots.claim(app, machine);
    } catch (err) {
      void this.launcher.stop(instance, 'stopped');
      throw err;
    }
    if (!claim.granted) {
      // The farm reached the cap while this instance was starting: use theirs.
      void this.launcher.stop(instance, 'stopped');
      this.log.info(
        { app: app.name, id: app.id },
        `${app.name} reached its cap elsewhere; using an existing instance`,
      );
      const others = claim.machines.filter((m) => m.host !== this.options.advertise);
      if (others.length > 0) return { kind: 'remote', machines: others };
      // Not a tight loop of starts while this lasts.
      this.recordFailure(app.id);
      throw new ActivationError(
        'unavailable',
        'no instance is available',
        `${app.name}: claim refused and no instance listed`,
      );
    }
    if (instance.exited.aborted || this.table.stopping) {
      await this.slots.releaseNow(app.id, machine);
      void this.launcher.stop(instance, 'stopped');
      throw new ActivationError(
        'failed',
        'the application exited while starting',
        `${app.name} exited right after start`,
      );
    }
    this.table.serve(record, instance);
    this.slots.note(app, machine);
    const ms = this.clock.now() - startedAt;
    this.log.info(
      { event: 'instance-ready', app: app.name, id: app.id, pid: proc.pid, port, ms },
      `${app.name} is ready on port ${port} (${ms} ms)`,
    );
    // The app changed while it started: the version it runs is replaced at once.
    this.deploys.redeploy(app.id);
    return { kind: 'local', target };
  }

  /** An instance's process has exited (its port is free again). */
  private exited(instance: Instance, exit: ExitStatus): void {
    const { app, proc, startedAt } = instance;
    const record = this.table.find(app.id);
    const wasServing = record !== undefined && this.table.unserve(record, instance);
    if (exit.error && proc.pid < 0) {
      this.log.error(
        { event: 'instance-exited', app: app.name, id: app.id },
        `could not start ${app.name}: ${exit.error.message}`,
      );
      return;
    }
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    const fields = {
      event: 'instance-exited',
      app: app.name,
      id: app.id,
      pid: proc.pid,
      code: exit.code,
      signal: exit.signal,
    };
    if (instance.oom) {
      const limit = app.limits?.memory;
      this.log.warn(
        { ...fields, event: 'instance-oom', limit, reason: 'oom' },
        `${app.name}[${proc.pid}] was killed by its memory limit${limit === undefined ? '' : ` (${formatSize(limit)})`}: out of memory (${how})`,
      );
    }
    // An instance that served and went by itself (arr was not stopping it) crashed: warn, so
    // that --log-level warn shows it. The state stays what it was at the exit.
    else if (wasServing && instance.state !== 'stopping' && !this.table.stopping)
      this.log.warn(
        fields,
        `${app.name}[${proc.pid}] exited with ${how} while serving; its next request starts it again`,
      );
    else this.log.info(fields, `${app.name}[${proc.pid}] exited with ${how}`);
    if (!wasServing || !record) return;
    this.slots.release(instance);
    if (this.table.stopping) return;
    if (this.clock.now() - startedAt < this.stableAfterMs) this.recordFailure(app.id);
    else this.forgetFailures(record);
  }

  private recordFailure(appId: string): void {
    const record = this.table.of(appId);
    record.failures = oneMoreFailure(record.failures, this.clock.now(), this.backoff);
  }

  private forgetFailures(record: AppRecord): void {
    record.failures = undefined;
    this.table.tidy(record);
  }
}
