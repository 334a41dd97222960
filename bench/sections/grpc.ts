import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectId } from 'mongodb';
import { type AppDoc, startArrWith, writeAppsFile } from '../../harness/arr.js';
import { repoRoot } from '../../harness/proc.js';
import { addSection, alternate, type Ctx, med, NODE, ratioOf } from '../lib/context.js';
import { H2LOAD, type H2loadResult, h2load } from '../lib/h2load.js';
import { freePort, waitForListen } from '../lib/net.js';
import { startGrpcNginx } from '../lib/peers.js';
import { ratioTarget } from '../lib/report.js';
import { fmt } from '../lib/stats.js';

export const GRPC_HOST = 'grpc.localhost';
const HOST = GRPC_HOST;
/** The echo service of test/support/grpcapp.ts (@grpc/grpc-js), built beside the tests. */
const GRPC_APP = join(repoRoot, 'dist/test/support/grpcapp.js');
export const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'];
export const GRPC_PATH = '/test.Echo/Unary';

/** The benchmarked gRPC app: the echo service as an app of `"protocol": "h2c"`. */
export function grpcAppDoc(): AppDoc {
  return {
    _id: new ObjectId('0000000000000000000000aa'),
    name: 'grpc',
    process: { executable: NODE, args: [GRPC_APP] },
    hosts: [{ host: HOST, ssl: 'allowed' }],
    instances: 1,
    protocol: 'h2c',
    machines: [],
  };
}

/** Writes the body of a unary call (a 100-byte message) into `dir`; returns its path. */
export function writeGrpcCall(dir: string): string {
  const body = join(dir, 'grpc-call.bin');
  writeFileSync(body, grpcFrame(100));
  return body;
}

const POINTS = [
  { label: '1 connection x 100 streams', clients: 1, streams: 100 },
  { label: '10 connections x 10 streams', clients: 10, streams: 10 },
] as const;

/** The goal of #30: arr's gRPC throughput at least half of nginx `grpc_pass`'s, in the same run. */
const TARGET_RATIO = 0.5;

/** A unary call's body: one uncompressed gRPC message of `size` bytes. */
function grpcFrame(size: number): Buffer {
  const head = Buffer.alloc(5);
  head.writeUInt32BE(size, 1);
  return Buffer.concat([head, Buffer.alloc(size, 'x')]);
}

/** One call with curl by prior knowledge: the pid of the instance that answered, if grpc-status was 0. */
function checkedCall(port: number, body: string): number {
  const r = spawnSync('curl', [
    '-s',
    '--http2-prior-knowledge',
    '--data-binary',
    `@${body}`,
    ...GRPC_HEADERS.flatMap((h) => ['-H', h]),
    '-H',
    `host: ${HOST}`,
    '-D',
    '-',
    '-o',
    '/dev/null',
    `http://127.0.0.1:${port}/test.Echo/Unary`,
  ]);
  const head = r.stdout.toString();
  const pid = head.match(/^x-pid: (\d+)/m);
  if (!/^grpc-status: 0\r?$/m.test(head) || !pid) throw new Error(`no gRPC answer on port ${port}:\n${head}`);
  return Number(pid[1]);
}

export async function grpcSection(ctx: Ctx): Promise<void> {
  const s = addSection(ctx, {
    id: 'grpc',
    title: 'gRPC: arr vs nginx grpc_pass (h2load)',
    text:
      'Unary gRPC calls (`/test.Echo/Unary` with a 100-byte message, `content-type: application/grpc`, ' +
      '`te: trailers`) by HTTP/2 with prior knowledge (h2c) to the proxy, h2c from the proxy to one ' +
      'instance of a @grpc/grpc-js echo server (test/support/grpcapp.ts; arr started it as an app of ' +
      '`"protocol": "h2c"`, direct and nginx go to the same process). nginx: `grpc_pass grpc://`, ' +
      `1 worker, kept-alive upstream. h2load (${H2LOAD}), 1 thread, 1 s warm-up, ${ctx.seconds} s per run, ` +
      `median of ${ctx.reps} runs, alternating; each contender is checked first with one call by curl ` +
      '(grpc-status 0). CPU per call: the proxy process (nginx: its worker), and the instance.',
    header: ['point', 'direct', 'arr', 'nginx', 'arr vs nginx', 'arr vs direct'],
  });
  const body = writeGrpcCall(ctx.tmp);
  const apps = writeAppsFile(join(ctx.tmp, 'grpc-apps.json'), [grpcAppDoc()]);
  // A range of one port: the instance's port is known.
  const arr = await startArrWith([], {
    file: apps,
    rangeSize: 1,
    extraArgs: ['--log-level', 'warn'],
    ready: (a) => waitForListen(a.proc, a.port, 120_000),
  });
  const nginxPort = await freePort();
  const backend = arr.range[0];
  let nginx: Awaited<ReturnType<typeof startGrpcNginx>> | undefined;
  try {
    const pid = checkedCall(arr.port, body);
    nginx = await startGrpcNginx(ctx.tmp, { port: nginxPort, backend });
    const workers = spawnSync('pgrep', ['-P', String(nginx.proc.pid)], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n')
      .filter(Boolean);
    if (workers.length !== 1) throw new Error(`nginx has ${workers.length} workers, not 1`);
    const ports: Record<string, number> = { direct: backend, arr: arr.port, nginx: nginxPort };
    const proxies: Record<string, number | undefined> = {
      direct: undefined,
      arr: arr.proc.pid,
      nginx: Number(workers[0]),
    };
    for (const [name, port] of Object.entries(ports))
      if (checkedCall(port, body) !== pid) throw new Error(`${name} reached another process than ${pid}`);
    s.commands.add(arr.proc.command);
    s.commands.add(nginx.proc.command);
    const names = ['direct', 'arr', 'nginx'];
    for (const p of POINTS) {
      ctx.log(`grpc: ${p.label}`);
      const runs = await alternate(ctx, names, async (n) => {
        const watched: Record<string, number> = { app: pid };
        if (proxies[n] !== undefined) watched.proxy = proxies[n];
        const r = await h2load(
          {
            url: `http://127.0.0.1:${ports[n]}${GRPC_PATH}`,
            authority: HOST,
            clients: p.clients,
            streams: p.streams,
            seconds: ctx.seconds,
            data: body,
            headers: GRPC_HEADERS,
          },
          watched,
        );
        s.commands.add(r.command);
        return r;
      });
      const rps = (r: H2loadResult) => r.rps;
      const proxyCpu = (r: H2loadResult) => r.cpuUs.proxy ?? Number.NaN;
      const appCpu = (r: H2loadResult) => r.cpuUs.app ?? Number.NaN;
      s.rows.push(
        [
          `${p.label}: calls/s`,
          ...names.map((n) => fmt.rps(med(runs.get(n), rps))),
          fmt.ratio(ratioOf(runs.get('arr'), runs.get('nginx'), rps)),
          fmt.ratio(ratioOf(runs.get('arr'), runs.get('direct'), rps)),
        ],
        [
          `${p.label}: proxy CPU per call`,
          '-',
          ...['arr', 'nginx'].map((n) => `${fmt.num(med(runs.get(n), proxyCpu))} µs`),
          fmt.ratio(ratioOf(runs.get('arr'), runs.get('nginx'), proxyCpu)),
          '',
        ],
        [
          `${p.label}: instance CPU per call`,
          ...names.map((n) => `${fmt.num(med(runs.get(n), appCpu))} µs`),
          '',
          '',
        ],
      );
      for (const n of names) {
        const errors = (runs.get(n) ?? []).reduce((a, r) => a + r.errors, 0);
        if (errors > 0) s.notes.push(`${n}, ${p.label}: ${errors} failed or non-2xx calls`);
      }
      ctx.targets.push(
        ratioTarget(
          `arr gRPC throughput / nginx grpc_pass, ${p.label}`,
          ratioOf(runs.get('arr'), runs.get('nginx'), rps),
          TARGET_RATIO,
        ),
      );
    }
  } finally {
    await nginx?.proc.stop();
    await arr.stop();
  }
}
