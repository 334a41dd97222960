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
