import { addSection, alternate, type Ctx, HOST, med, ratioOf } from '../lib/context.js';
import { type CpuResult, cpuOf, cpuSeconds, wrkCpu } from '../lib/cpu.js';
import { type Floor, startAcceptCloseFloor, startRelayFloor } from '../lib/floors.js';
import { ratioTarget, type Section } from '../lib/report.js';
import { alternateWrk, type WrkTarget, warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import { type WrkResult, wrk } from '../lib/wrk.js';
import { CONNECTIONS, noteErrors } from './http.js';
import type { Stage } from './stage.js';

/** Bytes per response of the bulk point. */
const BULK = 16 * 1024 * 1024;
const BULK_CONNECTIONS = 4;
/** The floor's contender name in the new-connection runs. */
const FLOOR = 'floor';
/** bench/floors/relay.ts: the floor of a Node.js TCP relay, a contender in every point. */
const RELAY = 'relay';
/** nlb's CPU per new connection, at most this many times the floor's. */
const FLOOR_MAX = 1.3;

export async function nlbSection(ctx: Ctx, st: Stage): Promise<void> {
  const floor = await startAcceptCloseFloor(st.backend.port);
  const relay = await startRelayFloor(st.backend.port);
  try {
    await measure(ctx, st, floor, relay);
  } finally {
    await Promise.all([floor.proc.stop(), relay.proc.stop()]);
  }
}

/**
 * One run of the floor, driven by wrk like the others: the floor closes each connection without
 * an answer, which wrk counts as a read error and reconnects at once. So the connections are
 * wrk's socket errors, and the floor's CPU is divided by them (wrkCpu divides by requests).
 */
async function floorRun(ctx: Ctx, s: Section, t: WrkTarget, floor: Floor): Promise<CpuResult> {
  const url = `http://127.0.0.1:${floor.port}/`;
  const before = cpuSeconds(floor.proc.pid);
  const r = await wrk({ url, host: t.host, connections: t.connections, seconds: ctx.seconds, close: true });
  const cpuUs = ((cpuSeconds(floor.proc.pid) - before) * 1e6) / r.errors;
  s.commands.add(r.command);
  return { ...r, rps: r.errors / ctx.seconds, requests: r.errors, errors: 0, cpuUs: { balancer: cpuUs } };
}

/** The new-connection point: wrk for direct, nlb, HAProxy and the floor, alternating. */
function newConnections(ctx: Ctx, s: Section, t: WrkTarget, floor: Floor) {
  const o = { host: t.host, connections: t.connections, seconds: ctx.seconds, close: true };
  return alternate(ctx, [...t.names, FLOOR], async (n): Promise<CpuResult> => {
    if (n === FLOOR) return floorRun(ctx, s, t, floor);
    const r = await wrkCpu({ ...o, url: t.url(n) }, t.pids?.(n) ?? {});
    s.commands.add(r.command);
    return r;
  });
}

async function measure(ctx: Ctx, st: Stage, floor: Floor, relay: Floor): Promise<void> {
  const s = addSection(ctx, {
    id: 'nlb',
    title: 'TCP balancing: nlb vs HAProxy vs direct',
    text:
      'The same app instance reached directly, through nlb and through HAProxy (tcp mode, 1 thread: ' +
      'nlb is one Node.js thread). wrk, 1 thread: keep-alive and a new connection per request ' +
      `(${CONNECTIONS} connections), and bulk transfer (GET /bytes?n=${BULK}, ${BULK_CONNECTIONS} connections, ` +
      `bytes/s read by wrk). ${ctx.seconds} s per run, median of ${ctx.reps} runs, alternating. ` +
      'The floor of a new connection (bench/floors/accept-close.ts) is a Node.js process that accepts ' +
      'a connection, connects to the app and closes both, with no relay; wrk counts each of its ' +
      'connections as a read error (no answer) and opens the next at once, and those are its connections/s. ' +
      'The relay (bench/floors/relay.ts) is the floor of a Node.js TCP relay: accept, connect, relay both ' +
      'ways with backpressure, close; nothing else.',
    header: [
      'point',
      'direct',
      'nlb',
      'haproxy',
      RELAY,
      'floor',
      'nlb / haproxy',
      'nlb / direct',
      'nlb / floor',
      `${RELAY} / haproxy`,
      `${RELAY} / floor`,
    ],
  });
  s.commands.add(relay.command);
  const ports: Record<string, number> = {
    direct: st.backend.port,
    nlb: st.nlb.port,
    haproxy: st.haproxy.port,
    [RELAY]: relay.port,
  };
  const names = ['direct', 'nlb', 'haproxy', RELAY];
  const url = (n: string, path = '/') => `http://127.0.0.1:${ports[n]}${path}`;
  const pids: Record<string, Record<string, number>> = {
    direct: {},
    nlb: { balancer: st.nlb.proc.pid },
    haproxy: { balancer: st.haproxy.proc.pid },
    [RELAY]: { balancer: relay.proc.pid },
  };
  const target = { names, url, host: HOST, connections: CONNECTIONS, pids: (n: string) => pids[n]! };
  await warmUp(target);
  ctx.log('nlb: keep-alive');
  const ka = await wrkPoint(ctx, s, target);
  ctx.log('nlb: new connections');
  const nc = await newConnections(ctx, s, target, floor);
  s.commands.add(floor.command);
  ctx.log('nlb: bulk');
  const bulk = await alternateWrk(
    ctx,
    names.filter((n) => n !== RELAY),
    (n) =>
      wrk({
        url: url(n, `/bytes?n=${BULK}`),
        host: HOST,
        connections: BULK_CONNECTIONS,
        seconds: ctx.seconds,
      }),
    s,
  );
  // The floor's column: only the new-connection point has it.
  const onFloor = (m: Map<string, WrkResult[]>, f: (r: WrkResult) => number, show: (x: number) => string) =>
    m.has(FLOOR)
      ? [
          show(med(m.get(FLOOR), f)),
          fmt.ratio(ratioOf(m.get('nlb'), m.get(FLOOR), f)),
          fmt.ratio(ratioOf(m.get(RELAY), m.get(FLOOR), f)),
        ]
      : ['', '', ''];
  const row = (
    label: string,
    m: Map<string, WrkResult[]>,
    f: (r: WrkResult) => number,
    show: (x: number) => string,
  ) => {
    const [floorCell, vsFloor, relayVsFloor] = onFloor(m, f, show);
    return [
      label,
      ...names.map((n) => (m.has(n) ? show(med(m.get(n), f)) : '')),
      floorCell!,
      fmt.ratio(ratioOf(m.get('nlb'), m.get('haproxy'), f)),
      fmt.ratio(ratioOf(m.get('nlb'), m.get('direct'), f)),
      vsFloor!,
      m.has(RELAY) ? fmt.ratio(ratioOf(m.get(RELAY), m.get('haproxy'), f)) : '',
      relayVsFloor!,
    ];
  };
  const lat = (label: string, m: Map<string, WrkResult[]>, f: (r: WrkResult) => number) => [
    label,
    ...names.map((n) => (m.has(n) ? fmt.ms(med(m.get(n), f)) : '')),
    '',
    '',
    '',
    '',
    '',
    '',
  ];
  const us = (x: number) => `${fmt.num(x)} µs`;
  const cpu = (label: string, m: Map<string, WrkResult[]>) => {
    const f = (r: WrkResult) => cpuOf(r, 'balancer');
    const [floorCell, vsFloor, relayVsFloor] = onFloor(m, f, us);
    return [
      label,
      '',
      ...names.slice(1).map((n) => us(med(m.get(n), f))),
      floorCell!,
      fmt.ratio(ratioOf(m.get('nlb'), m.get('haproxy'), f)),
      '',
      vsFloor!,
      fmt.ratio(ratioOf(m.get(RELAY), m.get('haproxy'), f)),
      relayVsFloor!,
    ];
  };
  s.rows.push(
    row('keep-alive: requests/s', ka, (r) => r.rps, fmt.rps),
    lat('keep-alive: p99 latency', ka, (r) => r.p99ms),
    cpu('keep-alive: balancer CPU per request', ka),
    row(
      'new connections/s (one request each; the floor: closed without an answer)',
      nc,
      (r) => r.rps,
      fmt.rps,
    ),
    lat('new connections: p99 latency', nc, (r) => r.p99ms),
    cpu('new connections: balancer CPU per connection', nc),
    row('bulk: bytes/s', bulk, (r) => r.bytesPerSec, fmt.bps),
  );
  noteErrors(s.notes, 'keep-alive', ka);
  noteErrors(s.notes, 'new connections', nc);
  noteErrors(s.notes, 'bulk', bulk);
  const kaRatio = ratioOf(ka.get('nlb'), ka.get('haproxy'), (r) => r.rps);
  const ncRatio = ratioOf(nc.get('nlb'), nc.get('haproxy'), (r) => r.rps);
  const balancerCpu = (r: WrkResult) => cpuOf(r, 'balancer');
  const floorRatio = ratioOf(nc.get('nlb'), nc.get(FLOOR), balancerCpu);
  ctx.targets.push(
    ratioTarget(
      'nlb / HAProxy, keep-alive throughput',
      kaRatio,
      0.9,
      ratioOf(ka.get(RELAY), ka.get('haproxy'), (r) => r.rps),
    ),
    ratioTarget(
      'nlb / HAProxy, new connections per second',
      ncRatio,
      0.9,
      ratioOf(nc.get(RELAY), nc.get('haproxy'), (r) => r.rps),
    ),
    {
      name: 'nlb CPU per new connection / the Node.js accept-connect-close floor',
      measured: fmt.ratio(floorRatio),
      limit: `<= ${FLOOR_MAX}`,
      pass: floorRatio <= FLOOR_MAX,
      // A relay does more than the accept-close floor: what the least of them costs, on the same scale.
      floor: `${fmt.ratio(ratioOf(nc.get(RELAY), nc.get(FLOOR), balancerCpu))} (the relay floor)`,
    },
  );
}
