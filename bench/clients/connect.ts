// New TCP connections as fast as a server closes them: `connections` loops, each opening a
// connection, sending nothing and waiting until the server closes it, then opening the next.
// For the nlb floor (bench/floors/accept-close.ts), which never answers, so wrk cannot count it.
// Prints one JSON line: connections completed, per second, errors (a reset counts as completed:
// the server closed it).
//
//   node dist/bench/clients/connect.js --port 9000 --connections 50 --seconds 5

import { connect } from 'node:net';
import { needNumber, parseArgs } from './args.js';

const args = parseArgs(process.argv.slice(2));
const port = needNumber(args, 'port');
const connections = needNumber(args, 'connections', 50);
const seconds = needNumber(args, 'seconds', 5);

let completed = 0;
let errors = 0;
const end = performance.now() + seconds * 1000;

function loop(done: () => void): void {
  if (performance.now() >= end) {
    done();
    return;
  }
  const socket = connect({ host: '127.0.0.1', port });
  let connected = false;
  socket.once('connect', () => {
    connected = true;
  });
  socket.on('error', () => {
    if (!connected) errors++;
  });
  socket.once('close', () => {
    if (connected) completed++;
    loop(done);
  });
}

const t0 = performance.now();
await Promise.all(Array.from({ length: connections }, () => new Promise<void>((resolve) => loop(resolve))));
const elapsed = (performance.now() - t0) / 1000;
console.log(JSON.stringify({ completed, perSecond: completed / elapsed, errors }));
