import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compare as bcryptVerify } from 'bcryptjs';
import { validateApp } from '../../src/registry/validate.js';
import { BasicAuth, CHECKS_PER_APP, parseBasic } from '../../src/router/deciding/policy/basic-auth.js';
import { BcryptPool } from '../../src/router/deciding/policy/bcrypt-pool.js';
import {
  chooseEncoding,
  compressesAnswer,
  compressibleType,
  varyWithEncoding,
  weakETag,
} from '../../src/router/deciding/policy/compress.js';
import { EdgePolicies, isRefusal, redirectLocation } from '../../src/router/deciding/policy/edge-policy.js';
import { HeaderEditor } from '../../src/router/deciding/policy/header-edits.js';
import { IpRules } from '../../src/router/deciding/policy/ip-rules.js';
import type { PolicyRefusal } from '../../src/router/deciding/policy/refusal.js';
import { TokenBuckets } from '../../src/router/deciding/policy/token-buckets.js';

/**
 * bcrypt hashes made by Debian's htpasswd (apache2-utils 2.4.71) with `htpasswd -nbB -C COST
 * USER PASSWORD`, written here so that the unit tests start no process
 * (test/proxy/policies.test.ts runs htpasswd itself).
 */
const HTPASSWD: Record<string, string> = {
  'bob:pw:5': '$2y$05$bi5Nc7dHvU5r8N6trqBIx.b0eXaLejM.ZeTjZCsnSwHo1/EZe/Vwm',
  'alice:secret:5': '$2y$05$z1LSCmxPMKYoV2JMhONy/OqVsU9NnTkpZESmPfzEQV3irz9L2YTGq',
  'alice:other:5': '$2y$05$JNX9dt8rBS3Ob2IFvk6/kObXnbdwqrSS5f.pSLYxVJ69STiYo7zWK',
  'alice:secret:12': '$2y$12$X2qzVwTQx0.mh5i1Ejs7ae/tYAoUkrFvgppbx1L5trQkFtk9B4BeO',
};

/** The hash of htpasswd -B for the user and password (cost 5, its default, unless told). */
function htpasswd(user: string, password: string, cost = 5): string {
  const hash = HTPASSWD[`${user}:${password}:${cost}`];
  assert.ok(hash, `no htpasswd -B hash for ${user}:${password} at cost ${cost} in the test`);
  return hash;
}

const base = { _id: 'a', hosts: [{ host: 'a.test', ssl: 'allowed' }], process: { executable: 'x' } };

function problemsOf(extra: Record<string, unknown>): string[] {
  const v = validateApp({ ...base, ...extra });
  return v.ok ? [] : v.problems.map((p) => `${p.field}: ${p.message}`);
}

describe('edge policy fields: validation', () => {
  it('names the field of each bad value', () => {
    const p = problemsOf({
      access: {
        allow: ['10.0.0.0/8', '10.0.0.300/8', '2001:db8::/129'],
        deny: 'x',
        basicAuth: { users: { bob: htpasswd('bob', 'pw').replace('$2y$', '$apr1$') } },
        forwardAuth: { url: 'ftp://x' },
        rateLimit: { requests: 0 },
        nope: 1,
      },
      headers: {
        request: { Host: 'x', 'X-Forwarded-For': 'x', 'bad name': 'x' },
        response: { 'X-A': 'a\nb' },
      },
      compress: 'yes',
      maxBodySize: -1,
    });
    const expect = [
      'access.allow[1]: "10.0.0.300/8" is not a CIDR',
      'access.allow[2]: "2001:db8::/129" is not a CIDR',
      'access.deny: must be an array',
      'access.basicAuth.users.bob: is not a bcrypt hash',
      'access.forwardAuth.url:',
      'access.rateLimit.requests:',
      'access.nope: is not a field',
      'headers.request.Host: cannot be set',
      'headers.request.X-Forwarded-For: cannot be set',
      'headers.request: "bad name" is not a header name',
      'headers.response.X-A: must be a string without CR',
      'compress: must be true or false',
      'maxBodySize: must be a whole number',
    ];
    for (const e of expect)
      assert.ok(
        p.some((m) => m.startsWith(e)),
        `missing ${e} in\n${p.join('\n')}`,
      );
    assert.equal(p.length, expect.length, p.join('\n'));
    // The hash is never quoted back.
    assert.ok(!p.join('\n').includes('$apr1$'));
  });

  it('keeps valid policies on the app, and none on an app without them', () => {
    const hash = htpasswd('alice', 'secret');
    const v = validateApp({
      ...base,
      access: {
        allow: ['10.0.0.0/8', '::1'],
        basicAuth: { realm: 'shop', users: { alice: hash } },
        rateLimit: { requests: 100, burst: 200 },
      },
      headers: { response: { 'Strict-Transport-Security': 'max-age=1', 'X-Powered-By': null } },
      compress: true,
      maxBodySize: 1024,
    });
    assert.ok(v.ok);
    assert.deepEqual(v.app.edge?.access?.rateLimit, { requests: 100, perSeconds: 1, burst: 200 });
    assert.equal(v.app.edge?.headers?.response?.['x-powered-by'], null);
    const plain = validateApp(base);
    assert.ok(plain.ok);
    assert.equal(plain.app.edge, undefined);
  });

  it('a redirect app has no process; an app with both is refused', () => {
    const r = validateApp({
      _id: 'r',
      hosts: base.hosts,
      redirect: { to: 'https://new.test/', status: 308 },
    });
    assert.ok(r.ok);
    assert.deepEqual(r.app.edge?.redirect, { to: 'https://new.test', status: 308 });
    assert.equal(redirectLocation(r.app.edge!.redirect!, '/a?b=1'), 'https://new.test/a?b=1');
    assert.deepEqual(problemsOf({ redirect: { to: 'https://x.test' } }), [
      'redirect: an app redirects or runs a process, not both: remove "process" or "redirect"',
    ]);
    const bad = validateApp({ _id: 'r', hosts: base.hosts, redirect: { to: 'x', status: 200 } });
    assert.ok(!bad.ok);
    assert.deepEqual(
      bad.problems.map((p) => p.field),
      ['redirect.to', 'redirect.status'],
    );
  });
});

describe('IP rules', () => {
  it('matches IPv4, IPv6 and IPv4-mapped addresses; deny wins', () => {
    const r = new IpRules(['10.0.0.0/8', '2001:db8::/32', '127.0.0.1'], ['10.1.2.3/32']);
    assert.ok(r.admits('10.9.9.9'));
    assert.ok(r.admits('::ffff:10.9.9.9'));
    assert.ok(r.admits('2001:db8:1::5'));
    assert.ok(r.admits('127.0.0.1'));
    assert.ok(!r.admits('127.0.0.2'));
    assert.ok(!r.admits('10.1.2.3'));
    assert.ok(!r.admits('::ffff:10.1.2.3'));
    assert.ok(!r.admits('2001:db9::1'));
    assert.ok(!r.admits(undefined));
    const denyOnly = new IpRules(undefined, ['::1']);
    assert.ok(denyOnly.admits('127.0.0.1'));
    assert.ok(!denyOnly.admits('::1'));
    assert.ok(!new IpRules([], undefined).admits('127.0.0.1'), 'an empty allow list lets nobody in');
  });
});

describe('token buckets', () => {
  it('lets a burst through, then one per interval, with the seconds to wait', () => {
    let now = 0;
    const b = new TokenBuckets({ requests: 2, perSeconds: 10, burst: 3 }, 100, () => now);
    assert.deepEqual([b.take('a'), b.take('a'), b.take('a')], [0, 0, 0]);
    assert.equal(b.take('a'), 5, 'one token every 5 s');
    assert.equal(b.take('b'), 0, 'another address has its own bucket');
    now = 4_000;
    assert.equal(b.wait('a'), 1);
    now = 5_000;
    assert.equal(b.take('a'), 0);
    assert.equal(b.take('a'), 5);
  });

  it('keeps at most maxKeys addresses, whatever the number of clients', () => {
    let now = 0;
    const b = new TokenBuckets({ requests: 1, perSeconds: 60, burst: 1 }, 65_536, () => now);
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 1_000_000; i++) {
      now += 0.001;
      b.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`);
      assert.ok(b.size <= 65_536);
    }
    assert.ok(process.memoryUsage().heapUsed - before < 64 * 1024 * 1024);
    // A bucket just emptied is still there: its client is limited.
    assert.ok(b.take('10.15.66.63') > 0);
  });
});

describe('basic auth', () => {
  const hash = htpasswd('alice', 'secret');
  const header = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`;
  const counting = () => {
    const calls = { n: 0 };
    const verify = (pw: string, h: string) => {
      calls.n++;
      return bcryptVerify(pw, h);
    };
    return { calls, verify };
  };
  const settle = async (v: ReturnType<BasicAuth['check']>) => await v;

  it('verifies an htpasswd -B hash once, then from its cache', async () => {
    const { calls, verify } = counting();
    const auth = new BasicAuth('shop', { alice: hash }, verify);
    const first = auth.check(header('alice', 'secret'), '127.0.0.1');
    assert.ok(first instanceof Promise);
    assert.deepEqual(await first, { user: 'alice' });
    assert.deepEqual(
      auth.check(header('alice', 'secret'), '127.0.0.1'),
      { user: 'alice' },
      'no bcrypt again',
    );
    assert.equal(calls.n, 1);
    const wrong = (await settle(auth.check(header('alice', 'nope'), '127.0.0.1'))) as PolicyRefusal;
    assert.equal(wrong.status, 401);
    assert.equal(wrong.headers?.['www-authenticate'], 'Basic realm="shop", charset="UTF-8"');
    const none = auth.check(undefined, '127.0.0.1') as PolicyRefusal;
    assert.equal(none.status, 401);
    const unknown = (await settle(auth.check(header('mallory', 'secret'), '127.0.0.1'))) as PolicyRefusal;
    assert.equal(unknown.status, 401);
  });

  it('a changed password is not taken from the cache', async () => {
    const policies = new EdgePolicies();
    const doc = (h: string) => {
      const v = validateApp({ ...base, access: { basicAuth: { users: { alice: h } } } });
      assert.ok(v.ok);
      return v.app as typeof v.app & { edge: NonNullable<typeof v.app.edge> };
    };
    const req = { headers: { authorization: header('alice', 'secret') } } as never;
    const one = policies.of(doc(hash));
    assert.deepEqual(await one.admit(req, '127.0.0.1', false), { extra: ['x-forwarded-user', 'alice'] });
    assert.equal(policies.of(doc(hash)), one, 'the same policies: compiled once, cache kept');
    const changed = policies.of(doc(htpasswd('alice', 'other')));
    const verdict = await changed.admit(req, '127.0.0.1', false);
    assert.ok(isRefusal(verdict) && verdict.status === 401);
  });

  it('slows repeated failures from one address down to 429, a known password still passes', async () => {
    const auth = new BasicAuth('x', { alice: hash });
    assert.deepEqual(await settle(auth.check(header('alice', 'secret'), '10.0.0.1')), { user: 'alice' });
    for (let i = 0; i < 10; i++) await settle(auth.check(header('alice', `bad${i}`), '10.0.0.1'));
    const limited = auth.check(header('alice', 'bad'), '10.0.0.1') as PolicyRefusal;
    assert.equal(limited.status, 429);
    assert.ok(Number(limited.headers?.['retry-after']) > 0);
    assert.deepEqual(auth.check(header('alice', 'secret'), '10.0.0.1'), { user: 'alice' });
    const other = await settle(auth.check(header('alice', 'bad'), '10.0.0.2'));
    assert.equal((other as PolicyRefusal).status, 401, 'another address is not limited');
  });

  it('the same credentials at once cost one bcrypt; past CHECKS_PER_APP at once, 429 without a check', async () => {
    const calls = { n: 0 };
    const held: Array<() => void> = [];
    const verify = (pw: string, h: string) => {
      calls.n++;
      return new Promise<boolean>((resolve) => held.push(() => resolve(bcryptVerify(pw, h))));
    };
    const auth = new BasicAuth('x', { alice: hash }, verify);
    const twice = [
      auth.check(header('alice', 'secret'), '10.0.1.1'),
      auth.check(header('alice', 'secret'), '10.0.1.2'),
    ];
    assert.equal(calls.n, 1, 'one check for both');
    const wrong = Array.from({ length: CHECKS_PER_APP - 1 }, (_, i) =>
      auth.check(header('alice', `bad${i}`), `10.0.2.${i}`),
    );
    assert.equal(calls.n, CHECKS_PER_APP);
    const over = auth.check(header('alice', 'bad-more'), '10.0.3.1') as PolicyRefusal;
    assert.equal(over.status, 429);
    assert.equal(over.headers?.['retry-after'], '1');
    assert.equal(calls.n, CHECKS_PER_APP, 'no check past the bound');
    for (const go of held) go();
    assert.deepEqual(await Promise.all(twice), [{ user: 'alice' }, { user: 'alice' }]);
    for (const w of wrong) assert.equal(((await w) as PolicyRefusal).status, 401);
    const after = auth.check(header('alice', 'bad-later'), '10.0.3.1');
    assert.ok(after instanceof Promise, 'checked again once the others are done');
    held.at(-1)?.();
    assert.deepEqual(auth.check(header('alice', 'secret'), '10.0.3.1'), { user: 'alice' });
  });

  it('verifies on the pool threads, not on the event loop', async () => {
    const pool = new BcryptPool(1);
    try {
      const slow = htpasswd('alice', 'secret', 12);
      assert.equal(await pool.verify('x', 'not a hash'), false, 'the thread is up, and reads no bad hash');
      const before = performance.eventLoopUtilization();
      assert.equal(await pool.verify('secret', slow), true);
      assert.equal(await pool.verify('nope', slow), false);
      // The event loop was idle while bcrypt ran (bcryptjs's own compare keeps it near 1).
      const busy = performance.eventLoopUtilization(before).utilization;
      assert.ok(busy < 0.3, `the event loop was busy ${(busy * 100).toFixed(0)}% of the time`);
    } finally {
      await pool.close();
    }
  });

  it('parses Basic credentials (the password may hold ":")', () => {
    assert.deepEqual(parseBasic(header('a', 'b:c')), { user: 'a', password: 'b:c' });
    assert.equal(parseBasic('Bearer x'), undefined);
    assert.equal(parseBasic(`Basic ${Buffer.from('nocolon').toString('base64')}`), undefined);
  });
});

describe('compression', () => {
  const offered = ['br', 'gzip'] as const;
  it('negotiates by q-value, ties by arr’s order, * for the rest, q=0 refuses', () => {
    assert.equal(chooseEncoding('gzip, deflate, br', offered), 'br');
    assert.equal(chooseEncoding('gzip;q=1.0, br;q=0.8', offered), 'gzip');
    assert.equal(chooseEncoding('br;q=0, gzip;q=0.1', offered), 'gzip');
    assert.equal(chooseEncoding('br;q=0, *', offered), 'gzip');
    assert.equal(chooseEncoding('*;q=0', offered), undefined);
    assert.equal(chooseEncoding('identity', offered), undefined);
    assert.equal(chooseEncoding('deflate, zstd', offered), undefined);
    assert.equal(chooseEncoding(undefined, offered), undefined);
    assert.equal(chooseEncoding('zstd;q=1, br;q=0.5', ['br', 'zstd', 'gzip']), 'zstd');
  });

  it('compresses compressible answers of 1 KB or more or unknown length, not 204/206/304', () => {
    for (const t of [
      'text/html; charset=utf-8',
      'application/json',
      'application/ld+json',
      'image/svg+xml',
      'application/wasm',
    ])
      assert.ok(compressibleType(t), t);
    for (const t of ['image/png', 'video/mp4', 'application/octet-stream', undefined])
      assert.ok(!compressibleType(t));
    const head = {
      status: 200,
      contentType: 'application/json',
      contentEncoding: undefined,
      contentLength: -1,
    };
    assert.ok(compressesAnswer(head));
    assert.ok(!compressesAnswer({ ...head, contentLength: 500 }));
    assert.ok(compressesAnswer({ ...head, contentLength: 5000 }));
    assert.ok(!compressesAnswer({ ...head, contentEncoding: 'gzip' }));
    assert.ok(!compressesAnswer({ ...head, cacheControl: 'public, no-transform' }));
    for (const status of [204, 206, 304]) assert.ok(!compressesAnswer({ ...head, status }));
    assert.equal(weakETag('"abc"'), 'W/"abc"');
    assert.equal(weakETag('W/"abc"'), 'W/"abc"');
    assert.equal(varyWithEncoding(undefined), 'Accept-Encoding');
    assert.equal(varyWithEncoding('Origin'), 'Origin, Accept-Encoding');
    assert.equal(varyWithEncoding('accept-encoding'), 'accept-encoding');
  });
});

describe('header edits', () => {
  it('removes every field of a touched name and sets the given ones', () => {
    const e = new HeaderEditor({ 'x-powered-by': null, 'x-env': 'prod' }, ['authorization']);
    assert.deepEqual(
      e.flat(
        ['X-Powered-By', 'php', 'Authorization', 'Basic x', 'X-Env', 'dev', 'Accept', '*/*'],
        ['x-forwarded-user', 'alice'],
      ),
      ['Accept', '*/*', 'x-env', 'prod', 'x-forwarded-user', 'alice'],
    );
    const o: Record<string, string> = { 'x-powered-by': 'php', accept: '*/*' };
    e.object(o);
    assert.deepEqual(o, { accept: '*/*', 'x-env': 'prod' });
  });
});
