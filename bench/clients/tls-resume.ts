// Full vs resumed TLS handshakes, as wrk cannot resume: `connections` loops, each sending
// `GET / HTTP/1.1` with `Connection: close` on a new TCP+TLS connection per request and reading
// the answer to its end. `--resume 1`: each loop offers the session (TLS 1.3 ticket) its previous
// connection received; `--resume 0`: none, so every handshake is a full one. Each loop first
// makes one uncounted request (that is where its first session comes from), then `seconds` of
// counted ones. Prints one JSON line: requests/s, the share of handshakes the server resumed
// (isSessionReused), latency (connect to the answer's end), errors and, with `--pid`, that
// process's CPU (/proc) per counted request: the server's cost of a handshake, priming excluded.
//
//   node dist/bench/clients/tls-resume.js --port 8443 --host hello.localhost --connections 50 --seconds 5 --resume 1 --pid 1234

import { connect } from 'node:tls';
import { cpuSeconds } from '../lib/cpu.js';
import { percentile } from '../lib/stats.js';
import { needNumber, parseArgs } from './args.js';

const args = parseArgs(process.argv.slice(2));
const port = needNumber(args, 'port');
const host = args.get('host') ?? 'localhost';
const connections = needNumber(args, 'connections', 50);
const seconds = needNumber(args, 'seconds', 5);
const resume = needNumber(args, 'resume', 1) !== 0;
const pid = args.has('pid') ? needNumber(args, 'pid') : undefined;
const request = Buffer.from(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);

let completed = 0;
let handshakes = 0;
let resumed = 0;
let errors = 0;
const latencies: number[] = [];
let counting = false;

/** One request on a new connection; resolves with the session to offer next (or the old one). */
function once(session: Buffer | undefined): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let next = session;
    let status = '';
    const socket = connect({
      host: '127.0.0.1',
      port,
      servername: host,
      rejectUnauthorized: false,
      ...(resume && session ? { session } : {}),
    });
    // TLS 1.3: the ticket comes after the handshake, as its own message; keep the latest.
    socket.on('session', (s: Buffer) => {
      next = s;
    });
    socket.once('secureConnect', () => {
      if (counting) handshakes++;
      if (counting && socket.isSessionReused()) resumed++;
      socket.write(request); // the server closes after its answer (Connection: close)
    });
    socket.on('data', (d: Buffer) => {
      if (status === '') status = d.toString('latin1', 9, 12);
    });
    socket.once('error', () => {
      if (counting) errors++;
      socket.destroy();
    });
    socket.once('close', () => {
      if (!counting) return resolve(next);
      if (status === '200') {
        completed++;
        latencies.push(performance.now() - t0);
      } else if (status !== '') errors++;
      resolve(next);
    });
  });
}

async function loop(first: Buffer | undefined, end: number): Promise<void> {
  let session = first;
  while (performance.now() < end) session = await once(session);
}

// Priming: one uncounted request per loop, all of them done before counting starts.
const primed = await Promise.all(Array.from({ length: connections }, () => once(undefined)));
counting = true;
const cpu0 = pid === undefined ? 0 : cpuSeconds(pid);
const t0 = performance.now();
await Promise.all(primed.map((session) => loop(session, t0 + seconds * 1000)));
const elapsed = (performance.now() - t0) / 1000;
const cpuUs = pid === undefined ? Number.NaN : ((cpuSeconds(pid) - cpu0) * 1e6) / completed;
latencies.sort((a, b) => a - b);
console.log(
  JSON.stringify({
    resume,
    completed,
    perSecond: completed / elapsed,
    resumedRatio: handshakes > 0 ? resumed / handshakes : 0,
    p50ms: percentile(latencies, 50),
    p99ms: percentile(latencies, 99),
    errors,
    serverCpuUs: cpuUs,
  }),
);
