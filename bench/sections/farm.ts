import { readFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Collection, type Document, MongoClient, ObjectId } from 'mongodb';
import {
  type AppDoc,
  type ArrUnderTest,
  fetchVia,
  helloApp,
  startArrWith,
  writeAppsFile,
} from '../../harness/arr.js';
import { type MongoServer, startMongo } from '../../harness/mongo.js';
import { runArr } from '../../harness/proc.js';
import { addSection, type Ctx, med } from '../lib/context.js';
import { cpuSeconds } from '../lib/cpu.js';
import { fmt } from '../lib/stats.js';

/** The apps in the registry: the issue's farm (#33). */
export const FARM_APPS = 5000;
const NODE_COUNTS = [1, 2, 4, 8];
/** The farm whose propagation and cost per change are measured. */
const MEASURED_NODES = 4;
const POLL_S = 2;
/**
 * Changes are made this long after the previous one reached every node: one at a time, as an
 * operator makes them. (Writes closer together than about 3 audits' durations wait for the
 * audit's spacing, the bound on its cost.)
 */
const PAUSE_MS = 6000;

/** What the farm cost over one window of idleness. */
interface Window {
  seconds: number;
  /** The registry server's CPU, in cores. */
  serverCpu: number;
  /** Commands the registry server answered, per second. */
  serverOps: number;
  /** Each node's CPU, in cores. */
  nodeCpu: number[];
  /** Each node's bytes read and written (all of its I/O: an idle node's is its registry traffic), per second. */
  nodeBytes: number[];
}

type ChangeKind = 'insert' | 'update' | 'delete' | 'import';

/**
 * The same figures before #33, when every node read all of `apps` and `instances` every poll:
 * this section on the code before the change journal (commit 2104050), on this machine at rest.
 */
const BEFORE =
  'Before #33 (every node read every app and instance document every poll; this section on the ' +
  'code before commit 2104050): registry server CPU 24% of a core with 1 idle node, 83% with 4, 76% with 8 (all it could ' +
  'get); each node 2.5 to 5.3% and 430 KB/s; a change reached all 4 nodes in 4.0 to 4.3 s in the median ' +
  'through the driver (5.2 s at worst), 3.5 s through `arr import` (4.7 s at worst). The issue measured ' +
  '71% of a core for 4 idle nodes, each node up to 4.4%, and 3.0 to 3.6 s for a direct change.';

const pct = (cores: number) => (Number.isFinite(cores) ? `${(cores * 100).toFixed(1)}%` : 'n/a');

/** Commands the server answered so far: FerretDB's per-command counters, or MongoDB's opcounters. */
async function serverOps(client: MongoClient): Promise<number> {
  const s = await client.db('admin').command({ serverStatus: 1 });
  const commands = s.metrics?.commands as Record<string, { total?: number }> | undefined;
  if (commands) return Object.values(commands).reduce((n, c) => n + Number(c.total ?? 0), 0);
  return Object.values((s.opcounters ?? {}) as Record<string, number>).reduce((n, c) => n + Number(c), 0);
}

function ioBytes(pid: number): number {
  const io = readFileSync(`/proc/${pid}/io`, 'utf8');
  const field = (name: string) => Number(io.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1] ?? 0);
  return field('rchar') + field('wchar');
}

/** The farm's cost while `during` runs (by default: `seconds` of idleness). */
async function measure(
  mongo: MongoServer,
  client: MongoClient,
  nodes: ArrUnderTest[],
  seconds: number,
  during: () => Promise<void> = () => sleep(seconds * 1000),
): Promise<Window> {
  const serverPid = mongo.pid?.();
  const cpu0 = serverPid ? cpuSeconds(serverPid) : Number.NaN;
  const ops0 = await serverOps(client);
  const nodeCpu0 = nodes.map((n) => cpuSeconds(n.proc.pid));
  const bytes0 = nodes.map((n) => ioBytes(n.proc.pid));
  const t0 = performance.now();
  await during();
  const s = (performance.now() - t0) / 1000;
  // The second serverStatus is the bench's own: not counted.
  const ops = (await serverOps(client)) - ops0 - 1;
  return {
    seconds: s,
    serverCpu: serverPid ? (cpuSeconds(serverPid) - cpu0) / s : Number.NaN,
    serverOps: ops / s,
    nodeCpu: nodes.map((n, i) => (cpuSeconds(n.proc.pid) - nodeCpu0[i]!) / s),
    nodeBytes: nodes.map((n, i) => (ioBytes(n.proc.pid) - bytes0[i]!) / s),
  };
}

/** A hello app whose one host is `ssl: "required"`: a plain GET gets 301 from a node that routes it, and starts nothing. */
function probeApp(host: string): AppDoc & { _id: ObjectId } {
  return { ...helloApp(host, [{ host, ssl: 'required' }]), _id: new ObjectId(), machines: [] };
}

const addressOf = (i: number) => `127.0.0.${i + 2}`;

/** Milliseconds from now until every node answers `host` with `status` (each polled every 20 ms). */
async function untilEveryNode(nodes: ArrUnderTest[], host: string, status: number): Promise<number> {
  const t0 = performance.now();
  const deadline = Date.now() + 60_000;
  const times = await Promise.all(
    nodes.map(async (node, i) => {
      for (;;) {
        const r = await fetchVia(node.port, host, false, { timeoutMs: 5000 }, addressOf(i)).catch(
          () => undefined,
        );
        if (r?.status === status) return performance.now() - t0;
        if (Date.now() > deadline) throw new Error(`${host}: no ${status} from ${addressOf(i)} within 60 s`);
        await sleep(20);
      }
    }),
  );
  return Math.max(...times);
}

/**
 * One change of each kind, made as an operator would: through the driver (insert, update,
 * delete), or with `arr import`; the time from the write's acknowledgement (the import's exit)
 * until every node routes accordingly.
 */
async function propagation(
  ctx: Ctx,
  apps: Collection,
  url: string,
  nodes: ArrUnderTest[],
  round: number,
): Promise<Record<ChangeKind, number>> {
  const host = (what: string) => `p${round}${what}.localhost`;
  const pause = () => sleep(PAUSE_MS);
  const doc = probeApp(host('a'));
  await pause();
  await apps.insertOne(doc as Document);
  const insert = await untilEveryNode(nodes, host('a'), 301);
  await pause();
  await apps.updateOne({ _id: doc._id }, { $set: { hosts: [{ host: host('b'), ssl: 'required' }] } });
  const update = await untilEveryNode(nodes, host('b'), 301);
  await pause();
  await apps.deleteOne({ _id: doc._id });
  const del = await untilEveryNode(nodes, host('b'), 404);
  await pause();
  const file = writeAppsFile(join(ctx.tmp, `farm-import-${round}.json`), [probeApp(host('c'))]);
  const imported = await runArr(['import', file, '--mongo', url]);
  if (imported.code !== 0) throw new Error(`arr import failed: ${imported.output}`);
  const viaImport = await untilEveryNode(nodes, host('c'), 301);
  return { insert, update, delete: del, import: viaImport };
}

export async function farmSection(ctx: Ctx): Promise<void> {
  // A minute: an idle farm's one periodic read of everything (the backstop audit, once a minute)
  // falls into each window once, so that the figures include its share.
  const windowS = ctx.quick ? 6 : 60;
  const rounds = ctx.quick ? 2 : 5;
  const changes = ctx.quick ? 3 : 10;
  const s = addSection(ctx, {
    id: 'farm',
    title: `The farm at scale: ${FARM_APPS.toLocaleString('en-US')} apps, 1 to 8 idle nodes on one FerretDB`,
    text:
      `FerretDB v1.24 (SQLite) on loopback with ${FARM_APPS.toLocaleString('en-US')} app documents (insertMany), and arr ` +
      `nodes on 127.0.0.2, .3, ... with default options (--poll ${POLL_S}, --heartbeat 2), no instance running. ` +
      `Idle: a ${windowS} s window after the nodes settled; the registry server's CPU (utime + stime of its process, ` +
      "in cores), the commands it answered (its serverStatus counters), and each node's CPU and bytes read and " +
      `written (/proc/PID/io: an idle node's I/O is its registry traffic). Propagation, with ${MEASURED_NODES} nodes: ` +
      'a document inserted, updated (its host replaced) and deleted through the driver, and one written by ' +
      '`arr import`, each ' +
      `${PAUSE_MS / 1000} s after the previous reached every node; the time from the write until every node routes ` +
      `accordingly (each node asked every 20 ms), ${rounds} rounds. Per change: ${changes} updates through the ` +
      `driver, ${POLL_S + 1} s apart, with the idle rate of the same farm subtracted.`,
    header: ['point', ...NODE_COUNTS.map((n) => `${n} node${n > 1 ? 's' : ''}`)],
  });

  const mongo = await startMongo('bench_farm');
  const client = await new MongoClient(mongo.url).connect();
  const nodes: ArrUnderTest[] = [];
  const idle = new Map<number, Window>();
  const spread: Record<ChangeKind, number[]> = { insert: [], update: [], delete: [], import: [] };
  let perChange: Window | undefined;
  const load1 = () => loadavg()[0]!.toFixed(2);
  const loads = [`at start ${load1()}`];
  try {
    const apps = client.db().collection('apps');
    const docs = Array.from({ length: FARM_APPS }, (_, i) => ({
      ...helloApp(`f${i + 1}`, [{ host: `f${i + 1}.localhost`, ssl: 'allowed' }]),
      _id: new ObjectId((i + 1).toString(16).padStart(24, '0')),
      machines: [],
    }));
    for (let i = 0; i < docs.length; i += 1000) await apps.insertMany(docs.slice(i, i + 1000) as Document[]);
    s.commands.add(`# ${FARM_APPS} hello apps, one host each (f1.localhost ...), inserted with insertMany`);

    for (const n of NODE_COUNTS) {
      while (nodes.length < n) {
        const address = addressOf(nodes.length);
        ctx.log(`farm: starting node ${address}`);
        const node = await startArrWith([], {
          mongo: mongo.url,
          address,
          keepApps: true,
          extraArgs: ['--log-level', 'info'],
          ready: (a) => a.proc.waitFor('arr listening on', 180_000),
        });
        s.commands.add(node.proc.command.replace(/-p \d+ -s \d+ -r \d+-\d+/, '-p P -s S -r A-B'));
        nodes.push(node);
        // The farm's first audit has the nodes then running read everything again, once.
        if (nodes.length === 1) await node.proc.waitFor('the first of this farm', 20_000).catch(() => {});
      }
      // Two polls and beats of every node before the window: start-up is not idleness.
      await sleep(2 * POLL_S * 1000 + 1000);
      ctx.log(`farm: ${n} idle nodes for ${windowS} s`);
      idle.set(n, await measure(mongo, client, nodes, windowS));
      loads.push(`after ${n} idle node${n > 1 ? 's' : ''} ${load1()}`);
      if (n !== MEASURED_NODES) continue;

      ctx.log(`farm: propagation with ${n} nodes (${rounds} rounds)`);
      for (let r = 0; r < rounds; r++) {
        const times = await propagation(ctx, apps, mongo.url, nodes, r);
        for (const k of Object.keys(spread) as ChangeKind[]) spread[k].push(times[k]);
      }
      loads.push(`after propagation ${load1()}`);
      ctx.log(`farm: ${changes} changes with ${n} nodes`);
      const target = probeApp('cost0.localhost');
      await apps.insertOne(target as Document);
      await sleep(2 * POLL_S * 1000 + 1000);
      perChange = await measure(mongo, client, nodes, 0, async () => {
        for (let c = 1; c <= changes; c++) {
          await apps.updateOne(
            { _id: target._id },
            { $set: { hosts: [{ host: `cost${c}.localhost`, ssl: 'required' }] } },
          );
          await sleep((POLL_S + 1) * 1000);
        }
      });
    }
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
    await client.close();
    await mongo.stop();
  }

  const row = (label: string, f: (w: Window) => string) => [
    label,
    ...NODE_COUNTS.map((n) => {
      const w = idle.get(n);
      return w ? f(w) : 'n/a';
    }),
  ];
  const max = (xs: number[]) => Math.max(...xs);
  s.rows.push(
    row('idle: registry server CPU (share of one core)', (w) => pct(w.serverCpu)),
    row('idle: registry commands/s (all nodes)', (w) => fmt.num(w.serverOps)),
    row('idle: registry commands/s per node', (w) => fmt.num(w.serverOps / w.nodeCpu.length)),
    row('idle: CPU of the busiest node', (w) => pct(max(w.nodeCpu))),
    row(
      'idle: bytes/s of a node, median (the busiest: the holder of the chores)',
      (w) => `${fmt.bps(med(w.nodeBytes, (x) => x))} (${fmt.bps(max(w.nodeBytes))})`,
    ),
  );
  const idle4 = idle.get(MEASURED_NODES);
  const direct = [...spread.insert, ...spread.update, ...spread.delete].sort((a, b) => a - b);
  if (direct.length > 0)
    s.notes.push(
      `Propagation with ${MEASURED_NODES} nodes, all ${direct.length} changes through the driver: ` +
        `median ${fmt.ms(med(direct, (x) => x))}, 90th percentile ${fmt.ms(direct[Math.ceil(direct.length * 0.9) - 1]!)}, ` +
        `max ${fmt.ms(max(direct))}.`,
    );
  for (const k of Object.keys(spread) as ChangeKind[]) {
    const xs = spread[k];
    if (xs.length === 0) continue;
    s.notes.push(
      `Propagation with ${MEASURED_NODES} nodes, ${k === 'import' ? 'written by `arr import`' : `${k} through the driver`}: ` +
        `median ${fmt.ms(med(xs, (x) => x))}, max ${fmt.ms(max(xs))} (${xs.map((x) => fmt.ms(x)).join(', ')}).`,
    );
  }
  if (perChange && idle4) {
    const extra = (busy: number, quiet: number) =>
      Math.max(0, ((busy - quiet) * perChange!.seconds) / changes);
    // Each node's bytes beyond its own idle rate: the node that audits reads every document.
    const bytes = perChange.nodeBytes.map((b, i) => extra(b, idle4.nodeBytes[i] ?? 0));
    s.notes.push(
      `Per change through the driver (${MEASURED_NODES} nodes, idle rate subtracted): registry server CPU ` +
        `${fmt.ms(extra(perChange.serverCpu, idle4.serverCpu) * 1000)}, ` +
        `${fmt.num(extra(perChange.serverOps, idle4.serverOps))} commands; bytes: ` +
        `${fmt.bytes(max(bytes))} for the busiest node, ${fmt.bytes(med(bytes, (x) => x))} for the median one.`,
    );
  }
  s.notes.push(`Load average (1 min) of the machine during this section: ${loads.join(', ')}.`, BEFORE);
  if (idle4) {
    ctx.targets.push(
      {
        name: `farm: registry server CPU, ${MEASURED_NODES} idle nodes, ${FARM_APPS.toLocaleString('en-US')} apps`,
        measured: pct(idle4.serverCpu),
        limit: '<= 5% of a core',
        pass: idle4.serverCpu <= 0.05,
      },
      {
        name: `farm: CPU of each idle node (${MEASURED_NODES} nodes, ${FARM_APPS.toLocaleString('en-US')} apps)`,
        measured: pct(max(idle4.nodeCpu)),
        limit: '<= 2% of a core',
        pass: max(idle4.nodeCpu) <= 0.02,
      },
    );
  }
  for (const k of ['insert', 'update', 'delete', 'import'] as ChangeKind[]) {
    const xs = spread[k];
    if (xs.length === 0) continue;
    ctx.targets.push({
      name: `farm: a change (${k === 'import' ? '`arr import`' : `${k} through the driver`}) reaches all ${MEASURED_NODES} nodes (worst of ${xs.length})`,
      measured: fmt.ms(max(xs)),
      limit: '<= 3000 ms',
      pass: max(xs) <= 3000,
    });
  }
}
