// WebSocket client for the benchmarks, against the hello sample's /ws echo.
//
// Echo: `connections` WebSockets, each sending a message and waiting for its echo before the
// next (sequential round trips), for `seconds`; prints one JSON line with the round-trip
// latency (p50, p99) and the round trips per second over all connections.
//
//   node dist/bench/clients/ws.js --mode echo --port 8000 --host hello.localhost --connections 50 --seconds 5
//
// Idle: opens `connections` WebSockets (each one gets the app's greeting, so it reached the
// app), prints `held N`, and holds them until its stdin closes.
//
//   node dist/bench/clients/ws.js --mode idle --port 8000 --host hello.localhost --connections 5000

import WebSocket from 'ws';
import { percentile } from '../lib/stats.js';
import { needNumber, parseArgs } from './args.js';

const args = parseArgs(process.argv.slice(2));
const port = needNumber(args, 'port');
const host = args.get('host') ?? 'localhost';
const connections = needNumber(args, 'connections', 50);
const mode = args.get('mode') ?? 'echo';

/** Opens one WebSocket and resolves once the app's greeting has come through. */
function open(): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, {
      headers: { host },
      handshakeTimeout: 30_000,
      perMessageDeflate: false,
    });
    ws.once('message', () => resolve(ws));
    ws.once('error', reject);
    ws.once('close', () => reject(new Error('closed before the greeting')));
  });
}

/** Opens `n` WebSockets, at most `parallel` handshakes at a time. */
async function openMany(n: number, parallel: number): Promise<WebSocket[]> {
  const out: WebSocket[] = [];
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      out.push(await open());
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
  return out;
}

async function echo(): Promise<void> {
  const seconds = needNumber(args, 'seconds', 5);
  const warmup = needNumber(args, 'warmup', 1);
  const payload = Buffer.alloc(needNumber(args, 'size', 32), 'x').toString();
  const sockets = await openMany(connections, 50);
  const latencies: number[] = [];
  const t0 = performance.now();
  const measureFrom = t0 + warmup * 1000;
  const end = measureFrom + seconds * 1000;
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve, reject) => {
          let sent = 0;
          const send = () => {
            sent = performance.now();
            if (sent >= end) return resolve();
            ws.send(payload);
          };
          ws.on('message', () => {
            if (sent >= measureFrom) latencies.push(performance.now() - sent);
            send();
          });
          ws.once('error', reject);
          send();
        }),
    ),
  );
  for (const ws of sockets) ws.terminate();
  latencies.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      connections,
      roundTrips: latencies.length,
      perSecond: latencies.length / seconds,
      p50ms: percentile(latencies, 50),
      p99ms: percentile(latencies, 99),
    }),
  );
}

async function idle(): Promise<void> {
  const sockets = await openMany(connections, 100);
  let closed = 0;
  for (const ws of sockets) ws.once('close', () => closed++);
  console.log(`held ${sockets.length}`);
  process.stdin.resume();
  await new Promise((resolve) => process.stdin.once('close', resolve));
  console.log(`closed early: ${closed}`);
  for (const ws of sockets) ws.terminate();
}

await (mode === 'idle' ? idle() : echo());
process.exit(0);
