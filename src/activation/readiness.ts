import { request } from 'node:http';
import { connect as h2connect } from 'node:http2';
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

/** The same over HTTP/2 without TLS, for apps whose instances speak h2c only. */
function probeH2c(host: string, port: number, path: string, timeoutMs = 1_000): Promise<number> {
  return new Promise((resolve) => {
    const origin = host.includes(':') ? `http://[${host}]:${port}` : `http://${host}:${port}`;
    const session = h2connect(origin);
    const timer = setTimeout(() => session.destroy(), timeoutMs);
    session.on('error', () => {});
    session.once('close', () => {
      clearTimeout(timer);
      resolve(0);
    });
    const req = session.request({ ':method': 'GET', ':path': path, ':authority': `${host}:${port}` });
    req.on('error', () => {});
    req.once('response', (headers) => {
      resolve(Number(headers[':status']) || 0);
      session.destroy();
    });
    req.end();
  });
}

/** One health check: GET of `path` (over h2c for h2c apps) answered 2xx or 3xx within `timeoutMs`. */
export async function probeOk(
  host: string,
  port: number,
  path: string,
  timeoutMs: number,
  h2c = false,
): Promise<boolean> {
  const status = await (h2c ? probeH2c : probe)(host, port, path, timeoutMs);
  return status >= 200 && status < 400;
}

/**
 * Waits until the instance is ready: its port accepts connections and, when the app has a
 * `ready` path, a GET of it answers 2xx or 3xx (polled every `intervalMs` for it too), all
 * within `timeoutMs` (over HTTP/2 with `h2c`). 'aborted' when `signal` fires (the process exited).
 */
export async function waitReady(
  host: string,
  port: number,
  opts: { timeoutMs: number; intervalMs?: number; signal?: AbortSignal; path?: string; h2c?: boolean },
): Promise<Readiness> {
  const deadline = Date.now() + opts.timeoutMs;
  const listening = await waitForPort(host, port, opts);
  if (listening !== 'ready' || opts.path === undefined) return listening;
  for (;;) {
    if (opts.signal?.aborted) return 'aborted';
    const status = await (opts.h2c ? probeH2c : probe)(host, port, opts.path);
    if (opts.signal?.aborted) return 'aborted';
    if (status >= 200 && status < 400) return 'ready';
    if (Date.now() >= deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 10));
  }
}
