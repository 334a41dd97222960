// TLS handshake times against one TLS port: the first handshake for each of several host names
// (SNI) that the server has not seen yet, then repeated handshakes for one name it has seen.
// Each handshake is a new TCP connection (no session resumption). Prints one JSON line.
//
//   node dist/bench/clients/tls-handshake.js --port 31416 --new h2.localhost,h3.localhost --repeat h1.localhost --count 20

import { connect } from 'node:tls';
import { median } from '../lib/stats.js';
import { need, needNumber, parseArgs } from './args.js';

const args = parseArgs(process.argv.slice(2));
const port = needNumber(args, 'port');
const fresh = need(args, 'new').split(',');
const repeat = need(args, 'repeat');
const count = needNumber(args, 'count', 20);

/** Milliseconds from the TCP connect call to the end of the handshake; the certificate's subject. */
function handshake(servername: string): Promise<{ ms: number; subject: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const socket = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
    socket.once('secureConnect', () => {
      const ms = performance.now() - t0;
      const subject = String(socket.getPeerCertificate().subject?.CN ?? '');
      socket.destroy();
      resolve({ ms, subject });
    });
    socket.once('error', reject);
  });
}

// The repeated host's first handshake, not counted: the server's TLS code is warm before the
// new hosts' first handshakes are timed, so these measure what a new host costs.
await handshake(repeat);
const first: number[] = [];
for (const host of fresh) first.push((await handshake(host)).ms);
const again: number[] = [];
for (let i = 0; i < count; i++) again.push((await handshake(repeat)).ms);
console.log(JSON.stringify({ firstMs: median(first), repeatMs: median(again), first, again }));
