import { readdirSync, readFileSync } from 'node:fs';
import { connect, createServer, type Server, type ServerOpts, type Socket } from 'node:net';
import { until } from './poll.js';
import { type Running, start } from './proc.js';

/** A TCP server started by a test, with the sockets it accepted, closed for good by close(). */
export interface TcpServer {
  port: number;
  server: Server;
  sockets: Set<Socket>;
  /** Connections accepted so far. */
  accepted: number;
  close(): Promise<void>;
}

/** Every server a test file started, for closeAllServers() in an after hook. */
const servers = new Set<TcpServer>();

export async function tcpServer(
  onConnection: (socket: Socket) => void,
  opts: ServerOpts & { port?: number; host?: string } = {},
): Promise<TcpServer> {
  const { port = 0, host = '127.0.0.1', ...serverOpts } = opts;
  const sockets = new Set<Socket>();
  const server = createServer(serverOpts);
  const s: TcpServer = {
    port: 0,
    server,
    sockets,
    accepted: 0,
    close: () =>
      new Promise<void>((resolve) => {
        servers.delete(s);
        for (const c of sockets) c.destroy();
        if (!server.listening) resolve();
        else server.close(() => resolve());
      }),
  };
  server.on('connection', (socket) => {
    s.accepted++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ port, host }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address();
  s.port = typeof addr === 'object' && addr ? addr.port : 0;
  servers.add(s);
  return s;
}

export async function closeAllServers(): Promise<void> {
  await Promise.all([...servers].map((s) => s.close()));
}

/** A backend that answers every connection with its id and closes. */
export function idServer(id: string, opts: { port?: number } = {}): Promise<TcpServer> {
  return tcpServer((socket) => socket.end(id), opts);
}

/** A backend that echoes what it receives and ends when the client ends. */
export function echoServer(): Promise<TcpServer> {
  return tcpServer((socket) => socket.pipe(socket));
}

export interface Exchange {
  data: Buffer;
  /** The connection ended with an error (reset...) rather than cleanly. */
  error?: string;
}

/**
 * Connects, sends `payload` (if any) then ends, and collects everything received until the
 * connection is closed.
 */
export function exchange(
  port: number,
  payload?: string | Buffer,
  { host = '127.0.0.1', timeoutMs = 10_000 } = {},
): Promise<Exchange> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let error: string | undefined;
    const socket = connect({ port, host });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error('timeout')));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => resolve({ data: Buffer.concat(chunks), error }));
    socket.on('connect', () => {
      if (payload !== undefined) socket.end(payload);
    });
  });
}

/** Resolves with the socket once connected. */
export function connected(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

/** Resolves true if a connection to the port is refused (nothing listens). */
export function refused(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ port, host });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Collects what a socket receives until it ends or closes. */
export function readAll(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks));
    };
    socket.once('end', finish);
    socket.once('close', finish);
  });
}

/** Open file descriptors of a process (Linux). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** Resident memory of a process in bytes (Linux). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * A port where connects neither succeed nor fail: a listener with a backlog of 1 in a child
 * process whose event loop is blocked, so it never accepts, with its accept queue filled. A SYN
 * to it is dropped, so a connect just waits (until the connector's own timeout).
 */
export async function blackhole(): Promise<{ port: number; proc: Running; fillers: Socket[] }> {
  const script = `
    const s = require('node:net').createServer();
    s.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      // The port is told only when nothing can be accepted any more: the event loop stops in
      // the same turn (a write to a pipe is synchronous on Linux).
      setImmediate(() => {
        process.stdout.write('port=' + s.address().port + '\\n');
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
      });
    });`;
  const proc = start(process.execPath, ['-e', script]);
  const m = await proc.waitFor(/port=(\d+)/);
  const port = Number(m[1]);
  // Fill the accept queue (backlog + 1 entries on Linux): these connects complete in the kernel.
  const fillers: Socket[] = [];
  let done = 0;
  for (let i = 0; i < 2; i++) {
    const f = connect({ port, host: '127.0.0.1' });
    f.on('error', () => {});
    f.once('connect', () => done++);
    fillers.push(f);
  }
  await until('the blackhole accept queue to fill', () => done === 2);
  return { port, proc, fillers };
}
