import { createHash, timingSafeEqual } from 'node:crypto';

/** How a request's credentials compare with the --admin-token. */
export type Credential = 'ok' | 'missing' | 'wrong';

const digest = (text: string): Buffer => createHash('sha256').update(text, 'utf8').digest();

/**
 * The admin endpoint's bearer token. Compared in constant time: both sides are hashed first
 * (SHA-256), so that timingSafeEqual gets buffers of one length whatever was sent, and neither
 * the token's length nor its bytes show in the time an answer takes. The token itself is kept
 * only as its digest and is never logged.
 */
export class AdminToken {
  private readonly expected: Buffer;

  constructor(token: string) {
    this.expected = digest(token);
  }

  /** Checks an `Authorization` header: `Bearer TOKEN` (the scheme in any case). */
  check(authorization: string | undefined): Credential {
    if (authorization === undefined) return 'missing';
    const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(authorization);
    if (!m) return 'wrong';
    return timingSafeEqual(digest(m[1]!), this.expected) ? 'ok' : 'wrong';
  }
}

/** What an --admin-token must look like: long enough not to be guessed, and fit for a header. */
export function tokenProblem(token: string): string | undefined {
  if (token.length < 16) return 'must be at least 16 characters long';
  if (token.length > 4096) return 'must be at most 4096 characters long';
  if (!/^[\x21-\x7e]+$/.test(token)) return 'must be printable ASCII without spaces';
  return undefined;
}
