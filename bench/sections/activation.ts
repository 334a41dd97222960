import { join } from 'node:path';
import { HELLO } from '../../harness/arr.js';
import { start } from '../../harness/proc.js';
import { addSection, type Ctx, med, NODE, startArr, writeApps } from '../lib/context.js';
import { freePort, get, waitForListen } from '../lib/net.js';
import { msTarget } from '../lib/report.js';
import { fmt } from '../lib/stats.js';

/** The app's own start-up: spawn it with PORT, poll the port every 5 ms (as arr does) until it accepts. */
async function startDirect(name: string): Promise<{ ms: number; command: string }> {
  const port = await freePort();
  const t0 = performance.now();
  const app = start(NODE, [HELLO, name], { env: { PORT: String(port) } });
  try {
    await waitForListen(app, port, 15_000, 5);
    return { ms: performance.now() - t0, command: `PORT=${port} ${app.command}` };
  } finally {
    await app.stop();
  }
}

/**
 * The limits of the "with limits" apps: every kind is written, none holds the app back (a
 * quota of 4 cores on this 2-core machine), so what is measured is arr's set-up, not a slower app.
 */
const LIMITS = { memory: '256M', cpu: 4, pids: 200, files: 4096 };

export async function activationSection(ctx: Ctx): Promise<void> {
  const runs = ctx.quick ? 3 : 7;
  const s = addSection(ctx, {
    id: 'activation',
    title: 'Activation: the first request to a cold app',
    text:
      `Through arr: a GET on a new connection to an app that is not running, timed from sending to ` +
      `the last byte of the answer (arr starts the app, waits until its port accepts, proxies). ` +
      `Direct: the same app spawned with PORT, its port polled every 5 ms until it accepts. ` +
      `With limits: an app with limits {memory 256M, cpu 4, pids 200, files 4096}, none of which ` +
      `holds it back (its cgroups made and written, v2 or v1 as the host has them, and prlimit in ` +
      `the start). ` +
      `${runs} runs of each, in turn, a different app each time; arr's overhead is the ` +
      'difference of the medians.',
    header: ['point', 'median', 'min', 'max'],
  });
  const appsFile = writeApps(
    join(ctx.tmp, 'apps-cold.json'),
    Array.from({ length: runs }, (_, i) => [
      { name: `cold${i + 1}`, hosts: [{ host: `cold${i + 1}.localhost` }] },
      { name: `limited${i + 1}`, hosts: [{ host: `limited${i + 1}.localhost` }], limits: LIMITS },
    ]).flat(),
  );
  const arr = await startArr(appsFile);
  s.commands.add(arr.proc.command);
  const viaArr: number[] = [];
  const limited: number[] = [];
  const direct: number[] = [];
  try {
    await get(arr.port, 'warm-up.localhost'); // a 404: arr's own code paths are warm, no app starts
    for (let i = 1; i <= runs; i++) {
      const throughArr = async () => {
        const r = await get(arr.port, `cold${i}.localhost`);
        if (r.status !== 200 || !r.body.includes(`hello from cold${i} `))
          throw new Error(`cold${i}: ${r.status} ${r.body}`);
        viaArr.push(r.ms);
        if (i === 1)
          s.commands.add(
            `# GET http://127.0.0.1:${arr.port}/ with Host: coldN.localhost, N = 1..${runs}, a new connection each (bench/lib/net.ts get)`,
          );
      };
      const withLimits = async () => {
        const r = await get(arr.port, `limited${i}.localhost`);
        if (r.status !== 200 || !r.body.includes(`hello from limited${i} `))
          throw new Error(`limited${i}: ${r.status} ${r.body}`);
        limited.push(r.ms);
      };
      const own = async () => {
        const d = await startDirect(`cold${i}-direct`);
        direct.push(d.ms);
        if (i === 1) s.commands.add(`${d.command}   # then poll the port every 5 ms until it accepts`);
      };
      const order = [throughArr, withLimits, own];
      for (let k = 0; k < order.length; k++) await order[(k + i) % order.length]!();
    }
  } finally {
    await arr.proc.stop();
  }
  const id = (x: number) => x;
  const row = (label: string, xs: number[]) => [
    label,
    fmt.ms(med(xs, id)),
    fmt.ms(Math.min(...xs)),
    fmt.ms(Math.max(...xs)),
  ];
  const overhead = med(viaArr, id) - med(direct, id);
  const limitsOverhead = med(limited, id) - med(direct, id);
  s.rows.push(
    row('first request through arr (cold app)', viaArr),
    row('first request through arr (cold app with limits)', limited),
    row("the app's own start-up (direct)", direct),
    ["arr's activation overhead", fmt.ms(overhead), '', ''],
    ["arr's activation overhead with limits", fmt.ms(limitsOverhead), '', ''],
  );
  ctx.targets.push(msTarget('activation overhead', overhead, 30));
}
