import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { addSection, type Ctx, HOST, med, NODE, ratioOf } from '../lib/context.js';
import { cpuOf, wrkCpu } from '../lib/cpu.js';
import { activate, freePort, waitForPort } from '../lib/net.js';
import { type Child, repoRoot, run, start } from '../lib/proc.js';
import { alternateWrk } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import { wrk } from '../lib/wrk.js';
import { CONNECTIONS, noteErrors } from './http.js';
import type { Stage } from './stage.js';

const UNDICI_VERSION = '7';

/**
 * undici's entry point: from the repository if it has it, else from a cache directory that
 * `npm install` fills once (undici is not one of arr's dependencies). Undefined if neither works.
 */
async function findUndici(ctx: Ctx): Promise<string | undefined> {
  try {
    return createRequire(join(repoRoot, 'package.json')).resolve('undici');
  } catch {
    // not in the repository
  }
  const dir = join(homedir(), '.cache', 'arr', 'bench-undici');
  const entry = () => createRequire(join(dir, 'package.json')).resolve('undici');
  if (!existsSync(join(dir, 'node_modules', 'undici', 'package.json'))) {
    ctx.log(`engines: npm install undici@${UNDICI_VERSION} into ${dir}`);
    try {
      await run('npm', ['install', '--prefix', dir, '--no-audit', '--no-fund', `undici@${UNDICI_VERSION}`], {
        timeoutMs: 180_000,
      });
    } catch (err) {
      ctx.log(`engines: cannot install undici: ${(err as Error).message.split('\n')[0]}`);
      return undefined;
    }
  }
  try {
    return entry();
  } catch {
    return undefined;
  }
}

export async function enginesSection(ctx: Ctx, st: Stage): Promise<void> {
  const s = addSection(ctx, {
    id: 'engines',
    title: 'Engine options (prototypes in bench/prototypes)',
    text:
      'What a proxy engine costs on its own, for the coming rework: minimal proxies to the same app ' +
      "instance, without routing, with the same X-Forwarded-* headers. http-proxy: arr's library with " +
      "arr's Agent settings and nothing else; node:http: http.request with a keep-alive Agent; " +
      `undici: node:http in front of an undici Pool. wrk keep-alive, ${CONNECTIONS} connections, ` +
      `${ctx.seconds} s per run, median of ${ctx.reps} runs, alternating. "vs" columns are throughput ratios.`,
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
  const procs: Child[] = [];
  const undici = await findUndici(ctx);
  const protos: [string, string, Record<string, string>][] = [
    ['http-proxy (bare)', 'http-proxy.mjs', {}],
    ['node:http', 'node-http.mjs', {}],
  ];
  if (undici) protos.push(['undici Pool', 'undici-pool.mjs', { UNDICI: pathToFileURL(undici).href }]);
  else s.notes.push('undici could not be installed: its prototype was left out.');
  try {
    for (const [name, file, env] of protos) {
      const port = await freePort();
      const p = start(NODE, [join(repoRoot, 'bench/prototypes', file)], {
        env: { ...env, PORT: String(port), TARGET: String(st.backend.port) },
      });
      procs.push(p);
      const vars = Object.entries(env).map(([k, v]) => `${k}=${v} `);
      s.commands.add(`${vars.join('')}PORT=${port} TARGET=${st.backend.port} ${p.command}`);
      await Promise.race([
        waitForPort(port),
        p.exited.then((c) => {
          throw new Error(`${file} exited (${c}): ${p.output()}`);
        }),
      ]);
      const r = await activate(port, HOST);
      if (r.pid !== st.backend.pid) throw new Error(`${name} answered from pid ${r.pid}`);
      ports[name] = port;
      pids[name] = p.pid;
    }
    const names = Object.keys(ports);
    const url = (n: string) => `http://127.0.0.1:${ports[n]}/`;
    for (const n of names) await wrk({ url: url(n), host: HOST, connections: CONNECTIONS, seconds: 1 });
    ctx.log('engines: keep-alive');
    const ka = await alternateWrk(
      ctx,
      names,
      (n) =>
        wrkCpu(
          { url: url(n), host: HOST, connections: CONNECTIONS, seconds: ctx.seconds },
          n === 'direct' ? {} : { proxy: pids[n]! },
        ),
      s,
    );
    for (const n of names)
      s.rows.push([
        n,
        fmt.rps(med(ka.get(n), (r) => r.rps)),
        fmt.ms(med(ka.get(n), (r) => r.p50ms)),
        fmt.ms(med(ka.get(n), (r) => r.p99ms)),
        n === 'direct' ? '' : `${fmt.num(med(ka.get(n), (r) => cpuOf(r, 'proxy')))} µs`,
        fmt.ratio(ratioOf(ka.get(n), ka.get('arr'), (r) => r.rps)),
        fmt.ratio(ratioOf(ka.get(n), ka.get('direct'), (r) => r.rps)),
      ]);
    noteErrors(s.notes, 'keep-alive', ka);
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
  }
}
