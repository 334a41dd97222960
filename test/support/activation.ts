import { readdirSync, readFileSync } from 'node:fs';
import { MongoClient, ObjectId } from 'mongodb';
import WebSocket from 'ws';
import { MongoRegistry } from '../../src/registry/mongo-registry.js';
import type { InstanceAddress } from '../../src/registry/types.js';
import { idOf } from '../../src/registry/validate.js';
import type { AppDoc, Reply } from './arr.js';
import { until } from './poll.js';
import { alive } from './proc.js';

/** One JSON log line of arr (pino), with the fields the tests look at. */
export interface LogLine {
  /** In words: info, warn, ... */
  level: string;
  msg: string;
  /** On lifecycle lines: instance-starting, instance-ready, deploy-done, ... (docs/metrics.md, "Logs"). */
  event?: string;
  /** When it was logged (ISO 8601). */
  time?: string;
  app?: string;
  pid?: number;
  port?: number;
  [key: string]: unknown;
}

/** Every JSON log line in arr's output; other lines (there should be none) are skipped. */
export function logLines(output: string): LogLine[] {
  const lines: LogLine[] = [];
  for (const raw of output.split('\n')) {
    if (!raw.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(raw) as LogLine);
    } catch {
      // a line cut in the middle (the process is still writing): ignore it
    }
  }
  return lines;
}

/** The `instance-starting` lines arr logged for one app ("starting NAME on port N"). */
export function startLines(output: string, name: string): LogLine[] {
  return logLines(output).filter((l) => l.event === 'instance-starting' && l.app === name);
}

/** True when the process is gone: no such pid, or only a zombie waiting to be reaped. */
export function gone(pid: number): boolean {
  if (!alive(pid)) return true;
  try {
    // /proc/PID/stat: "pid (comm) S ..."; comm may hold spaces or parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
  } catch {
    return true;
  }
}

/** Pids of live processes (not zombies) whose command line contains every marker. */
export function processesWith(...markers: string[]): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (markers.every((m) => cmd.includes(m)) && !gone(Number(entry))) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** Waits until every pid is gone; the message names the ones that are not. */
export async function allGone(pids: number[], timeoutMs = 5_000): Promise<void> {
  await until(
    `processes ${pids.join(', ')} to be gone (still there: ${pids.filter((p) => !gone(p)).join(', ')})`,
    () => pids.every(gone),
    { timeoutMs },
  );
}

type RawId = ObjectId | string | undefined;

/** The `machines` of one app document, as MongoDB has them now (what people and tools read). */
export async function machinesInDocument(url: string, id: RawId): Promise<unknown> {
  const client = new MongoClient(url);
  try {
    const doc = await client
      .db()
      .collection('apps')
      .findOne({ _id: id as ObjectId }, { projection: { machines: 1 } });
    return doc?.machines;
  } finally {
    await client.close();
  }
}

/** Runs `use` with a loaded MongoDB registry of its own (as another node of the farm would). */
async function withRegistry<T>(url: string, use: (r: MongoRegistry) => Promise<T>): Promise<T> {
  const registry = new MongoRegistry(url);
  try {
    await registry.load();
    return await use(registry);
  } finally {
    await registry.close();
  }
}

/** The app's instances as the registry has them (its own storage, whatever that is). */
export function machinesInRegistry(url: string, id: RawId): Promise<InstanceAddress[]> {
  return withRegistry(url, (r) => r.addressesOf(idOf(id)!));
}

/** Records an instance of the app as another node would: a claim through the registry. */
export async function claimInRegistry(url: string, id: RawId, machine: InstanceAddress): Promise<void> {
  const claim = await withRegistry(url, (r) => r.claim(idOf(id)!, machine));
  if (!claim.granted)
    throw new Error(`claim of ${JSON.stringify(machine)} refused: ${JSON.stringify(claim)}`);
}

/** A liveness record for `node` as a live node of the farm writes it (so no node sweeps its entries). */
export async function beatInRegistry(url: string, node: string, ttlMs = 120_000): Promise<void> {
  await withRegistry(url, (r) => r.beat(node, ttlMs));
}

/**
 * Waits until the app's instances are exactly `expected`, in the registry and in the `machines`
 * of its document (written a moment after an instance ends, in the background).
 */
export async function expectMachines(
  url: string,
  id: RawId,
  expected: InstanceAddress[],
  timeoutMs = 5_000,
): Promise<void> {
  let last: unknown;
  const want = JSON.stringify(expected);
  try {
    await until(
      'machines',
      async () => {
        last = { registry: await machinesInRegistry(url, id), document: await machinesInDocument(url, id) };
        const { registry, document } = last as { registry: unknown; document: unknown };
        return JSON.stringify(registry) === want && JSON.stringify(document) === want;
      },
      { timeoutMs, intervalMs: 50 },
    );
  } catch {
    throw new Error(`machines of ${String(id)}: expected ${want}, have ${JSON.stringify(last)}`);
  }
}

/** The `machines` of every app document, by `_id` as a string. */
export async function allMachinesInMongo(url: string): Promise<Record<string, unknown>> {
  const client = new MongoClient(url);
  try {
    const docs = await client
      .db()
      .collection('apps')
      .find({}, { projection: { machines: 1 } })
      .toArray();
    return Object.fromEntries(docs.map((d) => [String(d._id), d.machines]));
  } finally {
    await client.close();
  }
}

/**
 * Opens a WebSocket to arr at 127.0.0.1:port with this Host header and resolves with the first
 * message the instance sends (a hello instance greets with `hello from NAME (pid N)`); closes it.
 */
export function wsGreeting(port: number, host: string, path = '/ws', timeoutMs = 15_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, {
      headers: { host },
      handshakeTimeout: timeoutMs,
    });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no WebSocket message from ${host} in ${timeoutMs} ms`));
    }, timeoutMs);
    ws.once('message', (data) => {
      clearTimeout(timer);
      ws.terminate();
      resolve(String(data));
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(timer);
      ws.terminate();
      reject(new Error(`WebSocket upgrade for ${host} answered ${res.statusCode}`));
    });
    ws.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The port a hello instance reports in its answer. */
export function portOf(reply: Reply): number {
  const m = /\(port (\d+),/.exec(reply.text);
  if (!m) throw new Error(`no port in reply ${reply.status}: ${reply.text}`);
  return Number(m[1]);
}

/** An app whose program is a CommonJS script run by this node with `-e`. */
export function scriptApp(name: string, host: string, script: string, instances = 1): AppDoc {
  return {
    _id: new ObjectId(),
    name,
    process: { executable: process.execPath, args: ['-e', script] },
    hosts: [{ host, ssl: 'allowed' }],
    instances,
  };
}

/** What arr may never put in a body it writes itself: stack traces, paths, error codes. */
export const INTERNALS = /\bat .+:\d+|\/work\/|\/nonexistent|node:|Error:|E[A-Z]{3,}\b|\{|"/;
