import { flags } from '../lib/clients.js';
import { addSection, type Ctx, diffOf, HOST, med, ratioOf, TLS_HOST } from '../lib/context.js';
import { cpuOf } from '../lib/cpu.js';
import { type Floor, withHelloFloor } from '../lib/floors.js';
import { ratioTarget, type Section } from '../lib/report.js';
import { alternateClient, warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import type { WrkResult } from '../lib/wrk.js';
import { CONNECTIONS, NODE_PROXY, noteErrors, signed } from './http.js';
import type { Stage } from './stage.js';

/** What bench/clients/tls-resume.ts prints. */
interface ResumeResult {
  resume: boolean;
  completed: number;
  perSecond: number;
  resumedRatio: number;
  p50ms: number;
  p99ms: number;
  errors: number;
  /** The server's CPU per counted request (`--pid`). */
  serverCpuUs: number;
}

/** The contenders of the section, in its columns' order. */
const COLUMNS = ['arr', NODE_PROXY, 'nginx', 'bare'];

/** arr's CPU per resumed handshake, at most this share of its CPU per full one. */
const RESUMED_CPU_SHARE = 0.4;

export async function tlsSection(ctx: Ctx, st: Stage): Promise<void> {
  await withHelloFloor(st.backend.port, (floor) => measure(ctx, st, floor));
}

async function measure(ctx: Ctx, st: Stage, floor: Floor): Promise<void> {
  const s = addSection(ctx, {
    id: 'tls',
    title: 'HTTPS: arr vs nginx',
    text:
      'TLS ends at the proxy, which forwards plain HTTP to the same app instance. Both serve the ' +
      'sample certificate (certs/default-cert.pem, ECDSA P-256, *.localhost); "bare" is a bare ' +
      'node:https server with the same certificate sending the same answer bytes (bench/floors/hello.ts), ' +
      'the floor of Node.js\'s TLS on this machine; "node proxy" is the floor of a Node.js reverse ' +
      'proxy (bench/floors/proxy.ts: node:https and undici as arr has them, nothing else). wrk does not resume ' +
      `sessions, so with a new connection per request every request is a full handshake. wrk, 1 thread, ` +
      `${CONNECTIONS} connections, ${ctx.seconds} s per run, median of ${ctx.reps} runs, alternating. ` +
      "Host and SNI are 127.0.0.1 (a second host name of the app), because wrk sends the URL's host as SNI.",
    header: ['point', ...COLUMNS, 'arr vs nginx', 'arr vs bare', `${NODE_PROXY} vs bare`],
  });
  s.commands.add(floor.command);
  s.commands.add(st.nodeProxy.command);
  const ports: Record<string, number> = {
    arr: st.arr.sslport,
    [NODE_PROXY]: st.nodeProxy.sslport,
    nginx: st.nginx.sslport,
    bare: floor.sslport,
  };
  const names = COLUMNS;
  const pids: Record<string, number> = {
    arr: st.arr.proc.pid,
    [NODE_PROXY]: st.nodeProxy.proc.pid,
    nginx: st.nginxWorker,
    bare: floor.proc.pid,
  };
  const target = {
    names,
    url: (n: string) => `https://127.0.0.1:${ports[n]}/`,
    host: TLS_HOST,
    connections: CONNECTIONS,
    pids: (n: string) => ({ proxy: pids[n]! }),
  };
  await warmUp(target);
  ctx.log('tls: keep-alive');
  const ka = await wrkPoint(ctx, s, target);
  ctx.log('tls: a new connection (handshake) per request');
  const nc = await wrkPoint(ctx, s, target, true);
  const rps = (label: string, m: Map<string, WrkResult[]>) => [
    label,
    ...names.map((n) => fmt.rps(med(m.get(n), (r) => r.rps))),
    fmt.ratio(ratioOf(m.get('arr'), m.get('nginx'), (r) => r.rps)),
    fmt.ratio(ratioOf(m.get('arr'), m.get('bare'), (r) => r.rps)),
    fmt.ratio(ratioOf(m.get(NODE_PROXY), m.get('bare'), (r) => r.rps)),
  ];
  const lat = (label: string, m: Map<string, WrkResult[]>, f: (r: WrkResult) => number) => [
    label,
    ...names.map((n) => fmt.ms(med(m.get(n), f))),
    signed(diffOf(m.get('arr'), m.get('nginx'), f)),
    signed(diffOf(m.get('arr'), m.get('bare'), f)),
    signed(diffOf(m.get(NODE_PROXY), m.get('bare'), f)),
  ];
  const cpu = (label: string, m: Map<string, WrkResult[]>) => [
    label,
    ...names.map((n) => `${fmt.num(med(m.get(n), (r) => cpuOf(r, 'proxy')))} µs`),
    fmt.ratio(ratioOf(m.get('arr'), m.get('nginx'), (r) => cpuOf(r, 'proxy'))),
    fmt.ratio(ratioOf(m.get('arr'), m.get('bare'), (r) => cpuOf(r, 'proxy'))),
    fmt.ratio(ratioOf(m.get(NODE_PROXY), m.get('bare'), (r) => cpuOf(r, 'proxy'))),
  ];
  s.rows.push(
    rps('keep-alive: requests/s', ka),
    lat('keep-alive: p50 latency', ka, (r) => r.p50ms),
    lat('keep-alive: p99 latency', ka, (r) => r.p99ms),
    cpu('keep-alive: proxy CPU per request', ka),
    rps('new connection per request: requests/s', nc),
    lat('new connection per request: p50 latency', nc, (r) => r.p50ms),
    lat('new connection per request: p99 latency', nc, (r) => r.p99ms),
    cpu('new connection per request: proxy CPU per request', nc),
  );
  noteErrors(s.notes, 'keep-alive', ka);
  noteErrors(s.notes, 'new connections', nc);
  ctx.targets.push(
    ratioTarget(
      'HTTPS full handshake per request: arr / bare node:https',
      ratioOf(nc.get('arr'), nc.get('bare'), (r) => r.rps),
      0.85,
      ratioOf(nc.get(NODE_PROXY), nc.get('bare'), (r) => r.rps),
    ),
  );
  // Resumption is measured for arr and its two peers (the proxy floor's TLS is bare node:https's).
  const { [NODE_PROXY]: _, ...resumePorts } = ports;
  await resumed(ctx, s, resumePorts, pids);
}

/**
 * Full vs resumed handshakes with bench/clients/tls-resume.ts (wrk cannot resume): for each
 * server, a run offering no session and one offering the previous connection's ticket, in the
 * same repetition. Host and SNI are hello.localhost here (the client sends the name it is given).
 */
async function resumed(
  ctx: Ctx,
  s: Section,
  ports: Record<string, number>,
  pids: Record<string, number>,
): Promise<void> {
  ctx.log('tls: full vs resumed handshakes (bench/clients/tls-resume.ts)');
  const servers = Object.keys(ports);
  const modes = ['full', 'resumed'];
  const key = (n: string, mode: string) => `${n} ${mode}`;
  const runs = await alternateClient<ResumeResult>(
    ctx,
    servers.flatMap((n) => modes.map((m) => key(n, m))),
    s,
    (k) => {
      const [n, mode] = k.split(' ') as [string, string];
      const o = { port: ports[n]!, host: HOST, connections: CONNECTIONS, seconds: ctx.seconds };
      return flags({ ...o, resume: mode === 'resumed' ? 1 : 0, pid: pids[n]! });
    },
    'tls-resume',
  );
  const get = (n: string, mode: string) => runs.get(key(n, mode));
  const cpuUs = (r: ResumeResult) => r.serverCpuUs;
  // Every column of the section; a contender measured here only has its cells filled.
  const cells = (value: (n: string) => string) => COLUMNS.map((n) => (servers.includes(n) ? value(n) : ''));
  const row = (label: string, mode: string, f: (r: ResumeResult) => number, show: (x: number) => string) => [
    label,
    ...cells((n) => show(med(get(n, mode), f))),
    fmt.ratio(ratioOf(get('arr', mode), get('nginx', mode), f)),
    fmt.ratio(ratioOf(get('arr', mode), get('bare', mode), f)),
    '',
  ];
  const us = (x: number) => `${fmt.num(x)} µs`;
  const share = (x: number) => `${fmt.num(x * 100)}%`;
  s.rows.push(
    row('Node.js client, full handshake: requests/s', 'full', (r) => r.perSecond, fmt.rps),
    row('Node.js client, full handshake: server CPU per handshake', 'full', cpuUs, us),
    row('Node.js client, resuming: requests/s', 'resumed', (r) => r.perSecond, fmt.rps),
    row('Node.js client, resuming: server CPU per handshake', 'resumed', cpuUs, us),
    [
      'Node.js client, resuming: handshakes the server resumed',
      ...cells((n) => share(med(get(n, 'resumed'), (r) => r.resumedRatio))),
      '',
      '',
      '',
    ],
    [
      'server CPU per handshake, resuming / full',
      ...cells((n) => fmt.ratio(ratioOf(get(n, 'resumed'), get(n, 'full'), cpuUs))),
      '',
      '',
      '',
    ],
  );
  for (const [k, rs] of runs) {
    const errors = rs.reduce((a, r) => a + r.errors, 0);
    if (errors > 0) s.notes.push(`tls-resume, ${k}: ${errors} failed requests over ${rs.length} runs.`);
  }
  const arrResumed = med(get('arr', 'resumed'), (r) => r.resumedRatio);
  s.notes.push(
    'The Node.js client (bench/clients/tls-resume.ts) spends about as much CPU per handshake as a ' +
      "Node.js server and shares the machine's cores with it: its requests/s are lower than wrk's, and server " +
      'CPU per handshake is the figure to compare. Each of its loops makes one uncounted request first ' +
      '(where its first session comes from); the server CPU of that priming is not counted.',
  );
  if (!(arrResumed > 0.5))
    s.notes.push(
      `arr resumed ${share(arrResumed)} of the handshakes offered a session: its "resuming" rows are full handshakes.`,
    );
  const cpuShare = ratioOf(get('arr', 'resumed'), get('arr', 'full'), cpuUs);
  // The same figure of the bare node:https server: the floor of what resumption saves in Node.js.
  const bareShare = ratioOf(get('bare', 'resumed'), get('bare', 'full'), cpuUs);
  ctx.targets.push(
    {
      name: 'HTTPS resumed handshake per request: arr / nginx (report)',
      measured: fmt.ratio(ratioOf(get('arr', 'resumed'), get('nginx', 'resumed'), (r) => r.perSecond)),
      limit: 'report',
      pass: undefined,
    },
    {
      name: 'arr CPU per resumed handshake / its CPU per full one',
      measured: `${fmt.ratio(cpuShare)} (${share(arrResumed)} resumed; bare node:https ${fmt.ratio(bareShare)})`,
      limit: `<= ${RESUMED_CPU_SHARE}`,
      pass: cpuShare <= RESUMED_CPU_SHARE,
    },
  );
}
