import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Running } from '../../harness/proc.js';
import { runClient } from '../lib/clients.js';
import {
  addSection,
  alternate,
  CERT,
  type Ctx,
  diffOf,
  KEY,
  med,
  ratioOf,
  writeApps,
} from '../lib/context.js';
import { cpuSeconds, familyOf, rssOf } from '../lib/cpu.js';
import { startHelloFloor } from '../lib/floors.js';
import { get } from '../lib/net.js';
import type { Target } from '../lib/report.js';
import { fmt } from '../lib/stats.js';
import {
  ACTIVATION_RUNS,
  COLUMNS,
  startArrWorkers,
  WORKER_TITLES,
  type WorkersStage,
} from '../lib/workers.js';
import { CONNECTIONS, FIXED_RATE, openLoopFlags, signed } from './http.js';
import { MANY } from './registry.js';

interface RateResult {
  p50ms: number;
  p99ms: number;
  errors: number;
  generator: { loopDelayP99ms: number; loopDelayMaxms: number; gcMs: number; gcMaxMs: number };
  /** arr's processes over the run (bench/probes/loop.ts), when it was arr. */
  server?: Probe;
  /** CPU microseconds per request sent (warm-up included) of every process of the server, when it is arr or nginx. */
  cpuUs?: number;
}

interface Probe {
  loopDelayP99ms: number;
  loopDelayMaxms: number;
  gcCount: number;
  gcMs: number;
  gcMaxMs: number;
}

/** Reads arr's loop probe: SIGUSR2 to every process, then the line each writes; merged (worst, sums). */
async function probe(proc: Running, pids: number[]): Promise<Probe> {
  const before = proc.output().length;
  for (const pid of pids) process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + 5_000;
  let seen: (Probe & { pid: number })[] = [];
  while (Date.now() < deadline) {
    seen = [
      ...proc
        .output()
        .slice(before)
        .matchAll(/^loop-probe (\{.*\})$/gm),
    ].map((m) => JSON.parse(m[1]!));
    if (pids.every((p) => seen.some((x) => x.pid === p))) break;
    await sleep(20);
  }
  return {
    loopDelayP99ms: Math.max(...seen.map((x) => x.loopDelayP99ms)),
    loopDelayMaxms: Math.max(...seen.map((x) => x.loopDelayMaxms)),
    gcCount: seen.reduce((a, x) => a + x.gcCount, 0),
    gcMs: seen.reduce((a, x) => a + x.gcMs, 0),
    gcMaxMs: Math.max(...seen.map((x) => x.gcMaxMs)),
  };
}

/**
 * The open-loop latency point with 1 and 2 workers, the load generator's own stalls, arr's
 * event-loop delay and GC pauses during the runs; then activation and the RSS of 10,000 apps.
 */
export async function openLoopAndCosts(ctx: Ctx, st: WorkersStage, targets: Target[]): Promise<void> {
  const s = addSection(ctx, {
    id: 'workers-latency',
    title: `Workers: latency at ${FIXED_RATE.toLocaleString('en-US')} req/s (open loop), activation, memory`,
    text:
      `bench/clients/rate.ts sends ${FIXED_RATE.toLocaleString('en-US')} req/s in all on ${CONNECTIONS} kept-alive connections ` +
      `on a fixed schedule and times each request from when it was due; ${ctx.seconds} s per run after 1 s of ` +
      `warm-up, median of ${ctx.reps} runs, alternating. "bare node" is a trivial node:http server sending the ` +
      "same bytes (bench/floors/hello.ts): the generator's latency against a Node.js server with no proxy " +
      'work. The generator reports its own event-loop delay (p99, a 5 ms sampling timer) and GC pauses; ' +
      'arr runs with bench/probes/loop.ts preloaded and reports the same for its processes over each run ' +
      '(the worst process; GC summed). Activation: a GET to a cold app through arr, a different app each ' +
      'time, arr 0, 1 and 2 in turn. RSS: every process of arr (not its app instances) with ' +
      `${MANY.toLocaleString('en-US')} apps, 2 s after it listens.`,
    header: ['point', 'direct', 'bare node', ...COLUMNS],
  });
  const floor = await startHelloFloor(st.backend.port);
  s.commands.add(floor.command);
  try {
    const ports: Record<string, number> = { direct: st.backend.port, 'bare node': floor.port };
    for (const [n, v] of st.servers) ports[n] = v.port;
    const names = Object.keys(ports);
    ctx.log(`workers: open loop at ${FIXED_RATE} req/s`);
    const rate = await alternate(ctx, names, async (n) => {
      const arr = st.arrs.get(n);
      const pids = arr ? Object.values(familyOf(arr.proc.pid, WORKER_TITLES)) : [];
      if (arr) await probe(arr.proc, pids);
      const server = st.servers.get(n);
      const family = server ? Object.values(familyOf(server.pid, WORKER_TITLES)) : [];
      const cpu = () => family.reduce((a, pid) => a + cpuSeconds(pid), 0);
      const cpuBefore = cpu();
      const { result, command } = await runClient<RateResult>('rate', openLoopFlags(ports[n]!, ctx.seconds));
      if (server) result.cpuUs = ((cpu() - cpuBefore) * 1e6) / (FIXED_RATE * (ctx.seconds + 1));
      s.commands.add(command);
      if (arr) result.server = await probe(arr.proc, pids);
      return result;
    });
    const cols = ['direct', 'bare node', ...COLUMNS];
    const row = (label: string, f: (r: RateResult) => number, show: (x: number) => string = fmt.ms) => [
      label,
      ...cols.map((n) => (rate.has(n) ? show(med(rate.get(n), f)) : 'n/a')),
    ];
    const added = (n: string) =>
      rate.has(n) ? signed(diffOf(rate.get(n), rate.get('direct'), (r) => r.p99ms)) : 'n/a';
    s.rows.push(
      row('open loop: p50 latency', (r) => r.p50ms),
      row('open loop: p99 latency', (r) => r.p99ms),
      ['open loop: p99 added (vs direct)', '', ...cols.slice(1).map(added)],
      row(
        'open loop: CPU per request (all processes)',
        (r) => r.cpuUs ?? Number.NaN,
        (x) => (Number.isFinite(x) ? `${fmt.num(x)} µs` : ''),
      ),
      row('generator: event-loop delay p99', (r) => r.generator.loopDelayP99ms),
      row('generator: event-loop delay max', (r) => r.generator.loopDelayMaxms),
      row('generator: longest GC pause', (r) => r.generator.gcMaxMs),
      row('generator: GC time per run', (r) => r.generator.gcMs),
      rowOf(rate, cols, 'arr: event-loop delay p99 (worst process)', (p) => p.loopDelayP99ms),
      rowOf(rate, cols, 'arr: event-loop delay max', (p) => p.loopDelayMaxms),
      rowOf(rate, cols, 'arr: longest GC pause', (p) => p.gcMaxMs),
      rowOf(rate, cols, 'arr: GC time per run (all processes)', (p) => p.gcMs),
    );
    for (const [n, rs] of rate) {
      const errors = rs.reduce((a, r) => a + r.errors, 0);
      if (errors > 0) s.notes.push(`open loop, ${n}: ${errors} connection errors.`);
    }
    // Below saturation the cores are not contended: the cost of a request itself, 2 workers against 1.
    const cpuRatio = ratioOf(rate.get('arr 2'), rate.get('arr 1'), (r) => r.cpuUs ?? Number.NaN);
    const nginxCpuRatio = ratioOf(rate.get('nginx 2'), rate.get('nginx 1'), (r) => r.cpuUs ?? Number.NaN);
    const floorCpuRatio = ratioOf(rate.get('floor 2'), rate.get('floor 1'), (r) => r.cpuUs ?? Number.NaN);
    s.notes.push(
      `CPU per request at ${FIXED_RATE} req/s, 2 workers / 1: arr ${fmt.ratio(cpuRatio)}, nginx ${fmt.ratio(nginxCpuRatio)}, the Node.js proxy floor ${fmt.ratio(floorCpuRatio)}.`,
    );
    targets.push({
      name: `workers: arr's CPU per request at ${FIXED_RATE.toLocaleString('en-US')} req/s (cores not saturated), 2 workers / 1`,
      measured: fmt.ratio(cpuRatio),
      limit: '<= 1.1',
      pass: Number.isFinite(cpuRatio) ? cpuRatio <= 1.1 : undefined,
      floor: fmt.ratio(floorCpuRatio),
    });
    const p99 = (n: string) => diffOf(rate.get(n), rate.get('direct'), (r) => r.p99ms);
    s.notes.push(
      `p99 added at ${FIXED_RATE} req/s (vs direct, median of the per-run differences): ${cols
        .slice(1)
        .map((n) => `${n} ${signed(p99(n))}`)
        .join(', ')}.`,
    );
  } finally {
    await floor.proc.stop();
  }
  await activationAndMemory(ctx, st, s, targets);
}

function rowOf(
  rate: Map<string, RateResult[]>,
  cols: string[],
  label: string,
  f: (p: Probe) => number,
): string[] {
  return [
    label,
    ...cols.map((n) =>
      n.startsWith('arr') && rate.has(n)
        ? fmt.ms(med(rate.get(n), (r) => (r.server ? f(r.server) : Number.NaN)))
        : '',
    ),
  ];
}

async function activationAndMemory(
  ctx: Ctx,
  st: WorkersStage,
  s: ReturnType<typeof addSection>,
  targets: Target[],
): Promise<void> {
  const arrNames = [...st.arrs.keys()];
  ctx.log('workers: activation');
  const runs = ctx.quick ? 3 : ACTIVATION_RUNS;
  const times = new Map<string, number[]>(arrNames.map((n) => [n, []]));
  // The time outside the instance's own start (arr logs that: "... is ready on port P (X ms)"),
  // which varies by more than the difference sought from one start of Node.js to the next.
  const around = new Map<string, number[]>(arrNames.map((n) => [n, []]));
  let k = 0;
  for (let i = 0; i < runs; i++)
    for (const n of i % 2 ? [...arrNames].reverse() : arrNames) {
      k++;
      const arr = st.arrs.get(n)!;
      const r = await get(arr.port, `wcold${k}.localhost`);
      if (r.status !== 200) throw new Error(`wcold${k} through ${n}: ${r.status} ${r.body}`);
      times.get(n)!.push(r.ms);
      const ready = new RegExp(`wcold${k}\\.localhost is ready on port \\d+ \\((\\d+) ms\\)`).exec(
        arr.proc.output(),
      );
      if (ready) around.get(n)!.push(r.ms - Number(ready[1]));
    }
  s.commands.add(
    `# GET / with Host: wcoldN.localhost through arr 0, 1 and 2 in turn, a new app each (bench/lib/net.ts get)`,
  );
  const medOf = (n: string) => med(times.get(n), (x) => x);
  const arrCell = (n: string, show: (n: string) => string) => (st.arrs.has(n) ? show(n) : 'n/a');
  s.rows.push([
    'activation: first request to a cold app (median)',
    '',
    '',
    ...['arr 0', 'arr 1', 'arr 2'].map((n) => arrCell(n, (x) => fmt.ms(medOf(x)))),
    ...COLUMNS.slice(3).map(() => ''),
  ]);
  const aroundOf = (n: string) => med(around.get(n), (x) => x);
  s.rows.push([
    'activation: the same, less the instance start arr logged (median)',
    '',
    '',
    ...['arr 0', 'arr 1', 'arr 2'].map((n) => arrCell(n, (x) => fmt.ms(aroundOf(x)))),
    ...COLUMNS.slice(3).map(() => ''),
  ]);
  s.notes.push(
    `Activation, the first request less the instance's start: arr 2 ${signed(aroundOf('arr 2') - aroundOf('arr 0'))} against one process; the whole first request ${signed(medOf('arr 2') - medOf('arr 0'))} (the instance's start alone varies by more).`,
  );
  const overhead = aroundOf('arr 2') - aroundOf('arr 0');
  targets.push({
    name: "workers: activation with 2 workers minus with one process (less the instance's start)",
    measured: signed(overhead),
    limit: '<= 2 ms',
    pass: Number.isFinite(overhead) ? overhead <= 2 : undefined,
  });

  ctx.log(`workers: RSS with ${MANY} apps`);
  const many = writeApps(
    join(ctx.tmp, `apps-workers-${MANY}.json`),
    Array.from({ length: MANY }, (_, i) => ({
      name: `m${i + 1}`,
      hosts: [{ host: `m${i + 1}.localhost`, cert: CERT, key: KEY }],
    })),
  );
  const rss: Record<string, { total: number; each: number[] }> = {};
  const sizes: [string, number | undefined][] = st.hasWorkers
    ? [
        ['arr 0', 0],
        ['arr 1', 1],
        ['arr 2', 2],
      ]
    : [['arr 0', undefined]];
  for (const [n, w] of sizes) {
    const arr = await startArrWorkers(many, w);
    s.commands.add(arr.proc.command);
    try {
      await sleep(2000);
      const each = Object.values(familyOf(arr.proc.pid, WORKER_TITLES)).map(rssOf);
      rss[n] = { total: each.reduce((a, b) => a + b, 0), each };
    } finally {
      await arr.stop();
    }
  }
  const mb = (x: number) => fmt.bytes(x);
  const shown = (n: string) => {
    const r = rss[n];
    return r ? `${mb(r.total)}${r.each.length > 1 ? ` (${r.each.map(mb).join(' + ')})` : ''}` : 'n/a';
  };
  s.rows.push([
    `RSS with ${MANY.toLocaleString('en-US')} apps (primary + workers)`,
    '',
    '',
    ...['arr 0', 'arr 1', 'arr 2'].map(shown),
    ...COLUMNS.slice(3).map(() => ''),
  ]);
  targets.push({
    name: `workers: RSS of arr with 2 workers and ${MANY.toLocaleString('en-US')} apps (reported)`,
    measured: rss['arr 2'] ? mb(rss['arr 2'].total) : 'n/a',
    limit: 'reported',
    pass: undefined,
  });
}
