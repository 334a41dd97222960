// Every node's follow of the audits of writes made outside arr (audit-follow.ts), on a fake clock
// and a registry whose write count and audit mark the test sets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AuditFollow } from '../../src/farm/audit-follow.js';
import { FakeClock } from '../support/fake-clock.js';

function harness(pollMs = 2000) {
  const clock = new FakeClock();
  const state = { writes: 10 as number | undefined, audited: 10, lookups: 0, covered: 0 };
  const follow = new AuditFollow({
    registry: {
      foreignWrites: async () => state.writes,
      auditedThrough: async () => {
        state.lookups++;
        return state.audited;
      },
    },
    pollMs,
    covered: () => state.covered++,
    clock,
  });
  return { clock, state, follow };
}

describe('following the audit of writes made outside arr (AuditFollow)', () => {
  it('reads nothing more while the write count stays', async () => {
    const { state, follow } = harness();
    await follow.tick(); // the first count: nothing to compare with
    await follow.tick();
    await follow.tick();
    assert.equal(state.lookups, 0);
    assert.equal(state.covered, 0);
  });

  it('once the count moved, reads the journal as soon as an audit covers it, not at the next poll', async () => {
    const { clock, state, follow } = harness();
    await follow.tick();
    state.writes = 11; // a driver's insert
    const done = follow.tick();
    await clock.advance(500);
    assert.equal(state.covered, 0, 'not audited yet');
    state.audited = 11; // the holder's audit of it is in the journal
    await clock.advance(400);
    await done;
    assert.equal(state.covered, 1);
    assert.ok(state.lookups <= 6, `${state.lookups} lookups`);
    await follow.tick();
    assert.equal(state.covered, 1, 'the same count: nothing to follow');
  });

  it('an audit that covered the count before the poll read it: the journal at once', async () => {
    const { state, follow } = harness();
    await follow.tick();
    state.writes = 12;
    state.audited = 12;
    await follow.tick();
    assert.equal(state.covered, 1);
    assert.equal(state.lookups, 1);
  });

  it('without an audit (no holder), it gives up after a few polls, its lookups more and more spaced', async () => {
    const { clock, state, follow } = harness();
    await follow.tick();
    state.writes = 13;
    let ended = false;
    const done = follow.tick().then(() => {
      ended = true;
    });
    await clock.advance(9_000);
    assert.equal(ended, false);
    await clock.advance(1_000);
    await done;
    assert.equal(state.covered, 0);
    // 10 s at most every 100 ms would be 100; spaced up to an eighth of the poll, about 40.
    assert.ok(state.lookups <= 45, `${state.lookups} lookups`);
  });

  it('where the server does not tell the count, nothing is followed', async () => {
    const { state, follow } = harness();
    state.writes = undefined;
    await follow.tick();
    await follow.tick();
    assert.equal(state.lookups, 0);
  });
});
