import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ArrUnderTest } from '../../harness/arr.js';
import { type Running, repoRoot, startNlb } from '../../harness/proc.js';
import { addSection, type Ctx, HOST, med, ratioOf, TLS_HOST, writeApps } from '../lib/context.js';
import { busierShareOf, familyOf, totalCpuOf, wrkCpu } from '../lib/cpu.js';
import { startProxyFloor } from '../lib/floors.js';
import { activate, freePorts, LOOPBACK, waitForListen } from '../lib/net.js';
import { type Nginx, startNginx } from '../lib/peers.js';
import type { Target } from '../lib/report.js';
import { alternateWrk } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import {
  ACTIVATION_RUNS,
  arrHasWorkers,
  COLUMNS,
  startArrWorkers,
  untilWorkers,
  WORKER_TITLES,
  type WorkersStage,
} from '../lib/workers.js';
import { type WrkResult, wrk } from '../lib/wrk.js';
import { CONNECTIONS, noteErrors } from './http.js';
import { openLoopAndCosts } from './workers-latency.js';

async function setUp(ctx: Ctx): Promise<WorkersStage> {
  const runs = ctx.quick ? 3 : ACTIVATION_RUNS;
  const appsFile = writeApps(join(ctx.tmp, 'apps-workers.json'), [
    { name: 'hello', hosts: [{ host: HOST }, { host: TLS_HOST }] },
    // Cold apps for the activation point, one per run and arr.
    ...Array.from({ length: 3 * runs }, (_, i) => ({
      name: `wcold${i + 1}`,
      hosts: [{ host: `wcold${i + 1}.localhost` }],
    })),
  ]);
  const hasWorkers = arrHasWorkers();
  const st: WorkersStage = {
    backend: { port: 0, pid: 0 },
    appsFile,
    servers: new Map(),
    arrs: new Map(),
    hasWorkers,
    procs: [],
    commands: [],
  };
  // arr 0: one process (--workers 0, or a build without the option); its instance serves nginx too.
  const arr0 = await startArrWorkers(appsFile, hasWorkers ? 0 : undefined);
  st.arrs.set('arr 0', arr0);
  st.backend = await activate(arr0.port, HOST);
  st.servers.set('arr 0', { port: arr0.port, sslport: arr0.sslport, pid: arr0.proc.pid });
  if (hasWorkers)
    for (const n of [1, 2]) {
      const arr = await startArrWorkers(appsFile, n);
      st.arrs.set(`arr ${n}`, arr);
      await activate(arr.port, HOST);
      st.servers.set(`arr ${n}`, { port: arr.port, sslport: arr.sslport, pid: arr.proc.pid });
    }
  for (const n of [1, 2]) {
    const [port, sslport, h2port] = await freePorts(3);
    const nginx: Nginx = await startNginx(join(ctx.tmp, `nginx-${n}w`), {
      port: port!,
      sslport: sslport!,
      h2port: h2port!,
      backend: st.backend.port,
      cert: join(repoRoot, 'certs/default-cert.pem'),
      key: join(repoRoot, 'certs/default-key.pem'),
      workers: n,
    });
    st.procs.push(nginx.proc);
    await untilWorkers(nginx.proc.pid, n);
    st.servers.set(`nginx ${n}`, { port: port!, sslport: sslport!, pid: nginx.proc.pid });
  }
  for (const n of [1, 2]) {
    const floor = await startProxyFloor(st.backend.port, n);
    st.procs.push(floor.proc);
    st.commands.push(floor.command);
    await untilWorkers(floor.proc.pid, n);
    st.servers.set(`floor ${n}`, { port: floor.port, sslport: floor.sslport!, pid: floor.proc.pid });
  }
  return st;
}

export async function workersSection(ctx: Ctx): Promise<void> {
  const st = await setUp(ctx);
  try {
    const targets: Target[] = [];
    await scaling(ctx, st, targets);
    await scheduling(ctx, st);
    await openLoopAndCosts(ctx, st, targets);
    ctx.targets.push(...targets);
  } finally {
    await Promise.all([...st.procs.map((p) => p.stop()), ...[...st.arrs.values()].map((a) => a.stop())]);
  }
}

/** One wrk run against a server, with the CPU of every process of it (main + workers). */
function run(ctx: Ctx, url: string, host: string, pid: number, close: boolean): Promise<WrkResult> {
  return wrkCpu(
    { url, host, connections: CONNECTIONS, seconds: ctx.seconds, close },
    familyOf(pid, WORKER_TITLES),
  );
}

const POINTS = [
  { label: 'HTTP keep-alive', tls: false, close: false },
  { label: 'HTTP new connection per request', tls: false, close: true },
  { label: 'HTTPS keep-alive', tls: true, close: false },
  { label: 'HTTPS new connection per request', tls: true, close: true },
] as const;

async function scaling(ctx: Ctx, st: WorkersStage, targets: Target[]): Promise<void> {
  const s = addSection(ctx, {
    id: 'workers',
    title: 'Workers: arr, nginx and the Node.js floor with 1 and 2 workers',
    text:
      'The hello app through arr `--workers 0` (one process), `--workers 1` (a primary and one worker) and ' +
      '`--workers 2`, nginx `worker_processes 1` and `2`, and the Node.js proxy floor (bench/floors/proxy.ts) ' +
      `in 1 and 2 node:cluster workers (bench/floors/cluster.ts). wrk, 1 thread, ${CONNECTIONS} connections, ${ctx.seconds} s per run, median of ${ctx.reps} runs, ` +
      'contenders alternating. CPU per request counts every process of a server: the primary (or master) ' +
      'and its workers. The machine has 2 cores that the load generator and the app share: a second ' +
      "worker cannot double anything here, so the scaling is stated against nginx's in the same run " +
      '("arr 2/1 / nginx 2/1", per repetition, for requests/s and CPU per request alike; the CPU per request ' +
      'of the cores not saturated is the open-loop point below).' +
      (st.hasWorkers
        ? ''
        : ' This build of arr has no --workers: only arr 0, its single process, is measured.'),
    header: [
      'point',
      ...COLUMNS,
      'arr 2/1',
      'nginx 2/1',
      'arr 2/1 / nginx 2/1',
      'floor 2/1 / nginx 2/1',
      'arr 2/0',
    ],
  });
  for (const c of st.commands) s.commands.add(c);
  const names = [...st.servers.keys()];
  const rps = (r: WrkResult) => r.rps;
  for (const p of POINTS) {
    ctx.log(`workers: ${p.label}`);
    const url = (n: string) => {
      const srv = st.servers.get(n)!;
      return p.tls ? `https://127.0.0.1:${srv.sslport}/` : `http://127.0.0.1:${srv.port}/`;
    };
    const host = p.tls ? TLS_HOST : HOST;
    for (const n of names) await wrk({ url: url(n), host, connections: CONNECTIONS, seconds: 1 });
    const m = await alternateWrk(
      ctx,
      names,
      (n) => run(ctx, url(n), host, st.servers.get(n)!.pid, p.close),
      s,
    );
    noteErrors(s.notes, p.label, m);
    const arrScale = ratioOf(m.get('arr 2'), m.get('arr 1'), rps);
    const nginxScale = ratioOf(m.get('nginx 2'), m.get('nginx 1'), rps);
    // Per repetition: a server's 2/1 over nginx's 2/1, each pair measured in the same repetition.
    const overNginx = (name: string, f: (r: WrkResult) => number) =>
      ratioOf(
        m.get(`${name} 2`)?.map((r, i) => ({ v: f(r) / f(m.get(`${name} 1`)![i]!) })),
        m.get('nginx 2')?.map((r, i) => ({ v: f(r) / f(m.get('nginx 1')![i]!) })),
        (x) => x.v,
      );
    const relative = overNginx('arr', rps);
    const floorRelative = overNginx('floor', rps);
    const cell = (n: string, f: (r: WrkResult) => number, show: (x: number) => string) =>
      m.has(n) ? show(med(m.get(n), f)) : 'n/a';
    s.rows.push([
      `${p.label}: requests/s`,
      ...COLUMNS.map((n) => cell(n, rps, fmt.rps)),
      fmt.ratio(arrScale),
      fmt.ratio(nginxScale),
      fmt.ratio(relative),
      fmt.ratio(floorRelative),
      fmt.ratio(ratioOf(m.get('arr 2'), m.get('arr 0'), rps)),
    ]);
    const us = (x: number) => `${fmt.num(x)} µs`;
    const cpuRatio = ratioOf(m.get('arr 2'), m.get('arr 1'), totalCpuOf);
    // Saturated, two workers, the load generator and the app contend for 2 cores, which costs
    // nginx too: arr's ratio is stated against nginx's, per repetition as for throughput. The
    // cost of a request itself, uncontended, is the open-loop point (workers-latency.ts).
    const cpuRelative = overNginx('arr', totalCpuOf);
    const floorCpuRelative = overNginx('floor', totalCpuOf);
    s.rows.push([
      `${p.label}: CPU per request (all processes)`,
      ...COLUMNS.map((n) => cell(n, totalCpuOf, us)),
      fmt.ratio(cpuRatio),
      fmt.ratio(ratioOf(m.get('nginx 2'), m.get('nginx 1'), totalCpuOf)),
      fmt.ratio(cpuRelative),
      fmt.ratio(floorCpuRelative),
      fmt.ratio(ratioOf(m.get('arr 2'), m.get('arr 0'), totalCpuOf)),
    ]);
    targets.push(
      {
        name: `workers, ${p.label}: arr's throughput 2/1 over nginx's 2/1`,
        measured: fmt.ratio(relative),
        limit: '>= 0.9',
        pass: Number.isFinite(relative) ? relative >= 0.9 : undefined,
        floor: fmt.ratio(floorRelative),
      },
      {
        name: `workers, ${p.label}: arr's CPU per request 2/1 over nginx's 2/1 (saturated; arr's own 2/1: ${fmt.ratio(cpuRatio)})`,
        measured: fmt.ratio(cpuRelative),
        limit: '<= 1.1',
        pass: Number.isFinite(cpuRelative) ? cpuRelative <= 1.1 : undefined,
        floor: fmt.ratio(floorCpuRelative),
      },
    );
  }
}

/**
 * node:cluster's two ways of spreading a shared port's connections, for nlb and arr with 2
 * workers: SCHED_RR (the primary accepts, hands each connection to the next worker) and
 * SCHED_NONE (each worker accepts; the kernel picks). NODE_CLUSTER_SCHED_POLICY selects it.
 */
async function scheduling(ctx: Ctx, st: WorkersStage): Promise<void> {
  const s = addSection(ctx, {
    id: 'workers-scheduling',
    title: 'Workers: how connections are spread (SCHED_RR vs SCHED_NONE)',
    text:
      "nlb and arr with 2 workers, node:cluster's round robin (SCHED_RR: the primary accepts every " +
      'connection and passes it to the next worker over its IPC pipe) against a shared socket ' +
      '(SCHED_NONE: both workers accept, the kernel picks), set with NODE_CLUSTER_SCHED_POLICY; nlb with ' +
      `one process for reference. wrk, 1 thread, ${CONNECTIONS} connections, HTTP, ${ctx.seconds} s per run, ` +
      `median of ${ctx.reps} runs, alternating. CPU per request: primary and workers. Spread: the busier ` +
      "worker's share of the workers' CPU over a run (0.50: even; 1.00: one worker did everything).",
    header: [
      'point',
      'contender',
      'requests/s',
      'CPU per request',
      'busier worker',
      'vs SCHED_RR: requests/s',
      'vs SCHED_RR: CPU',
    ],
  });
  const [lp1, lpRr, lpNone] = await freePorts(3);
  const nlbs: Record<string, { port: number; proc: Running }> = {};
  const started: Running[] = [];
  const extraArrs: ArrUnderTest[] = [];
  try {
    for (const [name, port, workers, policy] of [
      ['nlb 1', lp1!, 1, undefined],
      ['nlb 2 SCHED_RR', lpRr!, 2, 'rr'],
      ['nlb 2 SCHED_NONE', lpNone!, 2, 'none'],
    ] as const) {
      const file = join(ctx.tmp, `nlb-${port}.json`);
      writeFileSync(
        file,
        JSON.stringify([{ port, host: LOOPBACK, backends: [{ host: LOOPBACK, port: st.backend.port }] }]),
      );
      const proc = startNlb(['--config', file, '--log-level', 'warn', '--workers', String(workers)], {
        env: policy ? { NODE_CLUSTER_SCHED_POLICY: policy } : {},
      });
      started.push(proc);
      await waitForListen(proc, port, 60_000);
      await untilWorkers(proc.pid, workers > 1 ? workers : 0);
      s.commands.add(`${policy ? `NODE_CLUSTER_SCHED_POLICY=${policy} ` : ''}${proc.command}`);
      nlbs[name] = { port, proc };
    }
    const servers: Record<string, { port: number; pid: number }> = {};
    for (const [n, v] of Object.entries(nlbs)) servers[n] = { port: v.port, pid: v.proc.pid };
    if (st.hasWorkers)
      for (const policy of ['rr', 'none'] as const) {
        const arr = await startArrWorkers(st.appsFile, 2, { NODE_CLUSTER_SCHED_POLICY: policy });
        extraArrs.push(arr);
        await activate(arr.port, HOST);
        s.commands.add(`NODE_CLUSTER_SCHED_POLICY=${policy} ${arr.proc.command}`);
        servers[`arr 2 SCHED_${policy.toUpperCase()}`] = { port: arr.port, pid: arr.proc.pid };
      }
    const names = Object.keys(servers);
    for (const close of [false, true]) {
      const label = close ? 'new connection per request' : 'keep-alive';
      ctx.log(`workers: scheduling, ${label}`);
      const url = (n: string) => `http://127.0.0.1:${servers[n]!.port}/`;
      for (const n of names) await wrk({ url: url(n), host: HOST, connections: CONNECTIONS, seconds: 1 });
      const m = await alternateWrk(ctx, names, (n) => run(ctx, url(n), HOST, servers[n]!.pid, close), s);
      noteErrors(s.notes, `scheduling, ${label}`, m);
      for (const n of names) {
        const rr = n.replace('SCHED_NONE', 'SCHED_RR');
        const vs = n.includes('SCHED_NONE');
        s.rows.push([
          label,
          n,
          fmt.rps(med(m.get(n), (r) => r.rps)),
          `${fmt.num(med(m.get(n), totalCpuOf))} µs`,
          n.includes(' 2 ') ? fmt.ratio(med(m.get(n), busierShareOf)) : '',
          vs ? fmt.ratio(ratioOf(m.get(n), m.get(rr), (r) => r.rps)) : '',
          vs ? fmt.ratio(ratioOf(m.get(n), m.get(rr), totalCpuOf)) : '',
        ]);
      }
    }
  } finally {
    await Promise.all([...started.map((p) => p.stop()), ...extraArrs.map((a) => a.stop())]);
  }
}
