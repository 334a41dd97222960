import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Logger } from '../util/log.js';
import { InstanceCgroups } from './cgroup.js';
import type { Identity } from './identity.js';

/**
 * util-linux's setpriv, by a fixed path: never looked up through PATH, which comes from arr's
 * environment and the app's `env`, and may name the app's own folder.
 */
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

/**
 * The wrapper that puts an instance in its cgroup before anything of the app runs: as root, it
 * writes its own pid to the group's cgroup.procs ($0) and executes the rest of its arguments,
 * which the shell passes on as they are, never reading them as shell words.
 */
const JOIN_CGROUP = 'echo "$$" > "$0" && exec "$@"';

/** How spawn.ts starts an instance: the command, and what arr's spawn switches to itself. */
export interface Launch {
  file: string;
  args: string[];
  /** For its HOME, USER and LOGNAME; and, when `switchUser`, for the uid and gid libuv sets. */
  identity?: Identity;
  /** libuv switches to `identity` (when no setpriv does). */
  switchUser: boolean;
  /** The instance's cgroup, which it joins before its program runs. */
  cgroup?: string;
  /** The program runs behind a wrapper: spawn() cannot tell that it is missing, so arr looks first. */
  wrapped: boolean;
}

/**
 * What an instance's process goes through before its program runs: its cgroup joined (where arr
 * has cgroups), the app's user taken, and no capability of arr's left to inherit (ambient and
 * inheritable ones, say CAP_NET_BIND_SERVICE given to arr by a systemd unit). Node's spawn can
 * do none of this between fork and exec (no CLONE_INTO_CGROUP, no capabilities), so it is done
 * by a wrapper that ends by executing the program in the same process: `sh` (joins the group,
 * as root) and util-linux's `setpriv` (user, groups, capabilities). The pid arr sees is the
 * instance's, and it leads its process group as before.
 */
export class Confinement {
  private constructor(
    readonly cgroups: InstanceCgroups | undefined,
    private readonly setpriv: string | undefined,
    /** arr has ambient or inheritable capabilities, which its instances must not get. */
    private readonly dropCapabilities: boolean,
  ) {}

  /**
   * This machine's, told in the log, once the groups of an arr that is gone are removed; or why
   * arr must not start instances at all (it has capabilities to drop and no setpriv to drop them).
   */
  static async open(log: Logger): Promise<Confinement | string> {
    const setpriv = SETPRIV_PATHS.find((p) => existsSync(p));
    const capabilities = inheritableCapabilities();
    if (capabilities !== undefined && !setpriv)
      return `arr has capabilities its instances would inherit (${capabilities}) and no setpriv (util-linux) to drop them: install util-linux, or start arr without ambient or inheritable capabilities`;
    let cgroups = InstanceCgroups.open();
    // The group is joined as root, the user taken after: by setpriv.
    if (typeof cgroups !== 'string' && !setpriv) {
      await cgroups.close();
      cgroups = 'setpriv (util-linux) is not installed';
    }
    if (typeof cgroups === 'string') {
      log.info(`instances run without a cgroup of their own: ${cgroups}`);
      return new Confinement(undefined, setpriv, capabilities !== undefined);
    }
    for (const { pid, killed } of await cgroups.sweepStale()) {
      log.warn(
        `removed the cgroups of arr[${pid}], which is gone: ${killed} ${killed === 1 ? 'process' : 'processes'} left in them killed`,
      );
    }
    return new Confinement(cgroups, setpriv, capabilities !== undefined);
  }

  /**
   * How to start an instance of the app named `name` (in its own cgroup when arr has them): a
   * plain spawn when nothing is to be done before the program runs, as arr always did.
   */
  launch(executable: string, args: string[], name: string, identity: Identity | undefined): Launch {
    const cgroup = this.cgroups?.make(name);
    if (!cgroup && !this.dropCapabilities) return plainLaunch(executable, args, identity);
    // setpriv is there: with cgroups (see open()), or with capabilities to drop (else no start).
    const user = identity
      ? ['--reuid', String(identity.uid), '--regid', String(identity.gid), '--clear-groups']
      : [];
    const program = [...user, '--inh-caps=-all', '--ambient-caps=-all', '--', executable, ...args];
    if (!cgroup) return { file: this.setpriv!, args: program, identity, switchUser: false, wrapped: true };
    return {
      file: '/bin/sh',
      args: ['-c', JOIN_CGROUP, `${cgroup}/cgroup.procs`, this.setpriv!, ...program],
      identity,
      switchUser: false,
      cgroup,
      wrapped: true,
    };
  }
}

/** A plain spawn of the program (libuv switches to the user, if any), as arr always did. */
export function plainLaunch(executable: string, args: string[], identity: Identity | undefined): Launch {
  return { file: executable, args, identity, switchUser: identity !== undefined, wrapped: false };
}

/** arr's ambient and inheritable capabilities (/proc/self/status), when it has any. */
function inheritableCapabilities(): string | undefined {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const held = ['CapInh', 'CapAmb']
      .map((field) => [field, new RegExp(`^${field}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1]] as const)
      .filter(([, mask]) => mask !== undefined && BigInt(`0x${mask}`) !== 0n);
    return held.length > 0 ? held.map(([field, mask]) => `${field} ${mask}`).join(', ') : undefined;
  } catch {
    return undefined;
  }
}

/** The default search path of execvp when there is no PATH. */
const DEFAULT_PATH = '/usr/bin:/bin';

/**
 * Throws (with the errno code spawn() would have given: ENOENT, ENOTDIR, EACCES) when the
 * program cannot be run, looked for as execvp looks for it: a name with a slash from `cwd`,
 * another along PATH. For a program behind a wrapper, whose failure to execute would otherwise
 * read as an exit with code 127 instead of a program that cannot be run.
 */
export function checkExecutable(executable: string, cwd: string | undefined, path: string | undefined): void {
  const dir = cwd ?? process.cwd();
  if (executable.includes('/')) {
    runnable(resolve(dir, executable));
    return;
  }
  let denied: Error | undefined;
  for (const entry of (path ?? DEFAULT_PATH).split(':')) {
    try {
      runnable(resolve(dir, entry, executable));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') denied = err as Error;
    }
  }
  throw denied ?? Object.assign(new Error(`${executable} not found`), { code: 'ENOENT' });
}

/** Throws unless `file` is a file that may be executed. */
function runnable(file: string): void {
  accessSync(file, constants.X_OK);
  if (!statSync(file).isFile()) throw Object.assign(new Error(`${file} is not a file`), { code: 'EACCES' });
}
