import { isIP } from 'node:net';
import type { HostRule } from '../registry/types.js';

/**
 * Why a host of the registry does or does not get a certificate from the ACME CA: one pure
 * rule, used by the manager, `arr apps`, `arr validate` and `arr certs`.
 */
export type CertificateSource = 'own' | 'acme' | 'default';

/** A wildcard host (`*.example.com`): one certificate for the names one label under it, by DNS-01. */
export function isWildcard(host: string): boolean {
  return host.startsWith('*.');
}

/**
 * Whether a public CA can issue for `host` at all: not localhost, not an IP, not a single
 * label; for a wildcard, the name under the `*` is held to the same.
 */
export function isPublicName(name: string): boolean {
  const host = isWildcard(name) ? name.slice(2) : name;
  if (host === 'localhost' || host.endsWith('.localhost')) return false;
  if (host.startsWith('[') || isIP(host) !== 0) return false;
  if (!host.includes('.')) return false;
  return !host.endsWith('.');
}

/**
 * Where a host's certificate comes from: its own files; the ACME CA (ACME on, TLS allowed or
 * required, a public name, not `"acme": false`); else the default certificate.
 */
export function certificateSource(rule: HostRule, acmeOn: boolean): CertificateSource {
  if (rule.cert && rule.key) return 'own';
  if (acmeOn && qualifies(rule)) return 'acme';
  return 'default';
}

/** Whether a host would be ACME-managed with ACME on. */
export function qualifies(rule: HostRule): boolean {
  if (rule.cert || rule.key) return false;
  if (rule.ssl === 'none' || rule.acme === false) return false;
  return isPublicName(rule.host);
}
