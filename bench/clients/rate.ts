// Latency at a fixed request rate: `connections` kept-alive connections, each sending GET / at
// rate/connections per second on a fixed schedule (open loop). A request's latency runs from
// the time it was due to be sent, so a late answer also delays what queues behind it (no
// coordinated omission). Prints one JSON line.
//
//   node dist/bench/clients/rate.js --port 8000 --host hello.localhost --connections 50 --rate 2000 --seconds 5

import { connect, type Socket } from 'node:net';
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';
import { percentile } from '../lib/stats.js';
import { needNumber, parseArgs } from './args.js';

const args = parseArgs(process.argv.slice(2));
const port = needNumber(args, 'port');
const host = args.get('host') ?? 'localhost';
const connections = needNumber(args, 'connections', 50);
const rate = needNumber(args, 'rate', 2000);
const seconds = needNumber(args, 'seconds', 5);
const warmup = needNumber(args, 'warmup', 1);

const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
const intervalMs = (connections / rate) * 1000;
const latencies: number[] = [];
let errors = 0;

function runConnection(index: number, t0: number, end: number): Promise<void> {
  return new Promise((resolve) => {
    const socket: Socket = connect({ host: '127.0.0.1', port, noDelay: true });
    let k = 0;
    let inFlightDue = -1;
    let buf: Buffer = Buffer.alloc(0);
    let timer: NodeJS.Timeout | undefined;
    const due = (n: number) => t0 + (index / connections) * intervalMs + n * intervalMs;
    const finish = () => {
      if (timer) clearTimeout(timer);
      socket.destroy();
      resolve();
    };
    const sendNext = () => {
      timer = undefined;
      const d = due(k);
      if (d >= end) return finish();
      const wait = d - performance.now();
      if (wait > 0.5) {
        timer = setTimeout(sendNext, wait);
        return;
      }
      inFlightDue = d;
      k++;
      socket.write(request);
    };
    socket.on('data', (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      for (;;) {
        const head = buf.indexOf('\r\n\r\n');
        if (head < 0) return;
        const m = buf
          .subarray(0, head)
          .toString('latin1')
          .match(/\r\ncontent-length:\s*(\d+)/i);
        if (!m) {
          errors++;
          return finish();
        }
        const total = head + 4 + Number(m[1]);
        if (buf.length < total) return;
        buf = buf.subarray(total);
        const now = performance.now();
        if (inFlightDue >= t0 + warmup * 1000) latencies.push(now - inFlightDue);
        inFlightDue = -1;
        sendNext();
      }
    });
    socket.on('error', () => {
      errors++;
      finish();
    });
    socket.on('close', finish);
    socket.on('connect', sendNext);
  });
}

// The generator's own stalls, reported beside the latencies: a late timer or a GC pause here
// shows as latency of whatever is measured.
const loop = monitorEventLoopDelay({ resolution: 5 });
let gcMs = 0;
let gcMaxMs = 0;
const gc = new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcMs += e.duration;
    gcMaxMs = Math.max(gcMaxMs, e.duration);
  }
});

const t0 = performance.now() + 200; // every connection is open before the first request is due
setTimeout(
  () => {
    loop.enable();
    gc.observe({ entryTypes: ['gc'] });
  },
  200 + warmup * 1000,
);
const end = t0 + (warmup + seconds) * 1000;
await Promise.all(Array.from({ length: connections }, (_, i) => runConnection(i, t0, end)));
latencies.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    rate,
    connections,
    completed: latencies.length,
    achievedRate: latencies.length / seconds,
    errors,
    p50ms: percentile(latencies, 50),
    p90ms: percentile(latencies, 90),
    p99ms: percentile(latencies, 99),
    maxms: latencies.at(-1) ?? Number.NaN,
    generator: {
      loopDelayP99ms: loop.percentile(99) / 1e6,
      loopDelayMaxms: loop.max / 1e6,
      gcMs,
      gcMaxMs,
    },
  }),
);
