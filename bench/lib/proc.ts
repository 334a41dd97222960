import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (the harness runs from dist/bench/lib, compiled). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/** Every process the harness started and that still runs, so that `stopAll` ends them by pid. */
const running = new Set<Child>();

export interface Child {
  readonly child: ChildProcess;
  readonly pid: number;
  /** The command line, as run (for the report). */
  readonly command: string;
  /** The last 64 KB of stdout and stderr. */
  output(): string;
  /** Waits until the output matches, or the process exits, or the deadline passes. */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

export interface StartOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Give the child a stdin pipe (clients that run until their stdin closes). */
  stdin?: boolean;
}

/** Quotes a word for a shell command line when it needs it. */
export function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`;
}

export function commandLine(cmd: string, args: string[]): string {
  const short = cmd === process.execPath ? 'node' : cmd;
  return [short, ...args]
    .map((w) => shellWord(w.startsWith(repoRoot) ? w.slice(repoRoot.length) : w))
    .join(' ');
}

export function start(cmd: string, args: string[], opts: StartOptions = {}): Child {
  const child = spawn(cmd, args, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: [opts.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let done = false;
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (out.length > 65_536) out = out.slice(-65_536);
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
  const self: Child = {
    child,
    pid: child.pid ?? -1,
    command: commandLine(cmd, args),
    output: () => out,
    exited,
    waitFor(pattern, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const m = out.match(pattern);
          if (m) finish(() => resolve(m));
          else if (done) finish(() => reject(new Error(`${self.command} exited:\n${out.slice(-2000)}`)));
        };
        const timer = setTimeout(
          () =>
            finish(() => reject(new Error(`${self.command}: no ${pattern} in time:\n${out.slice(-2000)}`))),
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
    running.delete(self);
  });
  running.add(self);
  return self;
}

/** Runs a command to its end; rejects on a non-zero exit (with its output). */
export async function run(
  cmd: string,
  args: string[],
  opts: StartOptions & { timeoutMs?: number } = {},
): Promise<string> {
  const p = start(cmd, args, opts);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 120_000);
  const code = await p.exited;
  clearTimeout(timer);
  if (code !== 0) throw new Error(`${p.command} failed (${code}):\n${p.output().slice(-3000)}`);
  return p.output();
}

/** Stops every process still running that the harness started. */
export async function stopAll(): Promise<void> {
  await Promise.all([...running].map((p) => p.stop('SIGTERM', 3_000)));
}

/** Synchronous last resort (process exit): SIGKILL what is left, by pid. */
export function killAllNow(): void {
  for (const p of running) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Resident set size of a process in bytes (VmRSS of /proc/PID/status). */
export function rssOf(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}
