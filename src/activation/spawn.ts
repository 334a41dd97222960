import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import type { App } from '../registry/types.js';
import type { BoundedLog } from '../util/bounded-log.js';
import type { Logger, OutputLevel } from '../util/log.js';
import { checkExecutable, type Launch } from './confine.js';
import type { Identity } from './identity.js';
import { OutputLines, utf8Boundary } from './output-lines.js';

/**
 * The environment an instance gets: arr's own, less everything that configures arr (ARR_*,
 * which can carry a MongoDB URL with credentials), then the app's `env`, then PORT (which the
 * app cannot override: it is the port arr gave it).
 */
export function instanceEnv(
  port: number,
  base: NodeJS.ProcessEnv = process.env,
  extra?: Record<string, string>,
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) if (!k.startsWith('ARR_')) env[k] = v;
  if (extra) for (const [k, v] of Object.entries(extra)) if (!k.startsWith('ARR_')) env[k] = v;
  env.PORT = String(port);
  return env;
}

/**
 * A random token of each instance in its environment (no app can set an ARR_* name): how arr's
 * next run tells its leftovers from whatever process the state file names (leftovers.ts). Only
 * the process's user and root can read another process's environment.
 */
export const INSTANCE_TOKEN = 'ARR_INSTANCE';

/** How many of an instance's last output lines are kept, to log with a failed start. */
const RECENT_LINES = 20;

/** Longest output line (in bytes) kept whole for the log of a failed start and the dashboard. */
const MAX_LINE = 500;

/** Told of each line of an instance's output (the dashboard keeps the last ones per app). */
export type OutputListener = (app: App, pid: number, stream: 'stdout' | 'stderr', line: string) => void;

export interface SpawnedProcess {
  child: ChildProcess;
  pid: number;
  /** The instance's cgroup, where arr could give it one (see cgroup.ts). */
  cgroup?: string;
  /** Its groups for limits beside it (limit-groups.ts): where its memory and OOM kills are read. */
  limitGroups?: Launch['limitGroups'];
  /** Its last lines of output (stdout and stderr), for the log of a start that failed. */
  recent: string[];
  /** The value of its INSTANCE_TOKEN. */
  token: string;
  /** Resolves when the process has exited (or could not be started at all). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>;
}

/** An instance run as another user gets that user's HOME, USER and LOGNAME, not arr's. */
function withIdentity(env: NodeJS.ProcessEnv, identity: Identity): NodeJS.ProcessEnv {
  if (identity.home !== undefined) env.HOME = identity.home;
  if (identity.name !== undefined) {
    env.USER = identity.name;
    env.LOGNAME = identity.name;
  }
  return env;
}

/** Where an instance's output lines go, and at which levels. */
export interface OutputOptions {
  /** Told of each line (the dashboard keeps the last ones per app). */
  onLine?: OutputListener;
  /** The level of its stderr lines in arr's log (`--app-stderr-level`); stdout's is info. */
  stderrLevel?: OutputLevel;
  /**
   * The log its lines are written to, which drops what stdout cannot take rather than block
   * arr (bounded-log.ts); without it, arr's own log.
   */
  outputLog?: BoundedLog;
}

/**
 * Starts one instance of an app in its own process group (so that stopping it also stops
 * whatever it started), with its output logged line by line under the app's id and pid, as
 * `launch` says (confine.ts): in its cgroup, as the app's user, without arr's capabilities.
 * When libuv switches the user, it also drops arr's supplementary groups (setpriv clears them);
 * the user's own supplementary groups are not set.
 */
export function spawnInstance(
  app: App,
  port: number,
  log: Logger,
  launch: Launch,
  { onLine, stderrLevel = 'info', outputLog }: OutputOptions = {},
): SpawnedProcess {
  const token = randomBytes(16).toString('hex');
  const env: NodeJS.ProcessEnv = { ...instanceEnv(port, process.env, app.env), [INSTANCE_TOKEN]: token };
  const { identity } = launch;
  const cwd = app.cwd === undefined ? undefined : resolve(app.cwd);
  if (launch.wrapped) checkExecutable(app.process.executable, cwd, env.PATH);
  const child = spawn(launch.file, launch.args, {
    env: identity ? withIdentity(env, identity) : env,
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    ...(identity && launch.switchUser ? { uid: identity.uid, gid: identity.gid } : {}),
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (resolve) => {
      let error: Error | undefined;
      child.once('error', (err) => {
        error = err;
        // A process that never started emits 'error' and no 'exit'.
        if (child.pid === undefined) resolve({ code: null, signal: null, error });
      });
      child.once('exit', (code, signal) => resolve({ code, signal, error }));
    },
  );
  const pid = child.pid ?? -1;
  const out = (outputLog?.log ?? log).child({ app: app.name, id: app.id, pid });
  const admit = outputLog ? outputLog.admit.bind(outputLog) : () => true;
  const recent: string[] = [];
  for (const [stream, level, name] of [
    [child.stdout, 'info', 'stdout'],
    [child.stderr, stderrLevel, 'stderr'],
  ] as const) {
    if (!stream) continue;
    const logged = level !== 'silent' && out.isLevelEnabled(level);
    // A line longer than MAX_PIECE is logged in pieces, each but the last marked `partial`.
    const lines = new OutputLines((bytes, continued) => {
      // A copy of its beginning, not a slice: a slice would keep the whole piece alive.
      const kept =
        bytes.length > MAX_LINE
          ? `${bytes.toString('utf8', 0, utf8Boundary(bytes, MAX_LINE))}...`
          : bytes.toString('utf8');
      if (logged && admit()) {
        const line = bytes.length > MAX_LINE ? bytes.toString('utf8') : kept;
        if (continued) out[level]({ partial: true }, `${app.name}[${pid}]: ${line}`);
        else out[level](`${app.name}[${pid}]: ${line}`);
      }
      if (recent.push(kept) > RECENT_LINES) recent.shift();
      onLine?.(app, pid, name, kept);
    });
    stream.on('data', (chunk: Buffer) => lines.push(chunk));
    stream.on('end', () => lines.end());
    stream.on('error', () => {});
  }
  return { child, pid, cgroup: launch.cgroup, limitGroups: launch.limitGroups, recent, token, exited };
}

/** Sends a signal to an instance's whole process group; quiet when it is already gone. */
export function signalGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return;
  try {
    // The negative pid names the group: the instance is its leader (spawned detached).
    process.kill(-pid, signal);
  } catch {
    // Already gone. Never fall back to the bare pid: it may belong to another process by now.
  }
}
