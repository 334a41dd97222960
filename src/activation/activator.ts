import type { Registry } from '../registry/registry.js';
import type { App, Machine } from '../registry/types.js';
import { every } from '../util/every.js';
import type { Logger } from '../util/log.js';
import { type InstanceCgroups, killGroup } from './cgroup.js';
import { cannotSwitchUser, type Identity, IdentityError, resolveIdentity } from './identity.js';
import type { PortAllocator } from './port-allocator.js';
import { waitForPort } from './readiness.js';
import { type SpawnedProcess, signalGroup, spawnInstance } from './spawn.js';

/** Where a request for an app goes: the instance's registry entry and the address to dial. */
export interface Target {
  appId: string;
  /** The entry in the app's `machines`. */
  machine: Machine;
  /** Where to connect: loopback for instances of this node, the entry itself for others. */
  host: string;
  port: number;
  local: boolean;
  /** Local instances, with an idle timeout: what they serve now (kept by the router). */
  activity?: Activity;
}

/** Exchanges (requests, WebSockets) an instance is serving now, and when the last one ended. */
export interface Activity {
  active: number;
  lastActive: number;
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
}

/** One more exchange (request or WebSocket) in flight at the target: a counter, no I/O. */
export function exchangeBegan(t: Target): void {
  if (t.activity) t.activity.active++;
}

/** An exchange at the target is over; the instance may be idle from now. */
export function exchangeEnded(t: Target): void {
  const a = t.activity;
  if (!a) return;
  a.active--;
  a.lastActive = Date.now();
}

interface LocalInstance {
  app: App;
  proc: SpawnedProcess;
  target: Target;
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
  /** How long a stopped instance has between SIGTERM and SIGKILL. */
  stopGraceMs?: number;
  /** A local instance that served nothing for this long is stopped (see stopIdle); 0: never. */
  idleTimeoutMs?: number;
  /** Told of each start of an app (one at a time per app, however many wait for it): metrics. */
  onStart?: (app: App, start: Promise<Activation>) => void;
  /**
   * Told when an instance has exited, before its port can be given again: connections kept
   * to it must go, or another app given the port could be sent what was meant for this one.
   */
  onInstanceGone?: (target: Target) => void;
  /** A cgroup per instance, where arr can make them. */
  cgroups?: InstanceCgroups;
}

const LOOPBACK = '127.0.0.1';

/** The uid and gid the app's instances run as; undefined: arr's own. */
async function identityOf(app: App): Promise<Identity | undefined> {
  if (app.user === undefined) return undefined;
  const refusal = cannotSwitchUser();
  if (refusal) throw new IdentityError('user', `"${app.user}" is given, but ${refusal}`);
  return resolveIdentity(app.user, app.group);
}

/**
 * Why spawn() refused to start an app, for the log: the error code, not the message, which
 * can quote the arguments (they may hold secrets, or be 100 KiB long).
 */
function spawnFailure(app: App, err: unknown): string {
  if (err instanceof IdentityError) return `${err.field}: ${err.message}`;
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
  private readonly processes = new Set<SpawnedProcess>();
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
    this.stopGraceMs = options.stopGraceMs ?? 5_000;
  }

  /** The running instance of this app on this node, if any: the hot path, no I/O. */
  localTarget(appId: string): Target | undefined {
    return this.running.get(appId)?.target;
  }

  get runningCount(): number {
    return this.running.size;
  }

  /** Finds or starts an instance for the app; concurrent callers share one attempt. */
  activate(app: App): Promise<Activation> {
    const instance = this.running.get(app.id);
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
    void this.stopProcess(proc);
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
    const all = await this.registry.allMachines();
    for (const [id, instance] of this.running) {
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
        void this.stopProcess(instance.proc);
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
      void this.stopProcess(proc);
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

  /** Stops every instance this node started and waits until they are gone. */
  async stopAll(): Promise<void> {
    this.stopping = true;
    this.running.clear();
    await Promise.all([...this.processes].map((p) => this.stopProcess(p)));
    await this.options.cgroups?.close();
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
    proc.cgroup = this.options.cgroups?.adopt(proc.pid, `${app.id}-${port}`);
    this.processes.add(proc);
    const machine: Machine = { host: this.options.advertise, port };
    const target: Target = { appId: app.id, machine, host: LOOPBACK, port, local: true };
    const exitedEarly = new AbortController();
    void proc.exited.then(async (exit) => {
      exitedEarly.abort();
      // arr's connections to it go, and so does what it started (a daemon that left its
      // process group too), before the port can be given to another app.
      this.options.onInstanceGone?.(target);
      if (proc.cgroup) await killGroup(proc.cgroup);
      this.processes.delete(proc);
      this.ports.release(port);
      this.onExit(app, proc, startedAt, exit);
    });
    this.log.info({ app: app.name, id: app.id, pid: proc.pid, port }, `starting ${app.name} on port ${port}`);

    const ready = await waitForPort(LOOPBACK, port, {
      timeoutMs: this.options.startTimeoutMs,
      signal: exitedEarly.signal,
    });
    if (ready !== 'ready') {
      void this.stopProcess(proc);
      this.recordFailure(app.id);
      if (ready === 'timeout') {
        // Not waiting for it to go: a program that ignores SIGTERM has the stop grace period.
        throw new ActivationError(
          'timeout',
          'the application did not start in time',
          `${app.name} did not accept connections on port ${port} within ${this.options.startTimeoutMs} ms`,
        );
      }
      const exit = await proc.exited; // at once: 'aborted' means it has exited
      if (exit.error) {
        throw new ActivationError(
          'failed',
          'the application could not be started',
          `${app.name}: ${exit.error.message}`,
        );
      }
      throw new ActivationError(
        'failed',
        'the application exited while starting',
        `${app.name} exited (${exit.signal ?? `code ${exit.code}`}) before accepting connections`,
      );
    }

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
      void this.stopProcess(proc);
      throw new ActivationError(
        'unavailable',
        'the registry is unavailable',
        `claim for ${app.name} failed: ${String(err)}`,
      );
    }
    if (!claim.granted) {
      // The farm reached the cap while this instance was starting: use theirs.
      void this.stopProcess(proc);
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
    if (exitedEarly.signal.aborted || this.stopping) {
      await this.registry.release(app.id, machine).catch(() => {});
      void this.stopProcess(proc);
      throw new ActivationError(
        'failed',
        'the application exited while starting',
        `${app.name} exited right after start`,
      );
    }
    if (this.options.idleTimeoutMs) target.activity = { active: 0, lastActive: Date.now() };
    this.running.set(app.id, { app, proc, target });
    this.log.info(
      { app: app.name, id: app.id, pid: proc.pid, port, ms: Date.now() - startedAt },
      `${app.name} is ready on port ${port} (${Date.now() - startedAt} ms)`,
    );
    return { kind: 'local', target };
  }

  /**
   * Spawns the app, as its `user` when it has one, on a port already taken from the range. A
   * start that fails before there is a process (an unknown user; a NUL byte or too long an
   * argument list, a path through a file: spawn() throws) gives the port back and counts for
   * the back-off, or every request to a bad app would keep one more port of the range until no
   * app could start.
   */
  private async spawnOnPort(app: App, port: number): Promise<SpawnedProcess> {
    try {
      return spawnInstance(app, port, this.log, await identityOf(app));
    } catch (err) {
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
  ): void {
    const instance = this.running.get(app.id);
    const wasRunning = instance?.proc === proc;
    if (wasRunning) this.running.delete(app.id);
    if (exit.error && proc.pid < 0) {
      this.log.error({ app: app.name, id: app.id }, `could not start ${app.name}: ${exit.error.message}`);
      return;
    }
    const how = exit.signal ? `signal ${exit.signal}` : `code ${exit.code}`;
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

  /** Removes an instance's entry from the registry (in the background). */
  private forget({ app, target }: LocalInstance): void {
    void this.registry.release(app.id, target.machine).catch((err: unknown) => {
      this.log.error(
        { app: app.name, id: app.id, err: String(err) },
        `could not remove ${app.name}'s instance from the registry`,
      );
    });
  }

  private recordFailure(appId: string): void {
    const count = (this.failures.get(appId)?.count ?? 0) + 1;
    // One failure may be bad luck (a kill, a port grabbed at the wrong moment): start again at
    // once. From the second in a row on, wait 0.5 s, 1 s, 2 s, ... up to the maximum.
    const delay = count < 2 ? 0 : Math.min(this.backoffBaseMs * 2 ** (count - 2), this.backoffMaxMs);
    this.failures.set(appId, { count, notBefore: Date.now() + delay });
  }

  /** SIGTERM to the instance's process group, SIGKILL after the grace period. */
  private async stopProcess(proc: SpawnedProcess): Promise<void> {
    signalGroup(proc.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(proc.pid, 'SIGKILL'), this.stopGraceMs);
    await proc.exited;
    clearTimeout(timer);
    // Whatever the instance started in its group goes with it.
    signalGroup(proc.pid, 'SIGKILL');
    if (proc.cgroup) await killGroup(proc.cgroup);
  }
}
