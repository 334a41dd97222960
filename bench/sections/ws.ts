import { setTimeout as sleep } from 'node:timers/promises';
import { start } from '../../harness/proc.js';
import { clientPath, flags } from '../lib/clients.js';
import { addSection, type Ctx, diffOf, HOST, med, NODE, ratioOf } from '../lib/context.js';
import { rssOf } from '../lib/cpu.js';
import { ratioTarget } from '../lib/report.js';
import { alternateClient } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import { CONNECTIONS, NODE_PROXY, signed } from './http.js';
import type { Stage } from './stage.js';

interface EchoResult {
  roundTrips: number;
  perSecond: number;
  p50ms: number;
  p99ms: number;
}

/** Holds `count` idle WebSockets to `port` and returns how much the RSS of `pid` grew meanwhile. */
async function holdIdle(
  port: number,
  count: number,
  pid: number,
  commands: Set<string>,
): Promise<{ held: number; rssPerConn: number; openMs: number }> {
  const before = rssOf(pid);
  const t0 = performance.now();
  const client = start(
    NODE,
    [clientPath('ws'), ...flags({ mode: 'idle', port, host: HOST, connections: count })],
    { stdin: true },
  );
  commands.add(client.command);
  try {
    const m = await client.waitFor(/held (\d+)/, 300_000);
    const openMs = performance.now() - t0;
    await sleep(2000); // let buffers settle
    const after = rssOf(pid);
    const held = Number(m[1]);
    return { held, rssPerConn: (after - before) / held, openMs };
  } finally {
    client.child.stdin?.end();
    const done = await Promise.race([client.exited, sleep(20_000, 'timeout')]);
    if (done === 'timeout') await client.stop('SIGKILL');
  }
}

export async function wsSection(ctx: Ctx, st: Stage): Promise<void> {
  const s = addSection(ctx, {
    id: 'ws',
    title: 'WebSocket: direct vs arr vs nginx',
    text:
      `Echo: ${CONNECTIONS} WebSockets to the app's /ws echo (directly, through arr, through nginx: ` +
      '`proxy_pass` with Upgrade, as bench/lib/peers.ts configures it, and through the floor of a ' +
      'Node.js proxy, bench/floors/proxy.ts: the upgrade written to the app, then the two sockets piped), each sending a 32-byte message and ' +
      `waiting for its echo before the next (bench/clients/ws.ts), ${ctx.seconds} s per run after 1 s ` +
      `of warm-up, median of ${ctx.reps} runs, alternating. Idle: N WebSockets opened and held ` +
      "(each got the app's greeting); RSS growth of the process that holds them (VmRSS before, and 2 s " +
      'after the last one opened) divided by N: the app for direct, arr for arr.',
    header: [
      'point',
      'direct',
      'arr',
      NODE_PROXY,
      'nginx',
      'arr vs direct',
      'arr vs nginx',
      `${NODE_PROXY} vs nginx`,
    ],
  });
  s.commands.add(st.nodeProxy.command);
  const ports: Record<string, number> = {
    direct: st.backend.port,
    arr: st.arr.port,
    [NODE_PROXY]: st.nodeProxy.port,
    nginx: st.nginx.port,
  };
  const names = ['direct', 'arr', NODE_PROXY, 'nginx'];
  ctx.log('ws: echo');
  const echo = await alternateClient<EchoResult>(
    ctx,
    names,
    s,
    (n) =>
      flags({
        mode: 'echo',
        port: ports[n]!,
        host: HOST,
        connections: CONNECTIONS,
        seconds: ctx.seconds,
        warmup: 1,
      }),
    'ws',
  );
  s.rows.push(
    [
      'echo: round trips/s (a message each way)',
      ...names.map((n) => fmt.rps(med(echo.get(n), (r) => r.perSecond))),
      fmt.ratio(ratioOf(echo.get('arr'), echo.get('direct'), (r) => r.perSecond)),
      fmt.ratio(ratioOf(echo.get('arr'), echo.get('nginx'), (r) => r.perSecond)),
      fmt.ratio(ratioOf(echo.get(NODE_PROXY), echo.get('nginx'), (r) => r.perSecond)),
    ],
    ...(['p50ms', 'p99ms'] as const).map((k) => [
      `echo: ${k.slice(0, 3)} round trip`,
      ...names.map((n) => fmt.ms(med(echo.get(n), (r) => r[k]))),
      signed(diffOf(echo.get('arr'), echo.get('direct'), (r) => r[k])),
      signed(diffOf(echo.get('arr'), echo.get('nginx'), (r) => r[k])),
      signed(diffOf(echo.get(NODE_PROXY), echo.get('nginx'), (r) => r[k])),
    ]),
  );
  ctx.targets.push(
    ratioTarget(
      'WebSocket echo round trips: arr / nginx',
      ratioOf(echo.get('arr'), echo.get('nginx'), (r) => r.perSecond),
      0.9,
      ratioOf(echo.get(NODE_PROXY), echo.get('nginx'), (r) => r.perSecond),
    ),
  );

  const count = ctx.quick ? 500 : 5000;
  ctx.log(`ws: ${count} idle connections, direct`);
  const direct = await holdIdle(st.backend.port, count, st.backend.pid, s.commands);
  await sleep(1000);
  ctx.log(`ws: ${count} idle connections, through arr`);
  const viaArr = await holdIdle(st.arr.port, count, st.arr.proc.pid, s.commands);
  s.rows.push(
    ['idle: WebSockets held', String(direct.held), String(viaArr.held), '', '', '', '', ''],
    [
      'idle: time to open them all (100 at a time)',
      fmt.ms(direct.openMs),
      fmt.ms(viaArr.openMs),
      '',
      '',
      '',
      '',
      '',
    ],
    [
      'idle: RSS per held connection',
      `${fmt.bytes(direct.rssPerConn)} (app)`,
      `${fmt.bytes(viaArr.rssPerConn)} (arr)`,
      '',
      '',
      fmt.ratio(viaArr.rssPerConn / direct.rssPerConn),
      '',
      '',
    ],
  );
  s.notes.push(
    'Through arr each client WebSocket is two TCP connections in arr (client side and app side); the app holds one per WebSocket either way.',
  );
  await sleep(2000); // arr closes both sides of every one of them
}
