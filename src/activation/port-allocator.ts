import { createServer } from 'node:net';
import type { PortRange } from '../config.js';

/** True when nothing listens on `port` on any local address (a wildcard bind would clash). */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.unref();
    probe.once('error', () => resolve(false));
    probe.listen({ port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

/**
 * Hands out ports of the managed range for new instances. Ports held by instances of this arr
 * are never handed out twice; any other port is checked to be really free first, so a port
 * taken by something else on the machine is skipped. Candidates rotate through the range so
 * that a port just released is not reused at once (a late connection could reach the new app).
 */
export class PortAllocator {
  private readonly held = new Set<number>();
  private next: number;

  constructor(private readonly range: PortRange) {
    this.next = range.first;
  }

  get size(): number {
    return this.range.last - this.range.first + 1;
  }

  /** A free port, now held until `release`; undefined when every port of the range is taken. */
  async acquire(): Promise<number | undefined> {
    for (let tried = 0; tried < this.size; tried++) {
      const port = this.next;
      this.next = port === this.range.last ? this.range.first : port + 1;
      if (this.held.has(port)) continue;
      this.held.add(port);
      if (await portIsFree(port)) return port;
      this.held.delete(port);
    }
    return undefined;
  }

  release(port: number): void {
    this.held.delete(port);
  }
}
