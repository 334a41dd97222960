import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { until } from './poll.js';

/** The repository root (tests run from dist/test/..., compiled). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const ARR_CLI = join(repoRoot, 'dist/src/cli/arr.js');
export const NLB_CLI = join(repoRoot, 'dist/src/cli/nlb.js');

/** Every process a test file started, so that `stopAll` can end them by pid. */
const started = new Set<Running>();

export interface Running {
  child: ChildProcess;
  pid: number;
  /** Everything written to stdout and stderr so far. */
  output(): string;
  /** Waits until the output matches, or the process exits, or the deadline passes. */
  waitFor(pattern: RegExp | string, timeoutMs?: number): Promise<RegExpMatchArray>;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string>;
}

export interface StartOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Print the process's output as it comes, for debugging a test. */
  echo?: boolean;
}

export function start(command: string, args: string[], opts: StartOptions = {}): Running {
  const child = spawn(command, args, {
    cwd: opts.cwd ?? repoRoot,
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const onData = (d: Buffer) => {
    out += d.toString('utf8');
    if (opts.echo || process.env.ARR_TEST_ECHO) process.stderr.write(d);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exited = new Promise<number | string>((resolve) => {
    child.once('exit', (code, signal) => resolve(code ?? signal ?? -1));
    child.once('error', () => resolve(-1));
  });
  let done = false;
  void exited.then(() => {
    done = true;
    started.delete(running);
  });
  const running: Running = {
    child,
    pid: child.pid ?? -1,
    output: () => out,
    exited,
    async waitFor(pattern, timeoutMs = 15_000) {
      return until(
        `${String(pattern)} in the output of ${command} ${args.join(' ')}\n--- output so far:\n${out}\n---`,
        () => {
          const m =
            typeof pattern === 'string' ? (out.includes(pattern) ? [pattern] : null) : out.match(pattern);
          if (m) return m as RegExpMatchArray;
          if (done) throw new Error(`process exited before printing ${String(pattern)}:\n${out}`);
          return undefined;
        },
        { timeoutMs },
      );
    },
    async stop(signal = 'SIGTERM', graceMs = 5000) {
      if (done) return exited;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
  started.add(running);
  return running;
}

/** Runs a command to the end and returns its exit code and output. */
export async function run(
  command: string,
  args: string[],
  opts: StartOptions & { timeoutMs?: number } = {},
): Promise<{ code: number | string; output: string }> {
  const p = start(command, args, opts);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
  const code = await p.exited;
  clearTimeout(timer);
  return { code, output: p.output() };
}

export const startArr = (args: string[], opts?: StartOptions) =>
  start(process.execPath, [ARR_CLI, ...args], opts);
export const runArr = (args: string[], opts?: StartOptions) =>
  run(process.execPath, [ARR_CLI, ...args], opts);
export const startNlb = (args: string[], opts?: StartOptions) =>
  start(process.execPath, [NLB_CLI, ...args], opts);
export const runNlb = (args: string[], opts?: StartOptions) =>
  run(process.execPath, [NLB_CLI, ...args], opts);

/** Stops every process this test file started that is still running. */
export async function stopAll(): Promise<void> {
  await Promise.all([...started].map((p) => p.stop('SIGTERM')));
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
