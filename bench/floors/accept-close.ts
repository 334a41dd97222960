// The floor of nlb's new-connection point: a Node.js process that accepts a connection, connects
// to the backend, and closes both once that connection is up. No relay, so a client gets no
// answer: wrk counts each connection as a read error (bench/sections/nlb.ts). Whatever nlb spends
// per new connection beyond this is nlb's own (bench/decisions.md, "nlb stays one thread").
//
//   PORT=9000 TARGET=40000 node dist/bench/floors/accept-close.js

import { connect, createServer, type Socket } from 'node:net';

const port = Number(process.env.PORT ?? 0);
const target = Number(process.env.TARGET);

// One shared handler per event, no closure per connection: what nlb does too.
function ignore(): void {}
function closeBoth(this: Socket & { peer?: Socket }): void {
  this.destroy();
  this.peer?.destroy();
}

const server = createServer({ pauseOnConnect: true, noDelay: true }, (client) => {
  client.on('error', ignore);
  const backend = connect({ host: '127.0.0.1', port: target, noDelay: true }) as Socket & { peer?: Socket };
  backend.peer = client;
  backend.on('error', closeBoth);
  backend.on('connect', closeBoth);
});
server.on('error', (err) => {
  console.error(`floor: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1');

process.on('SIGTERM', () => server.close(() => process.exit(0)));
