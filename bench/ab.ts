// A/B of arr's CPU per unit of work, for deciding whether a change to src/ pays: two builds of
// arr (two checkouts, each built with tsc) run side by side on the hello sample, the runs
// alternating (order reversed each repetition), and the CPU each arr process used during a run
// (user + system, /proc) divided by the work the run did. Prints the medians.
//
//   node dist/bench/ab.js A_ROOT B_ROOT [points] [reps] [seconds]
//
// points (comma-separated): http (new connection per request, wrk), https (full handshake per
// request, wrk: no SNI), ka (HTTP keep-alive, wrk), sni (full handshakes with SNI,
// clients/tls-resume.ts), resumed (resumed handshakes, likewise), ws (echo round trips,
// clients/ws.ts), wsopen (WebSockets opened and closed, clients/ws-open.ts), h2 (HTTP/2, h2load,
// 1 connection x 100 streams), grpc (unary gRPC calls by h2c to an h2c app, h2load, 1 connection x
// 100 streams; bench/sections/grpc.ts). Extra arr options:
// A_ARGS / B_ARGS (e.g. B_ARGS=--no-http2 with A_ROOT = B_ROOT).

import { type ChildProcess, spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BSON } from 'mongodb';
import { freePorts, freeRange } from '../harness/ports.js';
import { clientPath, flags } from './lib/clients.js';
import { HOST, med, NODE, TLS_HOST, writeApps } from './lib/context.js';
import { cpuSeconds } from './lib/cpu.js';
import { h2load } from './lib/h2load.js';
import { activate, waitForPort } from './lib/net.js';
import { parseWrk, WRK, wrkArgs } from './lib/wrk.js';
import { GRPC_HEADERS, GRPC_HOST, GRPC_PATH, grpcAppDoc, writeGrpcCall } from './sections/grpc.js';

const [aRoot, bRoot, pointsArg = 'http,https,ws', repsArg = '3', secondsArg = '3'] = process.argv.slice(2);
if (!aRoot || !bRoot) throw new Error('usage: node dist/bench/ab.js A_ROOT B_ROOT [points] [reps] [seconds]');
const points = pointsArg.split(',');
const reps = Number(repsArg);
const seconds = Number(secondsArg);

interface Arr {
  label: string;
  child: ChildProcess;
  port: number;
  sslport: number;
}

interface Measure {
  /** arr's CPU per unit (request, handshake, round trip, WebSocket), µs. */
  us: number;
  /** Units per second. */
  rate: number;
}

function run(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    c.stdout.on('data', (d) => {
      out += d;
    });
    c.on('exit', (code) =>
      code === 0 ? resolve(out) : reject(new Error(`${cmd} exited with ${code}\n${out}`)),
    );
  });
}

const lastJson = (out: string) => JSON.parse(out.trim().split('\n').at(-1) ?? '{}');

async function startArr(root: string, label: string, apps: string): Promise<Arr> {
  const [port, sslport] = await freePorts(2);
  const range = await freeRange(20);
  const extra = (process.env[`${label}_ARGS`] ?? '').split(' ').filter(Boolean);
  const args = [
    join(root, 'dist/src/cli/arr.js'),
    ...['-p', String(port), '-s', String(sslport), '-r', `${range[0]}-${range[1]}`],
    ...['--bind', '127.0.0.1', '--advertise', '127.0.0.1', '-a', apps, '--log-level', 'warn'],
    ...extra,
  ];
  const child = spawn(NODE, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPort(port!, 60_000);
  await waitForPort(sslport!, 60_000);
  await activate(port!, HOST); // the app instance starts before the runs, not during one
  return { label, child, port: port!, sslport: sslport! };
}

async function measure(arr: Arr, point: string): Promise<Measure> {
  const pid = arr.child.pid!;
  const before = cpuSeconds(pid);
  const per = (units: number, rate: number) => ({ us: ((cpuSeconds(pid) - before) * 1e6) / units, rate });
  const common = { host: HOST, connections: 50, seconds };
  switch (point) {
    case 'ws': {
      const r = lastJson(
        await run(NODE, [clientPath('ws'), ...flags({ ...common, mode: 'echo', port: arr.port, warmup: 0 })]),
      );
      return per(r.roundTrips, r.perSecond);
    }
    case 'wsopen': {
      const r = lastJson(await run(NODE, [clientPath('ws-open'), ...flags({ ...common, port: arr.port })]));
      return per(r.opened, r.perSecond);
    }
    case 'h2': {
      const url = `https://127.0.0.1:${arr.sslport}/`;
      const r = await h2load({ url, authority: TLS_HOST, clients: 1, streams: 100, seconds }, { arr: pid });
      return { us: r.cpuUs.arr!, rate: r.rps };
    }
    case 'grpc': {
      const url = `http://127.0.0.1:${arr.port}${GRPC_PATH}`;
      const o = {
        url,
        authority: GRPC_HOST,
        clients: 1,
        streams: 100,
        seconds,
        data: grpcCall,
        headers: GRPC_HEADERS,
      };
      const r = await h2load(o, { arr: pid });
      return { us: r.cpuUs.arr!, rate: r.rps };
    }
    case 'sni':
    case 'resumed': {
      const resume = point === 'resumed' ? 1 : 0;
      const r = lastJson(
        await run(NODE, [clientPath('tls-resume'), ...flags({ ...common, port: arr.sslport, resume, pid })]),
      );
      return { us: r.serverCpuUs, rate: r.perSecond };
    }
    default: {
      const secure = point === 'https';
      const url = secure ? `https://127.0.0.1:${arr.sslport}/` : `http://127.0.0.1:${arr.port}/`;
      const o = { url, host: secure ? TLS_HOST : HOST, connections: 50, seconds, close: point !== 'ka' };
      const r = parseWrk(await run(WRK, wrkArgs(o)));
      return per(r.requests, r.rps);
    }
  }
}

const scratch = mkdtempSync(join(tmpdir(), 'arr-ab-'));
const apps = writeApps(join(scratch, 'apps.json'), [
  { name: 'hello', hosts: [{ host: HOST }, { host: TLS_HOST }] },
]);
if (points.includes('grpc'))
  appendFileSync(apps, `${BSON.EJSON.stringify(grpcAppDoc(), { relaxed: true })}\n`);
const grpcCall = writeGrpcCall(scratch);
const arrs = [await startArr(aRoot, 'A', apps), await startArr(bRoot, 'B', apps)];
const results = new Map<string, Measure[]>();
try {
  for (const point of points) {
    for (const arr of arrs) await measure(arr, point); // warm-up
    for (let r = 0; r < reps; r++) {
      for (const arr of r % 2 === 0 ? arrs : [...arrs].reverse()) {
        const m = await measure(arr, point);
        const key = `${point} ${arr.label}`;
        results.set(key, [...(results.get(key) ?? []), m]);
        process.stderr.write(`${key}: ${m.us.toFixed(1)} µs, ${m.rate.toFixed(0)}/s\n`);
      }
    }
  }
} finally {
  for (const arr of arrs) arr.child.kill('SIGTERM');
}
for (const [key, ms] of results) {
  const all = ms.map((m) => m.us.toFixed(1)).join(' ');
  console.log(
    `${key.padEnd(10)} CPU ${med(ms, (m) => m.us).toFixed(1)} µs, ${med(ms, (m) => m.rate).toFixed(0)}/s [${all}]`,
  );
}
process.exit(0);
