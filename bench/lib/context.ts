import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePorts, freeRange, LOOPBACK, waitForPort } from './net.js';
import { type Child, repoRoot, start } from './proc.js';
import type { Section, Target } from './report.js';
import { median } from './stats.js';

export const NODE = process.execPath;
export const ARR_CLI = join(repoRoot, 'dist/src/cli/arr.js');
export const NLB_CLI = join(repoRoot, 'dist/src/cli/nlb.js');
export const HELLO = join(repoRoot, 'samples/hello/server.js');
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
}

/** Writes an apps.json (one extended-JSON document per line) of hello apps. */
export function writeApps(file: string, apps: AppSpec[]): string {
  const lines = apps.map((a, i) =>
    JSON.stringify({
      _id: { $oid: (i + 1).toString(16).padStart(24, '0') },
      process: { executable: NODE, args: [HELLO, a.name] },
      hosts: a.hosts.map((h) => ({
        host: h.host,
        ssl: 'allowed',
        ...(h.cert ? { cert: h.cert, key: h.key } : {}),
      })),
      instances: 1,
      machines: [],
    }),
  );
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
}

export interface Arr {
  proc: Child;
  port: number;
  sslport: number;
  /** Milliseconds from spawn to the "arr listening on" line (log level info) or to the port accepting. */
  startMs: number;
}

/** Starts the arr CLI on free loopback ports with this apps file. */
export async function startArr(apps: string, level: 'warn' | 'info' = 'warn'): Promise<Arr> {
  const [port, sslport] = await freePorts(2);
  const [a, b] = await freeRange(20);
  const args = [
    ARR_CLI,
    '-a',
    apps,
    '-p',
    String(port),
    '-s',
    String(sslport),
    '-r',
    `${a}-${b}`,
    '--bind',
    LOOPBACK,
    '--advertise',
    LOOPBACK,
    '--log-level',
    level,
  ];
  const t0 = performance.now();
  const proc = start(NODE, args);
  if (level === 'info') await proc.waitFor(/arr listening on/, 120_000);
  else
    await Promise.race([
      waitForPort(port!, 120_000, 5),
      proc.exited.then((c) => {
        throw new Error(`arr exited (${c}):\n${proc.output()}`);
      }),
    ]);
  const startMs = performance.now() - t0;
  if (level !== 'info') await waitForPort(sslport!);
  return { proc, port: port!, sslport: sslport!, startMs };
}
