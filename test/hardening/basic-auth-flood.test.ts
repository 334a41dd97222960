// A flood of wrong passwords to one app with basic auth, from many addresses (the failure limit
// is per address), must not slow another app down: bcrypt (75 ms of CPU at cost 10, 300 at 12) runs on a
// worker thread, at most a few checks per app at once, the rest answered 429.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { type AppDoc, type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { stopAll } from '../support/proc.js';

const VAULT = 'vault.localhost';
const OTHER = 'other.localhost';
const PASSWORD = 'correct horse';

/** One request from a given local address; its status and how long it took. */
function timed(
  port: number,
  host: string,
  auth: string,
  from: string,
): Promise<{ status: number; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const req = request(
      { host: '127.0.0.1', port, localAddress: from, headers: { host, authorization: auth }, agent: false },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, ms: performance.now() - t0 }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const basic = (user: string, password: string) =>
  `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

describe('basic auth under a flood of wrong passwords', () => {
  let arr: ArrUnderTest;
  let hash: string;
  before(async () => {
    hash = execFileSync('htpasswd', ['-nbB', '-C', '10', 'alice', PASSWORD], { encoding: 'utf8' })
      .trim()
      .split(':')[1]!;
    const vault = Object.assign(helloApp('vault', [{ host: VAULT, ssl: 'allowed' }]), {
      access: { basicAuth: { realm: 'vault', users: { alice: hash } } },
    }) as AppDoc;
    arr = await startArrWith([vault, helloApp('other', [{ host: OTHER, ssl: 'allowed' }])]);
    assert.equal((await fetchVia(arr.port, OTHER, false)).status, 200, 'the other app is up');
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it("keeps another app's latency low, answers the excess 429, and logs no password or hash", async () => {
    let flooding = true;
    const statuses = new Map<number, number>();
    const flood = Array.from({ length: 12 }, async (_, i) => {
      for (let n = 0; flooding; n++) {
        // 40 source addresses: 10 failures each before the per-address limit answers 429.
        const from = `127.0.0.${2 + ((i * 7 + n) % 40)}`;
        const r = await timed(arr.port, VAULT, basic('alice', `wrong-${i}-${n}`), from);
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        // A refusal costs arr little, but thousands a second are load of their own: not what is measured here.
        if (r.status === 429) await new Promise((r) => setTimeout(r, 100));
      }
    });
    // Until 6 checks have failed (0.5 s of bcrypt on a quiet machine), probe the other app every 20 ms.
    const probes: number[] = [];
    const deadline = Date.now() + 60_000;
    while ((statuses.get(401) ?? 0) < 6 && Date.now() < deadline) {
      probes.push((await timed(arr.port, OTHER, '', '127.0.0.1')).ms);
      await new Promise((r) => setTimeout(r, 20));
    }
    flooding = false;
    await Promise.all(flood);
    assert.ok((statuses.get(401) ?? 0) >= 6, `the flood was checked: ${[...statuses]}`);
    probes.sort((a, b) => a - b);
    const median = probes[probes.length >> 1]!;
    // On the event loop, each probe waited for several slices of bcrypt (a median of 1.7 s, at a load average of 16).
    assert.ok(
      median < 250,
      `the other app's median latency was ${median.toFixed(0)} ms (${probes.length} probes)`,
    );
    assert.ok((statuses.get(429) ?? 0) > 0, `checks past the per-app bound get 429: ${[...statuses]}`);

    // The right password still gets in; the second time from the cache, at once.
    assert.equal((await timed(arr.port, VAULT, basic('alice', PASSWORD), '127.0.0.1')).status, 200);
    const cached = await timed(arr.port, VAULT, basic('alice', PASSWORD), '127.0.0.1');
    assert.equal(cached.status, 200);
    const out = arr.proc.output();
    assert.ok(
      !out.includes(hash) && !out.includes(PASSWORD) && !out.includes('wrong-'),
      'no secret in the log',
    );
  });
});
