import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  SessionTickets,
  TICKET_PERIOD_MS,
  type TicketKeySource,
} from '../../src/router/accepting/session-tickets.js';
import { createLogger } from '../../src/util/log.js';

/** A shared store in memory: the first to ask for a period makes its keys. */
function sharedSource(): TicketKeySource & { down: boolean; asked: number[] } {
  const keys = new Map<number, Buffer>();
  return {
    down: false,
    asked: [],
    async ticketKeys(period, fresh) {
      this.asked.push(period);
      if (this.down) throw new Error('store down');
      if (!keys.has(period)) keys.set(period, fresh);
      return keys.get(period)!;
    },
  };
}

const log = createLogger('test', 'silent');

describe('TLS session tickets (in process)', () => {
  it('gives two nodes sharing a source the same keys, and the next period new ones', async () => {
    let now = 5 * TICKET_PERIOD_MS + 1_000;
    const source = sharedSource();
    const applied: Buffer[][] = [[], []];
    const nodes = [0, 1].map((i) => {
      const t = new SessionTickets(source, log, () => now);
      return { t, applied: applied[i]! };
    });
    for (const n of nodes) {
      await n.t.load();
      n.t.start((keys) => n.applied.push(keys), 60_000);
    }
    assert.equal(applied[0]!.length, 1);
    assert.equal(applied[0]![0]!.length, 48);
    assert.deepEqual(applied[0]![0], applied[1]![0]);

    await nodes[0]!.t.rotate();
    assert.equal(applied[0]!.length, 1, 'the same period: nothing read or applied again');
    now += TICKET_PERIOD_MS;
    for (const n of nodes) await n.t.rotate();
    assert.equal(applied[0]!.length, 2);
    assert.notDeepEqual(applied[0]![1], applied[0]![0]);
    assert.deepEqual(applied[0]![1], applied[1]![1]);
    for (const n of nodes) n.t.stop();
  });

  it('survives a source that is down: nothing applied, the keys read once it is back', async () => {
    const source = sharedSource();
    source.down = true;
    const t = new SessionTickets(source, log, () => TICKET_PERIOD_MS);
    await t.load();
    const applied: Buffer[] = [];
    source.down = false;
    t.start((keys) => applied.push(keys), 60_000);
    await t.rotate();
    assert.equal(applied.length, 1);
    t.stop();
  });
});
