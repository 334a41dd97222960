import { statSync } from 'node:fs';
import { resolve } from 'node:path';
import { type App, deployKey } from '../registry/types.js';
import type { Logger } from '../util/log.js';
import type { Clock } from './clock.js';
import { type Confinement, plainLaunch, releaseGroups } from './confine.js';
import { type ExitReason, exitReason, type InstanceExit } from './exit-reason.js';
import { cannotSwitchUser, type Identity, IdentityError, resolveIdentity } from './identity.js';
import { openConnections } from './instance-connections.js';
import type { AppTable, Instance } from './instances.js';
import { oomKills } from './limit-groups.js';
import { type Readiness, waitReady } from './readiness.js';
import {
  type OutputListener,
  type OutputOptions,
  type SpawnedProcess,
  signalGroup,
  spawnInstance,
} from './spawn.js';
import { ActivationError, type Target } from './target.js';

/**
 * Launching one process: a port from the range, the spawn (as the app's user, in its cgroup),
 * the wait until it is ready, and the stop (SIGTERM, then SIGKILL). Knows nothing of the
 * registry: the caller records the instance, and is told of its exit.
 */

const LOOPBACK = '127.0.0.1';

/** The ports instances are given (PortAllocator). */
export interface Ports {
  acquire(): Promise<number | undefined>;
  release(port: number): void;
}

/** How processes are started, signalled and found ready: real processes, or a test's fakes. */
export interface Spawner {
  /** Starts the app on the port (throws when spawn() refuses, before there is a process). */
  spawn(app: App, port: number, identity: Identity | undefined): SpawnedProcess;
  /** Signals the process's whole group (quiet when it is gone). */
  signal(pid: number, signal: NodeJS.Signals): void;
  /** Resolves once the instance on the port is ready, or not in time, or it exited (`signal`). */
  ready(
    port: number,
    opts: { timeoutMs: number; signal: AbortSignal; path?: string; h2c?: boolean },
  ): Promise<Readiness>;
  /** How many connections to the port are open, whoever made them (undefined: cannot tell). */
  openConnections(port: number): Promise<number | undefined>;
}

/**
 * Real processes: spawnInstance, confined as `confinement` says (its cgroup joined before the
 * program runs, the app's user, no capability of arr's), process groups, readiness on loopback,
 * and the kernel's table of connections.
 */
export function processSpawner(
  log: Logger,
  {
    onOutput,
    confinement,
    stderrLevel,
    outputLog,
  }: { onOutput?: OutputListener; confinement?: Confinement } & Omit<OutputOptions, 'onLine'>,
): Spawner {
  return {
    spawn(app, port, identity) {
      const { executable, args } = app.process;
      const launch =
        confinement?.launch(
          executable,
          args,
          `${app.id}-${port}`,
          identity,
          app.limits,
          app.recycle?.memory !== undefined,
        ) ?? plainLaunch(executable, args, identity);
      try {
        return spawnInstance(app, port, log, launch, { onLine: onOutput, stderrLevel, outputLog });
      } catch (err) {
        void releaseGroups(launch);
        throw err;
      }
    },
    signal: signalGroup,
    ready: (port, opts) => waitReady(LOOPBACK, port, opts),
    openConnections,
  };
}

export type ExitStatus = Awaited<SpawnedProcess['exited']>;

export interface LauncherOptions {
  advertise: string;
  startTimeoutMs: number;
  /** How long a stopped instance has between SIGTERM and SIGKILL, unless its app says (`stopTimeout`). */
  stopGraceMs: number;
  /** The app as the registry has it now (its `stopTimeout` may have changed since the start). */
  currentApp: (appId: string) => App | undefined;
  /** A start failed in a way that counts for the back-off (it could not run, or was not ready). */
  failed: (appId: string) => void;
  /** A process was spawned (before it is ready): the state file, metrics. */
  spawned?(proc: SpawnedProcess, app: App, port: number): void;
  /** It has exited: the state file. */
  exited?(proc: SpawnedProcess): void;
  /** An instance of the app ended, and why (metrics, the dashboard). */
  ended?(app: App, exit: InstanceExit): void;
  /**
   * An instance has exited, before its port can be given again: connections kept to it must
   * go, or another app given the port could be sent what was meant for this one.
   */
  gone?: (target: Target, graceful?: boolean) => void;
}

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

export class Launcher {
  /** Every process started and not yet exited. */
  readonly live = new Set<Instance>();

  constructor(
    private readonly ports: Ports,
    private readonly spawner: Spawner,
    private readonly table: AppTable,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: LauncherOptions,
  ) {}

  /**
   * Takes a free port, spawns the app on it and waits until it is ready (it listens and, with
   * a `ready` path, answers it with 2xx or 3xx). A process that does not get there is stopped
   * and counts for the back-off. `onExit` is told when the process exits, once its port is free.
   */
  async launch(app: App, onExit: (instance: Instance, exit: ExitStatus) => void): Promise<Instance> {
    const port = await this.ports.acquire();
    if (port === undefined) {
      throw new ActivationError(
        'unavailable',
        'no capacity to start the application',
        'every port of the range is taken',
      );
    }
    const startedAt = this.clock.now();
    const proc = await this.spawnOnPort(app, port);
    const exited = new AbortController();
    const instance: Instance = {
      app,
      proc,
      port,
      target: this.localTarget(app.id, port),
      key: deployKey(app),
      startedAt,
      state: 'starting',
      exited: exited.signal,
    };
    this.live.add(instance);
    this.table.version++;
    this.options.spawned?.(proc, app, port);
    void proc.exited.then(async (exit) => {
      exited.abort();
      // arr's connections to it go, and so does what it started (a daemon that left its
      // process group too), before the port can be given to another app.
      this.options.gone?.(instance.target);
      instance.oom = oomKills(proc.limitGroups?.memory) > 0;
      if (proc.pid > 0) {
        const reason = exitReason(instance.oom, instance.stoppedFor);
        const { code, signal } = exit;
        this.options.ended?.(app, { pid: proc.pid, reason, code, signal, at: this.clock.now() });
      }
      await releaseGroups(proc);
      this.live.delete(instance);
      this.table.version++;
      this.ports.release(port);
      this.options.exited?.(proc);
      onExit(instance, exit);
    });
    this.log.info(
      { event: 'instance-starting', app: app.name, id: app.id, pid: proc.pid, port },
      `starting ${app.name} on port ${port}`,
    );

    const ready = await this.spawner.ready(port, {
      timeoutMs: this.options.startTimeoutMs,
      signal: exited.signal,
      path: app.ready,
      h2c: app.protocol === 'h2c',
    });
    if (ready !== 'ready') {
      void this.stop(instance, ready === 'timeout' ? 'start-timeout' : 'crash');
      this.options.failed(app.id);
      throw Object.assign(await this.notReady(app, port, proc, ready), { process: proc });
    }
    return instance;
  }

  /**
   * SIGTERM to the instance's process group, SIGKILL after its app's `stopTimeout` (as the
   * registry has it now), or the default grace period.
   */
  async stop(instance: Instance, reason: ExitReason): Promise<void> {
    const { proc, app } = instance;
    instance.stoppedFor ??= reason;
    this.spawner.signal(proc.pid, 'SIGTERM');
    // One that exited already is no longer shown.
    if (this.live.has(instance)) this.table.setState(instance, 'stopping');
    const seconds = (this.options.currentApp(app.id) ?? app).stopTimeout;
    const graceMs = seconds === undefined ? this.options.stopGraceMs : seconds * 1000;
    const cancel = this.clock.after(graceMs, () => this.spawner.signal(proc.pid, 'SIGKILL'));
    await proc.exited;
    cancel();
    // Whatever the instance started in its group goes with it.
    this.spawner.signal(proc.pid, 'SIGKILL');
    await releaseGroups(proc);
  }

  /** How many connections to the instance's port are open, whoever made them (undefined: cannot tell). */
  openConnections(instance: Instance): Promise<number | undefined> {
    return this.spawner.openConnections(instance.port);
  }

  /** The target of an instance of this node, with the counters drains and the idle timeout read. */
  private localTarget(appId: string, port: number): Target {
    return {
      appId,
      machine: { host: this.options.advertise, port },
      host: LOOPBACK,
      port,
      local: true,
      activity: { active: 0, lastActive: this.clock.now(), exchanges: 0 },
      webSockets: new Set(),
    };
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
    try {
      checkCwd(app);
      return this.spawner.spawn(app, port, await identityOf(app));
    } catch (err) {
      this.ports.release(port);
      this.options.failed(app.id);
      throw new ActivationError(
        'failed',
        'the application could not be started',
        `${app.name}: ${spawnFailure(app, err)}`,
      );
    }
  }
}
