import { request } from 'node:http';
import { connect, createServer } from 'node:net';

export const LOOPBACK = '127.0.0.1';

/** A TCP port that was free a moment ago on loopback. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Several distinct free ports. */
export async function freePorts(n: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort());
  return [...ports];
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, LOOPBACK, () => srv.close(() => resolve(true)));
  });
}

/** A block of free consecutive ports outside the kernel's ephemeral range, for arr's --range. */
export async function freeRange(size: number): Promise<[number, number]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const first = 20_000 + Math.floor(Math.random() * 10_000);
    const ports = Array.from({ length: size }, (_, i) => first + i);
    if ((await Promise.all(ports.map(isFree))).every(Boolean)) return [first, first + size - 1];
  }
  throw new Error('no free port range');
}

function tryConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: LOOPBACK, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/**
 * Polls until the port accepts a connection, every `intervalMs` (5 ms: what arr's readiness
 * check does, so that an app's own start-up time is measured the same way arr sees it).
 */
export async function waitForPort(port: number, timeoutMs = 15_000, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await tryConnect(port)) return;
    if (Date.now() >= deadline) throw new Error(`port ${port} did not accept within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** One GET on a new connection; the body and the time from sending to the last byte. */
export function get(
  port: number,
  host: string,
  path = '/',
  timeoutMs = 30_000,
): Promise<{ status: number; body: string; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      { host: LOOPBACK, port, path, headers: { host, connection: 'close' }, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, ms: performance.now() - t0 }));
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${host}${path} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Activates an app through arr and returns the port and pid of the instance that answered. */
export async function activate(arrPort: number, host: string): Promise<{ port: number; pid: number }> {
  const r = await get(arrPort, host);
  const m = r.body.match(/\(port (\d+), pid (\d+)\)/);
  if (r.status !== 200 || !m) throw new Error(`activating ${host}: ${r.status} ${r.body}`);
  return { port: Number(m[1]), pid: Number(m[2]) };
}
