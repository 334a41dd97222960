import { request } from 'node:http';
import { type Running, unlessExited } from '../../harness/proc.js';
import { waitForPort as pollPort } from '../../src/activation/readiness.js';

export const LOOPBACK = '127.0.0.1';

// The same free-port helpers as the tests, and arr's own readiness poll.
export { freePort, freePorts, freeRange } from '../../harness/ports.js';

/**
 * Polls until the port accepts a connection, every `intervalMs` (5 ms: what arr's readiness
 * check does, so that an app's own start-up time is measured the same way arr sees it).
 */
export async function waitForPort(port: number, timeoutMs = 15_000, intervalMs = 5): Promise<void> {
  const ready = await pollPort(LOOPBACK, port, { timeoutMs, intervalMs });
  if (ready !== 'ready') throw new Error(`port ${port} did not accept within ${timeoutMs} ms`);
}

/** `waitForPort` for the port of a process that was just started: rejects if it exits first. */
export function waitForListen(
  proc: Running,
  port: number,
  timeoutMs = 15_000,
  intervalMs = 5,
): Promise<void> {
  return unlessExited(proc, waitForPort(port, timeoutMs, intervalMs));
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
