import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Limits } from '../registry/types.js';
import type { Logger } from '../util/log.js';
import { InstanceCgroups, killGroup, ownGroup } from './cgroup.js';
import { removeWhenEmpty } from './cgroup-tree.js';
import type { Identity } from './identity.js';
import { type InstanceLimitGroups, LimitGroups, type Unenforced } from './limit-groups.js';

/**
 * util-linux's setpriv, by a fixed path: never looked up through PATH, which comes from arr's
 * environment and the app's `env`, and may name the app's own folder.
 */
const SETPRIV_PATHS = ['/usr/bin/setpriv', '/bin/setpriv'];

/** util-linux's prlimit, which sets RLIMIT_NOFILE (`limits.files`) and executes the rest. */
const PRLIMIT_PATHS = ['/usr/bin/prlimit', '/bin/prlimit'];

/**
 * The wrapper that puts an instance in its cgroups before anything of the app runs: as root, it
 * writes its own pid to the cgroup.procs files that follow ($0 of them: its cgroup v2 group, and
 * its cgroup v1 groups for limits on hybrid hosts) and executes the rest of its arguments, which
 * the shell passes on as they are, never reading them as shell words.
 */
const JOIN_CGROUP =
  'n=$0; while [ "$n" -gt 0 ]; do echo "$$" > "$1" || exit 126; shift; n=$((n-1)); done; exec "$@"';

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
  /** Its groups for limits and memory accounting beside `cgroup` (see limit-groups.ts). */
  limitGroups?: InstanceLimitGroups;
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
    /** Why instances have no cgroup here, when they have none. */
    private readonly noCgroups?: string,
  ) {}

  private readonly prlimit = PRLIMIT_PATHS.find((p) => existsSync(p));

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
      return new Confinement(undefined, setpriv, capabilities !== undefined, cgroups);
    }
    for (const { pid, killed } of await cgroups.sweepStale()) {
      log.warn(
        `removed the cgroups of arr[${pid}], which is gone: ${killed} ${killed === 1 ? 'process' : 'processes'} left in them killed`,
      );
    }
    await cgroups.limits.sweepStale();
    log.info(`instance limits by cgroup controller: ${cgroups.limits.describe()}`);
    return new Confinement(cgroups, setpriv, capabilities !== undefined);
  }

  /**
   * How to start an instance of the app named `name` (in its own cgroup when arr has them): a
   * plain spawn when nothing is to be done before the program runs, as arr always did.
   */
  launch(
    executable: string,
    args: string[],
    name: string,
    identity: Identity | undefined,
    limits: Limits = {},
    accountMemory = false,
  ): Launch {
    const cgroup = this.cgroups?.make(name);
    const files =
      this.filesLimit(limits) === undefined
        ? []
        : [this.prlimit!, `--nofile=${limits.files}:${limits.files}`, '--'];
    if (!cgroup && !this.dropCapabilities) {
      if (files.length === 0) return plainLaunch(executable, args, identity);
      // prlimit as the app's user could not raise a hard limit: then prlimit as root, setpriv after.
      if (!identity || !this.setpriv)
        return {
          file: files[0]!,
          args: [...files.slice(1), executable, ...args],
          identity,
          switchUser: identity !== undefined,
          wrapped: true,
        };
    }
    // setpriv is there: with cgroups (see open()), capabilities to drop (else no start), or a user.
    const user = identity
      ? ['--reuid', String(identity.uid), '--regid', String(identity.gid), '--clear-groups']
      : [];
    // prlimit first, as root (a hard limit above arr's needs it); setpriv then takes the user.
    const program = [
      ...files,
      this.setpriv!,
      ...user,
      '--inh-caps=-all',
      '--ambient-caps=-all',
      '--',
      executable,
      ...args,
    ];
    if (!cgroup)
      return { file: program[0]!, args: program.slice(1), identity, switchUser: false, wrapped: true };
    // Named as its v2 group is (make() keeps to a safe set of characters).
    const limitGroups = this.cgroups!.limits.prepare(cgroup, basename(cgroup), limits, accountMemory);
    const join = [`${cgroup}/cgroup.procs`, ...limitGroups.join];
    return {
      file: '/bin/sh',
      args: ['-c', JOIN_CGROUP, String(join.length), ...join, ...program],
      identity,
      switchUser: false,
      cgroup,
      limitGroups,
      wrapped: true,
    };
  }

  /** What `unenforced` says on this host, found without making any group (`arr validate`). */
  static probe(): Confinement {
    const setpriv = SETPRIV_PATHS.find((p) => existsSync(p));
    const own = ownGroup();
    let why: string | undefined;
    if (process.getuid?.() !== 0) why = 'arr is not root';
    else if (!setpriv) why = 'setpriv (util-linux) is not installed';
    else if (typeof own !== 'string') why = own.why;
    const probe = new Confinement(undefined, setpriv, false, why);
    if (why === undefined) probe.probed = LimitGroups.probe(own as string);
    return probe;
  }

  /** The controllers `probe` found (a probe has no cgroups of its own). */
  private probed: LimitGroups | undefined;

  /** `limits.files` where arr can set it (prlimit is there; above arr's hard limit, as root). */
  private filesLimit(limits: Limits | undefined): number | undefined {
    const files = limits?.files;
    if (files === undefined || !this.prlimit) return undefined;
    if (process.getuid?.() !== 0 && files > (hardFilesLimit() ?? Number.POSITIVE_INFINITY)) return undefined;
    return files;
  }

  /**
   * The limits among `limits` this host cannot enforce, and why: said at start, by arr validate
   * and on the dashboard, per app and limit, never silently.
   */
  unenforced(limits: Limits | undefined): Unenforced[] {
    if (!limits) return [];
    const out: Unenforced[] = [];
    const groups = this.cgroups?.limits ?? this.probed;
    if (groups) out.push(...groups.unenforced(limits));
    else
      for (const limit of ['memory', 'cpu', 'pids'] as const)
        if (limits[limit] !== undefined)
          out.push({ limit, why: `instances have no cgroup here: ${this.noCgroups}` });
    if (limits.files !== undefined && this.filesLimit(limits) === undefined)
      out.push({
        limit: 'files',
        why: this.prlimit
          ? `above arr's own hard limit (${hardFilesLimit()}), which only root can raise`
          : 'prlimit (util-linux) is not installed',
      });
    return out;
  }
}

/**
 * Kills what is left in an instance's groups and removes them: its cgroup v2 group (the whole
 * subtree, by the kernel) and its v1 groups for limits, then empty.
 */
export async function releaseGroups(launch: Pick<Launch, 'cgroup' | 'limitGroups'>): Promise<void> {
  if (launch.cgroup) await killGroup(launch.cgroup);
  for (const dir of launch.limitGroups?.v1 ?? []) await removeWhenEmpty(dir);
}

/** A plain spawn of the program (libuv switches to the user, if any), as arr always did. */
export function plainLaunch(executable: string, args: string[], identity: Identity | undefined): Launch {
  return { file: executable, args, identity, switchUser: identity !== undefined, wrapped: false };
}

/** arr's own hard RLIMIT_NOFILE (/proc/self/limits), undefined when unlimited or unknown. */
function hardFilesLimit(): number | undefined {
  try {
    const m = /^Max open files\s+\S+\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
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
