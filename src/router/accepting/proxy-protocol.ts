import type { Server } from 'node:http';
import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';

/**
 * `--trust-proxy-protocol`: every connection to arr's public ports begins with a PROXY protocol
 * v1 header (haproxy.org/download/3.0/doc/proxy-protocol.txt), as nlb sends it with
 * `"proxyProtocol": true`, and the client's address is the header's source address.
 */

/** The longest v1 header, CRLF included. */
export const MAX_HEADER_BYTES = 107;

const PREFIX = Buffer.from('PROXY ', 'latin1');
const CR = 0x0d;
const LF = 0x0a;

export type ProxyHeader =
  | {
      protocol: 'TCP4' | 'TCP6';
      source: string;
      destination: string;
      sourcePort: number;
      destinationPort: number;
    }
  | { protocol: 'UNKNOWN' };

/**
 * A v1 header line without its CRLF (`PROXY TCP4 src dst sport dport`), parsed, or undefined
 * when it is not one. Single spaces, addresses of the named family, decimal ports 0-65535;
 * after `PROXY UNKNOWN` anything may follow, and is ignored, as the specification says.
 */
export function parseProxyHeader(line: string): ProxyHeader | undefined {
  if (line === 'PROXY UNKNOWN' || line.startsWith('PROXY UNKNOWN ')) return { protocol: 'UNKNOWN' };
  const parts = line.split(' ');
  if (parts.length !== 6 || parts[0] !== 'PROXY') return undefined;
  const [, protocol, source = '', destination = '', sport = '', dport = ''] = parts;
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return undefined;
  const isAddress = protocol === 'TCP4' ? isIPv4 : isIPv6;
  if (!isAddress(source) || !isAddress(destination)) return undefined;
  // A zone (fe80::1%eth0) names an interface of the balancer's machine: no client address.
  if (source.includes('%') || destination.includes('%')) return undefined;
  const sourcePort = port(sport);
  const destinationPort = port(dport);
  if (sourcePort === undefined || destinationPort === undefined) return undefined;
  return { protocol, source, destination, sourcePort, destinationPort };
}

function port(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/**
 * Connections that came with a valid header: the client address it announced (undefined for
 * `UNKNOWN`: the socket's own peer then stands). Undefined as a whole while no listener
 * expects headers, so that clientAddress costs nothing more than the socket's own field then.
 */
let announced: WeakMap<Duplex, string | undefined> | undefined;

/**
 * The client's address for X-Forwarded-For and the access log: what the connection's PROXY
 * header announced, if it came with one, else the socket's peer.
 */
export function clientAddress(socket: Duplex): string | undefined {
  if (announced !== undefined) {
    const address = announced.get(socket);
    if (address !== undefined) return address;
  }
  return (socket as Partial<Socket>).remoteAddress;
}

/**
 * Makes `server` (an http.Server or https.Server, not yet listening) read a PROXY v1 header at
 * the start of every connection before its own handling begins: for TLS the header comes before
 * the ClientHello. A connection whose first bytes are not a valid header of at most 107 bytes,
 * or that has not sent one within `timeoutMs`, is closed without an answer.
 *
 * The server keeps listening itself (so that its connection tracking, header timeouts, idle
 * connection closing and connection count stay as they are): its own 'connection' listeners,
 * which are how Node's http and tls servers take a socket in (the event that the documentation
 * says may be emitted to inject one), are taken off and called once the header is read, with
 * the bytes after it put back on the socket.
 */
export function expectProxyHeaders(server: Server, secure: boolean, timeoutMs: number): void {
  const own = server.listeners('connection') as ((this: Server, socket: Socket) => void)[];
  if (own.length === 0) throw new Error('the server has no connection listener to hand sockets to');
  server.removeAllListeners('connection');
  announced ??= new WeakMap();
  const seen = announced;
  const handOver = (socket: Socket) => {
    for (const listener of own) listener.call(server, socket);
  };

  // A TLS socket is made by the server from the raw one, out of reach; both are the same TCP
  // connection, so its four addresses and ports find the raw socket's header again.
  const pending = secure ? new Map<string, { socket: Socket; address: string | undefined }>() : undefined;

  server.on('connection', (socket: Socket) => {
    // A socket handed back to the server (a declined upgrade, see listeners.ts) is past its header.
    if (seen.has(socket)) return handOver(socket);
    readHeader(socket, timeoutMs, (header) => {
      const address = header.protocol === 'UNKNOWN' ? undefined : header.source;
      seen.set(socket, address);
      if (pending) {
        const key = connectionKey(socket);
        if (key === undefined) return socket.destroy();
        pending.set(key, { socket, address });
        socket.once('close', () => {
          if (pending.get(key)?.socket === socket) pending.delete(key);
        });
        // The TLS socket reports errors of the connection from now on; the raw one stays quiet.
        socket.on('error', () => {});
        handOver(socket); // the TLS socket takes the bytes put back on the raw one
      } else {
        handOver(socket);
        socket.resume(); // the HTTP parser reads the bytes put back, then the rest
      }
    });
  });

  if (pending) {
    server.prependListener('secureConnection', (tls: TLSSocket) => {
      if (seen.has(tls)) return; // handed back to the server (a declined upgrade)
      const key = connectionKey(tls);
      const entry = key === undefined ? undefined : pending.get(key);
      if (!key || !entry) return tls.destroy(); // cannot happen: the connection would be gone
      pending.delete(key);
      seen.set(tls, entry.address);
    });
  }
}

function connectionKey(s: Socket): string | undefined {
  const { remoteAddress, remotePort, localAddress, localPort } = s;
  if (remoteAddress === undefined || localAddress === undefined) return undefined;
  return `${remoteAddress} ${remotePort} ${localAddress} ${localPort}`;
}

/**
 * Reads the header off `socket` (it may come in pieces), then pauses the socket with whatever
 * followed the header put back, and calls `done`. Anything else closes the socket at once.
 */
function readHeader(socket: Socket, timeoutMs: number, done: (header: ProxyHeader) => void): void {
  let buffered: Buffer | undefined;
  const timer = setTimeout(() => socket.destroy(), timeoutMs);
  const stop = () => {
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('error', onError);
    socket.off('end', onEnd);
    socket.off('close', onClose);
  };
  const refuse = () => {
    stop();
    socket.destroy();
  };
  const onError = refuse;
  const onEnd = refuse;
  const onClose = stop;
  const onData = (chunk: Buffer) => {
    const data = buffered ? Buffer.concat([buffered, chunk]) : chunk;
    // Wrong from the first bytes: not worth waiting for the rest.
    const n = Math.min(data.length, PREFIX.length);
    if (data.compare(PREFIX, 0, n, 0, n) !== 0) return refuse();
    const lf = data.subarray(0, MAX_HEADER_BYTES).indexOf(LF);
    if (lf === -1) {
      if (data.length >= MAX_HEADER_BYTES) return refuse();
      buffered = data;
      return;
    }
    const header = data[lf - 1] === CR ? parseProxyHeader(data.toString('latin1', 0, lf - 1)) : undefined;
    if (!header) return refuse();
    stop();
    socket.pause();
    if (lf + 1 < data.length) socket.unshift(data.subarray(lf + 1));
    done(header);
  };
  socket.on('data', onData);
  socket.on('error', onError);
  socket.on('end', onEnd);
  socket.on('close', onClose);
}
