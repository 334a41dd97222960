// Summaries of V8 CPU profiles (`node --cpu-prof`, the .cpuprofile JSON): where the sampled time
// went, by function (self time) and by category: arr's own code, each package under
// node_modules, Node.js's own JavaScript, and what has no script (V8 builtins and C++, the
// garbage collector, "(program)": native code outside JavaScript, "(idle)": waiting for events).

import { readFileSync } from 'node:fs';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { repoRoot } from '../../harness/proc.js';
import { markdownTable } from './report.js';

/** The parts of the .cpuprofile format (Chrome DevTools protocol, Profiler.Profile) used here. */
interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  /** Microseconds of the system's monotonic clock (the one of process.hrtime, in any process). */
  startTime: number;
  samples: number[];
  /** Microseconds since the previous sample (the first: since the profile's start). */
  timeDeltas: number[];
}

export interface FunctionCost {
  name: string;
  /** file:line, relative to the repository, or the node: URL; empty for native code. */
  where: string;
  category: string;
  selfMs: number;
}

export interface ProfileSummary {
  totalMs: number;
  idleMs: number;
  /** Self time by category, largest first. */
  categories: [string, number][];
  /** Self time by function, largest first. */
  functions: FunctionCost[];
}

export const ARR = "arr's own code (dist/src)";
export const IDLE = '(idle)';
const NODE_INTERNALS = 'Node.js internals (node:*)';

/** The category of a frame, from its script's URL (or, for frames without one, its name). */
export function categoryOf(url: string, functionName: string): string {
  if (url === '') {
    if (functionName === '(idle)') return IDLE;
    if (functionName === '(garbage collector)') return 'garbage collector';
    if (functionName === '(program)' || functionName === '(root)')
      return '(program): native, outside JavaScript';
    return 'V8 builtins and native functions';
  }
  if (url.startsWith('node:') || url.startsWith('internal/')) return NODE_INTERNALS;
  // undici parses HTTP/1.1 with llhttp compiled to WebAssembly.
  if (url.startsWith('wasm://')) return 'WebAssembly (undici: llhttp)';
  const nm = url.lastIndexOf('/node_modules/');
  if (nm !== -1) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/');
    return `node_modules: ${parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`;
  }
  if (url.includes('/dist/src/')) return ARR;
  if (url.includes('/dist/')) return 'harness and test code (dist)';
  return 'other scripts';
}

/** Where a frame is, for a table: a path relative to the repository (or a node: URL) and its line. */
function whereOf(url: string, lineNumber: number): string {
  if (url === '') return '';
  let path = url;
  if (url.startsWith('file://')) {
    path = fileURLToPath(url);
    if (path.startsWith(repoRoot)) path = relative(repoRoot, path);
    // node_modules may be a link to another checkout's: from node_modules/ on, it is the same.
    const nm = path.indexOf('/node_modules/');
    if (nm !== -1) path = path.slice(nm + 1);
  }
  return `${path}:${lineNumber + 1}`; // V8 counts lines from 0
}

/** A span of the monotonic clock, in microseconds: `hrtimeUs()` before and after a load. */
export interface Window {
  fromUs: number;
  toUs: number;
}

/** Now, on the clock of the profiles' timestamps (CLOCK_MONOTONIC, shared by all processes). */
export function hrtimeUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Self time by function and category; with a window, of the samples taken in it only (the load,
 * without the process's start-up and stop).
 */
export function summarize(p: CpuProfile, window?: Window): ProfileSummary {
  // Self time of each node: the time since the previous sample goes to the sampled node.
  const selfUs = new Map<number, number>();
  let t = p.startTime;
  for (let i = 0; i < p.samples.length; i++) {
    const id = p.samples[i]!;
    const dt = p.timeDeltas[i] ?? 0;
    t += dt;
    if (window && (t < window.fromUs || t > window.toUs)) continue;
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  const byFunction = new Map<string, FunctionCost>();
  const byCategory = new Map<string, number>();
  let totalMs = 0;
  for (const node of p.nodes) {
    const ms = (selfUs.get(node.id) ?? 0) / 1000;
    if (ms === 0) continue;
    const { functionName, url, lineNumber } = node.callFrame;
    const category = categoryOf(url, functionName);
    const where = whereOf(url, lineNumber);
    // One function is many nodes (one per call path): they are added up.
    const key = `${functionName}\n${where}`;
    const f = byFunction.get(key) ?? { name: functionName || '(anonymous)', where, category, selfMs: 0 };
    f.selfMs += ms;
    byFunction.set(key, f);
    byCategory.set(category, (byCategory.get(category) ?? 0) + ms);
    totalMs += ms;
  }
  return {
    totalMs,
    idleMs: byCategory.get(IDLE) ?? 0,
    categories: [...byCategory].sort((a, b) => b[1] - a[1]),
    functions: [...byFunction.values()].sort((a, b) => b.selfMs - a.selfMs),
  };
}

export function readProfile(file: string, window?: Window): ProfileSummary {
  return summarize(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile, window);
}

const ms = (x: number) => `${x.toFixed(x < 10 ? 1 : 0)} ms`;
const pct = (x: number, of: number) => (of > 0 ? `${((100 * x) / of).toFixed(1)}%` : 'n/a');

/** Rows of the top `n` functions by self time, with their share of the busy (not idle) time. */
export function topRows(s: ProfileSummary, n = 12): string[][] {
  const busy = s.totalMs - s.idleMs;
  return s.functions
    .filter((f) => f.category !== IDLE)
    .slice(0, n)
    .map((f) => [f.name, f.where, f.category, ms(f.selfMs), pct(f.selfMs, busy)]);
}

/** The top `n` functions of one category, as `name (where) self time (share)`, for a note. */
export function topOf(s: ProfileSummary, category: string, n = 6): string {
  const busy = s.totalMs - s.idleMs;
  const fs = s.functions.filter((f) => f.category === category).slice(0, n);
  return fs.map((f) => `${f.name} (${f.where}) ${ms(f.selfMs)} (${pct(f.selfMs, busy)})`).join(', ');
}

export const TOP_HEADER = ['function', 'where', 'category', 'self time', 'share of busy time'];

/** Self time and share of the busy time of one category ('' when the profile has none). */
export function categoryCell(s: ProfileSummary, category: string): string {
  const x = s.categories.find(([c]) => c === category)?.[1];
  if (x === undefined) return '';
  return category === IDLE ? ms(x) : `${ms(x)} (${pct(x, s.totalMs - s.idleMs)})`;
}

/** The categories of several profiles, in the order of their total time. */
export function categoryOrder(summaries: ProfileSummary[]): string[] {
  const total = new Map<string, number>();
  for (const s of summaries) for (const [c, x] of s.categories) total.set(c, (total.get(c) ?? 0) + x);
  return [...total].sort((a, b) => b[1] - a[1]).map(([c]) => c);
}

/** The whole summary of one profile as markdown (bench/profile-summary.ts prints it). */
export function summaryMarkdown(s: ProfileSummary, n = 12): string {
  const busy = s.totalMs - s.idleMs;
  return [
    `Sampled ${ms(s.totalMs)}, of which busy (not idle) ${ms(busy)}.`,
    '',
    markdownTable(
      ['category', 'self time (share of busy time)'],
      s.categories.map(([c]) => [c, categoryCell(s, c)]),
    ),
    '',
    markdownTable(TOP_HEADER, topRows(s, n)),
    '',
    `arr's own functions with the most self time: ${topOf(s, ARR) || 'none sampled'}.`,
  ].join('\n');
}
