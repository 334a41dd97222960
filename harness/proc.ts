// The process harness of the tests and of the benchmark (both import it from here): start a
// child, keep its output, wait for a line of it, stop it with a grace, stop them all by pid.

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root (this runs compiled, from dist/harness). */
export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const ARR_CLI = join(repoRoot, 'dist/src/cli/arr.js');
export const NLB_CLI = join(repoRoot, 'dist/src/cli/nlb.js');

/**
 * arr runs as one process (`--workers 0`) in tests and benchmarks unless one asks for workers
 * (`--workers N`, which beats the environment): the suites written before workers test the
 * single process, test/workers/ the primary and its workers. Set here, for every child started
 * from this process (the CLI directly, or through systemd-socket-activate, setpriv, ...).
 */
process.env.ARR_WORKERS ??= '0';

/** Every process started here that still runs, so that `stopAll` and `killAllNow` end them by pid. */
const started = new Set<Running>();

export interface Running {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The command line, as run (for messages and the benchmark's report). */
  readonly command: string;
  /** What the process wrote to stdout and stderr so far (the last `maxOutput` characters). */
  output(): string;
  /** Waits until the output matches, or the process exits, or the deadline passes. */
  waitFor(pattern: RegExp | string, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  readonly exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

export interface StartOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Give the child a stdin pipe (clients that run until their stdin closes). */
  stdin?: boolean;
  /** Keep only the last this many characters of output; default 16 Mi (in practice: all of it). */
  maxOutput?: number;
  /** Print the process's output as it comes, for debugging a test (or set ARR_TEST_ECHO). */
  echo?: boolean;
  /** Append its stdout to this file instead of keeping it (a benchmark's access log). */
  stdoutFile?: string;
}

/** Quotes a word for a shell command line when it needs it. */
export function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

/** A command line as one could type it in the repository root. */
export function commandLine(cmd: string, args: string[]): string {
  const short = cmd === process.execPath ? 'node' : cmd;
  return [short, ...args]
    .map((w) => shellWord(w.startsWith(repoRoot) ? w.slice(repoRoot.length) : w))
    .join(' ');
}

const tail = (s: string) => (s.length > 4000 ? `...${s.slice(-4000)}` : s);

export function start(cmd: string, args: string[], opts: StartOptions = {}): Running {
  const stdoutFd = opts.stdoutFile === undefined ? undefined : openSync(opts.stdoutFile, 'a');
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: [opts.stdin ? 'pipe' : 'ignore', stdoutFd ?? 'pipe', 'pipe'],
  });
  if (stdoutFd !== undefined) closeSync(stdoutFd);
  const max = opts.maxOutput ?? 16 * 1024 * 1024;
  const echo = opts.echo || !!process.env.ARR_TEST_ECHO;
  let out = '';
  let done = false;
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > max) out = out.slice(-max);
    if (echo) process.stderr.write(d);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1));
    child.once('error', (err) => {
      out += `\n${err.message}`;
      resolve(-1);
    });
  });
  const self: Running = {
    child,
    pid: child.pid ?? -1,
    command: commandLine(cmd, args),
    output: () => out,
    exited,
    waitFor(pattern, timeoutMs = 15_000) {
      const match = (): RegExpMatchArray | null =>
        typeof pattern === 'string' ? (out.includes(pattern) ? [pattern] : null) : out.match(pattern);
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = match();
          if (m) finish(() => resolve(m));
          else if (done)
            finish(() =>
              reject(new Error(`${self.command} exited before printing ${pattern}:\n${tail(out)}`)),
            );
        };
        const timer = setTimeout(
          () =>
            finish(() =>
              reject(new Error(`${self.command}: no ${pattern} in ${timeoutMs} ms:\n${tail(out)}`)),
            ),
          timeoutMs,
        );
        const finish = (f: () => void) => {
          clearTimeout(timer);
          child.stdout?.off('data', check);
          child.stderr?.off('data', check);
          f();
        };
        child.stdout?.on('data', check);
        child.stderr?.on('data', check);
        void exited.then(check);
        check();
      });
    },
    async stop(signal = 'SIGTERM', graceMs = 5_000) {
      if (done) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  void exited.then(() => {
    done = true;
    started.delete(self);
  });
  started.add(self);
  return self;
}

/** `what`, unless the process exits first: then a rejection with its output. */
export function unlessExited<T>(proc: Running, what: Promise<T>): Promise<T> {
  return Promise.race([
    what,
    proc.exited.then((code): never => {
      throw new Error(`${proc.command} exited (${code}):\n${tail(proc.output())}`);
    }),
  ]);
}

export interface Ran {
  code: number | string;
  output: string;
  command: string;
}

/** Runs a command to its end (SIGKILL after `timeoutMs`) and returns its exit code and output. */
export async function run(
  cmd: string,
  args: string[],
  opts: StartOptions & { timeoutMs?: number } = {},
): Promise<Ran> {
  const p = start(cmd, args, opts);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, output: p.output(), command: p.command };
}

/** `run`, but a non-zero exit rejects (with the output); resolves with the output. */
export async function runOk(
  cmd: string,
  args: string[],
  opts: StartOptions & { timeoutMs?: number } = {},
): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${r.command} failed (${r.code}):\n${tail(r.output)}`);
  return r.output;
}

/** Starts the arr CLI; through `via` (a command that ends by executing its arguments, such as setpriv) when given. */
export const startArr = (
  args: string[],
  opts?: StartOptions,
  nodeArgs: string[] = [],
  via: string[] = [],
) => {
  const command = [process.execPath, ...nodeArgs, ARR_CLI, ...args];
  return via.length > 0
    ? start(via[0]!, [...via.slice(1), ...command], opts)
    : start(command[0]!, command.slice(1), opts);
};
export const runArr = (args: string[], opts?: StartOptions) =>
  run(process.execPath, [ARR_CLI, ...args], opts);
export const startNlb = (args: string[], opts?: StartOptions) =>
  start(process.execPath, [NLB_CLI, ...args], opts);
export const runNlb = (args: string[], opts?: StartOptions) =>
  run(process.execPath, [NLB_CLI, ...args], opts);

/** Stops every process started here that is still running (no parameter: it is passed to `after` as it is). */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.stop('SIGTERM')));
}

/** Synchronous last resort (at process exit): SIGKILL what is left, by pid. */
export function killAllNow(): void {
  for (const p of started) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** True while a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** The fields of /proc/PID/stat after the command name (field 3 onwards). */
export function statFields(pid: number): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  return (Number(f[11]) + Number(f[12])) / TICKS_PER_SECOND;
}
