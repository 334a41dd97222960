// WebSocket opening rate, for the CPU an upgrade costs: `connections` loops, each opening a
// WebSocket to the hello sample's /ws, waiting for the app's greeting and closing it, for
// `seconds`. Prints one JSON line: how many were opened, and per second.
//
//   node dist/bench/clients/ws-open.js --port 8000 --host hello.localhost --connections 50 --seconds 5

import WebSocket from 'ws';
import { needNumber, parseArgs } from './args.js';

const args = parseArgs(process.argv.slice(2));
const port = needNumber(args, 'port');
const host = args.get('host') ?? 'localhost';
const connections = needNumber(args, 'connections', 50);
const seconds = needNumber(args, 'seconds', 5);

/** Opens one WebSocket, waits for the greeting, closes it. */
function openOne(): Promise<void> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { host }, perMessageDeflate: false });
    ws.once('message', () => {
      ws.terminate();
      resolve();
    });
    ws.once('error', reject);
  });
}

const t0 = performance.now();
const end = t0 + seconds * 1000;
let opened = 0;
await Promise.all(
  Array.from({ length: connections }, async () => {
    while (performance.now() < end) {
      await openOne();
      opened++;
    }
  }),
);
console.log(JSON.stringify({ opened, perSecond: opened / ((performance.now() - t0) / 1000) }));
process.exit(0);
