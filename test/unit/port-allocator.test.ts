import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { PortAllocator, portIsFree } from '../../src/activation/port-allocator.js';
import { freeRange } from '../support/ports.js';

describe('PortAllocator (in process)', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  function listen(port: number): Promise<void> {
    const server = createServer();
    servers.push(server);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ port }, resolve);
    });
  }

  it('hands out each port of the range once, rotating past a port just released', async () => {
    const [first, last] = await freeRange(3);
    const ports = new PortAllocator({ first, last });
    assert.equal(ports.size, 3);
    const a = await ports.acquire();
    const b = await ports.acquire();
    const c = await ports.acquire();
    assert.deepEqual([a, b, c], [first, first + 1, first + 2]);
    assert.equal(await ports.acquire(), undefined, 'every port is held');
    ports.release(first + 1);
    ports.release(first);
    // The next candidate is the one after the last handed out: first, then first + 1.
    assert.equal(await ports.acquire(), first);
    assert.equal(await ports.acquire(), first + 1);
  });

  it('skips a port that something else listens on', async () => {
    const [first, last] = await freeRange(2);
    await listen(first);
    assert.equal(await portIsFree(first), false);
    const ports = new PortAllocator({ first, last });
    assert.equal(await ports.acquire(), first + 1);
    assert.equal(await ports.acquire(), undefined);
  });
});
