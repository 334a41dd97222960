// `npm run bench`: arr, nlb and their peers (nginx, HAProxy) measured side by side in one run
// on one machine. Prints the tables and writes them to docs/BENCHMARKS.md with the machine's
// details and the exact commands. BENCH_QUICK=1: a 1-2 minute smoke run (written to a
// temporary file instead, so that it never replaces the real numbers).
//
// Environment: BENCH_QUICK=1, BENCH_REPS (3), BENCH_SECONDS (5), BENCH_ONLY=http,tls,h2,grpc,ws,nlb,
// engines,accesslog,activation,registry,farm,policies,workers,profile (a subset; not written to docs/), BENCH_OUT=FILE,
// BENCH_KEEP=1
// (keep the scratch directory), BENCH_PROFILE=0|1|ID,... (CPU profiles of arr,
// bench/sections/profile.ts: by default in a full run, not with BENCH_QUICK or a BENCH_ONLY that
// does not name them; IDs pick workloads: http-ka,http-new,https-new,h2,ws-echo).

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, type as osType, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { killAllNow, repoRoot, stopAll } from '../harness/proc.js';
import type { Ctx } from './lib/context.js';
import { ensurePeers, HAPROXY, NGINX, versionOf } from './lib/peers.js';
import { markdownTable, sectionMarkdown, targetsTable } from './lib/report.js';
import { fmt } from './lib/stats.js';
import { WRK } from './lib/wrk.js';
import { accessLogSection } from './sections/access-log.js';
import { activationSection } from './sections/activation.js';
import { enginesSection } from './sections/engines.js';
import { farmSection } from './sections/farm.js';
import { grpcSection } from './sections/grpc.js';
import { h2Section } from './sections/h2.js';
import { httpSection } from './sections/http.js';
import { nlbSection } from './sections/nlb.js';
import { policiesSection } from './sections/policies.js';
import { profileSection } from './sections/profile.js';
import { registrySection } from './sections/registry.js';
import { type Stage, setUpStage, tearDownStage } from './sections/stage.js';
import { tlsSection } from './sections/tls.js';
import { workersSection } from './sections/workers.js';
import { wsSection } from './sections/ws.js';

const env = process.env;
const quick = env.BENCH_QUICK !== undefined && env.BENCH_QUICK !== '' && env.BENCH_QUICK !== '0';
const only = env.BENCH_ONLY ? new Set(env.BENCH_ONLY.split(',').map((s) => s.trim())) : undefined;
const wanted = (id: string) => !only || only.has(id);
// Profiles are part of a full run (so that docs/BENCHMARKS.md always has them), not of a smoke run.
const profiling = env.BENCH_PROFILE ? env.BENCH_PROFILE !== '0' : only ? only.has('profile') : !quick;
const profiled =
  env.BENCH_PROFILE && !['0', '1'].includes(env.BENCH_PROFILE)
    ? new Set(env.BENCH_PROFILE.split(',').map((s) => s.trim()))
    : undefined;
const started = Date.now();
const log = (line: string) =>
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);

process.on('exit', killAllNow);
for (const sig of ['SIGINT', 'SIGTERM'] as const)
  process.on(sig, () => {
    log(`${sig}: stopping everything the bench started`);
    void stopAll().finally(() => process.exit(130));
  });

function machine(): [string, string][] {
  const model =
    readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.+)$/m)?.[1] ?? cpus()[0]?.model;
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot, encoding: 'utf8' });
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: repoRoot, encoding: 'utf8' });
  return [
    ['date', new Date().toISOString()],
    ['CPU', `${cpus().length} cores, ${model ?? 'unknown model'}`],
    ['memory', fmt.bytes(totalmem())],
    ['kernel', `${osType()} ${release()}`],
    [
      'load average at start (1, 5, 15 min)',
      loadavg()
        .map((x) => x.toFixed(2))
        .join(', '),
    ],
    ['Node.js', process.version],
    ['nginx', versionOf(NGINX, ['-v'])],
    ['HAProxy', versionOf(HAPROXY, ['-v'])],
    ['wrk', versionOf(WRK, ['--version']).replace(/\s+Copyright.*$/, '')],
    [
      'arr',
      `commit ${git.stdout.trim() || 'unknown'}${dirty.stdout.trim() ? ' with uncommitted changes under src/' : ''}`,
    ],
    ['mode', quick ? 'BENCH_QUICK (smoke run: 1 s points)' : 'full'],
  ];
}

async function main(): Promise<number> {
  await ensurePeers(log);
  const ctx: Ctx = {
    quick,
    reps: Number(env.BENCH_REPS ?? (quick ? 2 : 3)),
    seconds: Number(env.BENCH_SECONDS ?? (quick ? 1 : 5)),
    tmp: mkdtempSync(join(tmpdir(), 'arr-bench-')),
    sections: [],
    targets: [],
    log,
  };
  const facts = machine();
  log(`scratch directory ${ctx.tmp}; ${ctx.reps} runs of ${ctx.seconds} s per point`);
  const failures: string[] = [];
  const attempt = async (id: string, fn: () => Promise<void>) => {
    if (!wanted(id)) return;
    const t0 = Date.now();
    try {
      await fn();
      log(`${id}: done in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    } catch (err) {
      const message = (err as Error).stack ?? String(err);
      log(`${id} FAILED: ${message}`);
      failures.push(`${id}: ${(err as Error).message.split('\n')[0]}`);
    }
  };

  let stage: Stage | undefined;
  const stageNeeded = ['http', 'tls', 'h2', 'ws', 'nlb', 'engines'].some(wanted);
  if (stageNeeded) {
    try {
      stage = await setUpStage(ctx);
    } catch (err) {
      failures.push(`set-up: ${(err as Error).message.split('\n')[0]}`);
      log(`set-up FAILED: ${(err as Error).stack}`);
      await stopAll(); // what the set-up had started
    }
  }
  if (stage) {
    const st = stage;
    await attempt('http', () => httpSection(ctx, st));
    await attempt('tls', () => tlsSection(ctx, st));
    await attempt('h2', () => h2Section(ctx, st));
    await attempt('ws', () => wsSection(ctx, st));
    await attempt('nlb', () => nlbSection(ctx, st));
    await attempt('engines', () => enginesSection(ctx, st));
    await tearDownStage(st);
  }
  await attempt('grpc', () => grpcSection(ctx));
  await attempt('accesslog', () => accessLogSection(ctx));
  await attempt('activation', () => activationSection(ctx));
  await attempt('registry', () => registrySection(ctx));
  await attempt('farm', () => farmSection(ctx));
  await attempt('policies', () => policiesSection(ctx));
  await attempt('workers', () => workersSection(ctx));
  if (profiling) await attempt('profile', () => profileSection(ctx, profiled));
  facts.push([
    'load average at end (1, 5, 15 min)',
    loadavg()
      .map((x) => x.toFixed(2))
      .join(', '),
  ]);
  facts.push(['duration of the run', `${((Date.now() - started) / 60_000).toFixed(1)} min`]);

  const doc = report(ctx, facts, stage, failures);
  const out =
    env.BENCH_OUT ??
    (quick || only ? join(tmpdir(), 'arr-BENCHMARKS.md') : join(repoRoot, 'docs', 'BENCHMARKS.md'));
  writeFileSync(out, doc);
  process.stdout.write(
    `\n${markdownTable(['', ''], facts)}\n\n## Targets\n\n${targetsTable(ctx.targets)}\n\n`,
  );
  for (const s of ctx.sections) process.stdout.write(`${sectionMarkdown(s, false)}\n\n`);
  if (failures.length > 0) process.stdout.write(`FAILED:\n${failures.map((f) => `- ${f}`).join('\n')}\n`);
  process.stdout.write(`written to ${out}\n`);
  if (env.BENCH_KEEP) log(`scratch directory kept: ${ctx.tmp}`);
  else rmSync(ctx.tmp, { recursive: true, force: true });
  return failures.length > 0 ? 1 : 0;
}

function report(ctx: Ctx, facts: [string, string][], stage: Stage | undefined, failures: string[]): string {
  const parts = [
    '# Benchmarks',
    '',
    '<!-- Generated by `npm run bench` (bench/run.ts); the next full run rewrites this file. -->',
    '',
    'arr, nlb and their peers measured side by side, in one run, on the machine below. The machine is ' +
      'shared and noisy and the load generator runs on it too: absolute numbers move from run to run, ' +
      'so only the ratios and differences of one run count, each taken between contenders measured ' +
      'back to back. Every point runs several times with the contenders alternating (their order ' +
      'rotates each repetition); tables show medians. Run it again with `npm run bench` ' +
      '(`BENCH_QUICK=1 npm run bench` for a 1-2 minute smoke run, written to a temporary file).',
    '',
    '## Machine',
    '',
    markdownTable(['', ''], facts),
    '',
    '## Targets',
    '',
    targetsTable(ctx.targets),
    '',
  ];
  if (failures.length > 0) parts.push('Failed in this run:', '', ...failures.map((f) => `- ${f}`), '');
  parts.push('## Results', '');
  for (const s of ctx.sections) parts.push(sectionMarkdown(s, false), '');
  parts.push(readFileSync(join(repoRoot, 'bench', 'decisions.md'), 'utf8').trim(), '');
  parts.push(
    '## Method',
    '',
    '- Everything runs on loopback (127.0.0.1) on this one machine: the load generator (wrk 4.1 with 1 ' +
      'thread, or the Node.js clients in bench/clients), the proxies and the app share its cores.',
    '- One instance of the hello sample (`samples/hello/server.js`, a short text answer; `/ws` echoes) ' +
      'serves every HTTP, WebSocket and TCP point: arr starts it on the first request, and direct, ' +
      'nginx, HAProxy, nlb and the prototypes are pointed at its port (the harness checks that each ' +
      'answer names the same pid).',
    '- nginx: 1 worker, upstream keep-alive (64 idle connections), `keepalive_requests` raised so that ' +
      'neither side closes kept-alive connections during a run, access log off, the same ' +
      'X-Forwarded-* headers as arr. HAProxy: tcp mode, 1 thread. arr and nlb: `--log-level warn`.',
    '- Latency from wrk is closed-loop (each connection sends its next request when the answer ' +
      'arrives): at saturation it mostly measures the queue, connections / throughput. The open-loop ' +
      "point (bench/clients/rate.ts) holds a fixed rate well below every contender's capacity and is " +
      'the fair reading of the latency a proxy adds.',
    "- A ratio or difference is the median of the per-repetition values; a contender's number is the " +
      'median of its repetitions. Each contender gets an uncounted 1 s wrk run first (warm-up).',
    '- CPU per request: the user + system CPU time of a process (/proc/PID/stat) over a wrk run divided ' +
      'by the requests wrk completed in it; for nginx, its worker process. It is less sensitive to the ' +
      "machine's noise than throughput, and it tells where the time goes: a proxy that needs k times the " +
      'CPU per request serves about 1/k the requests once it has a core to itself.',
    '- Floors: what Node.js itself costs on this machine, measured beside arr in the same repetitions. ' +
      'A bare node:http and node:https server (bench/floors/hello.ts) sending the same bytes as the hello ' +
      "sample's `/` answer (the harness checks the length) with arr's certificate; for nlb, a process that " +
      'only accepts, connects to the app and closes both (bench/floors/accept-close.ts). A target that a ' +
      "floor makes impossible shows in the floor's own numbers.",
    '',
    '## Commands',
    '',
    `The scratch directory of this run was ${ctx.tmp} (deleted at the end); ports are the ones of this run.`,
    '',
  );
  if (stage) {
    parts.push(
      'The contenders sharing one app instance (port ' +
        `${stage.backend.port}, started by arr's first request):`,
      '',
      '```',
      ...stage.commands,
      '```',
      '',
      'nginx.conf:',
      '',
      '```nginx',
      stage.nginx.config.trim(),
      '```',
      '',
      'haproxy.cfg:',
      '',
      '```',
      stage.haproxy.config.trim(),
      '```',
      '',
      `nlb.json: \`${stage.nlb.config}\``,
      '',
      `apps.json: \`${readFileSync(stage.appsFile, 'utf8').trim().replace(repoRoot, '')}\``,
      '',
    );
  }
  for (const s of ctx.sections) {
    if (s.commands.size === 0) continue;
    parts.push(`${s.title}:`, '', '```', ...s.commands, '```', '');
  }
  return `${parts.join('\n').trim()}\n`;
}

main().then(
  async (code) => {
    await stopAll();
    process.exit(code);
  },
  async (err) => {
    log(`FAILED: ${(err as Error).stack ?? String(err)}`);
    await stopAll();
    process.exit(1);
  },
);
