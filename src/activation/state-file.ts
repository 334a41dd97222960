import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { Socket } from 'node:net';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { App } from '../registry/types.js';
import type { Logger } from '../util/log.js';
import { replaceFileSync } from '../util/replace-file.js';
import { type ListedInstance, verifyLeftovers } from './leftovers.js';
import type { SpawnedProcess } from './spawn.js';

/**
 * No orphans. arr records the instances it runs in a state file (pid, start time and token of
 * each, the instance being the leader of its own process group), and:
 *
 * - a watchdog, a small `sh` started at arr's start in a process group of its own, is told of
 *   each instance that starts and ends through a pipe from arr; when arr dies, however
 *   (SIGKILL, the OOM killer, a crash), the pipe ends and the watchdog stops every process group
 *   it was told of (SIGTERM, SIGKILL 2 s later), then kills what is left in arr's cgroups and
 *   removes them. It reads no file: nothing another user wrote can name a group for it to stop;
 * - an arr that starts stops whatever instance of a previous run the file still lists (one
 *   whose watchdog was killed too) before it serves, once it has verified each (leftovers.ts).
 *
 * A pid is taken for the same process only when its start time (/proc/PID/stat, field 22) and
 * the boot are the same: a pid reused by another process is left alone. A group whose leader
 * is gone is still signalled: Linux gives no new process that pid while its group has members.
 * The directory is one that only arr's user can write (server.ts checks it at start).
 */

/** The default state directory: $XDG_STATE_HOME/arr, else ~/.local/state/arr. */
export function defaultStateDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_STATE_HOME;
  return xdg?.startsWith('/') ? join(xdg, 'arr') : join(homedir(), '.local', 'state', 'arr');
}

/** The start time of a process in clock ticks since boot (/proc/PID/stat field 22), or undefined. */
export function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses; field 3 follows the last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown';
  }
}

/** One instance as `arr restart --wait` and `arr apps` read it. */
export interface InstanceStatus {
  app: string;
  pid: number;
  port: number;
  revision: number;
}

/** The last rolling replacement of an app on this arr. */
export interface DeployStatus {
  result: 'replaced' | 'failed';
  revision: number;
  detail?: string;
  at: string;
}

/** What the JSON state file holds, for the admin commands. */
export interface ArrStatus {
  pid: number;
  start: string;
  /** The apps file served (absolute), or undefined with MongoDB. */
  apps?: string;
  instances: InstanceStatus[];
  deploys: Record<string, DeployStatus>;
}

/**
 * Keeps the list arr sends on stdin ("+ PID START" when an instance starts, "- PID" when it is
 * gone; "c DIR" names arr's folder of cgroup v2 groups, "r DIR" a folder of its v1 groups) until
 * EOF (arr's end, however it came), then stops the process groups left on it, each only while
 * its leader is the process listed or gone, kills what is still in arr's cgroups (a daemon that
 * left its process group lives on there) and removes them, and removes the state files ($1) if
 * they still belong to this watchdog's arr ($PPID). Ignores the signals a terminal or a service
 * manager sends to arr's group. The watchdog runs in arr's own group, above the folders.
 */
const WATCHDOG = `
trap '' HUP INT TERM QUIT
set -f
nl='
'
list=
kill_dirs=
dirs=
while read -r op rest; do
  case $op in
    +) list="$list \${rest%% *}:\${rest#* }" ;;
    -) kept=; for e in $list; do [ "\${e%%:*}" = "$rest" ] || kept="$kept $e"; done; list=$kept ;;
    c) kill_dirs="$kill_dirs$rest$nl"; dirs="$dirs$rest$nl" ;;
    r) dirs="$dirs$rest$nl" ;;
  esac
done
stop() {
  for e in $list; do
    pid=\${e%%:*}
    now=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f20)
    [ -z "$now" ] || [ "$now" = "\${e#*:}" ] || continue
    kill -$1 -$pid 2>/dev/null
  done
}
if [ -n "$list" ]; then
  stop TERM
  sleep 2
  stop KILL
fi
IFS=$nl
for d in $kill_dirs; do echo 1 > "$d/cgroup.kill"; done 2>/dev/null
for d in $dirs; do
  i=0
  while [ -d "$d" ] && [ $i -lt 50 ]; do
    find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
    [ -d "$d" ] && sleep 0.1
    i=$((i+1))
  done
done
unset IFS
f=$1
set -- $(head -n 1 "$f" 2>/dev/null)
[ "$1" = arr ] && [ "$2" = "$PPID" ] && rm -f "$f" "\${f%.pids}.json"
exit 0
`;

interface Entry {
  pid: number;
  start: string;
  token: string;
  app: App;
  port: number;
}

/** The state files of one arr, named after what no two arr on a machine share: their listen address and ports. */
export class StateFile {
  readonly pidsFile: string;
  readonly statusFile: string;
  private readonly entries = new Map<SpawnedProcess, Entry>();
  private readonly deploys: Record<string, DeployStatus> = {};
  private readonly start = startTimeOf(process.pid) ?? '0';
  private readonly boot = bootId();
  private watchdog: ChildProcess | undefined;
  private broken = false;

  constructor(
    readonly dir: string,
    key: string,
    private readonly log: Logger,
    private readonly appsFile?: string,
  ) {
    const name = key.replace(/[^A-Za-z0-9_.-]/g, '_');
    this.pidsFile = join(dir, `${name}.pids`);
    this.statusFile = join(dir, `${name}.json`);
  }

  /**
   * Starts the watchdog (it needs no file: without a usable directory it still stops arr's
   * instances when arr dies), stops the instances a previous run of this arr left (it died
   * without stopping them, and its watchdog too), then takes the files. Before arr serves.
   */
  async takeOver(): Promise<void> {
    this.startWatchdog();
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      this.fail(err);
      return;
    }
    await this.sweep();
    this.write();
  }

  private async sweep(): Promise<void> {
    let text: string;
    try {
      text = readFileSync(this.pidsFile, 'utf8');
    } catch {
      return; // no previous run
    }
    const [header, ...lines] = text.split('\n');
    const [tag, owner, ownerStart, boot] = (header ?? '').split(' ');
    if (tag !== 'arr' || boot !== this.boot) return; // not ours, or from before a reboot: nothing survives that
    const ownerPid = Number(owner);
    if (ownerPid !== process.pid && startTimeOf(ownerPid) === ownerStart) {
      this.log.warn(
        `${this.pidsFile} belongs to arr ${ownerPid}, which still runs: its instances are left alone`,
      );
      this.broken = true;
      return;
    }
    const listed: ListedInstance[] = [];
    for (const line of lines) {
      const [pidText, start, token] = line.split(' ');
      const pid = Number(pidText);
      if (!Number.isInteger(pid) || pid <= 1 || !start) continue;
      const now = startTimeOf(pid);
      if (now !== undefined && now !== start) continue; // the pid is another process's now
      if (groupAlive(pid)) listed.push({ pid, start, token });
    }
    if (listed.length === 0) return;
    const ownerGone = ownerPid === process.pid || startTimeOf(ownerPid) === undefined;
    const { ours: leftovers, unproven } = verifyLeftovers(listed, ownerPid, ownerGone);
    if (unproven.length > 0)
      this.log.warn(
        `${this.pidsFile} lists process groups that are no instances of arr (neither in its cgroup nor carrying its token): left alone (${unproven.join(', ')})`,
      );
    if (leftovers.length === 0) return;
    this.log.warn(
      `stopping ${leftovers.length} instance${leftovers.length === 1 ? '' : 's'} left by a previous run of arr (pids ${leftovers.join(', ')})`,
    );
    for (const pid of leftovers) signalGroup(pid, 'SIGTERM');
    const deadline = Date.now() + 3_000;
    while (leftovers.some(groupAlive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
    for (const pid of leftovers) signalGroup(pid, 'SIGKILL');
    const killed = Date.now() + 2_000;
    while (leftovers.some(groupAlive) && Date.now() < killed) await new Promise((r) => setTimeout(r, 25));
  }

  private startWatchdog(): void {
    try {
      const child = spawn('/bin/sh', ['-c', WATCHDOG, 'arr-watchdog', this.pidsFile], {
        detached: true,
        stdio: ['pipe', 'ignore', 'ignore'],
      });
      child.on('error', (err) => this.log.warn(`no-orphan watchdog could not start: ${err.message}`));
      child.stdin?.on('error', () => {});
      // Neither the watchdog nor its pipe keeps arr's event loop alive; the pipe ends with arr.
      // (A piped stdin is a net.Socket, which node:child_process's types do not say.)
      if (child.stdin instanceof Socket) child.stdin.unref();
      child.unref();
      this.watchdog = child;
    } catch (err) {
      this.log.warn(`no-orphan watchdog could not start: ${(err as Error).message}`);
    }
  }

  spawned(proc: SpawnedProcess, app: App, port: number): void {
    const start = proc.pid > 0 ? startTimeOf(proc.pid) : undefined;
    if (start === undefined) return;
    this.entries.set(proc, { pid: proc.pid, start, token: proc.token, app, port });
    this.tell(`+ ${proc.pid} ${start}`);
    this.write();
  }

  exited(proc: SpawnedProcess): void {
    if (!this.entries.delete(proc)) return;
    this.tell(`- ${proc.pid}`);
    this.write();
  }

  /**
   * arr's folders of cgroups, for the watchdog to empty and remove when arr dies: `v2` (killed
   * with cgroup.kill, its subtree and all) and its `v1` folders (removed once empty).
   */
  watchGroups(v2: string, v1: string[]): void {
    this.tell(`c ${v2}`);
    for (const dir of v1) this.tell(`r ${dir}`);
  }

  /** A line to the watchdog (written at once: libuv writes to an idle pipe without waiting). */
  private tell(line: string): void {
    this.watchdog?.stdin?.write(`${line}\n`);
  }

  deployed(app: App, result: 'replaced' | 'failed', detail?: string): void {
    this.deploys[app.id] = {
      result,
      revision: app.revision ?? 0,
      ...(detail ? { detail } : {}),
      at: new Date().toISOString(),
    };
    this.write();
  }

  /** arr stopped its instances: the files go, and the watchdog ends with its pipe. */
  close(): void {
    // Not when they are another arr's (it still ran at this one's start).
    if (!this.broken) {
      rmSync(this.pidsFile, { force: true });
      rmSync(this.statusFile, { force: true });
    }
    this.broken = true;
    this.watchdog?.stdin?.end();
  }

  private write(): void {
    if (this.broken) return;
    const pids = [`arr ${process.pid} ${this.start} ${this.boot}`];
    for (const e of this.entries.values()) pids.push(`${e.pid} ${e.start} ${e.token}`);
    const status: ArrStatus = {
      pid: process.pid,
      start: this.start,
      ...(this.appsFile ? { apps: this.appsFile } : {}),
      instances: [...this.entries.values()].map((e) => ({
        app: e.app.id,
        pid: e.pid,
        port: e.port,
        revision: e.app.revision ?? 0,
      })),
      deploys: this.deploys,
    };
    try {
      replaceFileSync(this.pidsFile, `${pids.join('\n')}\n`);
      replaceFileSync(this.statusFile, `${JSON.stringify(status)}\n`);
    } catch (err) {
      this.fail(err);
    }
  }

  private fail(err: unknown): void {
    if (!this.broken)
      this.log.warn(
        `state directory ${this.dir} unusable (${(err as NodeJS.ErrnoException).code ?? String(err)}): instances left by a crash of arr will not be stopped by its next run`,
      );
    this.broken = true;
  }
}

/** Whether a process group has members (zombies included). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // gone
  }
}

/** The status of every live arr whose state files are in `dir` (for the admin commands). */
export function readStatuses(dir: string): ArrStatus[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.json'));
  } catch {
    return [];
  }
  const out: ArrStatus[] = [];
  for (const name of names) {
    try {
      const s = JSON.parse(readFileSync(join(dir, name), 'utf8')) as ArrStatus;
      if (startTimeOf(s.pid) === s.start) out.push(s);
    } catch {
      // being replaced, or not ours
    }
  }
  return out;
}
