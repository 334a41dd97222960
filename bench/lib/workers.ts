import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { type ArrUnderTest, startArrWith } from '../../harness/arr.js';
import { ARR_CLI, type Running, repoRoot } from '../../harness/proc.js';
import { NODE } from './context.js';
import { familyOf } from './cpu.js';
import { waitForListen, waitForPort } from './net.js';

/** What `ps` shows for a worker of each server (children that match are counted, others not). */
export const WORKER_TITLES = /^(arr worker|nlb worker|nginx: worker|node floor worker)/;
/**
 * The contenders' columns, in the order of the tables: arr with 0 (one process), 1 and 2 workers,
 * nginx with 1 and 2, and the Node.js proxy floor in 1 and 2 node:cluster workers
 * (bench/floors/cluster.ts): what a second worker gives a Node.js proxy with nothing to share.
 */
export const COLUMNS = ['arr 0', 'arr 1', 'arr 2', 'nginx 1', 'nginx 2', 'floor 1', 'floor 2'];
/**
 * Cold starts per arr in the activation point: a start is ~120 ms and varies by several ms, so
 * the median of 7 moved by 5 ms between two quiet runs; the difference sought is 2 ms.
 */
export const ACTIVATION_RUNS = 15;
/** bench/probes/loop.ts, preloaded into arr here: event-loop delay and GC pauses on SIGUSR2. */
export const LOOP_PROBE = join(repoRoot, 'dist/bench/probes/loop.js');

/** The contenders of the section; the arr ones only when this build of arr has --workers. */
export interface WorkersStage {
  backend: { port: number; pid: number };
  appsFile: string;
  /** arr, nginx and the floor with 1 and 2 workers, by name (`arr 1`, `nginx 2`, `floor 1`...). */
  servers: Map<string, { port: number; sslport: number; pid: number }>;
  arrs: Map<string, ArrUnderTest>;
  hasWorkers: boolean;
  procs: Running[];
  /** How the floors were started, for the report. */
  commands: string[];
}

/** Whether this build of arr takes --workers (the option lands with issue #28's `workers` branch). */
export function arrHasWorkers(): boolean {
  const r = spawnSync(NODE, [ARR_CLI, '--help'], { encoding: 'utf8' });
  return /--workers/.test(`${r.stdout}${r.stderr}`);
}

/** arr with `--workers n` (0: one process; undefined: a build without the option, one process too). */
export async function startArrWorkers(
  appsFile: string,
  n: number | undefined,
  env: NodeJS.ProcessEnv = {},
): Promise<ArrUnderTest> {
  const arr = await startArrWith([], {
    file: appsFile,
    env,
    nodeArgs: ['--import', LOOP_PROBE],
    // info: the activation point reads the instances' start times from arr's lines (none per request).
    extraArgs: ['--log-level', 'info', ...(n === undefined ? [] : ['--workers', String(n)])],
    ready: (a) => waitForListen(a.proc, a.port, 120_000, 5),
  });
  await waitForPort(arr.sslport);
  await untilWorkers(arr.proc.pid, n ?? 0);
  return arr;
}

/** Waits until a server has `n` worker processes (titled as WORKER_TITLES says). */
export async function untilWorkers(pid: number, n: number, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Object.keys(familyOf(pid, WORKER_TITLES)).length - 1 < n) {
    if (Date.now() > deadline) throw new Error(`pid ${pid} has no ${n} workers after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
