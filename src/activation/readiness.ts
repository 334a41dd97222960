import { request } from 'node:http';
import { connect } from 'node:net';

/** Resolves true when a TCP connection to host:port succeeds. */
function tryConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
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

export type Readiness = 'ready' | 'timeout' | 'aborted';

/**
 * Polls until the port accepts connections, every `intervalMs` (a few milliseconds: every
 * millisecond spent here is added to the first request's latency), for at most `timeoutMs`.
 * Stops early with 'aborted' when `signal` fires (the process exited).
 */
export async function waitForPort(
  host: string,
  port: number,
  { timeoutMs, intervalMs = 5, signal }: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal },
): Promise<Readiness> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (signal?.aborted) return 'aborted';
    if (await tryConnect(host, port)) return signal?.aborted ? 'aborted' : 'ready';
    if (Date.now() >= deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** The status of one GET of `path` (0: no answer within `timeoutMs`, or the connection failed). */
function probe(host: string, port: number, path: string, timeoutMs = 1_000): Promise<number> {
  return new Promise((resolve) => {
    const req = request({ host, port, path, method: 'GET', agent: false, headers: { connection: 'close' } });
    req.setTimeout(timeoutMs, () => req.destroy());
    req.once('error', () => resolve(0));
    req.once('response', (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.end();
  });
}

/** One health check: GET of `path` answered 2xx or 3xx within `timeoutMs`. */
export async function probeOk(host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  const status = await probe(host, port, path, timeoutMs);
  return status >= 200 && status < 400;
}

/**
 * Waits until the instance is ready: its port accepts connections and, when the app has a
 * `ready` path, a GET of it answers 2xx or 3xx (polled every `intervalMs` for it too), all
 * within `timeoutMs`. 'aborted' when `signal` fires (the process exited).
 */
export async function waitReady(
  host: string,
  port: number,
  opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal; path?: string },
): Promise<Readiness> {
  const deadline = Date.now() + opts.timeoutMs;
  const listening = await waitForPort(host, port, opts);
  if (listening !== 'ready' || opts.path === undefined) return listening;
  for (;;) {
    if (opts.signal?.aborted) return 'aborted';
    const status = await probe(host, port, opts.path);
    if (opts.signal?.aborted) return 'aborted';
    if (status >= 200 && status < 400) return 'ready';
    if (Date.now() >= deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 10));
  }
}
