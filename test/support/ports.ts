import { createServer } from 'node:net';

/** A TCP port that was free a moment ago on `host`. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Several distinct free ports. */
export async function freePorts(n: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < n) ports.add(await freePort(host));
  return [...ports];
}

/**
 * A free block of `size` consecutive ports, for an arr port range, picked from a region the
 * kernel does not hand out as ephemeral ports (see /proc/sys/net/ipv4/ip_local_port_range).
 */
export async function freeRange(size: number, host = '127.0.0.1'): Promise<[number, number]> {
  for (let attempt = 0; attempt < 200; attempt++) {
    const start = 20_000 + Math.floor(Math.random() * 10_000);
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
