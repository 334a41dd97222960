import { flags } from '../lib/clients.js';
import { addSection, type Ctx, diffOf, HOST, med, ratioOf } from '../lib/context.js';
import { cpuOf } from '../lib/cpu.js';
import { type Floor, withHelloFloor } from '../lib/floors.js';
import { msTarget, ratioTarget } from '../lib/report.js';
import { alternateClient, warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import type { WrkResult } from '../lib/wrk.js';
import type { Stage } from './stage.js';

/** Connections of the keep-alive and latency points (the targets are stated at 50). */
export const CONNECTIONS = 50;
/** The request rate of the open-loop latency point: far below every contender's capacity. */
export const FIXED_RATE = 2000;

/** bench/clients/rate.ts's arguments for the open-loop point against `port`. */
export function openLoopFlags(port: number, seconds: number): string[] {
  return flags({ port, host: HOST, connections: CONNECTIONS, rate: FIXED_RATE, seconds, warmup: 1 });
}

/** The floor of a Node.js reverse proxy (bench/floors/proxy.ts), as a contender's name. */
export const NODE_PROXY = 'node proxy';

export const signed = (d: number) =>
  Number.isFinite(d) ? `${d < 0 ? '-' : '+'}${fmt.ms(Math.abs(d))}` : 'n/a';

interface RateResult {
  p50ms: number;
  p99ms: number;
  errors: number;
  completed: number;
}

/** Notes the wrk errors (socket errors, non-2xx answers) of each contender, if any. */
export function noteErrors(notes: string[], label: string, results: Map<string, WrkResult[]>): void {
  for (const [name, rs] of results) {
    const errors = rs.reduce((a, r) => a + r.errors, 0);
    if (errors > 0)
      notes.push(`${label}, ${name}: ${errors} socket errors or non-2xx answers over ${rs.length} runs.`);
  }
}

export async function httpSection(ctx: Ctx, st: Stage): Promise<void> {
  // The hello sample does a little more than a bare server (it parses the URL and query, builds
  // its answer per request, handles upgrades): the bare node:http floor is a column of its own.
  await withHelloFloor(st.backend.port, (floor) => measure(ctx, st, floor));
}

async function measure(ctx: Ctx, st: Stage, floor: Floor): Promise<void> {
  const s = addSection(ctx, {
    id: 'http',
    title: 'HTTP: direct vs arr vs nginx',
    text:
      `One app instance (the hello sample) reached directly, through arr, and through nginx (1 worker, ` +
      'upstream keep-alive); "bare" is a bare node:http server sending the same answer bytes ' +
      '(bench/floors/hello.ts), the floor of a Node.js server on this machine (its CPU is in the ' +
      '"app process" rows); "node proxy" is the floor of a Node.js reverse proxy (bench/floors/proxy.ts: ' +
      "node:http and undici's raw dispatch as arr has them, with no routing, policy, limits or " +
      `bookkeeping). wrk, 1 thread, ${CONNECTIONS} connections, ${ctx.seconds} s per run; ` +
      `median of ${ctx.reps} runs, contenders alternating. Ratios and differences are the median of ` +
      'the per-run values (each pair measured back to back). The open-loop point sends ' +
      `${FIXED_RATE.toLocaleString('en-US')} req/s in all on ${CONNECTIONS} kept-alive connections on a fixed ` +
      'schedule (bench/clients/rate.ts) and times each request from when it was due.',
    header: [
      'point',
      'direct',
      'bare',
      'arr',
      NODE_PROXY,
      'nginx',
      'arr vs direct',
      'arr vs nginx',
      'arr vs bare',
      `${NODE_PROXY} vs direct`,
      `${NODE_PROXY} vs nginx`,
    ],
  });
  s.commands.add(floor.command);
  s.commands.add(st.nodeProxy.command);
  const ports: Record<string, number> = {
    direct: st.backend.port,
    bare: floor.port,
    arr: st.arr.port,
    [NODE_PROXY]: st.nodeProxy.port,
    nginx: st.nginx.port,
  };
  const names = ['direct', 'bare', 'arr', NODE_PROXY, 'nginx'];
  const pids: Record<string, Record<string, number>> = {
    direct: { app: st.backend.pid },
    bare: { app: floor.proc.pid },
    arr: { proxy: st.arr.proc.pid, app: st.backend.pid },
    [NODE_PROXY]: { proxy: st.nodeProxy.proc.pid, app: st.backend.pid },
    nginx: { proxy: st.nginxWorker, app: st.backend.pid },
  };
  const target = {
    names,
    url: (n: string) => `http://127.0.0.1:${ports[n]}/`,
    host: HOST,
    connections: CONNECTIONS,
    pids: (n: string) => pids[n]!,
  };
  await warmUp(target);
  ctx.log('http: keep-alive');
  const ka = await wrkPoint(ctx, s, target);
  ctx.log('http: a new connection per request');
  const nc = await wrkPoint(ctx, s, target, true);
  ctx.log(`http: open loop at ${FIXED_RATE} req/s`);
  const rate = await alternateClient<RateResult>(ctx, ['direct', 'arr', 'nginx'], s, (n) =>
    openLoopFlags(ports[n]!, ctx.seconds),
  );

  const rps = (r: WrkResult) => r.rps;
  const rpsRow = (label: string, m: Map<string, WrkResult[]>) => [
    label,
    ...names.map((n) => fmt.rps(med(m.get(n), rps))),
    fmt.ratio(ratioOf(m.get('arr'), m.get('direct'), rps)),
    fmt.ratio(ratioOf(m.get('arr'), m.get('nginx'), rps)),
    fmt.ratio(ratioOf(m.get('arr'), m.get('bare'), rps)),
    fmt.ratio(ratioOf(m.get(NODE_PROXY), m.get('direct'), rps)),
    fmt.ratio(ratioOf(m.get(NODE_PROXY), m.get('nginx'), rps)),
  ];
  const latRow = <T>(label: string, m: Map<string, T[]>, f: (r: T) => number) => [
    label,
    ...names.map((n) => (m.has(n) ? fmt.ms(med(m.get(n), f)) : '')),
    signed(diffOf(m.get('arr'), m.get('direct'), f)),
    signed(diffOf(m.get('arr'), m.get('nginx'), f)),
    m.has('bare') ? signed(diffOf(m.get('arr'), m.get('bare'), f)) : '',
    m.has(NODE_PROXY) ? signed(diffOf(m.get(NODE_PROXY), m.get('direct'), f)) : '',
    m.has(NODE_PROXY) ? signed(diffOf(m.get(NODE_PROXY), m.get('nginx'), f)) : '',
  ];
  // "app process" of bare: the bare server itself. "all": proxy and app together, the whole cost
  // of a request, which is what compares with a bare server.
  const cpu = (r: WrkResult, who: string) =>
    who === 'all' ? (cpuOf(r, 'proxy') || 0) + cpuOf(r, 'app') : cpuOf(r, who);
  const cpuRow = (label: string, who: string, m = ka) => [
    label,
    ...names.map((n) =>
      who === 'all' || pids[n]![who] ? `${fmt.num(med(m.get(n), (r) => cpu(r, who)))} µs` : '',
    ),
    who === 'proxy' ? '' : fmt.ratio(ratioOf(m.get('arr'), m.get('direct'), (r) => cpu(r, who))),
    fmt.ratio(ratioOf(m.get('arr'), m.get('nginx'), (r) => cpu(r, who))),
    who === 'all' ? fmt.ratio(ratioOf(m.get('arr'), m.get('bare'), (r) => cpu(r, who))) : '',
    who === 'proxy' ? '' : fmt.ratio(ratioOf(m.get(NODE_PROXY), m.get('direct'), (r) => cpu(r, who))),
    fmt.ratio(ratioOf(m.get(NODE_PROXY), m.get('nginx'), (r) => cpu(r, who))),
  ];
  s.rows.push(
    rpsRow('keep-alive: requests/s', ka),
    latRow('keep-alive: p50 latency', ka, (r) => r.p50ms),
    latRow('keep-alive: p99 latency', ka, (r) => r.p99ms),
    cpuRow('keep-alive: CPU per request, proxy process', 'proxy'),
    cpuRow('keep-alive: CPU per request, app process', 'app'),
    cpuRow('keep-alive: CPU per request, proxy and app', 'all'),
    rpsRow('new connection per request: requests/s', nc),
    latRow('new connection per request: p50 latency', nc, (r) => r.p50ms),
    latRow('new connection per request: p99 latency', nc, (r) => r.p99ms),
    cpuRow('new connection per request: CPU per request, proxy process', 'proxy', nc),
    cpuRow('new connection per request: CPU per request, app process', 'app', nc),
    cpuRow('new connection per request: CPU per request, proxy and app', 'all', nc),
    latRow(`open loop ${FIXED_RATE.toLocaleString('en-US')} req/s: p50 latency`, rate, (r) => r.p50ms),
    latRow(`open loop ${FIXED_RATE.toLocaleString('en-US')} req/s: p99 latency`, rate, (r) => r.p99ms),
  );
  noteErrors(s.notes, 'keep-alive', ka);
  noteErrors(s.notes, 'new connections', nc);
  for (const [n, rs] of rate) {
    const errors = rs.reduce((a, r) => a + r.errors, 0);
    if (errors > 0) s.notes.push(`open loop, ${n}: ${errors} connection errors.`);
  }

  const kaRatio = ratioOf(ka.get('arr'), ka.get('nginx'), rps);
  const ncDirect = ratioOf(nc.get('arr'), nc.get('direct'), rps);
  const addedOpen = diffOf(rate.get('arr'), rate.get('direct'), (r) => r.p99ms);
  const addedSat = diffOf(ka.get('arr'), ka.get('direct'), (r) => r.p99ms);
  ctx.targets.push(
    ratioTarget(
      'arr HTTP keep-alive throughput / nginx',
      kaRatio,
      0.6,
      ratioOf(ka.get(NODE_PROXY), ka.get('nginx'), rps),
    ),
    ratioTarget(
      'HTTP new connection per request: arr / the app directly',
      ncDirect,
      0.55,
      ratioOf(nc.get(NODE_PROXY), nc.get('direct'), rps),
    ),
    msTarget(
      `p99 latency added by arr, ${CONNECTIONS} connections, open loop at ${FIXED_RATE.toLocaleString('en-US')} req/s`,
      addedOpen,
      1,
      signed,
    ),
    msTarget(`p99 latency added by arr, ${CONNECTIONS} connections, saturated (wrk)`, addedSat, 1, signed),
  );
}
