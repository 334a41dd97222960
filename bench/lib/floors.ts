import { connect } from 'node:net';
import { join } from 'node:path';
import { type Running, repoRoot, start } from '../../harness/proc.js';
import { CERT, HOST, KEY, NODE } from './context.js';
import { freePorts, get, LOOPBACK, waitForListen, waitForPort } from './net.js';

const FLOORS = join(repoRoot, 'dist/bench/floors');

export interface Floor {
  proc: Running;
  port: number;
  sslport: number;
  /** HTTP/2 over TLS (the proxy floor only; 0 otherwise). */
  h2port?: number;
  /** How it was started, for the report. */
  command: string;
}

/** Every byte of one answer to `GET /` on a new connection (Connection: close), as received. */
export function rawAnswer(port: number, host = HOST): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const socket = connect({ host: LOOPBACK, port }, () =>
      socket.write(`GET / HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`),
    );
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer from port ${port}`)));
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', reject);
    socket.on('end', () => resolve(Buffer.concat(chunks)));
  });
}

/**
 * Starts bench/floors/hello.ts (bare node:http and node:https, arr's default certificate) with
 * the body of the app instance's `/` answer, and checks that its answer has exactly as many
 * bytes as the app's (the Date header has a fixed length), so both send the same.
 */
export async function startHelloFloor(backendPort: number): Promise<Floor> {
  const body = (await get(backendPort, HOST)).body;
  const [port, sslport] = await freePorts(2);
  const env = { BODY: body, PORT: String(port), SSLPORT: String(sslport), CERT, KEY };
  const proc = start(NODE, [join(FLOORS, 'hello.js')], { env });
  await waitForListen(proc, port!);
  await waitForPort(sslport!);
  const [mine, app] = await Promise.all([rawAnswer(port!), rawAnswer(backendPort)]);
  if (mine.length !== app.length) {
    await proc.stop();
    throw new Error(`the bare hello answers ${mine.length} bytes, the app ${app.length}:\n${mine}\n${app}`);
  }
  const vars = `BODY='${body.replace(/\n/g, '\\n')}' PORT=${port} SSLPORT=${sslport} CERT=${CERT} KEY=${KEY} `;
  return { proc, port: port!, sslport: sslport!, command: vars.replaceAll(repoRoot, '') + proc.command };
}

/** Runs `measure` with the hello floor of the backend up, and stops the floor after. */
export async function withHelloFloor(
  backendPort: number,
  measure: (floor: Floor) => Promise<void>,
): Promise<void> {
  const floor = await startHelloFloor(backendPort);
  try {
    await measure(floor);
  } finally {
    await floor.proc.stop();
  }
}

/** Starts bench/floors/accept-close.ts in front of the backend: accept, connect, close both. */
export function startAcceptCloseFloor(backendPort: number): Promise<Floor> {
  return startTcpFloor('accept-close.js', backendPort);
}

/**
 * Starts bench/floors/proxy.ts in front of the backend (node:http and node:https with arr's
 * default certificate, undici behind): the floor of a Node.js reverse proxy, beside arr in the
 * HTTP, HTTPS and WebSocket points.
 */
export async function startProxyFloor(backendPort: number, workers?: number): Promise<Floor> {
  const [port, sslport, h2port] = await freePorts(3);
  // With `workers`, in that many node:cluster workers (bench/floors/cluster.ts).
  const cluster = workers === undefined ? {} : { WORKERS: String(workers), FLOOR: 'proxy.js' };
  const env = {
    ...cluster,
    PORT: String(port),
    SSLPORT: String(sslport),
    H2PORT: String(h2port),
    TARGET: String(backendPort),
    CERT,
    KEY,
  };
  const proc = start(NODE, [join(FLOORS, workers === undefined ? 'proxy.js' : 'cluster.js')], { env });
  await waitForListen(proc, port!);
  await waitForPort(sslport!);
  await waitForPort(h2port!);
  const prefix = workers === undefined ? '' : `WORKERS=${workers} FLOOR=proxy.js `;
  const vars = `${prefix}PORT=${port} SSLPORT=${sslport} H2PORT=${h2port} TARGET=${backendPort} CERT=${CERT} KEY=${KEY} `;
  const command = vars.replaceAll(repoRoot, '') + proc.command;
  return { proc, port: port!, sslport: sslport!, h2port: h2port!, command };
}

/**
 * Starts bench/floors/grpc.ts in front of an h2c instance: node:http2 by prior knowledge in
 * front, one node:http2 session behind, each stream relayed with its trailers. The floor of a
 * Node.js gRPC proxy, beside arr in the gRPC point.
 */
export function startGrpcFloor(backendPort: number): Promise<Floor> {
  return startTcpFloor('grpc.js', backendPort);
}

/** Starts bench/floors/relay.ts in front of the backend: the floor of a Node.js TCP relay. */
export function startRelayFloor(backendPort: number): Promise<Floor> {
  return startTcpFloor('relay.js', backendPort);
}

/** A floor of bench/floors that listens on PORT (plain TCP) and connects to TARGET. */
async function startTcpFloor(script: string, backendPort: number): Promise<Floor> {
  const [port] = await freePorts(1);
  const proc = start(NODE, [join(FLOORS, script)], {
    env: { PORT: String(port), TARGET: String(backendPort) },
  });
  await waitForListen(proc, port!);
  return { proc, port: port!, sslport: 0, command: `PORT=${port} TARGET=${backendPort} ${proc.command}` };
}
