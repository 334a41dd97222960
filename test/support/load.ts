import { Agent, request } from 'node:http';

export interface LoadResult {
  requests: number;
  errors: number;
  /** Count of answers by status code. */
  statuses: Record<number, number>;
  /** Answers whose body did not match `expect`. */
  wrong: number;
  seconds: number;
}

export interface LoadOptions {
  port: number;
  host: string;
  address?: string;
  path?: string;
  connections: number;
  /** Stop after this long, or after `requests` in all, whichever comes first. */
  durationMs?: number;
  requests?: number;
  /** Every 200 body must match this (one host is never answered by another's app). */
  expect?: RegExp;
}

/**
 * Keep-alive load from this process: `connections` loops, each sending one request after the
 * other on its own kept-alive connection. Bounded in time and count.
 */
export async function load(opts: LoadOptions): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: opts.connections });
  const result: LoadResult = { requests: 0, errors: 0, statuses: {}, wrong: 0, seconds: 0 };
  const started = Date.now();
  const deadline = started + (opts.durationMs ?? 3_600_000);
  const limit = opts.requests ?? Number.POSITIVE_INFINITY;
  const one = () =>
    new Promise<void>((resolve) => {
      const req = request(
        {
          host: opts.address ?? '127.0.0.1',
          port: opts.port,
          path: opts.path ?? '/',
          headers: { host: opts.host },
          agent,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            const status = res.statusCode ?? 0;
            result.statuses[status] = (result.statuses[status] ?? 0) + 1;
            if (status === 200 && opts.expect && !opts.expect.test(Buffer.concat(chunks).toString()))
              result.wrong++;
            resolve();
          });
          res.on('error', () => {
            result.errors++;
            resolve();
          });
        },
      );
      req.setTimeout(30_000, () => req.destroy(new Error('timeout')));
      req.on('error', () => {
        result.errors++;
        resolve();
      });
      req.end();
    });
  const loop = async () => {
    while (Date.now() < deadline && result.requests < limit) {
      result.requests++;
      await one();
    }
  };
  await Promise.all(Array.from({ length: opts.connections }, loop));
  agent.destroy();
  result.seconds = (Date.now() - started) / 1000;
  return result;
}
