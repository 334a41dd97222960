import { join } from 'node:path';
import type { ArrUnderTest } from '../../harness/arr.js';
import { startArrWith } from '../../harness/arr.js';
import { addSection, type Ctx, HOST, med, ratioOf, writeApps } from '../lib/context.js';
import { cpuOf } from '../lib/cpu.js';
import { activate, waitForListen } from '../lib/net.js';
import { ratioTarget } from '../lib/report.js';
import { warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import type { WrkResult } from '../lib/wrk.js';
import { CONNECTIONS, noteErrors } from './http.js';

/**
 * The cost of `--access-log`: two arr on the same apps file, log level info, stdout to a file
 * (as a collector would take it), one with the access log and one without, each with its own
 * instance of the hello sample; wrk keep-alive, alternating.
 */
export async function accessLogSection(ctx: Ctx): Promise<void> {
  const s = addSection(ctx, {
    id: 'accesslog',
    title: 'The access log: arr with and without --access-log',
    text:
      'Two arr processes serving the same apps file at log level info, their stdout appended to a ' +
      'file, one with `--access-log` (a JSON line per request, written in the background) and one ' +
      `without; each with its own instance of the hello sample. wrk, 1 thread, ${CONNECTIONS} ` +
      `kept-alive connections, ${ctx.seconds} s per run; median of ${ctx.reps} runs, alternating.`,
    header: ['point', 'without', 'with --access-log', 'with / without'],
  });
  const apps = writeApps(join(ctx.tmp, 'access-log-apps.json'), [{ name: 'hello', hosts: [{ host: HOST }] }]);
  const arrs: Record<string, ArrUnderTest> = {};
  try {
    for (const [name, extra] of [
      ['without', []],
      ['with --access-log', ['--access-log']],
    ] as const) {
      arrs[name] = await startArrWith([], {
        file: apps,
        extraArgs: ['--log-level', 'info', ...extra],
        stdoutFile: join(ctx.tmp, `arr-${extra.length > 0 ? 'access' : 'plain'}.log`),
        ready: (a) => waitForListen(a.proc, a.port, 120_000, 5),
      });
      await activate(arrs[name]!.port, HOST);
      s.commands.add(`${arrs[name]!.proc.command} >> arr.log`);
    }
    const names = Object.keys(arrs);
    const target = {
      names,
      url: (n: string) => `http://127.0.0.1:${arrs[n]!.port}/`,
      host: HOST,
      connections: CONNECTIONS,
      pids: (n: string) => ({ proxy: arrs[n]!.proc.pid }),
    };
    await warmUp(target);
    ctx.log('accesslog: keep-alive, with and without --access-log');
    const ka = await wrkPoint(ctx, s, target);
    const rps = (r: WrkResult) => r.rps;
    const cpu = (r: WrkResult) => cpuOf(r, 'proxy');
    const [off, on] = names as [string, string];
    s.rows.push(
      [
        'keep-alive: requests/s',
        fmt.rps(med(ka.get(off), rps)),
        fmt.rps(med(ka.get(on), rps)),
        fmt.ratio(ratioOf(ka.get(on), ka.get(off), rps)),
      ],
      [
        'keep-alive: CPU per request, arr',
        `${fmt.num(med(ka.get(off), cpu))} µs`,
        `${fmt.num(med(ka.get(on), cpu))} µs`,
        fmt.ratio(ratioOf(ka.get(on), ka.get(off), cpu)),
      ],
    );
    noteErrors(s.notes, 'keep-alive', ka);
    ctx.targets.push(
      ratioTarget(
        'arr HTTP keep-alive throughput with --access-log / without',
        ratioOf(ka.get(on), ka.get(off), rps),
        0.9,
      ),
    );
  } finally {
    for (const a of Object.values(arrs)) await a.stop();
  }
}
