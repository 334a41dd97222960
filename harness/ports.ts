import { createServer } from 'node:net';

/**
 * Where test ports are picked: below the kernel's ephemeral range (32768-60999 by default, see
 * /proc/sys/net/ipv4/ip_local_port_range). A port the kernel hands out for `listen(0)` is an
 * ephemeral one, and between the pick and the process under test binding it, any outgoing
 * connection of the suite (undici, curl, h2load, another test file running alongside) may be
 * given it as its local port: arr then exits with EADDRINUSE (seen in CI). Single ports come
 * from 10000-19999, ranges (freeRange) from 20000-29999, so that the two never overlap.
 */
const SINGLE_PORTS = { from: 10_000, count: 10_000 };
const RANGE_PORTS = { from: 20_000, count: 10_000 };

/** A TCP port that was free a moment ago on `host`, outside the ephemeral range. */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = SINGLE_PORTS.from + Math.floor(Math.random() * SINGLE_PORTS.count);
    if (await isFree(port, host)) return port;
  }
  throw new Error('no free port');
}

/** Several distinct free ports. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort(host));
  return [...ports];
}

/** A free block of `size` consecutive ports, for an arr port range (see SINGLE_PORTS). */
export async function freeRange(size: number, host = '127.0.0.1'): Promise<[number, number]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const start = RANGE_PORTS.from + Math.floor(Math.random() * (RANGE_PORTS.count - size));
    const ports = Array.from({ length: size }, (_, i) => start + i);
    if ((await Promise.all(ports.map((p) => isFree(p, host)))).every(Boolean))
      return [start, start + size - 1];
  }
  throw new Error('no free port range');
}

export function isFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}
