import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { ArrUnderTest } from '../../harness/arr.js';
import { flags, runClient } from '../lib/clients.js';
import { addSection, type Ctx, HOST, startArr, TLS_HOST, writeApps } from '../lib/context.js';
import { h2load } from '../lib/h2load.js';
import { activate } from '../lib/net.js';
import {
  ARR,
  categoryCell,
  categoryOrder,
  hrtimeUs,
  IDLE,
  type ProfileSummary,
  readProfile,
  TOP_HEADER,
  topOf,
  topRows,
} from '../lib/profile.js';
import { wrk } from '../lib/wrk.js';
import { CONNECTIONS } from './http.js';

/** One load on a profiled arr; resolves with the command that made it. */
interface Workload {
  id: string;
  label: string;
  drive(arr: ArrUnderTest, seconds: number): Promise<string>;
}

const WORKLOADS: Workload[] = [
  {
    id: 'http-ka',
    label: 'HTTP, keep-alive',
    drive: async (arr, seconds) => {
      const url = `http://127.0.0.1:${arr.port}/`;
      return (await wrk({ url, host: HOST, connections: CONNECTIONS, seconds })).command;
    },
  },
  {
    id: 'http-new',
    label: 'HTTP, new connection per request',
    drive: async (arr, seconds) => {
      const url = `http://127.0.0.1:${arr.port}/`;
      return (await wrk({ url, host: HOST, connections: CONNECTIONS, seconds, close: true })).command;
    },
  },
  {
    id: 'https-new',
    label: 'HTTPS, full handshake per request',
    drive: async (arr, seconds) => {
      const url = `https://127.0.0.1:${arr.sslport}/`;
      return (await wrk({ url, host: TLS_HOST, connections: CONNECTIONS, seconds, close: true })).command;
    },
  },
  {
    id: 'h2',
    label: 'HTTP/2, 1 connection x 100 streams',
    drive: async (arr, seconds) => {
      const url = `https://127.0.0.1:${arr.sslport}/`;
      const o = { url, authority: TLS_HOST, clients: 1, streams: 100, seconds };
      return (await h2load(o, {})).command;
    },
  },
  {
    id: 'ws-echo',
    label: 'WebSocket echo',
    drive: async (arr, seconds) => {
      const o = { mode: 'echo', port: arr.port, host: HOST, connections: CONNECTIONS, seconds, warmup: 0 };
      return (await runClient('ws', flags(o))).command;
    },
  },
];

/**
 * One workload on an arr of its own started with `--cpu-prof`, so that each profile holds one
 * workload; arr is stopped with SIGTERM (a graceful stop ends in process.exit, where Node writes
 * the profile) and the profile summarised.
 */
async function profileOne(
  ctx: Ctx,
  w: Workload,
  appsFile: string,
  seconds: number,
): Promise<{ summary: ProfileSummary; commands: string[] }> {
  const dir = join(ctx.tmp, 'profiles', w.id);
  mkdirSync(dir, { recursive: true });
  const arr = await startArr(appsFile, 'warn', ['--cpu-prof', '--cpu-prof-dir', dir]);
  let command: string;
  const window = { fromUs: 0, toUs: 0 };
  try {
    await activate(arr.port, HOST); // the app instance starts before the load, not during it
    window.fromUs = hrtimeUs();
    command = await w.drive(arr, seconds);
    window.toUs = hrtimeUs();
  } finally {
    const code = await arr.stop();
    if (code !== 0) ctx.log(`profile ${w.id}: arr exited with ${code}`);
  }
  // arr's own profile: the app instances arr started are not profiled (their command has no flag).
  const file = readdirSync(dir).find((f) => f.includes(`.${arr.proc.pid}.`) && f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`arr (pid ${arr.proc.pid}) wrote no profile to ${dir}`);
  ctx.log(`profile ${w.id}: ${join(dir, file)}`);
  // Only the samples taken during the load: the profile's clock is the harness's (monotonic).
  return { summary: readProfile(join(dir, file), window), commands: [arr.proc.command, command] };
}

/**
 * CPU profiles of arr on each workload, summarised (bench/run.ts says when: BENCH_PROFILE, which
 * may also name the workloads: `BENCH_PROFILE=h2,ws-echo`).
 */
export async function profileSection(ctx: Ctx, ids?: Set<string>): Promise<void> {
  const appsFile = writeApps(join(ctx.tmp, 'profile-apps.json'), [
    { name: 'hello', hosts: [{ host: HOST }, { host: TLS_HOST }] },
  ]);
  const seconds = ctx.quick ? 2 : 10;
  const results: { w: Workload; summary: ProfileSummary }[] = [];
  const commands = new Set<string>();
  for (const w of WORKLOADS) {
    if (ids && !ids.has(w.id)) continue;
    ctx.log(`profile: ${w.label}, ${seconds} s`);
    const r = await profileOne(ctx, w, appsFile, seconds);
    results.push({ w, summary: r.summary });
    for (const c of r.commands) commands.add(c);
  }
  const summaries = results.map((r) => r.summary);
  const s = addSection(ctx, {
    id: 'profile',
    title: "Profiles: where arr's CPU time goes",
    text:
      `\`node --cpu-prof\` profiles of arr, one arr per workload (wrk or bench/clients/ws.ts, ${CONNECTIONS} ` +
      `connections, ${seconds} s, after one request that starts the app instance). Self time by ` +
      'category, with its share of the busy time (sampled time less idle), of the samples taken while ' +
      'the load ran (not the start-up and stop of arr). Sampling itself costs some CPU, so these ' +
      "runs' throughput is not comparable with the tables above. `node dist/bench/profile-summary.js FILE` " +
      'summarises a profile taken by hand.',
    header: ['category', ...results.map((r) => r.w.label)],
  });
  for (const c of commands) s.commands.add(c);
  s.rows.push(['sampled time', ...summaries.map((x) => `${x.totalMs.toFixed(0)} ms`)]);
  s.rows.push(['busy (not idle)', ...summaries.map((x) => `${(x.totalMs - x.idleMs).toFixed(0)} ms`)]);
  // arr's own share first: that is the part arr can cut.
  const order = categoryOrder(summaries).filter((c) => c !== ARR && c !== IDLE);
  for (const c of [ARR, ...order, IDLE]) s.rows.push([c, ...summaries.map((x) => categoryCell(x, c))]);
  for (const { w, summary } of results) {
    const t = addSection(ctx, {
      id: `profile-${w.id}`,
      title: `Profile: ${w.label}, top functions by self time`,
      text: 'Self time of each function over all its call paths; where: file:line (dist/ is compiled from the .ts of the same name).',
      header: TOP_HEADER,
    });
    t.rows.push(...topRows(summary));
    // arr's own functions rarely reach the overall top: they are the ones a change to arr can cut.
    t.notes.push(`arr's own functions with the most self time: ${topOf(summary, ARR) || 'none sampled'}.`);
  }
}
