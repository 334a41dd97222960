import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backoffWait, type Failures, oneMoreFailure } from '../../src/activation/backoff.js';

describe('restart back-off (pure)', () => {
  const policy = { baseMs: 500, maxMs: 4_000 };

  it('starts again at once after one failure, then waits 0.5 s, 1 s, 2 s, ... up to the maximum', () => {
    let f: Failures | undefined;
    const delays: number[] = [];
    for (let i = 0; i < 7; i++) {
      f = oneMoreFailure(f, 1_000, policy);
      delays.push(f.notBefore - 1_000);
    }
    assert.deepEqual(delays, [0, 500, 1_000, 2_000, 4_000, 4_000, 4_000]);
    assert.equal(f?.count, 7);
  });

  it('tells how long a start must still wait', () => {
    const f = { count: 3, notBefore: 2_000 };
    assert.equal(backoffWait(f, 1_500), 500);
    assert.ok(backoffWait(f, 2_000) <= 0);
    assert.equal(backoffWait(undefined, 1_500), 0);
  });
});
