import { hash as digestOf, randomBytes, timingSafeEqual } from 'node:crypto';
import { sharedVerify } from './bcrypt-pool.js';
import type { PolicyRefusal } from './refusal.js';
import { type Rate, TokenBuckets } from './token-buckets.js';

/** Checks a password against a bcrypt hash (on the bcrypt pool's threads: bcrypt costs tens to hundreds of ms). */
export type Verify = (password: string, hash: string) => Promise<boolean>;

/** The user a request was let through as. */
export interface Authenticated {
  user: string;
}

/**
 * Failures allowed per client address: 10 in a burst, then one every 6 seconds; past that the
 * address gets 429 without its password being checked (a correct password already verified
 * still passes: it costs nothing).
 */
export const FAILURE_RATE: Rate = { requests: 10, perSeconds: 60, burst: 10 };

/**
 * Password checks of one app running or waiting at once; more get 429 without a check. A flood
 * of wrong passwords (from as many addresses as it likes) takes at most this many of the pool's
 * turns at a time, so other apps' checks wait behind at most this many per flooded app.
 */
export const CHECKS_PER_APP = 4;

/** A hash of the right shape that matches no password: unknown users cost what known ones do. */
const DECOY = '$2b$10$abcdefghijklmnopqrstuu9VhP7zj0fXo2Z5dWUoVZrWJ5Zkz9cXYO';

/** Keys the digests of verified credentials (a prefix: only equality is asked of them); never leaves the process. */
const CACHE_KEY = randomBytes(32).toString('hex');

/**
 * `access.basicAuth`: Basic credentials against bcrypt hashes. A verified password is
 * remembered per user as a keyed SHA-256 of (its hash, the password) and compared in constant time, so
 * that bcrypt runs once per user and password, not per request; a changed hash (a new
 * password) no longer matches what was remembered, and a removed user is not looked up at all.
 * The memory is one digest per user of the document (a cache bounded by the document, where
 * Caddy's keyed by hash and password needs an eviction rule). bcrypt itself runs on the pool's
 * threads, at most CHECKS_PER_APP at once for this app, the same credentials at once sharing one.
 */
export class BasicAuth {
  private readonly users: Map<string, string>;
  private readonly verified = new Map<string, Buffer>();
  /** Checks under way, by the digest of what they check: the same credentials at once cost one bcrypt. */
  private readonly checking = new Map<string, Promise<Authenticated | PolicyRefusal>>();
  private readonly challenge: Record<string, string>;
  private readonly failures: TokenBuckets;

  constructor(
    realm: string,
    users: Record<string, string>,
    private readonly verify: Verify = sharedVerify,
    failures?: TokenBuckets,
  ) {
    this.users = new Map(Object.entries(users));
    this.challenge = { 'www-authenticate': `Basic realm="${realm}", charset="UTF-8"` };
    this.failures = failures ?? new TokenBuckets(FAILURE_RATE);
  }

  /** The user, a refusal, or (bcrypt to run) a promise of one of them. */
  check(
    authorization: string | undefined,
    address: string,
  ): Authenticated | PolicyRefusal | Promise<Authenticated | PolicyRefusal> {
    const credentials = parseBasic(authorization);
    if (credentials === undefined) return this.refusal('credentials are required');
    const { user, password } = credentials;
    const hash = this.users.get(user);
    const presented = digest(hash ?? DECOY, password);
    if (hash !== undefined) {
      const known = this.verified.get(user);
      if (known !== undefined && timingSafeEqual(known, presented)) return { user };
    }
    const wait = this.failures.wait(address);
    if (wait > 0) return tooMany('too many failed logins from this address; try again later', wait);
    const key = `${user}\0${presented.toString('base64')}`;
    const same = this.checking.get(key);
    if (same !== undefined) return same;
    if (this.checking.size >= CHECKS_PER_APP)
      return tooMany('too many logins are being checked for this application; try again shortly', 1);
    const check = this.verify(password, hash ?? DECOY)
      .then(
        (ok) => this.verdict(ok && hash !== undefined, user, hash, presented, address),
        () => this.verdict(false, user, hash, presented, address),
      )
      .finally(() => this.checking.delete(key));
    this.checking.set(key, check);
    return check;
  }

  private verdict(
    ok: boolean,
    user: string,
    hash: string | undefined,
    presented: Buffer,
    address: string,
  ): Authenticated | PolicyRefusal {
    if (!ok || hash === undefined) {
      this.failures.take(address);
      return this.refusal('the user name or password is wrong');
    }
    // The user list may have changed while bcrypt ran: only a hash still listed is remembered.
    if (this.users.get(user) === hash) this.verified.set(user, presented);
    return { user };
  }

  private refusal(message: string): PolicyRefusal {
    return { status: 401, message, reason: 'auth', headers: this.challenge };
  }
}

function tooMany(message: string, seconds: number): PolicyRefusal {
  return { status: 429, message, reason: 'auth', headers: { 'retry-after': String(seconds) } };
}

/** A keyed SHA-256 of (hash, password): crypto.hash's one call costs 0.9 µs, an HMAC object 2.2 µs. */
function digest(hash: string, password: string): Buffer {
  return digestOf('sha256', `${CACHE_KEY}\0${hash}\0${password}`, 'buffer');
}

/** The user and password of a `Basic` Authorization header (RFC 7617), or undefined. */
export function parseBasic(header: string | undefined): { user: string; password: string } | undefined {
  if (header === undefined || header.length < 7 || header.length > 4096) return undefined;
  if (header.slice(0, 6).toLowerCase() !== 'basic ') return undefined;
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { user: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}
