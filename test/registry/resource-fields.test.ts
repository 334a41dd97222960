import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatProblem } from '../../src/registry/types.js';
import { validateApp } from '../../src/registry/validate.js';
import { formatSize, parseSize } from '../../src/util/size.js';

function doc(patch: Record<string, unknown>): Record<string, unknown> {
  return {
    _id: 'a1',
    process: { executable: 'node' },
    hosts: [{ host: 'a.localhost', ssl: 'none' }],
    ...patch,
  };
}

/** The problems of a document, as `arr validate` prints them. */
function problems(patch: Record<string, unknown>): string[] {
  const v = validateApp(doc(patch));
  return v.ok ? [] : v.problems.map(formatProblem);
}

describe('limits, health and recycle fields', () => {
  it('reads sizes in bytes or with K, M, G (powers of 1024)', () => {
    assert.equal(parseSize('256M'), 256 * 1024 ** 2);
    assert.equal(parseSize('1.5G'), 1.5 * 1024 ** 3);
    assert.equal(parseSize('512KiB'), 512 * 1024);
    assert.equal(parseSize('4096'), 4096);
    assert.equal(parseSize(8192), 8192);
    for (const bad of ['lots', '', '12X', '-1', -1, 1.5, null, '1e9'])
      assert.equal(parseSize(bad), undefined, String(bad));
    assert.equal(formatSize(256 * 1024 ** 2), '256M');
    assert.equal(formatSize(1000), '1000');
  });

  it('takes the documented fields, with the health defaults', () => {
    const v = validateApp(
      doc({
        limits: { memory: '256M', cpu: 0.5, pids: 200, files: 4096 },
        health: { path: '/healthz' },
        recycle: { requests: 100000, memory: '200M', age: 86400 },
      }),
    );
    assert.ok(v.ok);
    assert.deepEqual(v.app.limits, { memory: 256 * 1024 ** 2, cpu: 0.5, pids: 200, files: 4096 });
    assert.deepEqual(v.app.health, { path: '/healthz', interval: 10, timeout: 2, failures: 3 });
    assert.deepEqual(v.app.recycle, { requests: 100000, memory: 200 * 1024 ** 2, age: 86400 });
  });

  it('names each bad value by its field', () => {
    assert.deepEqual(problems({ limits: { memory: 'lots', cpu: 0, pids: 1.5, files: '10' } }), [
      'app a1: limits.memory: "lots" is not a size (bytes, or a number with K, M or G)',
      'app a1: limits.cpu: must be > 0 (got 0)',
      'app a1: limits.pids: must be a whole number from 1 to 4194304 (got 1.5)',
      'app a1: limits.files: must be a whole number from 1 to 1048576 (got "10")',
    ]);
    assert.deepEqual(problems({ limits: { memory: '1K' } }), [
      'app a1: limits.memory: must be at least 4M (got "1K")',
    ]);
    assert.deepEqual(problems({ limits: { mem: '1G' } }), [
      'app a1: limits.mem: is not a field of limits (memory, cpu, pids, files)',
    ]);
    assert.deepEqual(problems({ limits: 5 }), [
      'app a1: limits: must be an object with "memory", "cpu", "pids", "files"',
    ]);
    assert.deepEqual(problems({ health: { interval: 5 } }), [
      'app a1: health.path: must be an HTTP path such as "/healthz" (got null)',
    ]);
    assert.deepEqual(problems({ health: { path: '/h', interval: 1, timeout: 2 } }), [
      'app a1: health.timeout: must be at most health.interval (1)',
    ]);
    assert.deepEqual(problems({ health: { path: '/h', failures: 0 } }), [
      'app a1: health.failures: must be a whole number from 1 to 1000 (got 0)',
    ]);
    assert.deepEqual(problems({ recycle: { requests: -1, age: 'soon' } }), [
      'app a1: recycle.requests: must be a whole number from 1 to 9007199254740991 (got -1)',
      'app a1: recycle.age: must be a number (got "soon")',
    ]);
  });
});
