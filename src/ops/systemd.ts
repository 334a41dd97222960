import { spawn } from 'node:child_process';
import type { Logger } from '../util/log.js';

/**
 * What a service manager (systemd) hands arr: listening sockets (socket activation, sd_listen_fds(3))
 * and a socket to tell it that arr is ready, reloading or stopping (sd_notify(3)).
 */

/** The first descriptor a service manager passes (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

/** The listening sockets passed to arr, by the port they stand for. */
export interface PassedSockets {
  /** Stands for `-p`. */
  http?: number;
  /** Stands for `-s`. */
  https?: number;
}

/** The names a socket can be given (`FileDescriptorName=`, `systemd-socket-activate --fdname`). */
const ROLES = ['http', 'https'] as const;

/** LISTEN_* say something arr cannot use; the message names the variable and its value. */
export class PassedSocketsError extends Error {}

/**
 * The sockets of `LISTEN_FDS` when `LISTEN_PID` is this process: by name when `LISTEN_FDNAMES`
 * names them `http` and `https`, else in the order of `-p`, `-s`. The variables are removed
 * from the environment either way, so that no instance inherits them (as sd_listen_fds(1) does).
 */
export function takePassedSockets(env: NodeJS.ProcessEnv = process.env, pid = process.pid): PassedSockets {
  const count = env.LISTEN_FDS;
  const owner = env.LISTEN_PID;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (count === undefined || owner === undefined || Number(owner) !== pid) return {};
  const n = Number(count);
  if (!/^\d+$/.test(count) || n < 1)
    throw new PassedSocketsError(`LISTEN_FDS="${count}" is not a number of sockets`);
  if (n > ROLES.length)
    throw new PassedSocketsError(
      `LISTEN_FDS=${count}: arr takes at most ${ROLES.length} sockets (for -p and -s, named http and https or in that order)`,
    );
  const fds = Array.from({ length: n }, (_, i) => FIRST_FD + i);
  const list = names?.split(':') ?? [];
  const named = list.length === n && list.some((name) => (ROLES as readonly string[]).includes(name));
  if (!named) return Object.fromEntries(fds.map((fd, i) => [ROLES[i]!, fd]));
  const sockets: PassedSockets = {};
  list.forEach((name, i) => {
    if (!(ROLES as readonly string[]).includes(name) || sockets[name as keyof PassedSockets] !== undefined)
      throw new PassedSocketsError(
        `LISTEN_FDNAMES="${names}": socket ${i + 1} is named "${name}"; arr takes one "http" (for -p) and one "https" (for -s)`,
      );
    sockets[name as keyof PassedSockets] = fds[i]!;
  });
  return sockets;
}

/** How long one message may take (systemd-notify waits until the manager has read it). */
const NOTIFY_TIMEOUT_MS = 10_000;

/**
 * Tells the service manager what arr is doing (`Type=notify`): `READY=1` once it serves,
 * `RELOADING=1` then `READY=1` around a reload, `STOPPING=1` when it stops. Node cannot send a
 * unix datagram, so each message is sent by `systemd-notify` (part of systemd wherever
 * NOTIFY_SOCKET is set); being a child of arr, it needs `NotifyAccess=all` in the unit.
 * Messages go one at a time, in order; none of them holds arr up.
 */
export class ServiceNotifier {
  private queue: Promise<void> = Promise.resolve();
  private failed = false;

  private constructor(
    private readonly socket: string,
    private readonly log: Logger,
  ) {}

  /**
   * A notifier when `NOTIFY_SOCKET` is set. The variable is taken out of the environment so
   * that no instance can speak for arr.
   */
  static fromEnv(log: Logger, env: NodeJS.ProcessEnv = process.env): ServiceNotifier | undefined {
    const socket = env.NOTIFY_SOCKET;
    delete env.NOTIFY_SOCKET;
    return socket ? new ServiceNotifier(socket, log) : undefined;
  }

  ready(status: string): Promise<void> {
    return this.send(['--ready', `--status=${status}`]);
  }

  reloading(): Promise<void> {
    return this.send(['RELOADING=1', 'STATUS=reloading']);
  }

  stopping(): Promise<void> {
    return this.send(['STOPPING=1', 'STATUS=stopping']);
  }

  private send(args: string[]): Promise<void> {
    this.queue = this.queue.then(() => this.run(args));
    return this.queue;
  }

  private run(args: string[]): Promise<void> {
    if (this.failed) return Promise.resolve();
    return new Promise((resolve) => {
      const child = spawn('systemd-notify', args, {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: this.socket },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString('utf8');
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), NOTIFY_TIMEOUT_MS);
      const done = (why?: string) => {
        clearTimeout(timer);
        if (why && !this.failed) {
          this.failed = true;
          this.log.warn(
            `systemd: cannot notify the service manager (${why}); no more notifications are sent`,
          );
        }
        resolve();
      };
      child.once('error', (err) => done(`systemd-notify: ${err.message}`));
      child.once('exit', (code, signal) =>
        done(code === 0 ? undefined : `systemd-notify ${signal ?? `exited ${code}`}: ${stderr.trim()}`),
      );
    });
  }
}
