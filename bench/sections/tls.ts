import { addSection, type Ctx, diffOf, med, ratioOf, TLS_HOST } from '../lib/context.js';
import { cpuOf } from '../lib/cpu.js';
import { warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import type { WrkResult } from '../lib/wrk.js';
import { CONNECTIONS, noteErrors, signed } from './http.js';
import type { Stage } from './stage.js';

export async function tlsSection(ctx: Ctx, st: Stage): Promise<void> {
  const s = addSection(ctx, {
    id: 'tls',
    title: 'HTTPS: arr vs nginx',
    text:
      'TLS ends at the proxy, which forwards plain HTTP to the same app instance. Both serve the ' +
      'sample certificate (certs/default-cert.pem, ECDSA P-256, *.localhost); wrk does not resume ' +
      `sessions, so with a new connection per request every request is a full handshake. wrk, 1 thread, ` +
      `${CONNECTIONS} connections, ${ctx.seconds} s per run, median of ${ctx.reps} runs, alternating. ` +
      "Host and SNI are 127.0.0.1 (a second host name of the app), because wrk sends the URL's host as SNI.",
    header: ['point', 'arr', 'nginx', 'arr vs nginx'],
  });
  const ports: Record<string, number> = { arr: st.arr.sslport, nginx: st.nginx.sslport };
  const names = ['arr', 'nginx'];
  const pids: Record<string, number> = { arr: st.arr.proc.pid, nginx: st.nginxWorker };
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
  ];
  const lat = (label: string, m: Map<string, WrkResult[]>, f: (r: WrkResult) => number) => [
    label,
    ...names.map((n) => fmt.ms(med(m.get(n), f))),
    signed(diffOf(m.get('arr'), m.get('nginx'), f)),
  ];
  const cpu = (label: string, m: Map<string, WrkResult[]>) => [
    label,
    ...names.map((n) => `${fmt.num(med(m.get(n), (r) => cpuOf(r, 'proxy')))} µs`),
    fmt.ratio(ratioOf(m.get('arr'), m.get('nginx'), (r) => cpuOf(r, 'proxy'))),
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
}
