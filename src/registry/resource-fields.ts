import { isRecord } from '../util/is-record.js';
import { parseSize } from '../util/size.js';
import type { App, HealthCheck, Limits, Recycle } from './types.js';

type Fail = (field: string, message: string) => void;

/** Below this a memory limit leaves no room for any runtime to start: surely a mistake. */
const MIN_MEMORY = 4 * 1024 ** 2;
/** The kernel's default nr_open: no process can have more open files. */
const MAX_FILES = 1024 * 1024;
/** The most seconds a health interval or recycle age may be: a year. */
const MAX_SECONDS = 365 * 86400;

/**
 * `limits`, `health` and `recycle` (docs/instances.md, "Limits, health checks and recycling"): each
 * optional, each bad value named by its field (`limits.memory: "lots" is not a size`).
 */
export function validateResourceFields(
  doc: Record<string, unknown>,
  fail: Fail,
): Pick<App, 'limits' | 'health' | 'recycle'> {
  const out: Pick<App, 'limits' | 'health' | 'recycle'> = {};
  const limits = section(doc.limits, 'limits', ['memory', 'cpu', 'pids', 'files'], fail);
  if (limits) {
    const l: Limits = {};
    const ok = [
      field(
        limits.memory,
        'limits.memory',
        (v) => size(v, MIN_MEMORY),
        fail,
        (v) => (l.memory = v),
      ),
      field(
        limits.cpu,
        'limits.cpu',
        (v) => positive(v, 1024),
        fail,
        (v) => (l.cpu = v),
      ),
      field(
        limits.pids,
        'limits.pids',
        (v) => whole(v, 1, 4194304),
        fail,
        (v) => (l.pids = v),
      ),
      field(
        limits.files,
        'limits.files',
        (v) => whole(v, 1, MAX_FILES),
        fail,
        (v) => (l.files = v),
      ),
    ].every(Boolean);
    if (ok) out.limits = l;
  }
  const health = section(doc.health, 'health', ['path', 'interval', 'timeout', 'failures'], fail);
  if (health) {
    const h: HealthCheck = { path: '', interval: 10, timeout: 2, failures: 3 };
    const ok = [
      field(health.path ?? null, 'health.path', httpPath, fail, (v) => (h.path = v)),
      field(
        health.interval,
        'health.interval',
        (v) => positive(v, MAX_SECONDS),
        fail,
        (v) => (h.interval = v),
      ),
      field(
        health.timeout,
        'health.timeout',
        (v) => positive(v, 3600),
        fail,
        (v) => (h.timeout = v),
      ),
      field(
        health.failures,
        'health.failures',
        (v) => whole(v, 1, 1000),
        fail,
        (v) => (h.failures = v),
      ),
    ].every(Boolean);
    if (ok && h.timeout > h.interval)
      fail('health.timeout', `must be at most health.interval (${h.interval})`);
    else if (ok) out.health = h;
  }
  const recycle = section(doc.recycle, 'recycle', ['requests', 'memory', 'age'], fail);
  if (recycle) {
    const r: Recycle = {};
    const ok = [
      field(
        recycle.requests,
        'recycle.requests',
        (v) => whole(v, 1, Number.MAX_SAFE_INTEGER),
        fail,
        (v) => (r.requests = v),
      ),
      field(
        recycle.memory,
        'recycle.memory',
        (v) => size(v, MIN_MEMORY),
        fail,
        (v) => (r.memory = v),
      ),
      field(
        recycle.age,
        'recycle.age',
        (v) => positive(v, MAX_SECONDS),
        fail,
        (v) => (r.age = v),
      ),
    ].every(Boolean);
    if (ok) out.recycle = r;
  }
  return out;
}

/** A sub-document with known keys only (a typo is named), or undefined when absent or bad. */
function section(v: unknown, name: string, keys: string[], fail: Fail): Record<string, unknown> | undefined {
  if (v === undefined) return undefined;
  if (!isRecord(v)) {
    fail(name, `must be an object with ${keys.map((k) => `"${k}"`).join(', ')}`);
    return undefined;
  }
  const unknown = Object.keys(v).filter((k) => !keys.includes(k));
  for (const k of unknown) fail(`${name}.${k}`, `is not a field of ${name} (${keys.join(', ')})`);
  return unknown.length > 0 ? undefined : v;
}

/** Checks one optional value (absent: fine); its problem named by `name`. */
function field<T>(
  v: unknown,
  name: string,
  check: (v: unknown) => { value: T } | { problem: string },
  fail: Fail,
  set: (value: T) => void,
): boolean {
  if (v === undefined) return true;
  const r = check(v);
  if ('problem' in r) {
    fail(name, r.problem);
    return false;
  }
  set(r.value);
  return true;
}

function size(v: unknown, min: number): { value: number } | { problem: string } {
  const bytes = parseSize(v);
  if (bytes === undefined)
    return { problem: `${JSON.stringify(v)} is not a size (bytes, or a number with K, M or G)` };
  if (bytes < min) return { problem: `must be at least ${min / 1024 ** 2}M (got ${JSON.stringify(v)})` };
  return { value: bytes };
}

function positive(v: unknown, max: number): { value: number } | { problem: string } {
  if (typeof v !== 'number' || !Number.isFinite(v))
    return { problem: `must be a number (got ${JSON.stringify(v)})` };
  if (v <= 0) return { problem: `must be > 0 (got ${v})` };
  if (v > max) return { problem: `must be at most ${max} (got ${v})` };
  return { value: v };
}

function whole(v: unknown, min: number, max: number): { value: number } | { problem: string } {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)
    return { problem: `must be a whole number from ${min} to ${max} (got ${JSON.stringify(v)})` };
  return { value: v };
}

/** A path arr can GET: `ready` and `health.path`. */
export function httpPath(v: unknown): { value: string } | { problem: string } {
  if (typeof v !== 'string' || !/^\/[\x21-\x7e]*$/.test(v) || v.length > 2048)
    return { problem: `must be an HTTP path such as "/healthz" (got ${JSON.stringify(v ?? null)})` };
  return { value: v };
}
