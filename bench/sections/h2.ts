import { addSection, alternate, type Ctx, med, ratioOf, TLS_HOST } from '../lib/context.js';
import { H2LOAD, type H2loadResult, h2load } from '../lib/h2load.js';
import { ratioTarget } from '../lib/report.js';
import { fmt } from '../lib/stats.js';
import { NODE_PROXY } from './http.js';
import type { Stage } from './stage.js';

/** The two loads of the issue: one connection with 100 streams, 50 connections with 10 each. */
const POINTS = [
  { label: '1 connection x 100 streams', clients: 1, streams: 100 },
  { label: '50 connections x 10 streams', clients: 50, streams: 10 },
] as const;

/** The goal of #14: arr's HTTP/2 throughput at least half of nginx's, in the same run. */
const TARGET_RATIO = 0.5;

export async function h2Section(ctx: Ctx, st: Stage): Promise<void> {
  const s = addSection(ctx, {
    id: 'h2',
    title: 'HTTP/2: arr vs nginx (h2load)',
    text:
      'HTTP/2 over TLS (ALPN h2) from the client to the proxy, HTTP/1.1 kept-alive from the proxy to ' +
      'the same app instance. nginx: `listen ... ssl http2`, same certificate, 1 worker. h2load ' +
      `(${H2LOAD}), 1 thread, 1 s warm-up, ${ctx.seconds} s per run, median of ${ctx.reps} runs, ` +
      'alternating. CPU per request: the proxy process (nginx: its worker) over the whole h2load run. ' +
      '"node proxy" is the floor of a Node.js HTTP/2 proxy (bench/floors/proxy.ts: node:http2 streams and ' +
      'undici as arr has them, nothing else).',
    header: ['point', 'arr', NODE_PROXY, 'nginx', 'arr vs nginx', `${NODE_PROXY} vs nginx`],
  });
  s.commands.add(st.nodeProxy.command);
  const ports: Record<string, number> = {
    arr: st.arr.sslport,
    [NODE_PROXY]: st.nodeProxy.h2port!,
    nginx: st.nginx.h2port,
  };
  const pids: Record<string, number> = {
    arr: st.arr.proc.pid,
    [NODE_PROXY]: st.nodeProxy.proc.pid,
    nginx: st.nginxWorker,
  };
  const names = ['arr', NODE_PROXY, 'nginx'];
  for (const p of POINTS) {
    ctx.log(`h2: ${p.label}`);
    const runs = await alternate(ctx, names, async (n) => {
      const r = await h2load(
        {
          url: `https://127.0.0.1:${ports[n]}/`,
          authority: TLS_HOST,
          clients: p.clients,
          streams: p.streams,
          seconds: ctx.seconds,
        },
        { proxy: pids[n]! },
      );
      s.commands.add(r.command);
      if (!r.h2) throw new Error(`${n} did not negotiate h2 (${r.command})`);
      return r;
    });
    const rps = (r: H2loadResult) => r.rps;
    const cpu = (r: H2loadResult) => r.cpuUs.proxy ?? Number.NaN;
    const ratio = ratioOf(runs.get('arr'), runs.get('nginx'), rps);
    const floor = ratioOf(runs.get(NODE_PROXY), runs.get('nginx'), rps);
    s.rows.push(
      [
        `${p.label}: requests/s`,
        ...names.map((n) => fmt.rps(med(runs.get(n), rps))),
        fmt.ratio(ratio),
        fmt.ratio(floor),
      ],
      [
        `${p.label}: proxy CPU per request`,
        ...names.map((n) => `${fmt.num(med(runs.get(n), cpu))} µs`),
        fmt.ratio(ratioOf(runs.get('arr'), runs.get('nginx'), cpu)),
        fmt.ratio(ratioOf(runs.get(NODE_PROXY), runs.get('nginx'), cpu)),
      ],
    );
    for (const n of names) {
      const errors = (runs.get(n) ?? []).reduce((a, r) => a + r.errors, 0);
      if (errors > 0) s.notes.push(`${n}, ${p.label}: ${errors} failed or non-2xx requests`);
    }
    ctx.targets.push(ratioTarget(`arr HTTP/2 throughput / nginx, ${p.label}`, ratio, TARGET_RATIO, floor));
  }
}
