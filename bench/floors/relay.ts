// The floor of a TCP balancer written for Node.js: accept a connection, connect to the backend,
// relay bytes both ways with backpressure, end each direction when its source ends, close both
// on an error. One shared handler per event (no closure per connection), as nlb does; no
// configuration, health checks, retries, timeouts or logging. Beside nlb in the keep-alive and
// new-connection points: what nlb spends beyond this is nlb's own.
//
//   PORT=9000 TARGET=40000 node dist/bench/floors/relay.js

import { connect, createServer, type Socket } from 'node:net';

const port = Number(process.env.PORT ?? 0);
const target = Number(process.env.TARGET);

type Peer = Socket & { peer: Socket };

function onData(this: Peer, chunk: Buffer): void {
  if (!this.peer.write(chunk)) {
    this.pause();
    this.peer.once('drain', onDrain);
  }
}
function onDrain(this: Peer): void {
  this.peer.resume();
}
function onEnd(this: Peer): void {
  this.peer.end();
}
function onClose(this: Peer): void {
  this.peer.destroy();
}
function onConnect(this: Peer): void {
  this.peer.resume();
}

function join(a: Peer, b: Socket): void {
  a.peer = b;
  a.on('data', onData);
  a.on('end', onEnd);
  a.on('error', onClose);
  a.on('close', onClose);
}

const server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (client) => {
  const backend = connect({ host: '127.0.0.1', port: target, noDelay: true, allowHalfOpen: true });
  join(client as Peer, backend);
  join(backend as Peer, client);
  backend.once('connect', onConnect);
});
server.on('error', (err) => {
  console.error(`floor: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1');

process.on('SIGTERM', () => {
  server.close(() => process.exit(0));
  setTimeout(() => process.exit(0), 2000).unref();
});
