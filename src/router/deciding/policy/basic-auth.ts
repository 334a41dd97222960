import { hash as digestOf, randomBytes, timingSafeEqual } from 'node:crypto';
import { compare as bcryptVerify } from 'bcryptjs';
import type { PolicyRefusal } from './refusal.js';
import { type Rate, TokenBuckets } from './token-buckets.js';

/** Checks a password against a bcrypt hash (bcryptjs: in slices that yield to the event loop; bcrypt costs tens of ms). */
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

/** A hash of the right shape that matches no password: unknown users cost what known ones do. */
const DECOY = '$2b$10$abcdefghijklmnopqrstuu9VhP7zj0fXo2Z5dWUoVZrWJ5Zkz9cXYO';

/** Keys the digests of verified credentials (a prefix: only equality is asked of them); never leaves the process. */
const CACHE_KEY = randomBytes(32).toString('hex');

/**
 * `access.basicAuth`: Basic credentials against bcrypt hashes. A verified password is
 * remembered per user as a keyed SHA-256 of (its hash, the password) and compared in constant time, so
 * that bcrypt runs once per user and password, not per request; a changed hash (a new
 * password) no longer matches what was remembered, and a removed user is not looked up at all.
 * The memory is one digest per user of the document.
 */
export class BasicAuth {
  private readonly users: Map<string, string>;
  private readonly verified = new Map<string, Buffer>();
  private readonly challenge: Record<string, string>;
  private readonly failures: TokenBuckets;

  constructor(
    realm: string,
    users: Record<string, string>,
    private readonly verify: Verify = bcryptVerify,
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
    if (hash !== undefined) {
      const known = this.verified.get(user);
      if (known !== undefined && timingSafeEqual(known, digest(hash, password))) return { user };
    }
    const wait = this.failures.wait(address);
    if (wait > 0)
      return {
        status: 429,
        message: 'too many failed logins from this address; try again later',
        reason: 'auth',
        headers: { 'retry-after': String(wait) },
      };
    return this.verify(password, hash ?? DECOY).then(
      (ok) => this.verdict(ok && hash !== undefined, user, hash, password, address),
      () => this.verdict(false, user, hash, password, address),
    );
  }

  private verdict(
    ok: boolean,
    user: string,
    hash: string | undefined,
    password: string,
    address: string,
  ): Authenticated | PolicyRefusal {
    if (!ok || hash === undefined) {
      this.failures.take(address);
      return this.refusal('the user name or password is wrong');
    }
    // The user list may have changed while bcrypt ran: only a hash still listed is remembered.
    if (this.users.get(user) === hash) this.verified.set(user, digest(hash, password));
    return { user };
  }

  private refusal(message: string): PolicyRefusal {
    return { status: 401, message, reason: 'auth', headers: this.challenge };
  }
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
