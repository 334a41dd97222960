import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Duplex } from 'node:stream';
import type { Registry } from '../registry/registry.js';
import { type App, deployKey, type Machine, sameMachine } from '../registry/types.js';
import { every } from '../util/every.js';
import type { Logger, OutputLevel } from '../util/log.js';
import { formatSize } from '../util/size.js';
import { type Confinement, type Launch, plainLaunch, releaseGroups } from './confine.js';
import { type ExitReason, exitReason, type InstanceExit } from './exit-reason.js';
import { cannotSwitchUser, type Identity, IdentityError, resolveIdentity } from './identity.js';
import { openConnections } from './instance-connections.js';
import { type MemoryGroup, memoryOf, oomKills } from './limit-groups.js';
import type { PortAllocator } from './port-allocator.js';
import { probeOk, waitReady } from './readiness.js';
import { InstanceWatch, type Renewal, type Watched } from './renewal.js';
import { type OutputListener, type SpawnedProcess, signalGroup, spawnInstance } from './spawn.js';

/** Where a request for an app goes: the instance's registry entry and the address to dial. */
export interface Target {
  appId: string;
  /** The entry in the app's `machines`. */
  machine: Machine;
  /** Where to connect: loopback for instances of this node, the entry itself for others. */
  host: string;
  port: number;
  local: boolean;
  /** Local instances: what they serve now (kept by the router), for the idle timeout and drains. */
  activity?: Activity;
  /** Local instances: the client connections of their open WebSockets, for drains. */
  webSockets?: Set<Duplex>;
}

/** Exchanges (requests, WebSockets) an instance is serving now, and when the last one ended. */
export interface Activity {
  active: number;
  lastActive: number;
  /** Exchanges begun so far (for recycle.requests). */
  exchanges: number;
}

export type Activation = { kind: 'local'; target: Target } | { kind: 'remote'; machines: Machine[] };

/**
 * Why a start gave no instance: `timeout` (it did not listen in time), `failed` (it could not
 * be started, or exited while starting), `unavailable` (back-off, no free port, the registry
 * or the cap, arr stopping). Each has the status a client gets.
 */
export type ActivationFailure = 'timeout' | 'failed' | 'unavailable';

const FAILURE_STATUS: Record<ActivationFailure, number> = { timeout: 504, failed: 502, unavailable: 503 };

/**
 * A start that did not give an instance. `publicMessage` is safe to show a client; the
 * error's own message is the detail for the log.
 */
export class ActivationError extends Error {
  readonly status: number;

  constructor(
    readonly kind: ActivationFailure,
    readonly publicMessage: string,
    detail: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(detail);
    this.status = FAILURE_STATUS[kind];
  }

  /** The process that did not become ready, when there was one (its last output is logged with a failed deploy). */
  process?: SpawnedProcess;
}

/** One more exchange (request or WebSocket) in flight at the target: a counter, no I/O. */
export function exchangeBegan(t: Target): void {
  const a = t.activity;
  if (!a) return;
  a.active++;
  a.exchanges++;
}

/** An exchange at the target is over; the instance may be idle from now. */
export function exchangeEnded(t: Target): void {
  const a = t.activity;
  if (!a) return;
  // Idleness counts from the end of the last exchange: the clock is read only when there is one.
  if (--a.active === 0) a.lastActive = Date.now();
}

interface LocalInstance {
  app: App;
  proc: SpawnedProcess;
  target: Target;
  /** deployKey(app) of the version it runs: a different one in the registry replaces it. */
  key: string;
  /** It failed its health checks: new requests wait for its replacement, when there is one. */
  unhealthy?: boolean;
}

/** A process started on its port and ready, not yet recorded in the registry. */
interface Launched {
  proc: SpawnedProcess;
  port: number;
  /** The instance's target: connections to it belong to it, and go when it exits. */
  target: Target;
  startedAt: number;
  /** Fires when the process exits. */
  exited: AbortSignal;
}

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

interface FailureRecord {
  count: number;
  notBefore: number;
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
  /** What instances go through before their program runs (cgroup, user, capabilities); none: a plain spawn. */
  confinement?: Confinement;
  /** Told of each line of an instance's output (the dashboard's output ring; --admin only). */
  onOutput?: OutputListener;
  /** The level of instances' stderr lines in the log (`--app-stderr-level`; default info). */
  stderrLevel?: OutputLevel;
}

/** What an instance of this node is doing, as the dashboard shows it. */
export type InstanceState = 'starting' | 'ready' | 'draining' | 'stopping';

/** One process of this node, for the dashboard (Activator.snapshot). */
export interface InstanceSnapshot {
  appId: string;
  pid: number;
  port: number;
  state: InstanceState;
  /** When it was spawned (ms since the epoch). */
  startedAt: number;
  /** Its memory cgroup, where it has one (its usage is read there, else from /proc). */
  memoryGroup?: MemoryGroup;
}

/**
 * An app without a process here whose last starts failed (or whose instance crashed soon after
 * its start); this node starts it again at `until` at the earliest (back-off), or at once.
 */
export interface FailureSnapshot {
  appId: string;
  failures: number;
  until: number;
}

export interface ActivatorSnapshot {
  instances: InstanceSnapshot[];
  failing: FailureSnapshot[];
}

/** What is known of a process besides its app, for snapshots: set at spawn, changed on drain and stop. */
interface ProcessDetail {
  app: App;
  port: number;
  startedAt: number;
  /** Set once it is replaced (draining) or being stopped; else its state follows `running`. */
  phase?: 'draining' | 'stopping';
}

const LOOPBACK = '127.0.0.1';

/** The uid and gid the app's instances run as; undefined: arr's own. */
async function identityOf(app: App): Promise<Identity | undefined> {
  if (app.user === undefined) return undefined;
  const refusal = cannotSwitchUser();
  if (refusal) throw new IdentityError('user', `"${app.user}" is given, but ${refusal}`);
  return resolveIdentity(app.user, app.group);
}

/** The app's `cwd` is not a directory arr can use. */
class CwdError extends Error {}

/** Throws a CwdError when the app's working directory is not there (spawn would blame the executable). */
function checkCwd(app: App): void {
  if (app.cwd === undefined) return;
  let why: string | undefined;
  try {
    if (!statSync(resolve(app.cwd)).isDirectory()) why = 'not a directory';
  } catch (err) {
    why = (err as NodeJS.ErrnoException).code ?? 'cannot be read';
  }
  if (why) throw new CwdError(`cwd: "${app.cwd}" cannot be used (${why})`);
}

/** The target of an instance of this node, with the counters drains and the idle timeout read. */
function localTarget(appId: string, machine: Machine, port: number): Target {
  return {
    appId,
    machine,
    host: LOOPBACK,
    port,
    local: true,
    activity: { active: 0, lastActive: Date.now(), exchanges: 0 },
    webSockets: new Set(),
  };
}

/**
 * Why spawn() refused to start an app, for the log: the error code, not the message, which
 * can quote the arguments (they may hold secrets, or be 100 KiB long).
 */
function spawnFailure(app: App, err: unknown): string {
  if (err instanceof IdentityError) return `${err.field}: ${err.message}`;
  if (err instanceof CwdError) return err.message;
  const code = (err as NodeJS.ErrnoException).code ?? 'unknown error';
  return `cannot run "${app.process.executable}" (${code})`;
}

/**
 * Starts, tracks and stops the instances that run on this node: at most one per app. Any
 * number of concurrent activations of one app share a single start. A program that keeps
 * failing is started again only after a delay that doubles with each failure.
 */
export class Activator {
  private readonly running = new Map<string, LocalInstance>();
  private readonly starting = new Map<string, Promise<Activation>>();
  private readonly failures = new Map<string, FailureRecord>();
  /** Apps whose instance is to be replaced though its version is the registry's (health, recycle). */
  private readonly renewals = new Map<string, Renewal>();
  /** Why arr stopped each process it stopped: its exit's reason (else it crashed). */
  private readonly stoppedFor = new WeakMap<SpawnedProcess, ExitReason>();
  /** The unenforced limits already warned about (app, limit, why). */
  private readonly toldUnenforced = new Set<string>();
  /** Every process started and not yet exited, with the app it runs, its port and phase. */
  private readonly processes = new Map<SpawnedProcess, ProcessDetail>();
  /** Bumped whenever an instance starts, becomes ready, drains, stops or exits (snapshots tell it). */
  private changes = 0;
  /** Rolling replacements under way, by app id (one at a time per app). */
  private readonly deploys = new Map<string, Promise<void>>();
  /** Apps whose replacement must look again once the one under way is over. */
  private readonly deployAgain = new Set<string>();
  /** A replacement's new instance, while it starts: a request finding no instance waits for it. */
  private readonly replacing = new Map<string, Promise<Activation>>();
  /** Replacements that wait for the back-off, by app id. */
  private readonly deployTimers = new Map<string, NodeJS.Timeout>();
  /** Bumped when an instance is swapped for another: a reassert that read the registry before is stale. */
  private generation = 0;
  private stopping = false;
  private readonly stableAfterMs: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly stopGraceMs: number;

  constructor(
    private readonly registry: Registry,
    private readonly ports: PortAllocator,
    private readonly log: Logger,
    private readonly options: ActivatorOptions,
  ) {
    this.stableAfterMs = options.stableAfterMs ?? 2_000;
    this.backoffBaseMs = options.backoffBaseMs ?? 500;
    this.backoffMaxMs = options.backoffMaxMs ?? 30_000;
    this.stopGraceMs = options.stopGraceMs ?? 10_000;
  }

  /** The running instance of this app on this node, if any: the hot path, no I/O. */
  localTarget(appId: string): Target | undefined {
    return this.running.get(appId)?.target;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** A number that changes whenever the snapshot's instances or states do. */
  get version(): number {
    return this.changes;
  }

  /**
   * Every process of this node with its state, and the apps in restart back-off: for the
   * dashboard, read about once a second, off the request path.
   */
  snapshot(): ActivatorSnapshot {
    const instances: InstanceSnapshot[] = [];
    const busy = new Set<string>();
    for (const [proc, d] of this.processes) {
      const state: InstanceState =
        d.phase ?? (this.running.get(d.app.id)?.proc === proc ? 'ready' : 'starting');
      busy.add(d.app.id);
      const memoryGroup = proc.limitGroups?.memory;
      const instance: InstanceSnapshot = {
        appId: d.app.id,
        pid: proc.pid,
        port: d.port,
        state,
        startedAt: d.startedAt,
      };
      if (memoryGroup) instance.memoryGroup = memoryGroup;
      instances.push(instance);
    }
    const failing: FailureSnapshot[] = [];
    for (const [appId, f] of this.failures)
      if (!busy.has(appId)) failing.push({ appId, failures: f.count, until: f.notBefore });
    return { instances, failing };
  }

  /** Finds or starts an instance for the app; concurrent callers share one attempt. */
  activate(app: App): Promise<Activation> {
    const instance = this.running.get(app.id);
    if (instance && !instance.unhealthy) return Promise.resolve({ kind: 'local', target: instance.target });
    // The instance went (or failed its health checks) while its successor starts: that one.
    const successor = this.replacing.get(app.id);
    if (successor) return successor;
    if (instance) return Promise.resolve({ kind: 'local', target: instance.target });
    let pending = this.starting.get(app.id);
    if (!pending) {
      pending = this.start(app).finally(() => this.starting.delete(app.id));
      this.starting.set(app.id, pending);
      this.options.onStart?.(app, pending);
    }
    return pending;
  }

  /** Stops this node's instance of an app (it refused a connection, or the app was removed). */
  evict(appId: string, why: string, port?: number): void {
    const instance = this.running.get(appId);
    // A late error from an instance already replaced must not stop its replacement.
    if (!instance || (port !== undefined && instance.target.port !== port)) return;
    const { app, proc } = instance;
    this.log.warn({ app: app.name, id: appId, pid: proc.pid }, `stopping ${app.name}[${proc.pid}]: ${why}`);
    this.running.delete(appId);
    // Its exit will not find it running any more: its entry goes now, or the app stays at its cap.
    this.forget(instance);
    void this.stopProcess(proc, 'stopped');
  }

  /** Stops the instances of apps that are no longer in the registry. */
  evictMissing(known: Set<string>): void {
    for (const id of [...this.running.keys()])
      if (!known.has(id)) this.evict(id, 'its app left the registry');
  }

  /**
   * Puts back the registry entry of each running instance when it is missing (another node
   * took this one for dead, or a release raced a claim). When the cap is full meanwhile, the
   * instance is stopped: the farm's count must not exceed it.
   */
  async reassert(): Promise<void> {
    if (this.stopping || this.running.size === 0) return;
    const generation = this.generation;
    const all = await this.registry.allMachines();
    // An instance was swapped for another meanwhile: this picture of the registry is stale.
    if (generation !== this.generation) return;
    for (const [id, instance] of this.running) {
      if (this.deploys.has(id)) continue; // its slot is moving
      const listed = all.get(id) ?? [];
      if (
        listed.some((m) => m.host === instance.target.machine.host && m.port === instance.target.machine.port)
      ) {
        continue;
      }
      const claim = await this.registry.claim(id, instance.target.machine);
      if (claim.granted)
        this.log.warn(
          { app: instance.app.name, id },
          `${instance.app.name}: its entry was missing; put back`,
        );
      else if (this.running.get(id) === instance) {
        this.running.delete(id);
        this.log.warn(
          { app: instance.app.name, id },
          `${instance.app.name}: its entry was missing and the cap is full; stopping it`,
        );
        void this.stopProcess(instance.proc, 'stopped');
      }
    }
  }

  /**
   * Stops the local instances that have served nothing (no request in flight, no open
   * WebSocket) for the idle timeout, and removes their entries: the next request starts one
   * again. Off the request path: run by a timer.
   */
  stopIdle(now = Date.now()): void {
    const idleMs = this.options.idleTimeoutMs ?? 0;
    if (idleMs <= 0 || this.stopping) return;
    for (const [id, instance] of [...this.running]) {
      const a = instance.target.activity;
      if (!a || a.active > 0 || now - a.lastActive < idleMs) continue;
      const { app, proc } = instance;
      this.log.info(
        { app: app.name, id, pid: proc.pid },
        `stopping ${app.name}[${proc.pid}]: idle for ${Math.round((now - a.lastActive) / 1000)} s`,
      );
      this.running.delete(id);
      this.forget(instance);
      void this.stopProcess(proc, 'idle');
    }
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
   * With apps that have `health` or `recycle`: checks their instances twice a second
   * (renewal.ts) until the returned function is called.
   */
  watchInstances(): () => void {
    const watch = new InstanceWatch({
      now: Date.now,
      probe: (port, path, timeoutMs) => probeOk(LOOPBACK, port, path, timeoutMs),
      renew: (appId, port, renewal) => this.renew(appId, port, renewal),
    });
    return every(500, async () => watch.tick(this.watched()));
  }

  /** The running instances of this node whose app has health checks or recycling. */
  private *watched(): Generator<Watched> {
    for (const { app, proc, target } of this.running.values()) {
      if (!app.health && !app.recycle) continue;
      const startedAt = this.processes.get(proc)?.startedAt ?? Date.now();
      yield {
        appId: app.id,
        port: target.port,
        health: app.health,
        recycle: app.recycle,
        startedAt,
        exchanges: target.activity?.exchanges ?? 0,
        memory: () => memoryOf(proc.pid, proc.limitGroups?.memory),
      };
    }
  }

  /** Replaces the app's instance on `port` as a deploy does: health checks failed, or recycle. */
  renew(appId: string, port: number, renewal: Renewal): void {
    const instance = this.running.get(appId);
    if (this.stopping || !instance || instance.target.port !== port) return;
    const { app, proc } = instance;
    const log = renewal.reason === 'health' ? this.log.warn.bind(this.log) : this.log.info.bind(this.log);
    log(
      { app: app.name, id: appId, pid: proc.pid, reason: renewal.reason },
      `replacing ${app.name}[${proc.pid}] (${renewal.reason}): ${renewal.why}`,
    );
    if (renewal.reason === 'health') instance.unhealthy = true;
    this.renewals.set(appId, renewal);
    this.redeploy(appId);
  }

  /** Stops every instance this node started and waits until they are gone. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    for (const t of this.deployTimers.values()) clearTimeout(t);
    this.deployTimers.clear();
    this.running.clear();
    await Promise.all([...this.processes.keys()].map((p) => this.stopProcess(p, 'stopped')));
    await this.options.confinement?.cgroups?.close();
  }

  /**
   * Replaces, one app at a time, each instance of this node whose app has another version in
   * the registry now (its process, env, cwd, ready, user, group or revision changed).
   */
  redeployChanged(): void {
    for (const id of [...this.running.keys()]) this.redeploy(id);
  }

  /** Replaces the app's instance when the registry has another version of it (see deployLoop). */
  redeploy(appId: string): void {
    if (this.stopping) return;
    if (this.deploys.has(appId)) {
      this.deployAgain.add(appId);
      return;
    }
    const instance = this.running.get(appId);
    const app = this.registry.app(appId);
    if (!instance || !app || (deployKey(app) === instance.key && !this.renewals.has(appId))) return;
    const run = this.deployLoop(appId)
      .catch((err: unknown) => this.log.error({ id: appId, err: String(err) }, `deploy of ${appId} failed`))
      .finally(() => {
        this.deploys.delete(appId);
        if (this.deployAgain.delete(appId)) this.redeploy(appId);
      });
    this.deploys.set(appId, run);
  }

  /**
   * Rolling replacement of one app's instance, until it runs the registry's version: a new
   * instance on a new port, ready; the registry entry (the slot) moved to it; new requests and
   * WebSockets sent to it; the old one drained and stopped. At most one extra instance at a
   * time: a further change waits for the drain. A version that fails is tried again only
   * after the back-off.
   */
  private async deployLoop(appId: string): Promise<void> {
    for (;;) {
      this.deployAgain.delete(appId);
      const old = this.running.get(appId);
      const app = this.registry.app(appId);
      if (this.stopping || !old || !app) return;
      const key = deployKey(app);
      if (key === old.key && !this.renewals.has(appId)) return;
      const failure = this.failures.get(appId);
      const wait = failure ? failure.notBefore - Date.now() : 0;
      if (wait > 0) {
        this.retryDeployIn(appId, wait);
        return;
      }
      if (!(await this.replace(old, app, key))) {
        const next = this.failures.get(appId);
        this.retryDeployIn(appId, next ? Math.max(0, next.notBefore - Date.now()) : 0);
        return;
      }
    }
  }

  /** Tries the app's replacement again after the back-off. */
  private retryDeployIn(appId: string, ms: number): void {
    clearTimeout(this.deployTimers.get(appId));
    const timer = setTimeout(() => {
      this.deployTimers.delete(appId);
      this.redeploy(appId);
    }, ms);
    timer.unref();
    this.deployTimers.set(appId, timer);
  }

  /** One replacement; false when the new version did not come to serve (the old one still does). */
  private async replace(old: LocalInstance, app: App, key: string): Promise<boolean> {
    const began = Date.now();
    this.log.info(
      { app: app.name, id: app.id, pid: old.proc.pid },
      `deploying ${app.name}: starting its new version beside ${app.name}[${old.proc.pid}]`,
    );
    // Should the old instance go meanwhile, requests wait for the new one rather than start a third.
    let settle!: (a: Promise<Activation>) => void;
    const successor = new Promise<Activation>((r) => {
      settle = r;
    });
    successor.catch(() => {});
    this.replacing.set(app.id, successor);
    let launched: Launched | undefined;
    try {
      launched = await this.launch(app);
      const {
        target,
        target: { machine },
      } = launched;
      await this.moveSlot(app, old, machine);
      if (launched.exited.aborted || this.stopping) {
        await this.registry.release(app.id, machine).catch(() => {});
        throw new ActivationError(
          'failed',
          'the application exited while starting',
          'it exited right after start',
        );
      }
      // The switch: from here on, new requests and WebSockets go to the new instance.
      this.generation++;
      const current = this.running.get(app.id);
      this.running.set(app.id, { app, proc: launched.proc, target, key });
      this.changes++;
      this.replacing.delete(app.id);
      settle(Promise.resolve({ kind: 'local', target }));
      this.failures.delete(app.id);
      this.log.info(
        { app: app.name, id: app.id, pid: launched.proc.pid, port: launched.port, ms: Date.now() - began },
        `${app.name} deployed: ${app.name}[${launched.proc.pid}] serves on port ${launched.port}; draining ${app.name}[${old.proc.pid}]`,
      );
      const renewal = this.renewals.get(app.id);
      this.renewals.delete(app.id);
      if (renewal) this.stoppedFor.set(old.proc, renewal.reason);
      else this.options.events?.deployed?.(app, 'replaced');
      this.note(app, machine);
      if (current === old) await this.drain(old);
      return true;
    } catch (err) {
      if (this.replacing.get(app.id) === successor) this.replacing.delete(app.id);
      settle(Promise.reject(err));
      const proc = launched?.proc ?? (err instanceof ActivationError ? err.process : undefined);
      if (launched) void this.stopProcess(launched.proc, 'deploy');
      if (proc) {
        // Its last lines of output, once its pipes are read to their end (briefly).
        await Promise.race([
          new Promise((r) => proc.child.once('close', r)),
          new Promise((r) => setTimeout(r, 300)),
        ]);
      }
      const why = err instanceof Error ? err.message : String(err);
      const output = proc && proc.recent.length > 0 ? `; its last output:\n${proc.recent.join('\n')}` : '';
      this.log.error(
        { app: app.name, id: app.id, pid: old.proc.pid, output: proc?.recent },
        `deploy of ${app.name} failed: ${why}; ${app.name}[${old.proc.pid}] (the previous version) keeps serving${output}`,
      );
      this.options.events?.deployed?.(app, 'failed', why);
      this.note(app, old.target.machine, why);
      return false;
    }
  }

  /**
   * Moves the app's registry entry from the old instance to the new one: the slot, and with it
   * the farm's cap, is held throughout (not claimed twice). An entry that was gone meanwhile
   * is claimed again, under the cap. On failure the new process is stopped.
   */
  private async moveSlot(app: App, old: LocalInstance, machine: Machine): Promise<void> {
    let why: string;
    try {
      if (await this.registry.move(app.id, old.target.machine, machine)) return;
      const claim = await this.registry.claim(app.id, machine);
      if (claim.granted) return;
      why = 'its registry entry was gone and the cap is full';
    } catch (err) {
      why = `the registry is unavailable (${String(err)})`;
    }
    this.recordFailure(app.id);
    throw new ActivationError('unavailable', 'no instance is available', why);
  }

  /**
   * A replaced instance finishes what it serves: it is stopped once nothing is in flight there
   * (requests, WebSockets), or when the drain period is over, whichever comes first. In a farm
   * it lives at least the linger: the other nodes send their requests and WebSockets straight to
   * it, unseen by this node's counters, until they learn of its successor; after that, nothing
   * is in flight there once no connection to its port is open (other nodes close their idle
   * ones to it when they learn, as this node does now). Its WebSockets still open at the end of
   * the drain are closed with it (SIGTERM: apps say goodbye; then arr).
   */
  private async drain(old: LocalInstance): Promise<void> {
    const began = Date.now();
    const lingerMs = this.options.lingerMs ?? 0;
    const deadline = began + Math.max(this.options.drainMs ?? 30_000, lingerMs);
    const a = old.target.activity;
    this.setPhase(old.proc, 'draining');
    this.options.onInstanceGone?.(old.target, true);
    let exited = false;
    void old.proc.exited.then(() => {
      exited = true;
    });
    for (let look = began + lingerMs; !exited && !this.stopping; ) {
      const now = Date.now();
      if (now >= deadline) break;
      if (!a || a.active <= 0) {
        if (lingerMs === 0) break;
        if (now >= look) {
          if ((await openConnections(old.target.port)) === 0) break;
          look = Date.now() + 250;
        }
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    if (this.stopping) return; // stopAll stops it
    const open = old.target.webSockets?.size ?? 0;
    this.log.info(
      { app: old.app.name, id: old.app.id, pid: old.proc.pid },
      `stopping ${old.app.name}[${old.proc.pid}]: replaced${open > 0 ? ` (${open} WebSockets still open after the drain are closed)` : ''}`,
    );
    this.forgetOld(old);
    await this.stopProcess(old.proc, 'deploy');
    for (const socket of old.target.webSockets ?? []) socket.end();
  }

  /** A replaced instance's registry entry, should it still be listed (its slot moved already). */
  private forgetOld(old: LocalInstance): void {
    const now = this.running.get(old.app.id);
    if (now && sameMachine(now.target.machine, old.target.machine)) return;
    this.forget(old);
  }

  private async start(app: App): Promise<Activation> {
    if (this.stopping) throw new ActivationError('unavailable', 'the server is shutting down', 'stopping');
    const elsewhere = await this.instancesElsewhere(app);
    if (elsewhere.length >= app.instances) return { kind: 'remote', machines: elsewhere };

    const failure = this.failures.get(app.id);
    const wait = failure ? failure.notBefore - Date.now() : 0;
    if (wait > 0) {
      throw new ActivationError(
        'unavailable',
        'the application is failing to start; try again shortly',
        `${app.name} is in restart back-off for ${wait} ms after ${failure?.count} failures`,
        Math.ceil(wait / 1000),
      );
    }

    const { proc, port, target, startedAt, exited } = await this.launch(app);
    const machine = target.machine;

    let claim: Awaited<ReturnType<Registry['claim']>>;
    try {
      claim = await this.registry.claim(app.id, machine);
      if (!claim.granted && claim.machines.every((m) => m.host === this.options.advertise)) {
        // Only entries of this node fill the cap, yet this node runs no instance of the app (it
        // would not be starting one): they are left over (a release that failed). Drop, retry.
        for (const m of claim.machines) await this.registry.release(app.id, m);
        claim = await this.registry.claim(app.id, machine);
      }
    } catch (err) {
      void this.stopProcess(proc, 'stopped');
      throw new ActivationError(
        'unavailable',
        'the registry is unavailable',
        `claim for ${app.name} failed: ${String(err)}`,
      );
    }
    if (!claim.granted) {
      // The farm reached the cap while this instance was starting: use theirs.
      void this.stopProcess(proc, 'stopped');
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
    if (exited.aborted || this.stopping) {
      await this.registry.release(app.id, machine).catch(() => {});
      void this.stopProcess(proc, 'stopped');
      throw new ActivationError(
        'failed',
        'the application exited while starting',
        `${app.name} exited right after start`,
      );
    }
    this.running.set(app.id, { app, proc, target, key: deployKey(app) });
    this.changes++;
    this.note(app, machine);
    this.log.info(
      { app: app.name, id: app.id, pid: proc.pid, port, ms: Date.now() - startedAt },
      `${app.name} is ready on port ${port} (${Date.now() - startedAt} ms)`,
    );
    // The app changed while it started: the version it runs is replaced at once.
    this.redeploy(app.id);
    return { kind: 'local', target };
  }

  /**
   * Takes a free port, spawns the app on it and waits until it is ready (it listens and, with
   * a `ready` path, answers it with 2xx or 3xx). A process that does not get there is stopped
   * and counts for the back-off.
   */
  private async launch(app: App): Promise<Launched> {
    const port = await this.ports.acquire();
    if (port === undefined) {
      throw new ActivationError(
        'unavailable',
        'no capacity to start the application',
        'every port of the range is taken',
      );
    }
    const startedAt = Date.now();
    const proc = await this.spawnOnPort(app, port);
    this.processes.set(proc, { app, port, startedAt });
    this.changes++;
    this.options.events?.spawned?.(proc, app, port);
    const target = localTarget(app.id, { host: this.options.advertise, port }, port);
    const exitedEarly = new AbortController();
    void proc.exited.then(async (exit) => {
      exitedEarly.abort();
      // arr's connections to it go, and so does what it started (a daemon that left its
      // process group too), before the port can be given to another app.
      this.options.onInstanceGone?.(target);
      const oom = oomKills(proc.limitGroups?.memory) > 0;
      if (proc.pid > 0) {
        const reason = exitReason(oom, this.stoppedFor.get(proc));
        const at = Date.now();
        this.options.events?.ended?.(app, {
          pid: proc.pid,
          reason,
          code: exit.code,
          signal: exit.signal,
          at,
        });
      }
      await releaseGroups(proc);
      const stopped = this.processes.get(proc)?.phase === 'stopping';
      this.processes.delete(proc);
      this.changes++;
      this.ports.release(port);
      this.options.events?.exited?.(proc);
      this.onExit(app, proc, startedAt, exit, stopped, oom);
    });
    this.log.info({ app: app.name, id: app.id, pid: proc.pid, port }, `starting ${app.name} on port ${port}`);

    const ready = await waitReady(LOOPBACK, port, {
      timeoutMs: this.options.startTimeoutMs,
      signal: exitedEarly.signal,
      path: app.ready,
    });
    if (ready !== 'ready') {
      void this.stopProcess(proc, ready === 'timeout' ? 'start-timeout' : 'crash');
      this.recordFailure(app.id);
      throw Object.assign(await this.notReady(app, port, proc, ready), { process: proc });
    }
    return { proc, port, target, startedAt, exited: exitedEarly.signal };
  }

  /** Why a launched process did not become ready: it timed out, or exited (or never ran). */
  private async notReady(
    app: App,
    port: number,
    proc: SpawnedProcess,
    ready: 'timeout' | 'aborted',
  ): Promise<ActivationError> {
    if (ready === 'timeout') {
      // Not waiting for it to go: a program that ignores SIGTERM has the stop grace period.
      return new ActivationError(
        'timeout',
        'the application did not start in time',
        app.ready === undefined
          ? `${app.name} did not accept connections on port ${port} within ${this.options.startTimeoutMs} ms`
          : `${app.name} did not answer GET ${app.ready} with 2xx or 3xx on port ${port} within ${this.options.startTimeoutMs} ms`,
      );
    }
    const exit = await proc.exited; // at once: 'aborted' means it has exited
    if (exit.error) {
      return new ActivationError(
        'failed',
        'the application could not be started',
        `${app.name}: ${exit.error.message}`,
      );
    }
    return new ActivationError(
      'failed',
      'the application exited while starting',
      `${app.name} exited (${exit.signal ?? `code ${exit.code}`}) before it was ready`,
    );
  }

  /**
   * Spawns the app, as its `user` when it has one, on a port already taken from the range. A
   * start that fails before there is a process (an unknown user; a NUL byte or too long an
   * argument list, a path through a file: spawn() throws) gives the port back and counts for
   * the back-off, or every request to a bad app would keep one more port of the range until no
   * app could start.
   */
  private async spawnOnPort(app: App, port: number): Promise<SpawnedProcess> {
    let launch: Launch | undefined;
    try {
      checkCwd(app);
      const identity = await identityOf(app);
      const { executable, args } = app.process;
      const { confinement } = this.options;
      this.tellUnenforced(app);
      launch =
        confinement?.launch(
          executable,
          args,
          `${app.id}-${port}`,
          identity,
          app.limits,
          app.recycle?.memory !== undefined,
        ) ?? plainLaunch(executable, args, identity);
      return spawnInstance(app, port, this.log, launch, this.options.onOutput, this.options.stderrLevel);
    } catch (err) {
      if (launch) void releaseGroups(launch);
      this.ports.release(port);
      this.recordFailure(app.id);
      throw new ActivationError(
        'failed',
        'the application could not be started',
        `${app.name}: ${spawnFailure(app, err)}`,
      );
    }
  }

  /** The app's instances on other nodes, as the registry has them now. */
  private async instancesElsewhere(app: App): Promise<Machine[]> {
    try {
      return (await this.registry.machines(app.id)).filter((m) => m.host !== this.options.advertise);
    } catch (err) {
      throw new ActivationError(
        'unavailable',
        'the registry is unavailable',
        `reading ${app.name}'s instances: ${String(err)}`,
      );
    }
  }

  private onExit(
    app: App,
    proc: SpawnedProcess,
    startedAt: number,
    exit: { code: number | null; signal: NodeJS.Signals | null; error?: Error },
    /** arr stopped it (an idle stop, a replacement, an app removed): no news for an operator. */
    stopped: boolean,
    /** Its memory limit killed it. */
    oom: boolean,
  ): void {
    const instance = this.running.get(app.id);
    const wasRunning = instance?.proc === proc;
    if (wasRunning) this.running.delete(app.id);
    if (exit.error && proc.pid < 0) {
      this.log.error({ app: app.name, id: app.id }, `could not start ${app.name}: ${exit.error.message}`);
      return;
    }
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
    if (oom) {
      const limit =
        app.limits?.memory === undefined
          ? 'its memory limit'
          : `its memory limit (${formatSize(app.limits.memory)})`;
      this.log.warn(
        { app: app.name, id: app.id, pid: proc.pid, limit: app.limits?.memory, reason: 'oom' },
        `${app.name}[${proc.pid}] was killed by ${limit}: out of memory (${how})`,
      );
    }
    // An instance that served and went by itself crashed: warn, so that --log-level warn shows it.
    else if (wasRunning && !stopped && !this.stopping)
      this.log.warn(
        { app: app.name, id: app.id, pid: proc.pid },
        `${app.name}[${proc.pid}] exited with ${how} while serving; its next request starts it again`,
      );
    else
      this.log.info(
        { app: app.name, id: app.id, pid: proc.pid },
        `${app.name}[${proc.pid}] exited with ${how}`,
      );
    if (!wasRunning || !instance) return;
    this.forget(instance);
    if (this.stopping) return;
    if (Date.now() - startedAt < this.stableAfterMs) this.recordFailure(app.id);
    else this.failures.delete(app.id);
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

  /** Records in the registry what the instance at `machine` runs, or the deploy that failed there (in the background). */
  private note(app: App, machine: Machine, failed?: string): void {
    const note = { revision: app.revision ?? 0, ...(failed === undefined ? {} : { failed }) };
    void this.registry.noteDeploy(app.id, machine, note).catch((err: unknown) => {
      this.log.debug({ app: app.name, err: String(err) }, 'could not note a deploy in the registry');
    });
  }

  /** Removes an instance's entry from the registry (in the background). */
  private forget({ app, target }: LocalInstance): void {
    void this.registry.release(app.id, target.machine).catch((err: unknown) => {
      this.log.error(
        { app: app.name, id: app.id, err: String(err) },
        `could not remove ${app.name}'s instance from the registry`,
      );
    });
  }

  /** A process is draining or being stopped (snapshots show it). */
  private setPhase(proc: SpawnedProcess, phase: 'draining' | 'stopping'): void {
    const d = this.processes.get(proc);
    if (d && d.phase !== phase) {
      d.phase = phase;
      this.changes++;
    }
  }

  private recordFailure(appId: string): void {
    const count = (this.failures.get(appId)?.count ?? 0) + 1;
    // One failure may be bad luck (a kill, a port grabbed at the wrong moment): start again at
    // once. From the second in a row on, wait 0.5 s, 1 s, 2 s, ... up to the maximum.
    const delay = count < 2 ? 0 : Math.min(this.backoffBaseMs * 2 ** (count - 2), this.backoffMaxMs);
    this.failures.set(appId, { count, notBefore: Date.now() + delay });
  }

  /**
   * SIGTERM to the instance's process group, SIGKILL after its app's `stopTimeout` (as the
   * registry has it now), or the default grace period.
   */
  private async stopProcess(proc: SpawnedProcess, reason: ExitReason): Promise<void> {
    if (!this.stoppedFor.has(proc)) this.stoppedFor.set(proc, reason);
    signalGroup(proc.pid, 'SIGTERM');
    this.setPhase(proc, 'stopping');
    const app = this.processes.get(proc)?.app;
    const seconds = app ? (this.registry.app(app.id) ?? app).stopTimeout : undefined;
    const graceMs = seconds === undefined ? this.stopGraceMs : seconds * 1000;
    const timer = setTimeout(() => signalGroup(proc.pid, 'SIGKILL'), graceMs);
    await proc.exited;
    clearTimeout(timer);
    // Whatever the instance started in its group goes with it.
    signalGroup(proc.pid, 'SIGKILL');
    await releaseGroups(proc);
  }
}
