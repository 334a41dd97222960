import { join } from 'node:path';
import { ObjectId } from 'mongodb';
import { type ArrUnderTest, helloApp, startArrWith, writeAppsFile } from '../../harness/arr.js';
import { repoRoot } from '../../harness/proc.js';
import { waitForListen, waitForPort } from './net.js';
import type { Section, Target } from './report.js';
import { median } from './stats.js';

export const NODE = process.execPath;
export const CERT = join(repoRoot, 'certs/default-cert.pem');
export const KEY = join(repoRoot, 'certs/default-key.pem');
/** The host name of the benchmarked app (the sample certificate covers *.localhost). */
export const HOST = 'hello.localhost';
/**
 * The host name of the HTTPS points: wrk sends the URL's host (127.0.0.1) as SNI, and arr
 * refuses (421) a request whose Host differs from its connection's SNI name.
 */
export const TLS_HOST = '127.0.0.1';

export interface Ctx {
  quick: boolean;
  /** Repetitions of every point, contenders alternating. */
  reps: number;
  /** Seconds of load per point and repetition. */
  seconds: number;
  /** Scratch directory of this run (configs, apps files). */
  tmp: string;
  sections: Section[];
  targets: Target[];
  log(line: string): void;
}

export function addSection(ctx: Ctx, s: Omit<Section, 'rows' | 'notes' | 'commands'>): Section {
  const section: Section = { ...s, rows: [], notes: [], commands: new Set() };
  ctx.sections.push(section);
  return section;
}

/**
 * Runs `fn` for every contender, `ctx.reps` times, rotating the order each repetition so that
 * every contender runs early and late: drift of a shared, noisy machine hits them alike.
 * Returns each contender's results in repetition order (index i = repetition i).
 */
export async function alternate<T>(
  ctx: Ctx,
  names: string[],
  fn: (name: string, rep: number) => Promise<T>,
): Promise<Map<string, T[]>> {
  const out = new Map(names.map((n) => [n, [] as T[]]));
  for (let r = 0; r < ctx.reps; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]!);
    for (const n of order) out.get(n)!.push(await fn(n, r));
  }
  return out;
}

/** The median of a field over the repetitions. */
export function med<T>(xs: T[] | undefined, f: (x: T) => number): number {
  return median((xs ?? []).map(f));
}

/** The median over repetitions of a / b, each pair measured in the same repetition. */
export function ratioOf<T>(a: T[] | undefined, b: T[] | undefined, f: (x: T) => number): number {
  if (!a || !b) return Number.NaN;
  return median(a.map((x, i) => (b[i] === undefined ? Number.NaN : f(x) / f(b[i]!))));
}

/** The median over repetitions of a - b, each pair measured in the same repetition. */
export function diffOf<T>(a: T[] | undefined, b: T[] | undefined, f: (x: T) => number): number {
  if (!a || !b) return Number.NaN;
  return median(a.map((x, i) => (b[i] === undefined ? Number.NaN : f(x) - f(b[i]!))));
}

export interface AppSpec {
  name: string;
  hosts: { host: string; cert?: string; key?: string }[];
  /** The app's `limits` (issue #31), when it has any. */
  limits?: Record<string, unknown>;
}

/** Writes an apps.json of hello apps (ids 1, 2, ... so that the report's copy is the same every run). */
export function writeApps(file: string, apps: AppSpec[]): string {
  return writeAppsFile(
    file,
    apps.map((a, i) => ({
      ...helloApp(
        a.name,
        a.hosts.map((h) => ({ ...h, ssl: 'allowed' })),
      ),
      _id: new ObjectId((i + 1).toString(16).padStart(24, '0')),
      machines: [],
      ...(a.limits ? { limits: a.limits } : {}),
    })),
  );
}

/**
 * Starts the arr CLI on free loopback ports with this apps file. `startMs` is the time from
 * spawning to the "arr listening on" line (log level info) or, at warn, where arr prints nothing
 * then, to its port accepting (polled every 5 ms, as arr polls an app's).
 */
export async function startArr(
  apps: string,
  level: 'warn' | 'info' = 'warn',
  nodeArgs: string[] = [],
): Promise<ArrUnderTest> {
  const arr = await startArrWith([], {
    file: apps,
    nodeArgs,
    extraArgs: ['--log-level', level],
    ready: (a) =>
      level === 'info'
        ? a.proc.waitFor(/arr listening on/, 120_000)
        : waitForListen(a.proc, a.port, 120_000, 5),
  });
  if (level !== 'info') await waitForPort(arr.sslport);
  return arr;
}
