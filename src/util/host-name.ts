/**
 * Host names as the registry and nlb's configuration accept them. Request Host headers have a
 * check of their own on the hot path (router/deciding/host.ts): a name that passes it but not this one
 * simply names no app.
 */

/** A DNS name, lower case: labels of letters, digits, '-' and '_' (no leading or trailing '-'), separated by dots. */
const DNS_NAME = /^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?)*$/;
const IPV6_LITERAL = /^\[[0-9a-f:.]+\]$/;

/** Whether `name` is a DNS name of at most 253 characters (an IPv4 address is one too). */
export function isDnsName(name: string): boolean {
  return name.length > 0 && name.length <= 253 && DNS_NAME.test(name);
}

/** A DNS name, an IPv4 address, or a bracketed IPv6 one. */
export function isValidHostName(name: string): boolean {
  return isDnsName(name) || IPV6_LITERAL.test(name);
}

/**
 * A wildcard host: `*` as the whole leftmost label of a DNS name of two labels or more
 * (`*.example.com`), matching exactly one label in its place, as a TLS certificate's does.
 */
export function isWildcardName(name: string): boolean {
  return name.startsWith('*.') && name.indexOf('.', 2) > 0 && isDnsName(name.slice(2));
}

/**
 * Lower-cases a host name and strips a trailing dot, the way request Host headers are
 * normalised, so that registry names and request names compare equal.
 */
export function normaliseHostName(name: string): string {
  const lower = name.toLowerCase();
  return lower.endsWith('.') ? lower.slice(0, -1) : lower;
}
