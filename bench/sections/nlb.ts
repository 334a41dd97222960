import { addSection, type Ctx, HOST, med, ratioOf } from '../lib/context.js';
import { cpuOf } from '../lib/cpu.js';
import { ratioTarget } from '../lib/report.js';
import { alternateWrk, warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import { type WrkResult, wrk } from '../lib/wrk.js';
import { CONNECTIONS, noteErrors } from './http.js';
import type { Stage } from './stage.js';

/** Bytes per response of the bulk point. */
const BULK = 16 * 1024 * 1024;
const BULK_CONNECTIONS = 4;

export async function nlbSection(ctx: Ctx, st: Stage): Promise<void> {
  const s = addSection(ctx, {
    id: 'nlb',
    title: 'TCP balancing: nlb vs HAProxy vs direct',
    text:
      'The same app instance reached directly, through nlb and through HAProxy (tcp mode, 1 thread: ' +
      'nlb is one Node.js thread). wrk, 1 thread: keep-alive and a new connection per request ' +
      `(${CONNECTIONS} connections), and bulk transfer (GET /bytes?n=${BULK}, ${BULK_CONNECTIONS} connections, ` +
      `bytes/s read by wrk). ${ctx.seconds} s per run, median of ${ctx.reps} runs, alternating.`,
    header: ['point', 'direct', 'nlb', 'haproxy', 'nlb / haproxy', 'nlb / direct'],
  });
  const ports: Record<string, number> = {
    direct: st.backend.port,
    nlb: st.nlb.port,
    haproxy: st.haproxy.port,
  };
  const names = ['direct', 'nlb', 'haproxy'];
  const url = (n: string, path = '/') => `http://127.0.0.1:${ports[n]}${path}`;
  const pids: Record<string, Record<string, number>> = {
    direct: {},
    nlb: { balancer: st.nlb.proc.pid },
    haproxy: { balancer: st.haproxy.proc.pid },
  };
  const target = { names, url, host: HOST, connections: CONNECTIONS, pids: (n: string) => pids[n]! };
  await warmUp(target);
  ctx.log('nlb: keep-alive');
  const ka = await wrkPoint(ctx, s, target);
  ctx.log('nlb: new connections');
  const nc = await wrkPoint(ctx, s, target, true);
  ctx.log('nlb: bulk');
  const bulk = await alternateWrk(
    ctx,
    names,
    (n) =>
      wrk({
        url: url(n, `/bytes?n=${BULK}`),
        host: HOST,
        connections: BULK_CONNECTIONS,
        seconds: ctx.seconds,
      }),
    s,
  );
  const row = (
    label: string,
    m: Map<string, WrkResult[]>,
    f: (r: WrkResult) => number,
    show: (x: number) => string,
  ) => [
    label,
    ...names.map((n) => show(med(m.get(n), f))),
    fmt.ratio(ratioOf(m.get('nlb'), m.get('haproxy'), f)),
    fmt.ratio(ratioOf(m.get('nlb'), m.get('direct'), f)),
  ];
  const lat = (label: string, m: Map<string, WrkResult[]>, f: (r: WrkResult) => number) => [
    label,
    ...names.map((n) => fmt.ms(med(m.get(n), f))),
    '',
    '',
  ];
  const cpu = (label: string, m: Map<string, WrkResult[]>) => [
    label,
    '',
    ...names.slice(1).map((n) => `${fmt.num(med(m.get(n), (r) => cpuOf(r, 'balancer')))} µs`),
    fmt.ratio(ratioOf(m.get('nlb'), m.get('haproxy'), (r) => cpuOf(r, 'balancer'))),
    '',
  ];
  s.rows.push(
    row('keep-alive: requests/s', ka, (r) => r.rps, fmt.rps),
    lat('keep-alive: p99 latency', ka, (r) => r.p99ms),
    cpu('keep-alive: balancer CPU per request', ka),
    row('new connections/s (one request each)', nc, (r) => r.rps, fmt.rps),
    lat('new connections: p99 latency', nc, (r) => r.p99ms),
    cpu('new connections: balancer CPU per connection', nc),
    row('bulk: bytes/s', bulk, (r) => r.bytesPerSec, fmt.bps),
  );
  noteErrors(s.notes, 'keep-alive', ka);
  noteErrors(s.notes, 'new connections', nc);
  noteErrors(s.notes, 'bulk', bulk);
  const kaRatio = ratioOf(ka.get('nlb'), ka.get('haproxy'), (r) => r.rps);
  const ncRatio = ratioOf(nc.get('nlb'), nc.get('haproxy'), (r) => r.rps);
  ctx.targets.push(
    ratioTarget('nlb / HAProxy, keep-alive throughput', kaRatio, 0.9),
    ratioTarget('nlb / HAProxy, new connections per second', ncRatio, 0.9),
  );
}
