import { join } from 'node:path';
import { type Running, repoRoot, start } from '../../harness/proc.js';
import { addSection, type Ctx, HOST, med, NODE, ratioOf } from '../lib/context.js';
import { cpuOf } from '../lib/cpu.js';
import { activate, freePort, waitForListen } from '../lib/net.js';
import { warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import { CONNECTIONS, noteErrors } from './http.js';
import type { Stage } from './stage.js';

const CLUSTERED = 'undici dispatch, 2 workers';

export async function enginesSection(ctx: Ctx, st: Stage): Promise<void> {
  const s = addSection(ctx, {
    id: 'engines',
    title: 'Engine options (prototypes in bench/prototypes)',
    text:
      'What a proxy engine costs on its own: minimal proxies to the same app instance, without ' +
      'routing, with the same X-Forwarded-* headers. http-proxy: the library arr used before, with ' +
      "arr's Agent settings; node:http: http.request with a keep-alive Agent; undici stream(): an " +
      "undici Pool through its stream interface (header objects); undici dispatch: arr's engine " +
      '(raw header lists, bench/prototypes/undici-dispatch.mjs); 2 workers: that, in two processes ' +
      'of node:cluster sharing the port, to see whether a `--workers` mode would pay on this machine ' +
      '(its CPU column counts the primary only, so it is left empty). ' +
      `wrk keep-alive, ${CONNECTIONS} connections, ${ctx.seconds} s per run, median of ${ctx.reps} runs, ` +
      'alternating. "vs" columns are throughput ratios.',
    header: [
      'engine',
      'requests/s',
      'p50 latency',
      'p99 latency',
      'proxy CPU per request',
      'vs arr',
      'vs direct',
    ],
  });
  const ports: Record<string, number> = { direct: st.backend.port, arr: st.arr.port };
  const pids: Record<string, number> = { arr: st.arr.proc.pid };
  const procs: Running[] = [];
  const protos: [string, string, Record<string, string>][] = [
    ['http-proxy (bare)', 'http-proxy.mjs', {}],
    ['node:http', 'node-http.mjs', {}],
    ['undici stream()', 'undici-pool.mjs', {}],
    ['undici dispatch', 'undici-dispatch.mjs', {}],
    [CLUSTERED, 'cluster.mjs', { PROTO: 'undici-dispatch.mjs', WORKERS: '2' }],
  ];
  try {
    for (const [name, file, env] of protos) {
      const port = await freePort();
      const p = start(NODE, [join(repoRoot, 'bench/prototypes', file)], {
        env: { ...env, PORT: String(port), TARGET: String(st.backend.port) },
      });
      procs.push(p);
      const vars = Object.entries(env).map(([k, v]) => `${k}=${v} `);
      s.commands.add(`${vars.join('')}PORT=${port} TARGET=${st.backend.port} ${p.command}`);
      await waitForListen(p, port);
      const r = await activate(port, HOST);
      if (r.pid !== st.backend.pid) throw new Error(`${name} answered from pid ${r.pid}`);
      ports[name] = port;
      pids[name] = p.pid;
    }
    const names = Object.keys(ports);
    const target = {
      names,
      url: (n: string) => `http://127.0.0.1:${ports[n]}/`,
      host: HOST,
      connections: CONNECTIONS,
      pids: (n: string): Record<string, number> => (n === 'direct' ? {} : { proxy: pids[n]! }),
    };
    await warmUp(target);
    ctx.log('engines: keep-alive');
    const ka = await wrkPoint(ctx, s, target);
    for (const n of names)
      s.rows.push([
        n,
        fmt.rps(med(ka.get(n), (r) => r.rps)),
        fmt.ms(med(ka.get(n), (r) => r.p50ms)),
        fmt.ms(med(ka.get(n), (r) => r.p99ms)),
        n === 'direct' || n === CLUSTERED ? '' : `${fmt.num(med(ka.get(n), (r) => cpuOf(r, 'proxy')))} µs`,
        fmt.ratio(ratioOf(ka.get(n), ka.get('arr'), (r) => r.rps)),
        fmt.ratio(ratioOf(ka.get(n), ka.get('direct'), (r) => r.rps)),
      ]);
    noteErrors(s.notes, 'keep-alive', ka);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}
